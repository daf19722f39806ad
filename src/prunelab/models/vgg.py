"""VGG-16 and VGG-19 with BatchNorm, CIFAR variants: a single linear classifier on the final features
(512 of a 32x32 image; 2 x 2 x 512 of a 64x64 one, five halvings leaving 2x2)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from prunelab.models.common import check_input_shape, he_init, output_size
from prunelab.models.registry import register

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


@register("vgg16_bn", init=he_init)
def vgg16_bn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """VGG-16 with BatchNorm for CIFAR: 13 3x3 conv-BN-ReLU layers, 5 max-pools, Linear(512, classes).

    >>> vgg16_bn(10, (3, 32, 32)).classifier
    Linear(in_features=512, out_features=10, bias=True)
    """
    return _vgg("vgg16_bn", _VGG16, num_classes, input_shape)


@register("vgg19_bn", init=he_init)
def vgg19_bn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """VGG-19 with BatchNorm for CIFAR (seed 004's CIFAR-100 network, that of network slimming):
    16 3x3 conv-BN-ReLU layers, 5 max-pools, Linear(512, classes).

    >>> sum(isinstance(m, nn.Conv2d) for m in vgg19_bn(100, (3, 32, 32)).modules())
    16
    """
    return _vgg("vgg19_bn", _VGG19, num_classes, input_shape)


def _vgg(name: str, config: tuple[int | str, ...], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    check_input_shape(name, input_shape, "CHW")
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            # No conv bias: the BatchNorm right after it has its own shift.
            layers += [nn.Conv2d(channels, entry, 3, padding=1, bias=False), nn.BatchNorm2d(entry), nn.ReLU()]
            channels = entry
    features = nn.Sequential(*layers, nn.Flatten())
    classifier = nn.Linear(output_size(features, input_shape), num_classes)
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))
