"""Criteria looked up by name, or given as callables of the contract."""

import re

import pytest
import torch
from torch import nn

from prunelab import Pruner


@pytest.mark.parametrize("criterion, taking", [(torch.abs, "which abs cannot be"), (lambda w: w.abs(), "which this one, taking (w), cannot be")])
def test_a_criterion_of_the_weights_alone_is_told_the_contract(criterion, taking):
    """Other libraries score a whole tensor, f(w): named before any selection, with the contract."""
    with pytest.raises(TypeError, match=re.escape(f"a criterion is called as criterion(name, values, positions, out), {taking} "
                                                  "(the contract, with an example: prunelab.criteria.elementwise)")):  # fmt: skip
        Pruner(nn.Linear(4, 4)).prune(0.5, criterion=criterion)


def test_a_channel_criterion_of_another_form_is_told_the_contract():
    from prunelab.criteria.channels import get_channel_criterion

    with pytest.raises(TypeError, match=re.escape("a channel criterion is called as criterion(model, group), which this one, taking (weight)")):
        get_channel_criterion(lambda weight: weight.abs().sum(1))
