"""Every registered model: output shape on its natural input, and parameter counts where known."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunelab.analysis.flops import count_macs
from prunelab.models import MODELS, build_model
from prunelab.models.common import glorot_init

MNIST1D, MNIST, CIFAR, TINY_IMAGENET = (1, 40), (1, 28, 28), (3, 32, 32), (3, 64, 64)
NATURAL_INPUTS = {
    "mlp": [MNIST1D, MNIST, CIFAR],
    "residual_mlp": [MNIST1D, MNIST],
    "lenet_300_100": [MNIST],
    "mnist1d_cnn": [MNIST1D],
    "conv2": [CIFAR, MNIST],
    "conv4": [CIFAR],
    "conv6": [CIFAR],
    "resnet20": [CIFAR],
    "resnet32": [CIFAR],
    "resnet56": [CIFAR],
    "resnet18": [TINY_IMAGENET, CIFAR],
    "resnet34": [TINY_IMAGENET],
    "resnet50": [TINY_IMAGENET],
    "vgg16_bn": [CIFAR],
    "vgg19_bn": [CIFAR],
}
CASES = [(name, shape) for name, shapes in NATURAL_INPUTS.items() for shape in shapes]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_model_is_covered() -> None:
    assert set(NATURAL_INPUTS) == set(MODELS)


@pytest.mark.parametrize("name, input_shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_forward_shape(name: str, input_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, input_shape=input_shape)
    out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(("name", "input_shape"), [
    ("mnist1d_cnn", (2, 40)), ("resnet20", (1, 32, 32)), ("resnet18", (1, 64, 64)), ("vgg16_bn", (1, 32, 32)),
])  # fmt: skip
def test_the_first_convolution_reads_the_input_s_channels(name: str, input_shape: tuple[int, ...]) -> None:
    # Grey images have one channel, not the three of CIFAR; a signal may have two.
    model = build_model(name, 7, input_shape)
    first = next(m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d)))
    assert first.in_channels == input_shape[0]
    assert model(torch.randn(2, *input_shape)).shape == (2, 7)


def test_mlp_on_mnist1d() -> None:
    # (40*100 + 100) + (100*100 + 100) + (100*10 + 10)
    assert n_params(build_model("mlp", 10, MNIST1D)) == 15_210


def test_residual_mlp_on_mnist1d() -> None:
    # The notebook's width: (40*500 + 500) + (500*500 + 500) + (500*10 + 10)
    assert n_params(build_model("residual_mlp", 10, MNIST1D, hidden_size=500)) == 276_010
    # The default width: (40*100 + 100) + (100*100 + 100) + (100*10 + 10)
    assert n_params(build_model("residual_mlp", 10, MNIST1D)) == 15_210


@pytest.mark.parametrize(("name", "input_shape", "layers"), [
    ("lenet_300_100", MNIST, ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]),
    ("conv2", CIFAR, ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]),
])  # fmt: skip
def test_layers_in_order(name: str, input_shape: tuple[int, ...], layers: list[str]) -> None:
    model = build_model(name, 10, input_shape)
    assert [type(m).__name__ for m in model.modules() if not list(m.children())] == layers


def test_residual_mlp_skips_its_hidden_layer() -> None:
    """With the hidden layer's weights and bias zero, ReLU(linear2(h)) is 0 and h passes
    through: the output is linear3(ReLU(linear1(x))). Without the skip it would be linear3(0)."""
    torch.manual_seed(0)
    model = build_model("residual_mlp", 10, MNIST1D, hidden_size=16)
    x = torch.randn(4, *MNIST1D)
    with torch.no_grad():
        model.linear2.weight.zero_()
        model.linear2.bias.zero_()
        expected = model.linear3(model.linear1(x.flatten(1)).relu())
        assert torch.allclose(model(x), expected)
        assert not torch.allclose(model(x), model.linear3.bias.expand(4, 10))
    # With all weights random: linear3(h + ReLU(linear2(h))), h = ReLU(linear1(x)).
    model = build_model("residual_mlp", 10, MNIST1D, hidden_size=16)
    with torch.no_grad():
        h = F.relu(F.linear(x.flatten(1), model.linear1.weight, model.linear1.bias))
        h = h + F.relu(F.linear(h, model.linear2.weight, model.linear2.bias))
        assert torch.allclose(model(x), F.linear(h, model.linear3.weight, model.linear3.bias))


def test_mnist1d_cnn() -> None:
    # Conv1d(1,25,5): 125+25; two Conv1d(25,25,3): 2*(1875+25);
    # length 40 -> 19 -> 10 -> 5, so Linear(25*5, 10): 1260.
    model = build_model("mnist1d_cnn", 10, MNIST1D)
    assert n_params(model) == 5_210
    assert model.classifier[0].in_features == 125
    # With BatchNorm the convolutions lose their 3*25 biases and each BatchNorm has 2*25 parameters.
    assert n_params(build_model("mnist1d_cnn", 10, MNIST1D, batch_norm=True)) == 5_210 - 3 * 25 + 3 * 2 * 25
    assert n_params(build_model("mnist1d_cnn", 10, MNIST1D, batch_norm=False)) == 5_210
    # channels=8: (1*8*5 + 8) + 2*(8*8*3 + 8) + (8*5*10 + 10)
    assert n_params(build_model("mnist1d_cnn", 10, MNIST1D, channels=8)) == 858


def test_lenet_300_100_on_mnist() -> None:
    # (784*300 + 300) + (300*100 + 100) + (100*10 + 10)
    assert n_params(build_model("lenet_300_100", 10, MNIST)) == 266_610


@pytest.mark.parametrize("width", [16, 8])
def test_resnet20_on_cifar10(width: int) -> None:
    def bn(c: int) -> int:  # weight and bias
        return 2 * c

    def block(c_in: int, c: int) -> int:  # two 3x3 convs without bias, each followed by BN
        return c_in * c * 9 + bn(c) + c * c * 9 + bn(c)

    def projection(c_in: int, c: int) -> int:  # 1x1 conv + BN shortcut where the shape changes
        return c_in * c + bn(c)

    w1, w2, w3 = width, 2 * width, 4 * width  # the stages' widths
    stem = 3 * w1 * 9 + bn(w1)
    stage1 = 3 * block(w1, w1)
    stage2 = block(w1, w2) + projection(w1, w2) + 2 * block(w2, w2)
    stage3 = block(w2, w3) + projection(w2, w3) + 2 * block(w3, w3)
    fc = w3 * 10 + 10
    expected = stem + stage1 + stage2 + stage3 + fc
    if width == 16:
        assert expected == 272_474  # the ~0.27M of He et al. (2016)
    assert n_params(build_model("resnet20", 10, CIFAR, width=width)) == expected


@pytest.mark.parametrize(("depth", "published"), [(20, 0.27e6), (32, 0.46e6), (56, 0.85e6)])
def test_resnets_are_he_et_al_s_plus_two_projection_shortcuts(depth: int, published: float) -> None:
    """He et al. (2016, Table 6) count option-A (parameter-free) shortcuts. With n blocks per
    stage: stem 3*16*9 + 2*16; stage 1 n*(2*16*16*9 + 4*16); stage 2 16*32*9 + 32*32*9 + 4*32
    then (n-1)*(2*32*32*9 + 4*32); stage 3 likewise at 32 -> 64; fc 64*10 + 10. The two 1x1
    conv + BN projections (16 -> 32, 32 -> 64) add 16*32 + 2*32 + 32*64 + 2*64 = 2,752."""
    n = (depth - 2) // 6
    option_a = (
        (3 * 16 * 9 + 2 * 16)
        + n * (2 * 16 * 16 * 9 + 4 * 16)
        + (16 * 32 * 9 + 32 * 32 * 9 + 4 * 32) + (n - 1) * (2 * 32 * 32 * 9 + 4 * 32)
        + (32 * 64 * 9 + 64 * 64 * 9 + 4 * 64) + (n - 1) * (2 * 64 * 64 * 9 + 4 * 64)
        + (64 * 10 + 10)
    )
    assert abs(option_a - published) / published < 0.01
    assert n_params(build_model(f"resnet{depth}", 10, CIFAR)) == option_a + 2_752


def randomize_batchnorms(model: nn.Module) -> nn.Module:
    """Eval mode with statistics and affine parameters far from the identity they start as; scales
    of either sign, as trained ones are, so that a BatchNorm does not commute with a max pool."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(-1.5, 1.5), module.bias.uniform_(-1, 1)
    return model.eval()


def batch_norm(module: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias, eps=module.eps)


def basic_block(b: nn.Module, x: torch.Tensor, stride: int, projection: nn.Sequential | None) -> torch.Tensor:
    """ReLU(BN(3x3 conv(ReLU(BN(3x3 conv(x))))) + shortcut(x)), the first conv at ``stride``; the
    shortcut is ``projection`` (1x1 conv at ``stride``, BN) where given, else x."""
    out = F.relu(batch_norm(b.bn1, F.conv2d(x, b.conv1.weight, stride=stride, padding=1)))
    out = batch_norm(b.bn2, F.conv2d(out, b.conv2.weight, padding=1))
    shortcut = x if projection is None else batch_norm(projection[1], F.conv2d(x, projection[0].weight, stride=stride))
    return F.relu(out + shortcut)


def test_resnet_forward_is_he_et_al_s() -> None:
    """conv-BN-ReLU, then blocks ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)), the first block
    of stages 2 and 3 at stride 2 with a 1x1 conv-BN shortcut; global average pool, linear."""
    torch.manual_seed(0)
    model = randomize_batchnorms(build_model("resnet20", 10, CIFAR, width=4))
    x = torch.randn(2, *CIFAR)

    def block(b: nn.Module, x: torch.Tensor, stride: int) -> torch.Tensor:
        return basic_block(b, x, stride, None if stride == 1 else b.shortcut)

    with torch.no_grad():
        h = F.relu(batch_norm(model.bn, F.conv2d(x, model.conv.weight, padding=1)))
        for stage, blocks in enumerate((model.stage1, model.stage2, model.stage3)):
            for i, b in enumerate(blocks):
                h = block(b, h, 2 if stage > 0 and i == 0 else 1)
        assert h.shape == (2, 16, 8, 8)
        torch.testing.assert_close(model(x), F.linear(h.mean((2, 3)), model.fc.weight, model.fc.bias))


def test_resnet_depth_must_be_6n_plus_2() -> None:
    from prunelab.models.resnet import CifarResNet

    for depth in (2, 11, 21):  # 11 = 3*3 + 2: n must be whole
        with pytest.raises(ValueError, match=f"CIFAR ResNet depth must be 6n\\+2 with n >= 1, got {depth}"):
            CifarResNet(depth, num_classes=10, in_channels=3)
    smallest = CifarResNet(8, num_classes=10, in_channels=3)  # n = 1
    assert [len(stage) for stage in (smallest.stage1, smallest.stage2, smallest.stage3)] == [1, 1, 1]


@pytest.mark.parametrize(("name", "torchvision"), [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)])
def test_imagenet_resnets_have_torchvisions_parameters(name: str, torchvision: int) -> None:
    """The counts torchvision's model pages give (``num_params``) for 1000 classes."""
    assert n_params(build_model(name, 1000, (3, 224, 224))) == torchvision


@pytest.mark.parametrize(("name", "torchvision_gflops"), [("resnet18", 1.81), ("resnet50", 4.09)])
def test_imagenet_resnets_cost_torchvisions_multiply_accumulates(name: str, torchvision_gflops: float) -> None:
    """torchvision's model pages give "GFLOPS" (its multiply-accumulates, rounded) at 224x224."""
    macs = count_macs(build_model(name, 1000, (3, 224, 224)), torch.zeros(1, 3, 224, 224))
    assert macs / 1e9 == pytest.approx(torchvision_gflops, abs=0.005)


def test_an_imagenet_resnet_built_directly_checks_its_stem() -> None:
    # Called from Python, past build_model's option check: an unknown stem must not build the small one.
    from prunelab.models.imagenet_resnet import resnet50

    with pytest.raises(ValueError, match=r"^resnet50: stem must be 'imagenet' \(7x7 stride-2 conv and max pool\) or 'small' \(3x3 conv\), got 'tiny'$"):
        resnet50(10, TINY_IMAGENET, stem="tiny")


def test_imagenet_resnets_name_their_parameters_as_torchvision_does() -> None:
    """So that a torchvision state dict loads as it is: 53 convolutions and 53 BatchNorms (five
    entries each) and the classifier's weight and bias make ResNet-50's 320 entries."""
    keys = build_model("resnet50", 1000, (3, 224, 224)).state_dict().keys()
    assert len(keys) == 53 + 53 * 5 + 2
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.bias", "fc.bias"} <= set(keys)  # fmt: skip
    assert "layer1.1.downsample.0.weight" not in keys  # an identity shortcut has no parameters


@pytest.mark.parametrize("stem", ["imagenet", "small"])
def test_bottleneck_resnet_forward_is_torchvisions(stem: str) -> None:
    """Stem (7x7 stride-2 conv-BN-ReLU and 3x3 stride-2 max pool, or "small": 3x3 conv-BN-ReLU);
    bottlenecks ReLU(BN(1x1 conv(ReLU(BN(3x3 conv(ReLU(BN(1x1 conv(x))))))) + shortcut(x)), the
    stride in the 3x3 conv (torchvision's v1.5), a 1x1 conv-BN shortcut where the shape changes;
    global average pool, linear."""
    torch.manual_seed(0)
    model = randomize_batchnorms(build_model("resnet50", 10, CIFAR, width=4, stem=stem))
    x = torch.randn(2, *CIFAR)

    def block(b: nn.Module, x: torch.Tensor, stride: int) -> torch.Tensor:
        out = F.relu(batch_norm(b.bn1, F.conv2d(x, b.conv1.weight)))
        out = F.relu(batch_norm(b.bn2, F.conv2d(out, b.conv2.weight, stride=stride, padding=1)))
        out = batch_norm(b.bn3, F.conv2d(out, b.conv3.weight))
        first = x.shape[1] != out.shape[1]
        shortcut = batch_norm(b.downsample[1], F.conv2d(x, b.downsample[0].weight, stride=stride)) if first else x
        return F.relu(out + shortcut)

    with torch.no_grad():
        if stem == "imagenet":
            h = F.relu(batch_norm(model.bn1, F.conv2d(x, model.conv1.weight, stride=2, padding=3)))
            h = F.max_pool2d(h, 3, stride=2, padding=1)
        else:
            h = F.relu(batch_norm(model.bn1, F.conv2d(x, model.conv1.weight, padding=1)))
        for stage, n_blocks in enumerate((3, 4, 6, 3)):
            for i in range(n_blocks):
                h = block(model.get_submodule(f"layer{stage + 1}.{i}"), h, 2 if stage > 0 and i == 0 else 1)
        assert h.shape == (2, 4 * 8 * 4, *((1, 1) if stem == "imagenet" else (4, 4)))
        torch.testing.assert_close(model(x), F.linear(h.mean((2, 3)), model.fc.weight, model.fc.bias))


def test_basic_block_resnet_forward_is_torchvisions() -> None:
    """ResNet-34's stages of 3, 4, 6 and 3 basic blocks ReLU(BN(3x3 conv(ReLU(BN(3x3 conv(x))))) + shortcut(x)),
    the first 3x3 conv strided, a 1x1 conv-BN shortcut where the shape changes, after the ImageNet stem."""
    torch.manual_seed(0)
    model = randomize_batchnorms(build_model("resnet34", 10, CIFAR, width=4))
    x = torch.randn(2, *CIFAR)

    def block(b: nn.Module, x: torch.Tensor, stride: int) -> torch.Tensor:
        return basic_block(b, x, stride, b.downsample if stride == 2 else None)

    with torch.no_grad():
        h = F.max_pool2d(F.relu(batch_norm(model.bn1, F.conv2d(x, model.conv1.weight, stride=2, padding=3))), 3, stride=2, padding=1)
        for stage, n_blocks in enumerate((3, 4, 6, 3)):
            for i in range(n_blocks):
                h = block(model.get_submodule(f"layer{stage + 1}.{i}"), h, 2 if stage > 0 and i == 0 else 1)
        assert h.shape == (2, 4 * 8, 1, 1)
        torch.testing.assert_close(model(x), F.linear(h.mean((2, 3)), model.fc.weight, model.fc.bias))


def test_vgg16_bn_forward() -> None:
    """Each conv (3x3, padding 1) then BatchNorm then ReLU; 2x2 max-pools; Linear on the 512 features."""
    torch.manual_seed(0)
    model = randomize_batchnorms(build_model("vgg16_bn", 10, CIFAR))
    convs = iter(m for m in model.modules() if isinstance(m, nn.Conv2d))
    norms = iter(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.randn(2, *CIFAR)
    with torch.no_grad():
        h = x
        for stage in (2, 2, 3, 3, 3):
            for _ in range(stage):
                h = F.relu(batch_norm(next(norms), F.conv2d(h, next(convs).weight, padding=1)))
            h = F.max_pool2d(h, 2)
        assert h.shape == (2, 512, 1, 1)
        torch.testing.assert_close(model(x), F.linear(h.flatten(1), model.classifier.weight, model.classifier.bias))


def test_vgg16_bn_on_cifar10_counts_by_hand() -> None:
    """13 bias-free 3x3 convs (64, 64, 128, 128, 256 x3, 512 x6), a BatchNorm (weight, bias) after
    each, Linear(512, 10): 14,724,042, the 14.7M of the CIFAR VGG-16 of Frankle et al. (OpenLTH,
    whose convs also have biases: 4,224 more)."""
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = sum(c_in * c_out * 9 for c_in, c_out in zip([3, *widths], widths))
    assert n_params(build_model("vgg16_bn", 10, CIFAR)) == convs + 2 * sum(widths) + (512 * 10 + 10) == 14_724_042


def test_vgg19_bn_counts_by_hand_as_network_slimming_s() -> None:
    """16 bias-free 3x3 convs (64, 64, 128, 128, 256 x4, 512 x8), a BatchNorm after each,
    Linear(512, classes): 20,035,018 on CIFAR-10, the 20.04M Liu et al. report for the VGG-19
    seed 004 prunes (theirs ends in an average pool, which has no parameters)."""
    widths = [64, 64, 128, 128, *[256] * 4, *[512] * 8]
    convs = sum(c_in * c_out * 9 for c_in, c_out in zip([3, *widths], widths))
    assert convs == 1_728 + 36_864 + 73_728 + 147_456 + 294_912 + 3 * 589_824 + 1_179_648 + 7 * 2_359_296
    assert n_params(build_model("vgg19_bn", 10, CIFAR)) == convs + 2 * sum(widths) + (512 * 10 + 10) == 20_035_018
    assert n_params(build_model("vgg19_bn", 100, CIFAR)) == 20_035_018 + 90 * 513


def test_vgg16_bn_classifier() -> None:
    model = build_model("vgg16_bn", 100, CIFAR)
    assert model.classifier.in_features == 512 and model.classifier.out_features == 100
    # Five halvings leave Tiny ImageNet's 64x64 at 2x2: the classifier reads all 2 * 2 * 512 features.
    assert build_model("vgg16_bn", 200, TINY_IMAGENET).classifier.in_features == 2 * 2 * 512
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13


@pytest.mark.parametrize(
    ("name", "published", "expected"),
    [
        # Frankle & Carbin (2019), Figure 2: Conv-2 4.3M, Conv-4 2.4M. For Conv-6 the figure
        # says 1.7M, but its own layer list (convs 64-64-128-128-256-256, FC 256-256-10 on
        # 4x4x256 features) has 1,144,512 conv + 1,117,194 FC parameters: 2.26M.
        ("conv2", 4.3e6, 4_301_642),
        ("conv4", 2.4e6, 2_425_930),
        ("conv6", 2.26e6, 2_262_602),
        # He et al. (2016), Table 6: 0.46M and 0.85M (with option-A shortcuts; ours are projections).
        ("resnet32", 0.46e6, 466_906),
        ("resnet56", 0.85e6, 855_770),
    ],
)
def test_parameter_counts_against_the_papers(name: str, published: float, expected: int) -> None:
    count = n_params(build_model(name, 10, CIFAR))
    assert count == expected
    assert abs(count - published) / published < 0.02


def test_conv6_counts_by_hand() -> None:
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    conv = sum(c_in * c_out * 9 + c_out for c_in, c_out in convs)
    fc = (4 * 4 * 256 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert n_params(build_model("conv6", 10, CIFAR)) == conv + fc == 2_262_602


# Each model's weights as its paper's code draws them: Glorot-normal (Frankle & Carbin), He-normal
# fan-out in the convolutions (He et al.; torchvision), or PyTorch's defaults (the MNIST-1D code).
INIT_SCHEMES = {
    **dict.fromkeys(["mlp", "residual_mlp", "mnist1d_cnn"], "pytorch"),
    **dict.fromkeys(["lenet_300_100", "conv2", "conv4", "conv6"], "glorot"),
    **dict.fromkeys(["resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "resnet50", "vgg16_bn", "vgg19_bn"], "he"),
}


@pytest.mark.parametrize("name", INIT_SCHEMES)
def test_initialisation_follows_the_papers(name: str) -> None:
    """Glorot-normal for LeNet and Conv-2/4/6 (with zero biases), He-normal fan-out for ResNet and
    VGG convolutions, PyTorch's default elsewhere (uniform within 1/sqrt(fan_in), std 1/sqrt(3 fan_in)):
    the sample std of each large weight tensor is within 5% of it, and 68.3% of the weights lie
    within one std, as of a normal distribution (57.7% of a uniform one). Every BatchNorm starts
    as the identity, weight 1 and bias 0: no block's last one is zeroed (torchvision's default)."""
    assert set(INIT_SCHEMES) == set(MODELS)
    torch.manual_seed(0)
    # Wider than their defaults, whose layers are too small to measure
    wider = {"mlp": {"hidden_sizes": [500, 500]}, "residual_mlp": {"hidden_size": 500}, "mnist1d_cnn": {"channels": 128}}
    model = build_model(name, 10, NATURAL_INPUTS[name][0], **wider.get(name, {}))
    checked = 0
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), module
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) or module.weight.numel() < 20_000:
            continue
        fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
        fan_in = module.weight[0].numel()
        if INIT_SCHEMES[name] == "glorot":
            expected, within_one_std = (2 / (fan_in + fan_out)) ** 0.5, 0.683
            assert torch.all(module.bias == 0)
        elif INIT_SCHEMES[name] == "he" and isinstance(module, nn.Conv2d):
            expected, within_one_std = (2 / fan_out) ** 0.5, 0.683
        else:
            expected, within_one_std = (1 / (3 * fan_in)) ** 0.5, 3**-0.5
        assert module.weight.std().item() == pytest.approx(expected, rel=0.05), module
        assert (module.weight.abs() < expected).float().mean().item() == pytest.approx(within_one_std, abs=0.02), module
        checked += 1
    assert checked >= 2


def test_glorot_init_draws_every_convolution_and_linear_layer() -> None:
    # Conv1d too, which no Glorot model of prunelab's has: std sqrt(2 / (fan_in + fan_out)), zero bias.
    torch.manual_seed(0)
    for layer in (nn.Conv1d(64, 128, 5), nn.Conv2d(32, 64, 5), nn.Linear(400, 300)):
        glorot_init(layer)
        fan_in, fan_out = layer.weight[0].numel(), layer.weight.shape[0] * layer.weight[0, 0].numel()
        assert layer.weight.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05), layer
        assert torch.all(layer.bias == 0)
