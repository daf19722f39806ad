"""ImageNet ResNets (He et al., 2016, table 1): ResNet-18 and ResNet-34 of basic blocks, ResNet-50 of bottlenecks.

The architecture and the parameter names are torchvision's (its "ResNet v1.5": a bottleneck
strides in its 3x3 convolution, and the shortcut is a 1x1 convolution and BatchNorm where the
shape changes), so a torchvision state dict loads into these models as it is. ``stem="small"``
replaces the 7x7 stride-2 convolution and the max pool by one 3x3 stride-1 convolution, as
pruning papers do for 32x32 and 64x64 images (CIFAR, Tiny ImageNet), which would otherwise be
shrunk fourfold before the first block.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from prunelab.models.common import check_input_shape, he_init
from prunelab.models.registry import register

Stem = Literal["imagenet", "small"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (``downsample``: 1x1 conv + BN when the shape changes)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(in_channels, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.downsample(x)).relu()


class Bottleneck(nn.Module):
    """1x1 conv reducing to ``width``, 3x3 conv (strided), 1x1 conv expanding to 4x ``width``, each
    followed by BN; plus a shortcut as in :class:`BasicBlock`."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.downsample = _shortcut(in_channels, width * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        out = self.bn3(self.conv3(out))
        return (out + self.downsample(x)).relu()


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))


class ImageNetResNet(nn.Module):
    """Stem, four stages of blocks (width, 2x, 4x, 8x; each after the first halving the
    resolution), average pool, linear.

    >>> model = ImageNetResNet(BasicBlock, (2, 2, 2, 2), num_classes=10, in_channels=3)
    >>> model.fc, type(model.maxpool).__name__
    (Linear(in_features=512, out_features=10, bias=True), 'MaxPool2d')
    """

    def __init__(
        self, block: type[BasicBlock | Bottleneck], blocks_per_stage: tuple[int, ...], num_classes: int,
        in_channels: int, width: int = 64, stem: Stem = "imagenet",
    ) -> None:  # fmt: skip
        super().__init__()
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        channels = width
        for stage, n_blocks in enumerate(blocks_per_stage):
            stage_width = width * 2**stage
            blocks = []
            for index in range(n_blocks):
                blocks.append(block(channels, stage_width, stride=2 if stage > 0 and index == 0 else 1))
                channels = stage_width * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.bn1(self.conv1(x)).relu())
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _resnet(
    name: str, block: type[BasicBlock | Bottleneck], blocks_per_stage: tuple[int, ...], num_classes: int,
    input_shape: tuple[int, ...], width: int, stem: Stem,
) -> ImageNetResNet:  # fmt: skip
    check_input_shape(name, input_shape, "CHW")
    if stem not in ("imagenet", "small"):
        raise ValueError(f"{name}: stem must be 'imagenet' (7x7 stride-2 conv and max pool) or 'small' (3x3 conv), got {stem!r}")
    return ImageNetResNet(block, blocks_per_stage, num_classes, input_shape[0], width, stem)


@register("resnet18", init=he_init)
def resnet18(num_classes: int, input_shape: tuple[int, ...], *, width: int = 64, stem: Stem = "imagenet") -> nn.Module:
    """ResNet-18 (He et al., 2016): 4 stages x 2 basic blocks, 11.7M parameters for ImageNet's 1000 classes.

    >>> sum(p.numel() for p in resnet18(1000, (3, 224, 224)).parameters())
    11689512
    """
    return _resnet("resnet18", BasicBlock, (2, 2, 2, 2), num_classes, input_shape, width, stem)


@register("resnet34", init=he_init)
def resnet34(num_classes: int, input_shape: tuple[int, ...], *, width: int = 64, stem: Stem = "imagenet") -> nn.Module:
    """ResNet-34 (He et al., 2016): 4 stages of 3, 4, 6 and 3 basic blocks, 21.8M parameters for 1000 classes.

    >>> [len(stage) for stage in resnet34(10, (3, 64, 64)).children() if isinstance(stage, nn.Sequential)]
    [3, 4, 6, 3]
    """
    return _resnet("resnet34", BasicBlock, (3, 4, 6, 3), num_classes, input_shape, width, stem)


@register("resnet50", init=he_init)
def resnet50(num_classes: int, input_shape: tuple[int, ...], *, width: int = 64, stem: Stem = "imagenet") -> nn.Module:
    """ResNet-50 (He et al., 2016): 4 stages of 3, 4, 6 and 3 bottlenecks, 25.6M parameters for 1000 classes.

    >>> resnet50(200, (3, 64, 64), stem="small").fc
    Linear(in_features=2048, out_features=200, bias=True)
    """
    return _resnet("resnet50", Bottleneck, (3, 4, 6, 3), num_classes, input_shape, width, stem)
