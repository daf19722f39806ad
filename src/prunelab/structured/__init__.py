"""Structured pruning: whole channels, found in groups coupled through the model, removed physically.

>>> import torch
>>> from prunelab.models import build_model
>>> model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
>>> pruner = ChannelPruner(model, torch.zeros(1, 3, 32, 32), criterion="bn_scale")
>>> [g.name for g in pruner.groups][:2]  # the stem and all of stage 1's block outputs are one group
['conv', 'stage1.0.conv1']
"""

from __future__ import annotations

from prunelab.structured.groups import ChannelGroup, channel_groups
from prunelab.structured.pruner import ChannelPruner, shrink

__all__ = ["ChannelGroup", "ChannelPruner", "channel_groups", "shrink"]
