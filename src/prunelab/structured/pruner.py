"""``ChannelPruner``: choose whole channels to remove, then build the small dense model without them."""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import Tensor, nn

from prunelab.criteria.channels import (
    BatchNormScale,
    ChannelCriterion,
    FilterL1,
    default_scope,
    get_channel_criterion,
)
from prunelab.criteria.elementwise import check_seed
from prunelab.masks.arguments import (
    check_target,
    fraction,
    ratios_by_target,
)
from prunelab.masks.targets import CONVS, PRUNABLE_MODULES, check_patterns, matches, model_names, unwrapped
from prunelab.models.common import evaluating, example_batch, leaving_state, training
from prunelab.structured.groups import ChannelGroup, channel_groups
from prunelab.wording import counted, plural


class ChannelPruner:
    """Prune whole channels of ``model``: filters of Conv layers, units of Linear layers.

    The channel groups (:func:`~prunelab.structured.channel_groups`) are found by tracing the
    model on ``example_input`` (a batch, or a single example); those that cannot be pruned
    (e.g. the classifier's outputs) are left out. ``include`` / ``exclude`` pick groups by the names of their layers (exact
    names or regular expressions, as :class:`~prunelab.Pruner`'s); a group is excluded when
    any of its layers is. ``criterion`` scores channels: ``filter_l1`` (Li et al., 2017),
    ``bn_scale`` (|gamma|, seed 002) or ``random_channels``; members of a residual-coupled
    group add up their scores. Groups the criterion cannot score (``bn_scale``: without
    BatchNorm) are left out too, and :meth:`prune` warns naming them: a pruner that only
    rebuilds a small model from kept channels saved before (:meth:`load_state_dict`, then
    :meth:`shrink`) stays quiet. Nothing of ``model`` changes: :meth:`shrink` returns a copy.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4, 2))
    >>> _ = nn.init.uniform_(model[1].weight)  # as if trained: untrained scales all tie at 1
    >>> pruner = ChannelPruner(model, torch.zeros(1, 3, 4, 4), criterion="bn_scale")
    >>> {name: kept.tolist() for name, kept in pruner.prune(0.5).items()}  # the channels each group keeps
    {'0': [1, 2, 3, 6]}
    >>> small = pruner.shrink()
    >>> small[0], small[4]
    (Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1)), Linear(in_features=16, out_features=2, bias=True))
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: Tensor,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        criterion: str | ChannelCriterion = "filter_l1",
        seed: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"ChannelPruner needs an nn.Module, got {type(model).__name__}")
        if unwrapped(model) is not model:  # a wrapper (torch.compile's, DDP's), which fx cannot trace
            compiled = isinstance(getattr(model, "_orig_mod", None), nn.Module)
            wrapper, inner = ("torch.compile", "model._orig_mod") if compiled else (type(model).__name__, "model.module")
            raise TypeError(f"ChannelPruner needs the model itself, not its {wrapper} wrapper: pass {inner}")
        if not isinstance(example_input, Tensor):
            batch = ": the inputs alone, not a batch of (inputs, labels, ...)" if isinstance(example_input, (tuple, list)) else ""
            raise TypeError(f"example_input must be a tensor (a batch the model takes), got {type(example_input).__name__}{batch}")
        seed = check_seed(seed)
        self.model, self.example_input = model, example_input
        self.criterion = get_channel_criterion(criterion, seed)
        groups = channel_groups(model, example_input)
        self._unprunable = [group for group in groups if not group.prunable]  # named when a ratio asks for them
        chosen = _chosen(groups, include, exclude, model_names(model))
        self._left_out = [group for group in groups if group.prunable and group not in chosen]  # by include/exclude
        self._unscored = [group for group in chosen if self.criterion(model, group) is None]
        self.groups = self._scorable(chosen)
        self.keep: dict[str, Tensor] = {g.name: torch.arange(g.size) for g in self.groups}
        # What weight_sparsity counts: every Conv/Linear weight, by layer (computed weights too).
        self._weight_shapes = {name: m.weight.shape for name, m in model.named_modules() if isinstance(m, PRUNABLE_MODULES)}

    # -- choosing channels -------------------------------------------------------------

    def prune(
        self,
        sparsity: float | None = None,
        *,
        scope: str | None = None,
        ratios: Mapping[str, float] | None = None,
        sparsity_of: str = "channels",
    ) -> dict[str, Tensor]:
        """Remove the lowest-scoring channels until ``sparsity`` of all the groups' channels
        are gone (``scope="global"``: ranked across groups; ``"layerwise"``: the same share of
        each group), or ``ratios`` of the named groups (which take no scope; a key names a group
        by any of its layers, or by a regular expression, as include/exclude do). The default scope
        is the criterion's own (:func:`~prunelab.criteria.channels.default_scope`): layerwise for
        ``filter_l1``, global for the others. Exactly ``round(s * n)`` channels go, ties
        broken by group and channel order. Channels once removed stay removed, and every group
        keeps at least one channel (its best), so a network is never cut in two: a target that
        would remove a group's last channel is an error.

        ``sparsity_of="weights"`` (global scope only) counts weights instead, as seed 002's
        Algorithm A2 ("prune p% of parameters ... by pruning channels"): the fewest channels,
        in the global ranking, whose removal takes at least ``sparsity`` of the model's
        Conv/Linear weights out (a removed channel takes its filter and the next layer's
        columns reading it), as :meth:`weight_sparsity` counts them. Whole channels take out a
        little more than asked; a target the removed channels already meet, but not without
        each of them (the same target again), changes nothing.

        Returns the channels each group keeps (:attr:`keep`, the pruner's own), as
        :meth:`prunelab.Pruner.prune` returns its masks.

        >>> model = nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Conv1d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 2))
        >>> pruner = ChannelPruner(model, torch.zeros(1, 1, 10))     # filter_l1, layerwise
        >>> {name: len(kept) for name, kept in pruner.prune(0.5).items()}
        {'0': 4, '2': 2}
        >>> round(pruner.weight_sparsity(), 4)  # filters and the columns reading them: 12 + 24 + 24 of 24 + 96 + 48 weights left
        0.6429
        """
        check_target(sparsity, scope, ratios, per="group")
        if sparsity_of not in ("channels", "weights"):
            raise ValueError(f"sparsity_of must be 'channels' or 'weights', got {sparsity_of!r}")
        scope = scope or default_scope(self.criterion)
        if sparsity_of == "weights" and (ratios is not None or scope != "global"):
            raise ValueError("sparsity_of='weights' ranks channels across groups until the weights removed reach the "
                             "sparsity: it needs scope 'global' (and no ratios)")  # fmt: skip
        scores = self._scores()
        before = dict(self.keep)
        if ratios is not None:
            targets = self._ratio_targets(ratios, scores)
        elif scope == "layerwise":
            sparsity = fraction("sparsity", sparsity)
            targets = {name: round(sparsity * len(s)) for name, s in scores.items()}
        elif scope == "global":
            if isinstance(self.criterion, FilterL1) and len(scores) > 1:
                warnings.warn(
                    "filter_l1 ranked globally compares filter norms of layers with different fan-in (the layers "
                    "with the fewest inputs lose nearly all their channels); Li et al. and seed 004 prune each "
                    "layer alike: use scope 'layerwise' or ratios, or the bn_scale criterion",
                    stacklevel=2,
                )
            self._prune_globally(fraction("sparsity", sparsity), scores, sparsity_of)
            self._warn_of_unscored()
            self._warn_of_ties(scores, before, pooled=True)
            return self.keep
        else:
            raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")
        kept = {}  # set once every group's target is checked: a target in error changes no group
        for name, count in targets.items():
            size = len(scores[name])
            removed = size - len(self.keep[name])
            if count < removed:
                raise ValueError(f"{name} already has {removed} of {counted(size, 'channel')} removed, more than the {count} asked for")
            if count >= size:
                asked = "ratio" if ratios is not None else "sparsity"
                raise ValueError(f"{name}: removing {count} of its {counted(size, 'channel')} leaves none, but every group keeps one: "
                                 f"at most {size - 1} can go (a {asked} of at most {(size - 1) / size:.4g})")  # fmt: skip
            ranked = _ranked(scores[name], self.keep[name])
            kept[name] = ranked[-(size - count) :].sort().values
        self.keep.update(kept)
        self._warn_of_unscored()
        self._warn_of_ties(scores, before, pooled=False)
        return self.keep

    def _warn_of_ties(self, scores: dict[str, Tensor], before: dict[str, Tensor], pooled: bool) -> None:
        """Warn if channels kept score exactly as channels just removed (across groups if
        ``pooled``, else within each): the order of groups and channels chose, not the criterion."""
        cuts = [(score[before[name][~torch.isin(before[name], self.keep[name])]], score[self.keep[name]])
                for name, score in scores.items()]  # fmt: skip
        if pooled:
            cuts = [(torch.cat([removed for removed, _ in cuts]), torch.cat([kept for _, kept in cuts]))]
        tied = sum(int((kept == removed.max()).sum()) for removed, kept in cuts if len(removed))
        if tied:
            untrained = " (BatchNorm scales are all 1 before training)" if isinstance(self.criterion, BatchNormScale) else ""
            warnings.warn(
                f"{tied} of the channels kept score exactly as the best of those just removed, so their order, "
                f"not {self.criterion!r}, chose between them{untrained}",
                stacklevel=3,
            )

    def _scorable(self, groups: list[ChannelGroup]) -> list[ChannelGroup]:
        """The groups the criterion scores; none is an error."""
        unscored = [group.name for group in self._unscored]
        if len(unscored) == len(groups) and isinstance(self.criterion, BatchNormScale):
            raise ValueError(
                f"criterion bn_scale needs BatchNorm layers after the pruned layers, and none of the channel groups "
                f"({', '.join(unscored)}) has one (a model option such as batch_norm may add them)"
            )
        if len(unscored) == len(groups):
            raise ValueError(f"criterion {self.criterion!r} scores none of the channel groups {', '.join(unscored)}")
        return [group for group in groups if group.name not in unscored]

    def _warn_of_unscored(self) -> None:
        """Name the groups the criterion cannot score, once channels are chosen."""
        if self._unscored:
            why = " (no BatchNorm follows them)" if isinstance(self.criterion, BatchNormScale) else ""
            warnings.warn(
                f"criterion {self.criterion!r} cannot score the channel groups {', '.join(g.name for g in self._unscored)}{why}: "
                "they stay whole, and sparsities count the other groups' channels",
                stacklevel=3,
            )

    def _scores(self) -> dict[str, Tensor]:
        """The criterion's score of every channel of every group, of the weights as they are
        now (trained since the pruner was made, perhaps through ``.data``, which leaves no trace)."""
        scores = {}
        for group in self.groups:
            score = self.criterion(self.model, group)
            if score is None:
                raise ValueError(f"criterion {self.criterion!r} scored {group.name} when the pruner was made, but not now")
            score = torch.as_tensor(score, dtype=torch.float64).reshape(-1)
            if len(score) != group.size or score.isnan().any():
                raise ValueError(f"criterion {self.criterion!r} gave {counted(len(score), 'score')} (or NaN) for the {counted(group.size, 'channel')} of {group.name}")
            scores[group.name] = score
        return scores

    def _ratio_targets(self, ratios: Mapping[str, float], scores: dict[str, Tensor]) -> dict[str, int]:
        """Channels to remove per group. A key names a group, or any of its layers, by name
        or regular expression (as include/exclude do); two ratios for one group are an error."""
        layers = {g.name: (g.name, *g.members) for g in self.groups}
        known = model_names(self.model)
        for key in ratios if isinstance(ratios, Mapping) else ():
            if any(any(matches(key, layer, known) for layer in names) for names in layers.values()):
                continue
            unscored = [g.name for g in self._unscored if any(matches(key, layer, known) for layer in (g.name, *g.members))]
            if unscored:
                raise ValueError(f"ratio given for {key!r}, but criterion {self.criterion!r} cannot score {', '.join(unscored)}")
            whole = [g for g in self._unprunable if any(matches(key, layer, known) for layer in (g.name, *g.members))]
            if whole:
                raise ValueError(f"ratio given for {key!r}, but the channels of {whole[0].name} cannot be removed: {whole[0].unprunable}")
            left_out = [g.name for g in self._left_out if any(matches(key, layer, known) for layer in (g.name, *g.members))]
            if left_out:
                raise ValueError(f"ratio given for {key!r}, but include/exclude leave out the channel group {', '.join(left_out)}")
        chosen = ratios_by_target(
            ratios, list(layers), lambda key, group: any(matches(key, layer, known) for layer in layers[group]),
            kind="channel group", of="channel groups (or the layers of one)",
        )
        return {group: round(ratio * len(scores[group])) for group, ratio in chosen.items()}

    def _prune_globally(self, sparsity: float, scores: dict[str, Tensor], sparsity_of: str) -> None:
        # Candidates: kept channels but each group's best, in group then channel order.
        names, channels, values = [], [], []
        for i, (name, score) in enumerate(scores.items()):
            candidates = _ranked(score, self.keep[name])[:-1]
            names += [i] * len(candidates)
            channels.append(candidates)
            values.append(score[candidates])
        order = torch.sort(torch.cat(values), stable=True).indices
        group_of = torch.tensor(names, dtype=torch.long)
        if sparsity_of == "weights":
            order = order[: self._channels_for_weights(sparsity, group_of[order])]
        else:
            total = sum(len(s) for s in scores.values())
            removed = sum(len(s) - len(self.keep[name]) for name, s in scores.items())
            count = round(sparsity * total)
            if count < removed:
                raise ValueError(f"{removed} of {counted(total, 'channel')} are already removed, more than the {count} asked for")
            if count - removed > len(names):
                raise ValueError(
                    f"sparsity {sparsity} removes {count} of {counted(total, 'channel')}, but every group keeps one: at most "
                    f"{counted(removed + len(names), 'channel')} can go (a sparsity of at most {(removed + len(names)) / total:.4g})"
                )
            order = order[: count - removed]
        position = torch.cat(channels)
        for i, name in enumerate(scores):
            gone = position[order[group_of[order] == i]]
            kept = self.keep[name]
            self.keep[name] = kept[~torch.isin(kept, gone)]

    def _channels_for_weights(self, sparsity: float, groups_in_order: Tensor) -> int:
        """How many of the candidates, taken in order (``groups_in_order``: the index of each
        one's group), remove at least ``sparsity`` of the weights: the fewest that do."""
        kept = torch.tensor([len(self.keep[g.name]) for g in self.groups])
        gone = torch.nn.functional.one_hot(groups_in_order, len(kept)).cumsum(0)  # row t - 1: removed by the first t

        def reached(t: int) -> float:  # grows with t: removing a channel never adds weights
            left = kept - gone[t - 1] if t else kept
            return self._weight_sparsity({g.name: int(n) for g, n in zip(self.groups, left)})

        if (now := reached(0)) >= sparsity:
            # Whole channels overshoot a share of the weights: a target the removed channels meet, but
            # not without each of them, is met (the same target again, or a schedule's next one below
            # the overshoot) and changes nothing; one they meet even without any one of them asks for fewer.
            fewer = [self._weight_sparsity({g.name: int(n) + (g is restored) for g, n in zip(self.groups, kept)})
                     for restored, count in zip(self.groups, kept) if count < restored.size]  # fmt: skip
            if fewer and min(fewer) >= sparsity:
                raise ValueError(f"{now:.4g} of the weights are already removed, more than the sparsity {sparsity} asked for")
            return 0
        if (most := reached(len(groups_in_order))) < sparsity:
            raise ValueError(f"sparsity {sparsity} of the weights needs more channels than can go (every group keeps one): "
                             f"at most {most:.4g} of the weights can")  # fmt: skip
        low, high = 0, len(groups_in_order)  # the fewest: reached(high) >= sparsity, and below low it is not
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if reached(middle) >= sparsity else (middle + 1, high)
        return low

    # -- measurements ------------------------------------------------------------------

    def weight_sparsity(self) -> float:
        """The share of the model's Conv/Linear weights that the removed channels take out:
        their filters, and the columns of the layers reading them. The small model of
        :meth:`shrink` has the rest (see :meth:`prune`'s example)."""
        return self._weight_sparsity({name: len(kept) for name, kept in self.keep.items()})

    def _weight_sparsity(self, kept: Mapping[str, int]) -> float:
        rows: dict[str, int] = {}  # layer -> output rows kept
        columns_gone: dict[str, int] = {}  # layer -> input columns removed (from every group it reads)
        for group in self.groups:
            for name in (*group.producers, *group.depthwise):
                rows[name] = kept[group.name]
            for name, factor in group.consumers:
                columns_gone[name] = columns_gone.get(name, 0) + (group.size - kept[group.name]) * factor
        total = left = 0
        for layer, shape in self._weight_shapes.items():
            per_column = shape[2:].numel()  # a convolution's kernel
            total += shape.numel()
            left += rows.get(layer, shape[0]) * (shape[1] - columns_gone.get(layer, 0)) * per_column
        return (total - left) / total

    def __repr__(self) -> str:
        channels = sum(g.size for g in self.groups)
        return f"ChannelPruner({counted(len(self.groups), 'channel group')}, {counted(channels, 'channel')}, {self.channel_sparsity():.2%} removed)"

    def channel_sparsity(self) -> float:
        """The share of the groups' channels removed."""
        total = sum(g.size for g in self.groups)
        return (total - sum(len(k) for k in self.keep.values())) / total

    def group_sparsity(self) -> dict[str, float]:
        """The share of each group's channels removed (the layerwise pruning ratios of channels)."""
        return {g.name: (g.size - len(self.keep[g.name])) / g.size for g in self.groups}

    # -- the small model -----------------------------------------------------------------

    def shrink(self) -> nn.Module:
        """A copy of the model with the removed channels physically gone: smaller Conv, Linear
        and BatchNorm layers, the same forward code, the same outputs as the model with those
        channels zeroed (their filters, biases and BatchNorm scale and shift).

        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> pruner = ChannelPruner(model, torch.zeros(1, 6))
        >>> _ = pruner.prune(0.75)
        >>> small = pruner.shrink()
        >>> small
        Sequential(
          (0): Linear(in_features=6, out_features=4, bias=True)
          (1): ReLU()
          (2): Linear(in_features=4, out_features=3, bias=True)
        )
        >>> x = torch.randn(5, 6)
        >>> masked = model[2](model[1](model[0](x)) * torch.isin(torch.arange(16), pruner.keep["0"]))
        >>> torch.allclose(small(x), masked, atol=1e-6)  # the model with the removed units zeroed
        True
        """
        return shrink(self.model, self.groups, self.keep, self.example_input)

    def state_dict(self) -> dict[str, list[int]]:
        """The kept channels of each group (plain lists, e.g. for JSON)."""
        return {name: kept.tolist() for name, kept in self.keep.items()}

    def load_state_dict(self, state: Mapping[str, Sequence[int]]) -> None:
        """Set the kept channels from :meth:`state_dict` output."""
        if not isinstance(state, Mapping):
            raise TypeError(f"channel state must be a mapping of group names to kept channels, got {type(state).__name__}")
        sizes = {g.name: g.size for g in self.groups}
        # A group this criterion cannot score may be listed whole (as another criterion's pruner writes it): nothing to set.
        whole = {g.name: list(range(g.size)) for g in self._unscored}
        state = {name: kept for name, kept in state.items() if name not in whole or _as_list(kept) != whole[name]}
        if set(state) != set(sizes):
            raise ValueError(f"channel state has groups {sorted(state)}, this model has {sorted(sizes)}")
        self.keep.update({name: kept_channels(name, kept, sizes[name]) for name, kept in state.items()})


def kept_channels(name: str, kept: object, size: int) -> Tensor:
    """The kept channels of group ``name`` as a tensor of indices, checked: increasing whole
    numbers below ``size``, at least one.

    >>> kept_channels("conv1", [0, 2], 4).tolist()
    [0, 2]
    >>> kept_channels("conv1", [2, 2], 4)
    Traceback (most recent call last):
    ...
    ValueError: kept channels of conv1 must be increasing indices below 4, at least one; got [2, 2]
    """
    given = _as_list(kept)
    if not isinstance(given, list) or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in given):
        raise ValueError(f"kept channels of {name} must be a list of channel indices (whole numbers), got {kept!r}")
    if not given or given[0] < 0 or given[-1] >= size or any(b <= a for a, b in zip(given, given[1:])):
        raise ValueError(f"kept channels of {name} must be increasing indices below {size}, at least one; got {given}")
    return torch.tensor([int(i) for i in given], dtype=torch.long)


def _as_list(kept: object) -> object:
    """A tensor, array or sequence of indices as a plain list; anything else as it is."""
    if hasattr(kept, "tolist"):
        return kept.tolist()
    return list(kept) if isinstance(kept, Sequence) and not isinstance(kept, str) else kept


def shrink(model: nn.Module, groups: Sequence[ChannelGroup], keep: Mapping[str, Tensor | Sequence[int]], example_input: Tensor) -> nn.Module:
    """A copy of ``model`` keeping only channels ``keep[group.name]`` (increasing indices, as
    tensors or lists such as :meth:`ChannelPruner.state_dict` gives) of each group; checked to
    run on ``example_input`` and give outputs of the same shape, and warned about if in eval
    mode it computes other values there than ``model`` with those channels zeroed (a branch
    reading channels by index, or an activation that makes 0 something else). Groups that
    cannot be pruned (:attr:`ChannelGroup.unprunable`) may be given, whole."""
    missing = [group.name for group in groups if group.name not in keep]
    if missing:
        raise ValueError(f"keep has no kept channels for the {plural(len(missing), 'group')} {', '.join(missing)}")
    small = copy.deepcopy(model)
    for group in groups:
        kept = kept_channels(group.name, keep[group.name], group.size)
        if len(kept) == group.size:
            continue
        if not group.prunable:  # e.g. every group of channel_groups(model, x), whose reasons are known
            raise ValueError(f"keep removes channels of {group.name}, which cannot be removed: {group.unprunable}")
        for name in group.producers:
            layer = small.get_submodule(name)
            _take(layer, "weight", 0, kept)
            _take(layer, "bias", 0, kept)
            setattr(layer, "out_channels" if isinstance(layer, CONVS) else "out_features", len(kept))
        for name in group.depthwise:
            conv = small.get_submodule(name)
            _take(conv, "weight", 0, kept)
            _take(conv, "bias", 0, kept)
            conv.in_channels = conv.out_channels = conv.groups = len(kept)
        for name in group.norms:
            norm = small.get_submodule(name)
            for attribute in ("weight", "bias", "running_mean", "running_var"):
                _take(norm, attribute, 0, kept)
            norm.num_features = len(kept)
        for name, factor in group.consumers:
            layer = small.get_submodule(name)
            columns = (kept[:, None] * factor + torch.arange(factor)).reshape(-1)
            _take(layer, "weight", 1, columns)
            setattr(layer, "in_channels" if isinstance(layer, CONVS) else "in_features", len(columns))
    # In both modes: a branch that runs only in eval mode is not in the trace, which is made in
    # training mode, and may read removed channels.
    for train in (False, True):
        try:
            expected = _output_shapes(model, example_input, train)
        except Exception as error:  # noqa: BLE001 (a model that does not run in training mode at all)
            if not train:
                raise ValueError(f"the model fails on the example input: {error}") from None
            warnings.warn(f"the model fails in training mode on the example input ({error}): the small model is checked "
                          "in eval mode only", stacklevel=3)  # fmt: skip
            continue
        mode = " in training mode" if train else ""
        why = "its forward may fix a width" if train else \
            "its forward may fix a width, or a branch that runs only in eval mode may read removed channels: exclude the layers making them"
        try:
            got = _output_shapes(small, example_input, train)
        except Exception as error:  # noqa: BLE001 (whatever the forward raises on its new widths)
            raise ValueError(f"the model with channels removed fails on the example input{mode} ({why}): {error}") from None
        if got != expected:
            raise ValueError(f"the model with channels removed gives outputs of shape {got}{mode}, not {expected}")
    _compare_with_zeroed(model, small, groups, keep, example_input)
    return small


def _compare_with_zeroed(
    model: nn.Module, small: nn.Module, groups: Sequence[ChannelGroup], keep: Mapping[str, Tensor | Sequence[int]], example_input: Tensor
) -> None:
    """Warn if ``small`` computes in eval mode other values than ``model`` with the removed
    channels' filters, biases and BatchNorm scales and shifts zeroed (seed 002's theta * M)."""
    batch = example_batch(example_input)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for group in groups:
            gone = ~torch.isin(torch.arange(group.size), kept_channels(group.name, keep[group.name], group.size))
            for name in (*group.producers, *group.depthwise, *group.norms):
                layer = zeroed.get_submodule(name)
                if nn.utils.parametrize.is_parametrized(layer):  # a computed weight cannot be zeroed in place
                    return
                for attribute in ("weight", "bias"):
                    if (tensor := getattr(layer, attribute, None)) is not None:
                        tensor[gone.to(tensor.device)] = 0
        with evaluating(small), evaluating(zeroed):
            pairs = list(zip(_tensors(small(batch)), _tensors(zeroed(batch))))
    floats = [(a.double(), b.double()) for a, b in pairs if a.is_floating_point()]
    scale = max((float(b[b.isfinite()].abs().max()) for _, b in floats if b.isfinite().any()), default=0.0)
    worst = max((_gap(a, b) for a, b in floats if a.numel()), default=0.0)
    if worst > 1e-4 * max(1.0, scale):
        warnings.warn(
            f"the model with channels removed computes other outputs on the example input in eval mode than with those "
            f"channels zeroed (by up to {worst:.3g}): a branch may read channels by index, or a layer between may make "
            "0 something else (a sigmoid, say); exclude the layers making those channels if they must stay",
            stacklevel=4,
        )


def _gap(a: Tensor, b: Tensor) -> float:
    """The largest difference between ``a`` and ``b``: infinite where one is NaN or infinite
    and the other is not the same (a comparison with NaN is never larger than a tolerance).

    >>> _gap(torch.tensor([1.0, float("nan")]), torch.tensor([1.5, float("nan")]))
    0.5
    >>> _gap(torch.tensor([1.0, 2.0]), torch.tensor([1.0, float("nan")]))
    inf
    """
    same = (a == b) | (a.isnan() & b.isnan())
    return float(torch.where(same, 0.0, (a - b).abs()).nan_to_num(nan=float("inf")).max())


def _tensors(output: object) -> list[Tensor]:
    """The tensors of a model's output: a tensor, or a tuple, list or dict of them."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [tensor for item in output for tensor in _tensors(item)]
    if isinstance(output, dict):
        return [tensor for item in output.values() for tensor in _tensors(item)]
    return []


def _output_shapes(model: nn.Module, example_input: Tensor, train: bool) -> object:
    """The shapes of the model's output in eval or train mode, which may be a tensor or a
    tuple, list or dict of them, on :func:`~prunelab.models.common.example_batch`. The model's
    modes, its buffers (BatchNorm statistics) and the global random state (dropout draws) are
    left as they were."""
    batch = example_batch(example_input)
    if not train:
        with evaluating(model), torch.no_grad():
            return _shapes(model(batch))
    with leaving_state(model, batch.device), training(model), torch.no_grad():
        return _shapes(model(batch))


def _shapes(output: object) -> object:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return [_shapes(item) for item in output]
    if isinstance(output, dict):
        return {key: _shapes(item) for key, item in output.items()}
    return output


def _take(module: nn.Module, attribute: str, dim: int, index: Tensor) -> None:
    """Keep entries ``index`` along ``dim`` of a parameter or buffer, as the same kind of tensor."""
    tensor = getattr(module, attribute, None)
    if tensor is None:
        return
    taken = tensor.detach().index_select(dim, index.to(tensor.device)).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(module, attribute, nn.Parameter(taken, requires_grad=tensor.requires_grad))
    else:
        setattr(module, attribute, taken)


def _ranked(score: Tensor, kept: Tensor) -> Tensor:
    """Kept channel indices from lowest to highest score (ties: lower index first)."""
    return kept[torch.sort(score[kept], stable=True).indices]


def _chosen(
    groups: list[ChannelGroup], include: Sequence[str] | None, exclude: Sequence[str] | None, known: Collection[str]
) -> list[ChannelGroup]:
    """The prunable groups that ``include`` picks (all if None) and ``exclude`` does not
    touch; patterns that are one of the model's ``known`` names mean that name exactly."""
    check_patterns(include, exclude)
    prunable = [g for g in groups if g.prunable]
    chosen = prunable
    if include is not None:
        for pattern in include:
            if not any(matches(pattern, layer, known) for g in prunable for layer in g.members):
                raise ValueError(f"include pattern {pattern!r} picks no prunable channel group; groups: {_listing(groups)}")
        chosen = [g for g in prunable if any(matches(p, layer, known) for p in include for layer in g.members)]
    for pattern in exclude or ():
        if not any(matches(pattern, layer, known) for g in groups for layer in g.members):
            raise ValueError(f"exclude pattern {pattern!r} matches no layer making channels; groups: {_listing(groups)}")
    chosen = [g for g in chosen if not any(matches(p, layer, known) for p in exclude or () for layer in g.members)]
    if not chosen and prunable:
        raise ValueError(f"include/exclude leave no prunable channel group; groups: {_listing(groups)}")
    if not chosen:
        instead = "; prune its weights instead (prunelab.Pruner, or criterion magnitude in a recipe)" if groups else ""
        raise ValueError(f"no channel group of the model can be pruned{instead}; groups: {_listing(groups)}")
    return chosen


def _listing(groups: Sequence[ChannelGroup]) -> str:
    listed = "; ".join(f"{g.name} ({g.size}{'' if g.prunable else ', not prunable: ' + g.unprunable})" for g in groups)
    return listed or "none, no layer of the model makes channels (a Conv or Linear layer)"

