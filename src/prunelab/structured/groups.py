"""Channel groups: the channels that must be removed together, found by tracing the model.

A channel made by a Conv or Linear layer (a row of its weight) is normalised by the
BatchNorm layers that follow, passes through activations (and other elementwise functions
mapping 0 to 0, such as ``abs``, ``-x``, ``x.clamp(-1, 1)``), pooling and depthwise
convolutions (which work on each channel alone, as in MobileNets), and is read by the next
Conv or Linear layers (a column of their weight, or ``factor`` columns after a flatten).
Residual additions join the channels of both operands, so that e.g. all blocks of a ResNet
stage share one group: their channels can only be removed jointly.

Tracing is done with :mod:`torch.fx` in training mode (so that branches run only in
training, such as auxiliary heads, are in the trace) and one forward pass in eval mode on an
example input (for the shapes; a single example is given twice: :func:`~prunelab.models.common.example_batch`).
Anything the tracer does not know to keep channels apart (concatenation, other grouped
convolutions, LayerNorm, custom functions, the model's output), or that fixes their number (a
flatten to a width written out, ``x.view(-1, 256)``), makes the groups it touches unprunable
rather than wrong; :attr:`ChannelGroup.unprunable` says why.
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.utils import parametrize

from prunelab.masks.targets import CONVS, PRUNABLE_MODULES, parameter_names
from prunelab.models.common import evaluating, example_batch, leaving_state, training
from prunelab.user_code import raised_at

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# Elementwise modules and functions: a removed channel, zero, must stay zero through them
# (Hardtanh and clamp only with bounds around zero, Threshold only below zero or replacing with
# zero, pow only to a positive power, PReLU only with one slope for all channels or its slopes
# along another dim than theirs; RReLU's random slopes keep zero too).
ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.RReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Tanh, nn.Softsign, nn.Hardtanh, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
)  # fmt: skip
ACTIVATION_FUNCTIONS = {
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "rrelu", "rrelu_", "elu", "elu_", "selu", "selu_",
    "celu", "celu_", "gelu", "silu", "mish", "hardswish", "tanh", "tanh_", "softsign", "hardtanh", "hardtanh_",
    "tanhshrink", "softshrink", "hardshrink", "threshold", "threshold_", "_threshold",  # F.threshold's name
    "dropout", "dropout1d", "dropout2d", "dropout3d", "contiguous", "clone",
    "abs", "abs_", "neg", "neg_", "negative", "negative_", "square", "square_", "pow", "pow_", "sin", "sin_",
    "sign", "sign_", "sgn", "sgn_", "clamp", "clamp_", "clip", "clip_",  # abs(x) and -x are operator.abs and operator.neg
}  # fmt: skip
# Pooling over the dims after the channels (dim 1).
POOLING_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
POOLING_FUNCTIONS = {
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
}  # fmt: skip
# Reductions that, over dims other than the batch's and the channels', keep the channels apart
# (x.mean((2, 3)) of (batch, channels, height, width), x.mean(1) of (batch, tokens, features)).
REDUCTIONS = {"mean", "sum", "amax", "amin"}
JOINING_FUNCTIONS = {
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul, operator.truediv,
    torch.add, torch.sub, torch.mul, torch.div,
}  # fmt: skip
JOINING_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
SHIFTING = {"add", "add_", "iadd", "sub", "sub_", "isub"}  # a nonzero number added moves zero away


@dataclass
class ChannelGroup:
    """Channels that are removed together: the same index in every member.

    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4, 2))
    >>> group = channel_groups(model, torch.zeros(1, 3, 4, 4))[0]
    >>> group.name, group.size, group.norms, group.consumers
    ('0', 8, ['1'], [('4', 4)])
    """

    name: str  #: the first layer making these channels
    size: int
    producers: list[str] = field(default_factory=list)  #: Conv/Linear layers whose output rows these are
    norms: list[str] = field(default_factory=list)  #: BatchNorm layers with one entry per channel
    consumers: list[tuple[str, int]] = field(default_factory=list)  #: (Conv/Linear layer, input columns per channel)
    unprunable: str | None = None  #: why the channels cannot be removed, if so
    depthwise: list[str] = field(default_factory=list)  #: Conv layers working on each channel alone (groups = channels)

    @property
    def members(self) -> list[str]:
        """The layers with an entry per channel: producers, depthwise convolutions, BatchNorms."""
        return [*self.producers, *self.depthwise, *self.norms]

    @property
    def prunable(self) -> bool:
        return self.unprunable is None


class _Space:
    """Union-find node: one channel dimension of size ``size``."""

    def __init__(self, size: int) -> None:
        self.size, self.parent = size, self
        self.producers: list[str] = []
        self.norms: list[str] = []
        self.depthwise: list[str] = []
        self.consumers: list[tuple[str, int]] = []
        self.unprunable: str | None = None

    def root(self) -> _Space:
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent  # path halving
            node = node.parent
        return node

    def block(self, reason: str) -> None:
        root = self.root()
        root.unprunable = root.unprunable or reason

    def union(self, other: _Space) -> None:
        """Make ``other``'s group part of this one's, keeping everything known about both at the root."""
        root, other = self.root(), other.root()
        if other is not root:
            other.parent = root
            root.unprunable = root.unprunable or other.unprunable
            root.producers += other.producers
            root.norms += other.norms
            root.depthwise += other.depthwise
            root.consumers += other.consumers


@dataclass(frozen=True)
class _Channels:
    """Where a traced tensor keeps its channels: their space, the dim, values per channel."""

    space: _Space
    dim: int
    factor: int = 1


def channel_groups(model: nn.Module, example_input: Tensor) -> list[ChannelGroup]:
    """The channel groups of ``model`` (prunable or not), in the order the forward pass makes them.

    ``example_input`` is one batch of the shape the model takes (a single example is enough:
    :func:`~prunelab.models.common.example_batch`).
    Raises ``ValueError`` if the model cannot be traced by :func:`torch.fx.symbolic_trace`.

    >>> class Residual(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.stem, self.block, self.head = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         h = self.stem(x)
    ...         return self.head(h + self.block(h).relu())  # the addition joins stem's and block's units
    >>> for group in channel_groups(Residual(), torch.zeros(1, 4)):
    ...     print(group.name, group.size, group.producers, group.unprunable)
    stem 8 ['stem', 'block'] None
    head 2 ['head'] the model's output
    """
    try:
        with training(model):
            graph_module = fx.symbolic_trace(model)
    except Exception as error:  # noqa: BLE001 (the tracer raises many types, e.g. for data-dependent control flow)
        raise ValueError(
            f"structured pruning traces the model with torch.fx, which failed on {type(model).__name__}: {error}{raised_at(error)}; "
            "make that part of the forward traceable (no Python if or loop on a tensor's values), move it into a function "
            "torch.fx.wrap marks as a leaf, or prune weights instead (criterion magnitude), which needs no trace"
        ) from None
    _propagate_shapes(graph_module, example_input)
    trace = _Trace(dict(graph_module.named_modules()))
    for node in graph_module.graph.nodes:
        trace.visit(node)

    roots = [s for s in trace.spaces if s.root() is s and s.producers]
    calls = collections.Counter(node.target for node in graph_module.graph.nodes if node.op == "call_module")
    _block_shared_layers(model, roots, calls)
    order: dict[str, int] = {}  # layers by their first call
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            order.setdefault(node.target, len(order))
    return [
        ChannelGroup(
            name=min(root.producers, key=order.__getitem__), size=root.size,
            producers=_in_order(root.producers, order), norms=_in_order(root.norms, order),
            consumers=sorted(dict.fromkeys(root.consumers), key=lambda c: order[c[0]]), unprunable=root.unprunable,
            depthwise=_in_order(root.depthwise, order),
        )
        for root in sorted(roots, key=lambda root: min(map(order.__getitem__, root.producers)))
    ]  # fmt: skip


def _in_order(layers: list[str], order: Mapping[str, int]) -> list[str]:
    """Each layer once (a layer called twice is listed at each call), in the order of their first calls."""
    return sorted(dict.fromkeys(layers), key=order.__getitem__)


class _Trace:
    """Channels followed through a traced graph node by node: layers make spaces of them, joins merge spaces into groups."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.modules = modules
        self.spaces: list[_Space] = []  # every space made, in order; the groups are their roots
        self.channels: dict[fx.Node, _Channels] = {}  # where each traced tensor keeps its channels
        self.shapes: dict[fx.Node, _Channels] = {}  # x.shape and x.size(): reading a width is using it
        self.made: dict[str, _Space] = {}  # the channels each Conv/Linear layer makes

    def visit(self, node: fx.Node) -> None:
        """Follow the channels through ``node``, or block those it uses in a way the trace does not follow."""
        if node.op == "placeholder":
            self.model_input(node)
            return
        if node.op == "output":
            self.block_inputs(node, "the model's output")
            return
        first = _first_input(node)
        source = self.channels.get(first)
        module = self.modules.get(node.target) if node.op == "call_module" else None
        name = _name(node, self.modules)
        if module is not None and not isinstance(module, (*PRUNABLE_MODULES, *NORMS)) and (module._forward_hooks or module._forward_pre_hooks):
            # The trace does not see what a hook does to the channels (layers' hooks: _block_shared_layers).
            self.block_inputs(node, f"{name} has forward hooks")
        elif isinstance(module, CONVS) and source is not None and source.space.root().producers and _is_depthwise(module):
            self.depthwise(node, source, name)  # of channels a layer made (not the model's input, whose are kept)
        elif isinstance(module, PRUNABLE_MODULES):
            self.layer(node, module, source)
        elif source is not None and _is_size(node):
            self.size(node, source, name)
        elif first in self.shapes and node.op == "call_function" and node.target is operator.getitem:
            self.shape_entry(node, self.shapes[first], name)
        elif isinstance(module, NORMS) and source is not None:
            self.norm(node, module, source, name)
        elif source is not None and (_is_activation(node, module) or _is_pooling(node, module)):
            self.elementwise(node, module, source, name)
        elif source is not None and module is None and _function_name(node) in REDUCTIONS:
            self.reduce(node, source, name)
        elif _is_joining(node) and any(argument in self.channels for argument in node.all_input_nodes):
            self.join(node, name)  # a number may come first: 2.0 * x
        elif source is not None and _is_flatten(node, module):
            self.flatten(node, source, name)
        # Anything else may mix channels; but x.dim() is harmless: it reads the number of dims, not a width.
        elif node.op in ("call_module", "call_function", "call_method") and (node.op, node.target) != ("call_method", "dim"):
            self.block_inputs(node, f"used by {name}")
        # get_attr: a tensor of the model's own; it only matters where it is used

    def new_space(self, size: int) -> _Space:
        """A new space of ``size`` channels."""
        self.spaces.append(_Space(size))
        return self.spaces[-1]

    def block_inputs(self, node: fx.Node, reason: str) -> None:
        """Block the channels of every input of ``node``, and those whose width it reads."""
        for argument in node.all_input_nodes:
            if argument in self.channels:
                self.channels[argument].space.block(reason)
            if argument in self.shapes:
                self.shapes[argument].space.block(f"its width read for {_name(node, self.modules)}")

    def model_input(self, node: fx.Node) -> None:
        """The model's input: its channels (dim 1) cannot be removed, nor any channels joined with them."""
        shape = _shape(node)
        if shape is not None and len(shape) >= 2:
            self.channels[node] = _Channels(self.new_space(shape[1]), 1)
            self.channels[node].space.block("the model's input")

    def layer(self, node: fx.Node, module: nn.Module, source: _Channels | None) -> None:
        """A Conv or Linear layer: reads the channels of ``source`` (its columns) and makes new ones (its rows)."""
        shape = _shape(node)
        channel_dim = 1 if isinstance(module, CONVS) else len(shape) - 1
        grouped = getattr(module, "groups", 1) != 1
        if source is not None:
            if grouped:
                source.space.block(f"read by the grouped convolution {node.target}, whose groups of input channels must stay whole")
            elif source.dim != channel_dim:
                source.space.block(f"read by {node.target} in a way that mixes channels")
            else:
                source.space.root().consumers.append((node.target, source.factor))
        if node.target not in self.made:  # called again, a layer makes the same channels: its weight's rows
            self.made[node.target] = self.new_space(shape[channel_dim])
            self.made[node.target].producers.append(node.target)
        space = self.made[node.target]
        if grouped:
            space.block(f"made by the grouped convolution {node.target}")
        self.channels[node] = _Channels(space, channel_dim)

    def depthwise(self, node: fx.Node, source: _Channels, name: str) -> None:
        """A depthwise convolution: each channel alone, through its own filter, into one
        channel; so the channels pass through, one filter and bias entry each."""
        if source.dim == 1 and source.factor == 1:
            source.space.root().depthwise.append(node.target)
            self.channels[node] = source
        else:
            self.block_inputs(node, f"read by {name} in a way that mixes channels")

    def reduce(self, node: fx.Node, source: _Channels, name: str) -> None:
        """A mean, sum or max over dims other than the batch's and the channels' (global pooling
        written as ``x.mean((2, 3))``, or a mean over the tokens of (batch, tokens, features) as
        ``x.mean(1)``): the channels stay apart and zero stays zero; each dim removed before
        the channels moves them one dim down. Over the channels, or over everything, it mixes them."""
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        shape = _shape(_first_input(node))  # x.mean(...), or torch.mean(input=x, ...)
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        reduced = {d % len(shape) for d in dims} if shape and all(isinstance(d, int) for d in dims) else set()
        if source.factor == 1 and reduced and not reduced & {0, source.dim}:
            dim = source.dim if keepdim else source.dim - sum(d < source.dim for d in reduced)
            self.channels[node] = _Channels(source.space, dim)
        else:
            self.block_inputs(node, f"reduced across channels by {name}")

    def size(self, node: fx.Node, source: _Channels, name: str) -> None:
        """``x.size(d)`` of the channel dim uses the width; of another dim it is harmless;
        ``x.shape`` and ``x.size()`` are followed to see which entry is read."""
        dim = None
        if node.op == "call_method":
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if dim is None:
            self.shapes[node] = source
        else:
            _check_dim(dim, node.args[0], source, name)

    def shape_entry(self, node: fx.Node, source: _Channels, name: str) -> None:
        """An entry of ``x.shape`` (or of ``x.size()``): harmless unless it is the channel dim (or a slice)."""
        shape_node = node.args[0]
        _check_dim(node.args[1], shape_node.args[0], source, name)

    def norm(self, node: fx.Node, module: nn.Module, source: _Channels, name: str) -> None:
        """A BatchNorm layer: one scale and shift per channel, if it normalises over the channel dim."""
        if source.dim == 1 and source.factor == 1 and module.affine:
            source.space.root().norms.append(node.target)
            self.channels[node] = source
        else:
            source.space.block(f"normalised by {name} across channels or without scale and shift")

    def elementwise(self, node: fx.Node, module: nn.Module | None, source: _Channels, name: str) -> None:
        """An activation (or another elementwise function) or pooling: the channels pass through
        if they stay apart and zero stays zero."""
        shape = _shape(node)
        pooling = _is_pooling(node, module)
        if len(node.all_input_nodes) > 1:
            self.block_inputs(node, f"used by {name} with tensor arguments")
        elif pooling and shape is None:  # e.g. return_indices=True: a tuple, not the channels
            source.space.block(f"pooled by {name} into something other than one tensor")
        elif pooling and (source.dim != 1 or source.factor != 1 or len(shape) != _pooled_dims(node, module) + 2
                          or shape[:2] != _shape(_first_input(node))[:2]):  # fmt: skip
            # A tensor of one dim fewer than the pooling's batched input is taken as unbatched: dim 1 is pooled.
            source.space.block(f"pooled across channels by {name}")
        elif isinstance(module, nn.PReLU) and module.num_parameters != 1 and source.dim == 1:
            # Its slopes run along dim 1: channels there would need their slopes cut; features in
            # the last dim of (batch, tokens, features) pass a slope per token whole.
            source.space.block(f"scaled by {name}, a slope per channel")
        elif not _keeps_zero(node, module):
            source.space.block(f"moved away from zero by {name}")
        else:
            self.channels[node] = source

    def join(self, node: fx.Node, name: str) -> None:
        """An elementwise sum, difference or product: with a number, channels pass through; of two
        traced tensors of the same shape, their channel spaces become one group."""
        # alpha scales the second operand (torch.add(x, y, alpha=0.5)): it shifts nothing.
        arguments = [*node.args, *(value for key, value in node.kwargs.items() if key != "alpha")]
        # Numbers: literals (True is 1), or values computed while tracing (e.g. from x.size()), unknown here.
        numbers = [a for a in arguments if isinstance(a, (int, float)) or (isinstance(a, fx.Node) and _shape(a) is None)]
        if _function_name(node) in SHIFTING and any(isinstance(n, fx.Node) or n != 0 for n in numbers):
            self.block_inputs(node, f"shifted away from zero by {name}")
            return
        dividing = _function_name(node) in ("truediv", "div", "div_")
        # The divisor may be a keyword argument: torch.div(x, other=y).
        if dividing and sum(isinstance(a, fx.Node) and _shape(a) is not None for a in (*node.args, *node.kwargs.values())) > 1:
            self.block_inputs(node, f"divided by a tensor in {name}")
            return
        if dividing and _first_input(node) not in self.channels:  # 2.0 / x: a removed (zero) channel would be inf
            self.block_inputs(node, f"divided into by {name}")
            return
        tensors = [a for a in node.all_input_nodes if _shape(a) is not None]
        traced = [self.channels[a] for a in tensors if a in self.channels]
        if any(_shape(a) != _shape(node) for a in tensors):
            self.block_inputs(node, f"combined by {name} with a tensor of another shape")
            return
        if len(traced) != len(tensors):  # e.g. the output of a LayerNorm, a concatenation or a parameter
            self.block_inputs(node, f"combined by {name} with a tensor whose channels are not traced (they went through "
                                    "something that mixes channels, or are not made from the model's input)")  # fmt: skip
            return
        if len({(c.dim, c.factor) for c in traced}) != 1:
            self.block_inputs(node, f"combined by {name} with a tensor holding its channels otherwise (along another dim, or flattened)")
            return
        space = traced[0].space.root()
        for other in traced[1:]:
            space.union(other.space)
        self.channels[node] = _Channels(space, traced[0].dim, traced[0].factor)

    def flatten(self, node: fx.Node, source: _Channels, name: str) -> None:
        """A flatten after the batch dim: each channel becomes ``factor`` consecutive values, if it was one,
        and the flatten's width follows the channels (a view to a fixed width would not)."""
        if source.dim != 1 or source.factor != 1:
            self.block_inputs(node, f"flattened by {name}")
        elif _fixes_width(node):
            source.space.block(f"flattened by {name} to a fixed width, which fewer channels would not fill: "
                               "flatten with x.flatten(1) or x.view(x.size(0), -1)")  # fmt: skip
        else:
            self.channels[node] = _Channels(source.space, 1, math.prod(_shape(_first_input(node))[2:]))


def _block_shared_layers(model: nn.Module, roots: list[_Space], calls: Mapping[str, int]) -> None:
    """A layer called twice (``calls``: per layer, in the trace) has its channels used by
    two calls, which one shrink cannot serve, even if one call reads the model's input; a
    parameter shared between layers (tied weights) would be cut two ways; a parametrized or
    hooked layer computes its weight or output from what shrinking does not see."""
    parameters = dict(model.named_parameters())
    owners = {id(parameters[first]): len(aliases) for first, aliases in parameter_names(model).items()}
    for root in roots:
        for name in dict.fromkeys([*root.producers, *root.norms, *root.depthwise, *(c for c, _ in root.consumers)]):
            layer = model.get_submodule(name)
            if calls[name] > 1:
                root.block(f"{name} is called more than once")
            elif any(owners[id(p)] > 1 for p in layer.parameters(recurse=False)):
                root.block(f"{name} shares a parameter with another layer")
            elif parametrize.is_parametrized(layer) or hasattr(layer, "weight_orig") or layer._forward_pre_hooks or layer._forward_hooks:
                root.block(f"{name} has a parametrization or forward hooks")


def _name(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """How reasons name ``node``: a layer with its type, else the call as torch.fx names it
    (``cat_1``: one of several), with the layer whose forward makes it, if not the model's."""
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    stack = node.meta.get("nn_module_stack")  # (path, type) of each layer the call is in, innermost last
    return f"{node.name} in {list(stack.values())[-1][0]}" if stack else node.name


def _first_input(node: fx.Node) -> fx.Node | None:
    """The tensor an operation works on: its first argument, or its first keyword argument."""
    if node.args:
        return node.args[0] if isinstance(node.args[0], fx.Node) else None
    value = next(iter(node.kwargs.values()), None)
    return value if isinstance(value, fx.Node) else None


def _is_depthwise(conv: nn.Module) -> bool:
    """One filter per channel, each channel into one (groups = in = out channels; a
    multiplier above 1 makes several channels of each, which stay grouped)."""
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _is_activation(node: fx.Node, module: nn.Module | None) -> bool:
    if module is not None:
        return isinstance(module, ACTIVATION_MODULES)
    return node.op != "call_module" and _function_name(node) in ACTIVATION_FUNCTIONS


def _keeps_zero(node: fx.Node, module: nn.Module | None) -> bool:
    """Whether an activation maps 0 to 0: a hardtanh or clamp with bounds around zero, a
    threshold below zero or replacing with zero, a positive power; the other activations and
    poolings always do."""
    name = _function_name(node)
    if isinstance(module, nn.Hardtanh):  # ReLU6 too
        return module.min_val <= 0 <= module.max_val
    if module is None and name in ("hardtanh", "hardtanh_"):
        return _argument(node, 1, "min_val", -1.0) <= 0 <= _argument(node, 2, "max_val", 1.0)
    if isinstance(module, nn.Threshold):
        return module.threshold < 0 or module.value == 0
    if module is None and name in ("threshold", "threshold_", "_threshold"):
        return _argument(node, 1, "threshold") < 0 or _argument(node, 2, "value") == 0
    if module is None and name in ("clamp", "clamp_", "clip", "clip_"):  # a bound left out is None
        low, high = _argument(node, 1, "min"), _argument(node, 2, "max")
        return (low is None or low <= 0) and (high is None or high >= 0)
    if module is None and name in ("pow", "pow_"):  # 0 ** 0 is 1
        exponent = _argument(node, 1, "exponent")
        return isinstance(exponent, (int, float)) and exponent > 0
    return True


def _argument(node: fx.Node, position: int, keyword: str, default: object = None) -> object:
    """An argument of a call, given by position or by keyword."""
    return node.args[position] if len(node.args) > position else node.kwargs.get(keyword, default)


def _is_pooling(node: fx.Node, module: nn.Module | None) -> bool:
    if module is not None:
        return isinstance(module, POOLING_MODULES)
    return node.op != "call_module" and _function_name(node) in POOLING_FUNCTIONS


def _pooled_dims(node: fx.Node, module: nn.Module | None) -> int:
    """The spatial dims a pooling works on, from its name: MaxPool2d, avg_pool1d."""
    name = type(module).__name__ if module is not None else _function_name(node)
    return int(name[-2])


def _function_name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _is_size(node: fx.Node) -> bool:
    """``x.size(...)`` or ``x.shape``."""
    if node.op == "call_method":
        return node.target == "size"
    return node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)


def _check_dim(dim: object, tensor: fx.Node, source: _Channels, name: str) -> None:
    """Block ``source`` if ``dim`` of ``tensor`` may be its channel dim."""
    if not isinstance(dim, int):
        source.space.block(f"its width possibly read by {name}")
    elif dim % len(_shape(tensor)) == source.dim:
        source.space.block(f"its width read by {name}")


def _propagate_shapes(graph_module: fx.GraphModule, example_input: Tensor) -> None:
    """Record every node's output shape on :func:`~prunelab.models.common.example_batch`, leaving the model as it was:
    eval mode and no gradients, and since the trace is made in training mode (a functional
    dropout or batch norm inside a traced module keeps training=True), its buffers and the
    random state restored."""
    batch = example_batch(example_input)
    with leaving_state(graph_module, batch.device), evaluating(graph_module), torch.no_grad():
        # A plain call first, its stderr held back: on failure fx prints the traced code, and
        # ShapeProp a traceback of its own, before the error this raises in one line.
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                graph_module(batch)
        except Exception as error:  # noqa: BLE001 (whatever the model raises on an input it does not take)
            twice = ", given twice as a batch of 2," if batch is not example_input else ""
            # torch says only "expected scalar type Double but found Float", of neither side.
            weights = next((p.dtype for p in graph_module.parameters() if p.is_floating_point()), example_input.dtype)
            dtypes = f" (a {example_input.dtype} input to {weights} weights: example_input.to({weights}))" if example_input.is_floating_point() and weights != example_input.dtype else ""
            raise ValueError(f"the example input of shape {tuple(example_input.shape)}{twice} does not fit the model: {error}{dtypes}") from None
        ShapeProp(graph_module).propagate(batch)


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _is_joining(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in JOINING_FUNCTIONS
    return node.op == "call_method" and node.target in JOINING_METHODS


def _fixes_width(node: fx.Node) -> bool:
    """Whether a flattening view or reshape gives its width other than as -1 (``x.view(-1, 256)``,
    ``x.reshape(x.size(0), 256)``): with fewer channels, that width is no longer an example's number of values.
    A layer (``nn.Flatten``) follows the channels, even one named ``view`` or ``reshape``."""
    if node.op == "call_module" or _function_name(node) not in ("view", "reshape"):
        return False
    sizes = node.args[1:] or (node.kwargs.get("shape", node.kwargs.get("size")),)  # torch.reshape(input=x, shape=...)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):  # x.view((n, -1))
        sizes = sizes[0]
    return sizes[-1] != -1


def _is_flatten(node: fx.Node, module: nn.Module | None) -> bool:
    """A flatten of everything after the batch dim (``nn.Flatten``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``)."""
    shape = _shape(node)
    source = _first_input(node)  # x.flatten(1), or torch.flatten(input=x, start_dim=1)
    source_shape = _shape(source) if source is not None else None
    if shape is None or source_shape is None or len(shape) != 2 or len(source_shape) < 2:
        return False
    if shape[0] != source_shape[0] or shape[1] != math.prod(source_shape[1:]):
        return False
    if node.op == "call_module":
        return isinstance(module, nn.Flatten)
    return _function_name(node) in ("flatten", "view", "reshape")
