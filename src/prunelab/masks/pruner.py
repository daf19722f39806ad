"""The :class:`Pruner`: magnitude masks on a model's weights and their enforcement in training."""

from __future__ import annotations

import math
import numbers
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from prunelab.criteria import Criterion, get_criterion
from prunelab.criteria.elementwise import check_seed
from prunelab.masks.arguments import (
    check_target,
    fraction,
    ratios_by_target,
)
from prunelab.masks.selection import select
from prunelab.masks.targets import find_prunable, matches_any, model_names, parameter_names, unwrapped
from prunelab.wording import counted

SCOPES = ("global", "layerwise")

#: Optimizers whose update of a weight is exactly zero when the weight, its gradient and its
#: state (momentum, Adam moments) are zero, weight decay included. With gradients masked before
#: the step, pruned weights stay zero without a second pass over them, which matters for small
#: models: each pass costs 3-4% of a LeNet-300-100 step. Exact types, as a subclass may change
#: the update. Adam and AdamW only while their eps is above zero in the weights' dtype (1e-8
#: is 0 in float16): otherwise a pruned entry's update is 0/0, and the weights are zeroed after
#: the step as for any other optimizer.
ZERO_PRESERVING_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
)


class Pruner:
    """Bool masks (True = kept) over the prunable weights of a model.

    The model is left as it is: no hooks, no re-parametrisation, the state_dict keys stay
    the model's own. Pruned weights are set to zero in place, and :meth:`attach` keeps them
    at zero through training. Parameters are looked up by name whenever the pruner acts, so
    it follows a model whose parameters were replaced (``load_state_dict(..., assign=True)``)
    or moved (``model.to(...)``). Given a wrapper (``torch.compile``'s, ``DistributedDataParallel``,
    ``DataParallel``), it prunes the model the wrapper runs (the same parameters), under the
    model's own names.

    ``include`` and ``exclude`` choose the weights to prune, by name or regular expression
    (by default the weights of every Conv and Linear layer; see :func:`find_prunable`).
    ``criterion`` scores them: ``"magnitude"``, ``"random"`` (hashed from ``seed``, the
    tensor's name and the position) or a callable of one's own (the contract is in
    :mod:`prunelab.criteria.elementwise`); :meth:`prune` may take another for one call.

    >>> model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 2))
    >>> pruner = Pruner(model)
    >>> _ = pruner.prune(0.5)                        # global magnitude, exact count
    >>> round(pruner.sparsity(), 3)
    0.5
    >>> _ = pruner.prune(ratios={"2": 0.9})          # module or parameter names
    >>> round(pruner.layer_sparsity()["2.weight"], 3)
    0.9
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> pruner.attach(optimizer)                     # pruned weights stay exactly zero
    """

    def __init__(
        self,
        model: nn.Module,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        criterion: str | Criterion = "magnitude",
        seed: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Pruner needs an nn.Module, got {type(model).__name__}")
        model = unwrapped(model)
        seed = check_seed(seed)
        self.model = model
        self.parameters: dict[str, nn.Parameter] = find_prunable(model, include, exclude)
        names = parameter_names(model)
        self._aliases = {name: names[name] for name in self.parameters}
        self.criterion = get_criterion(criterion, seed)
        self.seed = seed
        self.masks: dict[str, Tensor] = {}
        # While an optimizer is attached: (weight, mask in the weight's dtype) per pruned
        # tensor, for the per-step products; None when there is none to keep up to date.
        self._enforced: list[tuple[nn.Parameter, Tensor]] | None = None
        # Attached optimizers by id: a weak reference (an optimizer dropped is let go), the hooks'
        # handles, and the finalizer that forgets it once collected.
        self._hooks: dict[int, tuple[weakref.ref, list, weakref.finalize]] = {}
        # Attached optimizers (by id) with an eps that vanishes in a pruned weight's dtype (see _eps_vanishes).
        self._eps_vanishes: set[int] = set()
        # The weights' dtypes that eps was checked in: a cast to another may make it vanish.
        self._eps_dtypes: set[torch.dtype] = set()
        # The version counters of the enforced weights after the last step or apply(): one that
        # moved before the next step means the weights were written (rewinding), to mask again.
        self._versions: list[int] = []

    # -- pruning -----------------------------------------------------------------------

    def prune(
        self,
        sparsity: float | None = None,
        *,
        scope: str | None = None,
        ratios: Mapping[str, float] | None = None,
        criterion: str | Criterion | None = None,
    ) -> dict[str, Tensor]:
        """Prune to ``sparsity`` over all prunable weights (``scope="global"``, the default) or
        in every layer (``"layerwise"``), or each named layer to its ratio (``ratios``, which
        take no scope; a ratio may be 1, the whole layer, as global pruning can leave one, so
        that its layerwise ratios can be reproduced). Returns the masks, the pruner's own
        (True = kept; change them through the pruner, not in place).

        Counts are exact: ``round(s * n)`` of the ``n`` weights concerned are pruned, the
        lowest-scoring ones, ties broken by position. Masks nest: weights pruned before stay
        pruned, and a target below the current sparsity is an error; a target the masks
        already meet changes nothing and costs next to nothing, so a schedule's target can be
        given every step. A layer that a sparsity
        target prunes entirely is warned about (nothing passes through it any more); per-layer
        ratios are taken as meant.

        >>> model = nn.Linear(4, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(1.0)              # all tied: the lower positions go first
        >>> Pruner(model).prune(0.25)["weight"]
        tensor([[False, False,  True,  True],
                [ True,  True,  True,  True]])
        """
        check_target(sparsity, scope, ratios, per="layer")
        scope = scope or "global"
        if scope not in SCOPES:
            hint = " (per-layer ratios are given as prune(ratios={name: ratio}))" if scope == "ratios" else ""
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}{hint}")
        chosen = self.criterion if criterion is None else get_criterion(criterion, self.seed)
        self._follow_model()
        weights = {name: p.detach() for name, p in self.parameters.items()}
        prior = self.masks or None
        # Groups of tensors pruned together: all of them (global), or one at a time.
        if ratios is not None:
            groups = [([name], ratio) for name, ratio in self.named_ratios(ratios).items()]
        else:
            sparsity = fraction("sparsity", sparsity)
            names = list(self.parameters)
            groups = [(names, sparsity)] if scope == "global" else [([name], sparsity) for name in names]
        masks = {}
        for names, target in groups:
            total = sum(weights[n].numel() for n in names)
            n_prune = round(target * total)
            current = sum(self.count_pruned(n) for n in names)
            if n_prune < current:
                where = "the current sparsity" if len(names) > 1 else f"its current sparsity (in {names[0]})"
                raise ValueError(
                    f"target {target} is below {where} {current / total:.6g}: "
                    "masks only grow (pruned weights are never regrown)"
                )
            if prior is not None and n_prune == current:
                continue  # nested masks of the same count are these: nothing to choose (a schedule's step between updates)
            group_prior = None if prior is None else {n: prior[n] for n in names}
            masks.update(select({n: weights[n] for n in names}, n_prune, chosen, group_prior, seed=self.seed))
        if not masks and prior is not None:
            return self.masks  # every target already met: no mask changed, none was emptied
        emptied_before = {name for name in self.parameters if self._emptied(name)}
        self._set_masks(masks)
        emptied = [name for name in self.parameters if self._emptied(name) and name not in emptied_before]
        if emptied and ratios is None:
            remedy = (
                "scope 'layerwise' or per-layer ratios keep some weights in every layer" if scope == "global"
                else f"a sparsity of {sparsity} rounds to all of a layer this small"
            )
            warnings.warn(
                f"every weight of {', '.join(emptied)} is pruned (layer collapse): nothing passes through "
                f"{'it' if len(emptied) == 1 else 'them'} any more; {remedy}",
                stacklevel=2,
            )
        return self.masks

    def _emptied(self, name: str) -> bool:
        mask = self.masks.get(name)
        return mask is not None and mask.numel() > 0 and not mask.any()

    def named_ratios(self, ratios: Mapping[str, float]) -> dict[str, float]:
        """``ratios`` (each in [0, 1]) keyed by parameter, module names or regexes, as ratios per
        prunable parameter name; an unknown name or two ratios for one parameter are errors.

        >>> Pruner(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))).named_ratios({"0": 0.5, "1.weight": 0.2})
        {'0.weight': 0.5, '1.weight': 0.2}
        """
        known = model_names(self.model)
        return ratios_by_target(
            ratios, list(self.parameters), lambda key, name: matches_any(key, self._aliases[name], known),
            kind="parameter", of="prunable parameters", whole=True,
        )

    def _set_masks(self, masks: dict[str, Tensor]) -> None:
        """Take the given masks; other prunable tensors keep theirs or get an all-True one."""
        for name, param in self.parameters.items():
            if name in masks:
                self.masks[name] = masks[name]
            elif name not in self.masks:
                self.masks[name] = torch.ones_like(param, dtype=torch.bool)
        self._enforced = None
        self.apply()

    def apply(self) -> None:
        """Zero the pruned weights, their gradients and attached optimizers' state for them (an
        LBFGS whose history moves them begins a new one).

        An attached optimizer's next step does this itself after weights were written into
        the model (rewinding with ``model.load_state_dict``; not through ``.data``). Call it
        after writing weights while no optimizer is attached or before evaluating them ahead
        of the next step, after changing an attached optimizer's param groups
        (``add_param_group``), and after setting masks of one's own (N:M, another tool's) in
        :attr:`masks`, a bool tensor of its weight's shape each (True = kept); the weights
        given none then get an all-True one, as :meth:`prune` leaves them.
        """
        self._check_masks()
        self._enforced = None  # the products, made again from the masks as they are now
        self._follow_model()
        if self.masks:  # set by hand for some weights only: prune() and state_dict() need one for each
            for name, param in self.parameters.items():
                self.masks.setdefault(name, torch.ones_like(param, dtype=torch.bool))
        self._check_eps()
        with torch.no_grad():
            for name, mask in self.masks.items():
                param = self.parameters[name]
                _zero_pruned(param, mask)
                if param.grad is not None:
                    _zero_pruned(param.grad, mask)
                for _, optimizer in self._attached():
                    for value in optimizer.state.get(param, {}).values():
                        if isinstance(value, Tensor) and value.shape == param.shape:
                            _zero_pruned(value, mask)
            for _, optimizer in self._attached():
                if isinstance(optimizer, torch.optim.LBFGS):
                    _restart_stale_history(optimizer, {id(self.parameters[name]): mask for name, mask in self.masks.items()})
        self._versions = self._weight_versions()

    def _check_masks(self) -> None:
        """Masks set in :attr:`masks` by hand: a bool tensor of its weight's shape for a prunable weight."""
        for name, mask in self.masks.items():
            if name not in self.parameters:
                raise ValueError(f"masks has {name!r}, which is no prunable parameter; prunable parameters are: {', '.join(self.parameters)}")
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != self.parameters[name].shape:
                given = f"a {mask.dtype} tensor of shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
                raise ValueError(f"the mask of {name!r} must be a bool tensor of shape {tuple(self.parameters[name].shape)} "
                                 f"(True = kept), got {given}")  # fmt: skip

    def _weight_versions(self) -> list[int]:
        """The version counters of the enforced weights, which every write into them moves."""
        return [param._version for param, _ in self._enforced or ()]

    def _products(self) -> list[tuple[nn.Parameter, Tensor]]:
        """(weight, its mask as :func:`_zero_by` takes it) for every tensor with pruned entries."""
        return [(self.parameters[name], _step_mask(mask, self.parameters[name].dtype)) for name, mask in self.masks.items() if not bool(mask.all())]

    def _follow_model(self) -> bool:
        """Catch up with the model: parameters replaced since (looked up by name again), masks
        on another device than their weights, float masks of another dtype. True if anything
        changed."""
        changed = False
        for name, param in self.parameters.items():
            try:
                current = self.model.get_parameter(name)
            except AttributeError:
                raise ValueError(f"the model no longer has the parameter {name!r} this pruner prunes") from None
            if isinstance(current, nn.parameter.UninitializedParameter):
                raise ValueError(
                    f"{name} belongs to a lazy module that has not run yet, so it has no shape: "
                    "run the model on one batch first"
                )
            if current.is_meta:
                raise ValueError(
                    f"{name} is on the meta device, without values: materialize the model first "
                    "(e.g. model.to_empty(device=...), then load its weights)"
                )
            if current is not param:
                if current.shape != param.shape:
                    raise ValueError(f"{name} was replaced by a parameter of shape {tuple(current.shape)}, not {tuple(param.shape)}")
                self.parameters[name], changed = current, True
        for name, mask in self.masks.items():
            if mask.device != self.parameters[name].device:
                self.masks[name], changed = mask.to(self.parameters[name].device), True
        stale = self._enforced is None or any(m.dtype != _step_mask_dtype(p.dtype) or m.device != p.device for p, m in self._enforced)
        if self._hooks and (changed or stale):
            self._enforced = self._products()
            self._check_eps()
            return True
        return changed

    def _check_eps(self) -> None:
        """Which attached optimizers have an Adam-style eps that vanishes in a pruned weight's dtype."""
        self._eps_dtypes = {param.dtype for param, _ in self._enforced or ()}
        self._eps_vanishes = {key for key, optimizer in self._attached() if _eps_vanishes(optimizer, self._eps_dtypes)}

    # -- enforcement during training ---------------------------------------------------

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep pruned weights exactly zero while ``optimizer`` trains the model.

        Before every ``optimizer.step()`` the gradients of pruned weights are zeroed, so
        momentum buffers and Adam moments, zeroed here and whenever the masks change or the
        optimizer's state is loaded, stay zero and weight decay has nothing to act on. SGD,
        Adam and AdamW then leave the pruned weights at exactly zero; after the step of any
        other optimizer they are zeroed again, which keeps the guarantee for any optimizer (and
        so they are for Adam and AdamW if eps is 0 in the weights' dtype, as 1e-8 is in float16).
        Uses the optimizer's own hooks; nothing of the model or optimizer is replaced. While
        attached, the pruner holds a copy of each pruned tensor's mask as fits the weight's
        dtype: 0/1 to multiply by, or for float16 and bfloat16 bits to AND, which also zero an
        inf or NaN gradient of a pruned weight (in float32 and float64 one makes the weight NaN:
        only a training that has diverged gets there). Weights written into the model later (rewinding with
        ``model.load_state_dict``, ``copy_`` under ``no_grad``) are masked again before the
        next step, which sees them written by their version counters; writes through ``.data``
        leave no trace there and need :meth:`apply`, as does a forward pass before the next
        step. A copy of the pruner (``copy.deepcopy``, pickle) is not attached.
        Gradient clipping between ``backward()`` and the step sees the gradients of pruned
        weights unless :meth:`mask_gradients` is called first. An optimizer that trains none of
        the pruned weights (another model's) is a ValueError.

        >>> model = nn.Linear(8, 4)
        >>> pruner = Pruner(model)
        >>> _ = pruner.prune(0.75)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
        >>> pruner.attach(optimizer)
        >>> for _ in range(3):
        ...     optimizer.zero_grad()
        ...     model(torch.randn(5, 8)).square().sum().backward()
        ...     optimizer.step()
        >>> momentum = optimizer.state[model.weight]["momentum_buffer"]
        >>> int(model.weight.count_nonzero()), int(model.weight.grad.count_nonzero()), int(momentum.count_nonzero())
        (8, 8, 8)
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"attach needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if id(optimizer) in self._hooks:
            return
        self._follow_model()  # a model changed under the pruner fails here, before any hook exists
        held = {id(param) for group in optimizer.param_groups for param in group["params"]}
        if not any(id(param) in held for param in self.parameters.values()):
            raise ValueError(
                "the optimizer trains none of the weights this pruner prunes: it was made for other "
                "parameters (another model, a copy of this one, or only layers left unpruned, such as a head "
                "trained over frozen pruned layers, which need no attach)"
            )
        handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
            optimizer.register_load_state_dict_post_hook(self._after_optimizer_load),
        ]
        key = id(optimizer)
        self._hooks[key] = (weakref.ref(optimizer), handles, weakref.finalize(optimizer, self._forget, key))
        self._enforced = None  # rebuilt by apply(), which also checks the new optimizer's eps
        self.apply()

    def _attached(self) -> Iterator[tuple[int, torch.optim.Optimizer]]:
        """The attached optimizers, by id."""
        for key, (ref, *_) in list(self._hooks.items()):
            if (optimizer := ref()) is not None:
                yield key, optimizer

    def _forget(self, key: int) -> None:
        """Let go of an attached optimizer: detached, or collected (its hooks went with it)."""
        _, handles, finalizer = self._hooks.pop(key, (None, [], None))
        for handle in handles:
            handle.remove()
        if finalizer is not None:
            finalizer.detach()
        self._eps_vanishes.discard(key)
        if not self._hooks:
            self._enforced = None

    def _after_optimizer_load(self, _optimizer: torch.optim.Optimizer) -> None:
        self.apply()

    def __getstate__(self) -> dict:
        # The hooks live in the original's optimizers: a copy (deepcopy, pickle) starts detached.
        return {**self.__dict__, "_hooks": {}, "_enforced": None, "_eps_vanishes": set(), "_eps_dtypes": set(), "_versions": []}

    def detach(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Stop enforcing the masks for ``optimizer`` (all optimizers if None)."""
        for key in list(self._hooks) if optimizer is None else [id(optimizer)]:
            self._forget(key)

    def _before_step(self, _optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Mask the gradients (and the weights, if written since the last step); with
        ``step(closure)``, also the gradients the closure computes.

        ``args`` are those of ``optimizer.step``, the optimizer itself first.
        """
        if self._versions != self._weight_versions():
            self.apply()
        self.mask_gradients()
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if closure is None:
            return None

        def masked_closure():
            loss = closure()
            self.mask_gradients()
            return loss

        if len(args) > 1:
            return (args[0], masked_closure, *args[2:]), kwargs
        return args, {**kwargs, "closure": masked_closure}

    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights now.

        An attached optimizer's step does this itself. Call it between ``backward()`` and
        anything that reads the gradients before the step, such as gradient clipping, so
        that a gradient norm counts the kept weights only:

        >>> model = nn.Linear(4, 2)
        >>> pruner = Pruner(model)
        >>> _ = pruner.prune(0.5)
        >>> model(torch.ones(1, 4)).sum().backward()
        >>> pruner.mask_gradients()
        >>> int(model.weight.grad.count_nonzero())
        4
        """
        if not self._hooks:  # not attached: the bool masks serve, off the step path
            self._follow_model()
            self._fill_gradients()
            return
        # The per-step path, kept lean: gradients need no autograd guard, and the model is
        # only checked again when a product fails, as after a move to another device
        # (masking is idempotent, so it is then simply done again). A cast of the model
        # still masks correctly; the masks follow it at the next apply() or prune().
        try:
            for param, mask in self._enforced:
                grad = param.grad
                if grad is not None:
                    _zero_by(grad, mask)
        except RuntimeError:
            if self._follow_model():
                self.mask_gradients()
            elif any(param.grad is not None and param.grad.dtype != param.dtype for param, _ in self._enforced):
                # A gradient of another dtype than its weight's (param.data swapped, the old gradient
                # left; a grad_dtype): a 16-bit mask has no bits of its width to AND.
                self._fill_gradients()
            else:
                raise

    @torch.no_grad()
    def _fill_gradients(self) -> None:
        """Zero the gradients of pruned weights by the bool masks, whatever their dtype (a fill:
        an overflowed gradient too)."""
        for name, mask in self.masks.items():
            grad = self.parameters[name].grad
            if grad is not None:
                _zero_pruned(grad, mask)

    def _after_step(self, optimizer: torch.optim.Optimizer, *_hook_args: object) -> None:
        # A cast since attach (model.half()) still masks right, but may make eps vanish; one from
        # bfloat16 to float16 keeps the masks' dtype (int16), so the weights' dtypes tell.
        if any(param.dtype not in self._eps_dtypes for param, _ in self._enforced):
            self._follow_model()
            self._check_eps()
        if id(optimizer) in self._eps_vanishes:
            self._mask_weights(fill=True)
        elif type(optimizer) not in ZERO_PRESERVING_OPTIMIZERS:
            self._mask_weights()
        self._versions = self._weight_versions()

    @torch.no_grad()
    def _mask_weights(self, fill: bool = False) -> None:
        """Zero the pruned weights: as the gradients are, or, in a dtype whose masks multiply, by
        a fill where an update of 0/0 or 0 * inf (an eps that vanished) left NaN, which a product
        with 0 keeps."""
        try:
            for param, mask in self._enforced:
                if fill and mask.is_floating_point():
                    param.masked_fill_(mask == 0, 0)
                else:
                    _zero_by(param, mask)
        except RuntimeError:
            if not self._follow_model():
                raise
            self._mask_weights(fill)

    # -- measurements ------------------------------------------------------------------

    def count_pruned(self, name: str | None = None) -> int:
        """Number of pruned weights in one prunable tensor (by any of its names), or in all of them."""
        if name is not None:
            first = next((first for first, aliases in self._aliases.items() if name in aliases), None)
            if first is None:
                raise ValueError(f"{name!r} is not a prunable parameter; prunable parameters are: {', '.join(self.parameters)}")
            name = first
        names = self.masks if name is None else [name] if name in self.masks else []
        return sum(self.masks[n].numel() - int(self.masks[n].count_nonzero()) for n in names)

    def __repr__(self) -> str:
        """What the pruner holds, at a glance.

        >>> Pruner(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
        Pruner(2 tensors, 24 weights, 0.00% pruned)
        """
        weights = sum(p.numel() for p in self.parameters.values())
        hooked, tensors = len(self._hooks), len(self.parameters)
        attached = f", attached to {counted(hooked, 'optimizer')}" if hooked else ""
        held = f"Pruner({counted(tensors, 'tensor')}, {counted(weights, 'weight')}"
        try:
            self._check_masks()
        except ValueError:  # set by hand, and not as apply() takes them: it says why
            return f"{held}, masks set by hand that apply() does not take{attached})"
        try:
            self._follow_model()  # the weights the model holds now, e.g. new ones from load_state_dict(..., assign=True)
        except ValueError as error:  # the model changed under the pruner
            return f"{held}{attached}: {error})"
        # Weights written since the masks were applied (rewinding with no optimizer attached) train as if unpruned.
        with torch.no_grad():
            live = sum(int(self.parameters[n][~mask.to(self.parameters[n].device)].count_nonzero()) for n, mask in self.masks.items())
        unmasked = f", {counted(live, 'pruned weight')} not zero: apply() zeroes them" if live else ""
        return f"{held}, {self.sparsity():.2%} pruned{attached}{unmasked})"

    def sparsity(self) -> float:
        """Fraction of the prunable weights that are pruned.

        >>> pruner = Pruner(nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2)))
        >>> _ = pruner.prune(0.5, scope="layerwise")
        >>> pruner.sparsity(), pruner.count_pruned(), pruner.count_pruned("1.weight")
        (0.5, 60, 10)
        """
        return self.count_pruned() / max(1, sum(p.numel() for p in self.parameters.values()))

    def layer_sparsity(self) -> dict[str, float]:
        """Layerwise pruning ratios (LPR): the pruned fraction of each prunable tensor.

        >>> pruner = Pruner(nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2)))
        >>> _ = pruner.prune(ratios={"0": 0.3, "1": 0.75})
        >>> pruner.layer_sparsity()
        {'0.weight': 0.3, '1.weight': 0.75}
        """
        return {name: self.count_pruned(name) / max(1, p.numel()) for name, p in self.parameters.items()}

    # -- persistence -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Tensor]:
        """The masks, bit-packed (8 weights a byte), with their shapes; flat for safetensors.

        >>> model = nn.Linear(100, 10)
        >>> pruner = Pruner(model)
        >>> _ = pruner.prune(0.9)
        >>> state = pruner.state_dict()
        >>> {key: tuple(value.shape) for key, value in state.items()}  # 1,000 masks in 125 bytes
        {'mask:weight': (125,), 'shape:weight': (2,)}
        >>> restored = Pruner(model)
        >>> restored.load_state_dict(state)
        >>> torch.equal(restored.masks["weight"], pruner.masks["weight"])
        True
        """
        state = {}
        for name, mask in self.masks.items():
            state[f"mask:{name}"] = _pack_bits(mask)
            state[f"shape:{name}"] = torch.tensor(mask.shape, dtype=torch.int64)
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Set the masks from :meth:`state_dict` output and apply them to the model.

        The state must hold a mask for every prunable parameter, or none at all (a pruner
        that had not pruned yet). It replaces the masks, as a restore: unlike :meth:`prune`,
        it may keep weights the current masks prune (they are zero, and train again). A tied
        weight's mask may be under any of its names (a model that names it otherwise).
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping, as state_dict() gives (e.g. safetensors.torch.load_file(path)), got {type(state).__name__}")
        self._follow_model()
        first = {alias: name for name, aliases in self._aliases.items() for alias in aliases}
        masks = {}
        for key in state:
            kind, _, given = key.partition(":") if isinstance(key, str) else ("", "", "")
            if kind not in ("mask", "shape") or not given:
                raise ValueError(f"unexpected key {key!r} in a pruner state_dict (keys are 'mask:<name>' and 'shape:<name>')")
            name = first.get(given, given)
            if name not in self.parameters:
                raise ValueError(
                    f"mask for {name!r}, but the model has no prunable parameter of that name; "
                    f"prunable parameters are: {', '.join(self.parameters)}"
                )
            other = f"shape:{given}" if kind == "mask" else f"mask:{given}"
            if other not in state:
                raise ValueError(f"the state has {key!r} but not {other!r}")
            if kind == "shape":
                continue
            shape = _shape(name, state[f"shape:{given}"])
            expected = tuple(self.parameters[name].shape)
            if shape != expected:
                raise ValueError(f"mask for {name!r} has shape {shape}, but the parameter has shape {expected}")
            device = self.parameters[name].device
            masks[name] = _unpack_bits(key, state[key], math.prod(shape)).view(shape).to(device)
        missing = [name for name in self.parameters if name not in masks]
        if masks and missing:
            raise ValueError(f"the state has no mask for {', '.join(missing)}")
        self.masks = {}
        if masks:
            self._set_masks(masks)
        else:  # the state of a pruner that had not pruned yet: so is this one now
            self._enforced = None
            self._follow_model()  # while attached, the step then has nothing to mask


def _zero_pruned(tensor: Tensor, mask: Tensor) -> None:
    """Zero the entries of ``tensor`` that ``mask`` prunes. Off the per-step path: by a fill,
    which zeroes an inf or NaN too (a product keeps NaN); a sparse tensor (the gradient of an
    ``nn.Embedding(sparse=True)``, SGD's momentum of it) has no fill, only the product."""
    if tensor.is_sparse:
        tensor.mul_(mask)
    else:
        tensor.masked_fill_(~mask, 0)


#: The integer of each 16-bit float dtype's width, whose bits the masks of that dtype AND.
_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16}


def _step_mask_dtype(dtype: torch.dtype) -> torch.dtype:
    return _BITS.get(dtype, dtype)


def _step_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask as the per-step masking of a tensor of ``dtype`` takes it: for 16-bit floats,
    an integer of their width with every bit set where kept, to AND into their bits (3x as fast
    as a product, which torch computes in float32 there, and exact where a gradient of a pruned
    weight overflowed: inf * 0 is NaN); otherwise 1.0 where kept, 0.0 where pruned, to multiply
    by (a bool mask, cast element by element, cost 15% of LeNet-300-100's step; ANDing float32's
    bits measured 1.5% slower than the product there)."""
    step = mask.to(_step_mask_dtype(dtype))
    return step if step.is_floating_point() else step.neg_()


def _zero_by(tensor: Tensor, mask: Tensor) -> None:
    """Zero the entries of ``tensor`` that a :func:`_step_mask` prunes."""
    if mask.is_floating_point():
        tensor.mul_(mask)
    elif tensor.is_sparse:  # no bits to view (the gradient of an nn.Embedding(sparse=True))
        tensor.mul_(mask.ne(0))
    else:
        tensor.view(mask.dtype).bitwise_and_(mask)


def _restart_stale_history(optimizer: torch.optim.LBFGS, kept: dict[int, Tensor]) -> None:
    """Begin a new history for an LBFGS whose history moves pruned weights (made before
    pruning, or loaded from a dense run): its state is flat directions over all its parameters,
    which no mask fits, and the iterations inside one step would move those weights again.
    A history made under the masks (a resumed run's) is kept."""
    params = optimizer.param_groups[0]["params"]
    state = optimizer.state.get(params[0], {})
    flats = [state.get("d"), state.get("prev_flat_grad"), *state.get("old_dirs", ()), *state.get("old_stps", ())]
    flats = [flat for flat in flats if isinstance(flat, Tensor)]
    pruned = ~torch.cat([kept.get(id(p), torch.ones_like(p, dtype=torch.bool)).reshape(-1) for p in params])
    if any(bool(flat[pruned.to(flat.device)].any()) for flat in flats):
        optimizer.state.clear()


def _eps_vanishes(optimizer: torch.optim.Optimizer, dtypes: set[torch.dtype]) -> bool:
    """Whether an Adam-style ``eps`` of ``optimizer`` is 0 in one of ``dtypes`` (a pruned entry's
    update 0 / 0), or, for an optimizer other than SGD, Adam and AdamW, so small that its
    reciprocal is inf there (RAdam's step divides by sqrt(v) + eps: an update of 0 * inf)."""
    inverted = type(optimizer) not in ZERO_PRESERVING_OPTIMIZERS
    for group in optimizer.param_groups:
        for dtype in dtypes if isinstance(group.get("eps"), numbers.Real) else ():
            eps = torch.tensor(group["eps"], dtype=dtype)
            if bool(eps == 0) or inverted and bool(eps.reciprocal().isinf()):
                return True
    return False


def _shape(name: str, value: object) -> tuple[int, ...]:
    key = f"shape:{name}"
    if not isinstance(value, Tensor) or value.dim() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
        raise ValueError(f"{key!r} must be a 1-d integer tensor, got {value!r}")
    return tuple(int(d) for d in value)


_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def _pack_bits(mask: Tensor) -> Tensor:
    flat = mask.detach().reshape(-1).cpu()
    padded = torch.zeros(-(-flat.numel() // 8) * 8, dtype=torch.uint8)
    padded[: flat.numel()] = flat
    return (padded.view(-1, 8) * _BIT_WEIGHTS).sum(1, dtype=torch.uint8)


def _unpack_bits(label: str, packed: object, numel: int) -> Tensor:
    size = -(-numel // 8)
    if not isinstance(packed, Tensor):
        raise ValueError(f"{label} must be a tensor of {size} uint8 bytes (from Pruner.state_dict), got {type(packed).__name__}")
    if packed.dtype != torch.uint8 or packed.numel() != size:
        raise ValueError(f"{label} has {packed.numel()} bytes of {packed.dtype}, expected {size} uint8")
    bits = packed.reshape(-1, 1).bitwise_and(_BIT_WEIGHTS).ne(0)
    return bits.reshape(-1)[:numel]
