"""Plain convolutional networks: the MNIST-1D reference CNN and Conv-2/4/6 of Frankle & Carbin (2019)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from prunelab.models.common import check_input_shape, glorot_init, output_size
from prunelab.models.registry import register


def _features_classifier(features: nn.Sequential, classifier: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


@register("mnist1d_cnn")
def mnist1d_cnn(num_classes: int, input_shape: tuple[int, ...], channels: int = 25, batch_norm: bool = False) -> nn.Module:
    """The MNIST-1D reference CNN (ConvBase): 3 stride-2 Conv1d with ReLU, then linear.

    ``channels=25`` is the reference (5,210 parameters); wider ones leave pruning more room.
    ``batch_norm`` puts a BatchNorm after each convolution (for pruning channels by their
    BatchNorm scale, seed 002); the convolutions then have no bias.

    >>> sum(p.numel() for p in mnist1d_cnn(10, (1, 40)).parameters())
    5210
    >>> [type(layer).__name__ for layer in mnist1d_cnn(10, (1, 40), batch_norm=True).features[:3]]
    ['Conv1d', 'BatchNorm1d', 'ReLU']
    """
    check_input_shape("mnist1d_cnn", input_shape, "CL")
    layers: list[nn.Module] = []
    for i, kernel in enumerate((5, 3, 3)):
        layers.append(nn.Conv1d(input_shape[0] if i == 0 else channels, channels, kernel, stride=2, padding=1, bias=not batch_norm))
        layers += [nn.BatchNorm1d(channels), nn.ReLU()] if batch_norm else [nn.ReLU()]
    features = nn.Sequential(*layers, nn.Flatten())
    classifier = nn.Sequential(nn.Linear(output_size(features, input_shape), num_classes))
    return _features_classifier(features, classifier)


def _conv_net(name: str, stages: int, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    check_input_shape(name, input_shape, "CHW")
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for width in (64, 128, 256)[:stages]:
        layers += [
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels = width
    features = nn.Sequential(*layers, nn.Flatten())
    classifier = nn.Sequential(
        nn.Linear(output_size(features, input_shape), 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )
    return _features_classifier(features, classifier)


@register("conv2", init=glorot_init)
def conv2(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Conv-2 (Frankle & Carbin, 2019): 3x3 convs 64-64, max-pool, then FC 256-256.

    >>> conv2(10, (3, 32, 32))[0][0]
    Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    return _conv_net("conv2", 1, num_classes, input_shape)


@register("conv4", init=glorot_init)
def conv4(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Conv-4 (Frankle & Carbin, 2019): 3x3 convs 64-64, pool, 128-128, pool, then FC 256-256.

    >>> len(conv4(10, (3, 32, 32)).features)
    11
    """
    return _conv_net("conv4", 2, num_classes, input_shape)


@register("conv6", init=glorot_init)
def conv6(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Conv-6 (Frankle & Carbin, 2019): 3x3 convs 64-64, pool, 128-128, pool, 256-256, pool, FC 256-256.

    2.26M parameters on CIFAR-10: the paper's layer list gives that, its Figure 2 says 1.7M.

    >>> conv6(10, (3, 32, 32)).classifier[0]
    Linear(in_features=4096, out_features=256, bias=True)
    """
    return _conv_net("conv6", 3, num_classes, input_shape)
