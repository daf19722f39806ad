"""What the model builders share: input-shape checks, evaluation mode for a block, weight schemes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn


def check_input_shape(model: str, input_shape: Sequence[int], layout: str) -> None:
    """Raise ``ValueError`` unless ``input_shape`` has one entry per letter of ``layout`` (e.g. "CHW").

    >>> check_input_shape("conv2", (1, 40), "CHW")
    Traceback (most recent call last):
    ...
    ValueError: conv2 needs inputs of shape (C, H, W), got (1, 40)
    """
    if len(input_shape) != len(layout):
        raise ValueError(f"{model} needs inputs of shape ({', '.join(layout)}), got {tuple(input_shape)}")


def output_size(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of values ``module`` outputs per example, found by one dummy forward pass.

    The pass runs in eval mode without gradients, so BatchNorm statistics stay untouched.

    >>> output_size(nn.Conv1d(1, 25, 5, stride=2, padding=1), (1, 40))
    475
    """
    with evaluating(module), torch.no_grad():
        return module(torch.zeros(1, *input_shape)).numel()


def evaluating(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Eval mode inside the block; afterwards every module is back in its own mode (so a
    BatchNorm frozen in eval mode inside a training model stays frozen).

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> _ = model[1].eval()
    >>> with evaluating(model):
    ...     model.training
    False
    >>> model.training, model[1].training
    (True, False)
    """
    return _in_mode(model, train=False)


def training(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Training mode inside the block; afterwards every module is back in its own mode.

    >>> model = nn.Sequential(nn.Linear(2, 2)).eval()
    >>> with training(model):
    ...     model.training
    True
    >>> model.training
    False
    """
    return _in_mode(model, train=True)


@contextlib.contextmanager
def leaving_state(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Run ``model`` inside the block without a trace afterwards: its buffers (BatchNorm
    statistics) are restored, and so is the global random state (dropout draws) of the CPU and
    of ``device``, so that a trial forward pass changes neither the model nor a seeded run.

    >>> model = nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(0.5))
    >>> state = torch.get_rng_state()
    >>> with leaving_state(model, torch.device("cpu")):
    ...     _ = model(torch.randn(4, 2))
    >>> model[0].running_mean.tolist(), torch.equal(torch.get_rng_state(), state)
    ([0.0, 0.0], True)
    """
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield model
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


@contextlib.contextmanager
def _in_mode(model: nn.Module, train: bool) -> Iterator[nn.Module]:
    modes = [(module, module.training) for module in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def example_batch(example_input: torch.Tensor) -> torch.Tensor:
    """The batch the model is run on: ``example_input``, or a single example given twice, since
    a BatchNorm cannot normalise one example by the batch's statistics (in training mode, and
    in eval mode too without running statistics).

    >>> example_batch(torch.zeros(1, 3, 4, 4)).shape, example_batch(torch.zeros(5, 3)).shape
    (torch.Size([2, 3, 4, 4]), torch.Size([5, 3]))
    """
    return example_input.repeat(2, *[1] * (example_input.dim() - 1)) if example_input.shape[:1] == (1,) else example_input


def glorot_init(model: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases in every conv and linear layer (as Frankle & Carbin, 2019).

    >>> layer = glorot_init(nn.Linear(3, 2))
    >>> layer.bias.tolist()
    [0.0, 0.0]
    """
    for layer in model.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def he_init(model: nn.Module) -> nn.Module:
    """He-normal (fan-out, ReLU) weights in every Conv2d layer (as He et al., 2016); others keep theirs.

    >>> _ = torch.manual_seed(0)
    >>> conv = he_init(nn.Conv2d(3, 8, 3))  # std sqrt(2 / fan_out) = sqrt(2 / 72) ~ 0.167
    >>> round(conv.weight.std().item(), 2)
    0.17
    """
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    return model
