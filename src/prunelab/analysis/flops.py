"""Multiply-accumulates of Conv and Linear layers, and the theoretical speedup of pruning.

Seed 003 and seed 004 measure a pruned model's cost by the multiply-accumulates (MACs) of
its Conv and Linear layers per example: dense, a weight costs one MAC per output position
it is applied at; a pruned (zero) weight costs nothing if the hardware could skip it. The
theoretical speedup is the dense count over the pruned one. ``nn.MultiheadAttention``
counts its projections, which it applies without calling Linear modules. Other work
(BatchNorm, activations, pooling, attention's products of activations) is left out, as is
usual, and so are weights a model applies by functions of its own (``F.linear(x, w)``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from prunelab.masks.targets import PRUNABLE_MODULES
from prunelab.models.common import evaluating, example_batch


def count_macs(model: nn.Module, example_input: Tensor, masks: Mapping[str, Tensor] | None = None) -> int:
    """MACs per example of ``model``'s Conv, Linear and attention projections on inputs
    shaped like ``example_input`` (batch first).

    With ``masks`` (parameter name -> bool mask, e.g. :attr:`prunelab.Pruner.masks`), pruned
    weights cost nothing. One forward pass of ``example_input[:1]`` in eval mode without
    gradients; the model is left as it was. A BatchNorm without running statistics normalises
    by the batch's in eval mode too, which one example cannot give: such a model is run on the
    example given twice (:func:`~prunelab.models.common.example_batch`), and half is counted.

    >>> count_macs(nn.Linear(3, 2), torch.zeros(1, 3))
    6
    >>> count_macs(nn.Conv1d(1, 4, 3), torch.zeros(1, 1, 10))  # 8 positions x 4 filters x 3 weights
    96
    >>> layer = nn.TransformerEncoderLayer(4, nhead=2, dim_feedforward=8, batch_first=True)
    >>> count_macs(layer, torch.zeros(1, 5, 4))  # 5 tokens x (q, k, v, out: 4 x 4 each; 4 x 8 and 8 x 4)
    640
    """
    if not isinstance(example_input, Tensor) or example_input.dim() == 0 or len(example_input) == 0:
        shape = tuple(example_input.shape) if isinstance(example_input, Tensor) else type(example_input).__name__
        raise ValueError(f"example_input must be a batch of at least one example, batch first; got {shape}")
    masks_of = _masks_by_weight(model, masks or {})
    example = example_input[:1]
    batch = example_batch(example) if any(_normalises_by_batch(m) for m in model.modules()) else example
    counts: list[int] = []

    def kept(weight: Tensor, rows: slice = slice(None)) -> int:
        mask = masks_of.get(id(weight))
        return int(mask[rows].sum()) if mask is not None else weight[rows].numel()

    def record(module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        # Each weight is used once per output position of its filter (per output row for Linear).
        # The whole output, not its first row: the input is one example, which a model may fold
        # into rows of its own (time steps, patches) before a layer.
        counts.append(kept(module.weight) * (output.numel() // module.weight.shape[0]))

    def record_attention(module: nn.MultiheadAttention, args: tuple, kwargs: dict, _output: object) -> None:
        query, key, value = (kwargs[name] if name in kwargs else args[i] for i, name in enumerate(("query", "key", "value")))
        if not module.batch_first and query.dim() == 3 and len(example_input) > 1:
            warnings.warn(
                "count_macs counts one example, example_input[:1], but a MultiheadAttention with batch_first=False "
                "takes the sequence first: this cut it to one position, so its MACs are too few",
                stacklevel=2,
            )
        rows = [query.numel() // query.shape[-1], key.numel() // key.shape[-1], value.numel() // value.shape[-1]]
        if module.in_proj_weight is not None:  # q, k and v projections stacked in one weight
            size = module.embed_dim
            counts.extend(kept(module.in_proj_weight, slice(i * size, (i + 1) * size)) * n for i, n in enumerate(rows))
        else:
            weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
            counts.extend(kept(weight) * n for weight, n in zip(weights, rows))
        counts.append(kept(module.out_proj.weight) * rows[0])

    attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    projections = {id(m.out_proj) for m in attention}  # applied by the attention, not called
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE_MODULES) and id(m) not in projections]
    handles = [layer.register_forward_hook(record) for layer in layers]
    handles += [m.register_forward_hook(record_attention, with_kwargs=True) for m in attention]
    fast_path = torch.backends.mha.get_fastpath_enabled()
    try:
        # Fused attention and transformer kernels would skip the hooks.
        torch.backends.mha.set_fastpath_enabled(False)
        with evaluating(model), torch.no_grad():
            model(batch)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        for handle in handles:
            handle.remove()
    return sum(counts) // len(batch)


def _normalises_by_batch(module: nn.Module) -> bool:
    """A BatchNorm without running statistics, which normalises by the batch's in eval mode too."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None


def _masks_by_weight(model: nn.Module, masks: Mapping[str, Tensor]) -> dict[int, Tensor]:
    """``masks`` by the identity of the parameter each names (so a tied weight is found by any
    of its names); a name the model lacks, or a mask of another shape, is an error."""
    found = {}
    for name, mask in masks.items():
        try:
            weight = model.get_parameter(name)
        except AttributeError:
            raise ValueError(f"masks: the model has no parameter {name!r} (masks are keyed by parameter names, as Pruner.masks)") from None
        if not isinstance(mask, Tensor) or mask.shape != weight.shape:
            got = f"shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"masks: the mask of {name} has {got}, not the weight's shape {tuple(weight.shape)}")
        if mask.dtype != torch.bool:  # a float mask's sum would count fractions of weights
            raise ValueError(f"masks: the mask of {name} is {mask.dtype}, not bool (True where a weight is kept)")
        found[id(weight)] = mask
    return found


def speedup(dense_macs: int, pruned_macs: int) -> float:
    """The theoretical speedup: dense MACs over the pruned model's.

    >>> speedup(300, 100)
    3.0
    """
    if dense_macs <= 0:
        raise ValueError(f"a dense model of {dense_macs} MACs has no speedup to give: are there Conv, Linear or attention layers?")
    if pruned_macs <= 0:
        raise ValueError(f"a pruned model with {pruned_macs} MACs has no finite speedup")
    return dense_macs / pruned_macs
