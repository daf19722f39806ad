"""Criteria looked up by name, or given as callables of the contract."""

import functools
import re

import pytest
import torch
from torch import nn

from prunelab import Pruner


def magnitude_of(weight: torch.Tensor) -> torch.Tensor:
    return weight.abs()


@pytest.mark.parametrize("criterion, taking", [
    (torch.abs, "which abs cannot be"), (lambda w: w.abs(), "which this one, taking (w), cannot be"),
    (torch.Tensor.abs, "which TensorBase.abs cannot be"), (functools.partial(torch.abs), "which functools.partial(abs) cannot be"),
    (functools.partial(functools.partial(torch.Tensor.abs)), "which functools.partial(TensorBase.abs) cannot be"),
    (magnitude_of, "which this one, taking (weight: torch.Tensor), cannot be"),  # its return type said not
])  # fmt: skip
def test_a_criterion_of_the_weights_alone_is_told_the_contract(criterion, taking):
    """Other libraries score a whole tensor, f(w): named before any selection, with the contract."""
    with pytest.raises(TypeError, match=re.escape(f"a criterion is called as criterion(name, values, positions, out), {taking} "
                                                  "(the contract, with an example: prunelab.criteria.elementwise)")):  # fmt: skip
        Pruner(nn.Linear(4, 4)).prune(0.5, criterion=criterion)


def test_a_channel_criterion_of_another_form_is_told_the_contract():
    from prunelab.criteria.channels import get_channel_criterion

    with pytest.raises(TypeError, match=re.escape("a channel criterion is called as criterion(model, group), which this one, taking (weight)")):
        get_channel_criterion(lambda weight: weight.abs().sum(1))
    with pytest.raises(TypeError, match=re.escape("a channel criterion is called as criterion(model, group), which abs cannot be "
                                                  "(the contract, with an example: prunelab.criteria.channels)")):  # fmt: skip
        get_channel_criterion(torch.abs)
    with pytest.raises(TypeError, match=re.escape("a channel criterion is called as criterion(model, group), which functools.partial(abs) cannot be")):
        get_channel_criterion(functools.partial(torch.abs))


def test_a_channel_criterion_that_is_no_name_nor_callable_is_told_the_names():
    from prunelab.criteria.channels import get_channel_criterion

    with pytest.raises(ValueError, match=re.escape("unknown channel criterion 'l1'; expected one of ['bn_scale', 'filter_l1', 'random_channels']")):
        get_channel_criterion("l1")
    with pytest.raises(TypeError, match=re.escape("channel criterion must be one of ['bn_scale', 'filter_l1', 'random_channels'] or a callable criterion, got 1")):
        get_channel_criterion(1)
