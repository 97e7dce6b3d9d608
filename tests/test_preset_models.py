"""The paper presets' models (vgg11, efficientnet_b0, vit): sizes, a training step, knobs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbhelpers.models  # noqa: F401  (registers the models)
from nbhelpers.errors import UserInputError
from nbhelpers.registry import MODELS

CIFAR = {"num_classes": 10, "in_channels": 3, "image_size": 32}
# Parameter counts at defaults for 32x32x3 and 10 classes, and how they come about:
#   vgg11: the eight VGG-A conv layers with BN (9.23M) plus a 512-512-10 head (0.27M)
#   efficientnet_b0: torchvision's B0 features (4.0M) plus a 1280 -> 10 classifier
#   vit: 6 encoder layers of width 192 (0.44M each) plus the patch projection and head
SIZES = {"vgg11": (9_400_000, 9_600_000), "efficientnet_b0": (4_000_000, 4_100_000),
         "vit": (2_600_000, 2_800_000)}


def build(name, info=CIFAR, **kwargs) -> nn.Module:
    return MODELS.get(name).factory(info=info, **kwargs)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SIZES))
def test_parameter_counts(name):
    low, high = SIZES[name]
    assert low <= count(build(name)) <= high
    assert MODELS.get(name).meta["task"] == "image_classification"


def test_vgg11_keeps_torchvision_layers_with_a_small_head():
    from torchvision.models.vgg import cfgs
    model = build("vgg11")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [v for v in cfgs["A"] if v != "M"]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == len(convs)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 512), (512, 10)]


def test_efficientnet_b0_is_torchvisions_with_a_stride_1_stem():
    from torchvision.models import efficientnet_b0
    ours, theirs = build("efficientnet_b0"), efficientnet_b0(weights=None, num_classes=10)
    assert count(ours) == count(theirs)  # same network; only the stem's stride differs
    assert ours.net.features[0][0].stride == (1, 1) and theirs.features[0][0].stride == (2, 2)


# Tiny versions (the knobs) so a training step costs milliseconds.
TINY = {"vgg11": {"hidden": 16}, "efficientnet_b0": {"dropout": 0.0, "stochastic_depth_prob": 0.0},
        "vit": {"hidden_dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64}}


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("info", [CIFAR, {"num_classes": 7, "in_channels": 1, "image_size": 28}],
                         ids=["32x32x3", "28x28x1-7classes"])
def test_forward_backward_reaches_every_parameter(name, info):
    torch.manual_seed(0)
    model = build(name, info, **TINY[name]).train()
    side = info["image_size"]
    x = torch.randn(4, info["in_channels"], side, side)
    out = model(x)
    assert out.shape == (4, info["num_classes"])
    nn.functional.cross_entropy(out, torch.arange(4) % info["num_classes"]).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_vit_b16_is_the_papers_shape_and_built_only_when_asked():
    small = build("vit")
    assert small.resize_to is None and len(small.net.encoder.layers) == 6
    big = build("vit", variant="b16")
    # ViT-B/16: 12 layers of width 768, 16x16 patches at 224; 85.8M with a 10-class head
    # (torchvision's vit_b_16 with 1000 classes has 86.6M).
    assert count(big) == 85_806_346
    net = big.net
    assert (len(net.encoder.layers), net.hidden_dim, net.patch_size, net.image_size) == (12, 768, 16, 224)
    assert big.resize_to == 224  # 32x32 inputs are resized to 224x224 in forward()


def test_vit_b16_refuses_shape_knobs_and_unknown_variants():
    with pytest.raises(UserInputError, match="fixes depth"):
        build("vit", variant="b16", depth=2)
    with pytest.raises(UserInputError, match="variant must be one of small, b16"):
        build("vit", variant="l32")


def test_vit_b16_resizes_small_images_to_224():
    """The resize path, on a b16-shaped model made tiny by swapping in a 1-layer encoder."""
    model = build("vit", variant="b16")
    model.net.encoder.layers = model.net.encoder.layers[:1]
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10)


@pytest.mark.parametrize("name, kwargs, match", [
    ("vgg11", {"dropout": 1.0}, "dropout"), ("vgg11", {"hidden": 0}, "hidden"),
    ("efficientnet_b0", {"stochastic_depth_prob": -0.1}, "stochastic_depth_prob"),
    ("vit", {"heads": 5}, "multiple of heads"), ("vit", {"patch_size": 5}, "patch_size"),
])
def test_bad_knob_values_are_one_sentence(name, kwargs, match):
    with pytest.raises(UserInputError, match=match) as caught:
        build(name, **kwargs)
    assert "\n" not in str(caught.value)


def test_knobs_are_checked_before_a_run_starts():
    from nbhelpers.config import RunConfig, validate_config
    with pytest.raises(UserInputError, match="variant must be a string"):
        validate_config(RunConfig(model="vit", dataset="cifar10", model_kwargs={"variant": 16}))
    with pytest.raises(UserInputError, match="does not accept 'depthh'"):
        validate_config(RunConfig(model="vit", dataset="cifar10", model_kwargs={"depthh": 2}))
