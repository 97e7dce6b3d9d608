"""Image models: parameter counts, cost, output shapes and knob checking."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbhelpers.models  # noqa: F401  (registers the models)
from nbhelpers.errors import UserInputError
from nbhelpers.registry import MODELS

MNIST_INFO = {"num_classes": 10, "in_channels": 1, "image_size": 28}
CIFAR_INFO = {"num_classes": 10, "in_channels": 3, "image_size": 32}
IMAGE_MODELS = ["cnn_scratch", "resnet18", "mnist_tiny", "vgg11", "efficientnet_b0", "vit"]


def build(name: str, info: dict, **kwargs) -> nn.Module:
    return MODELS.get(name).factory(info=info, **kwargs)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def multiply_adds(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image, from Conv2d and Linear layers."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        positions = output.numel() // output.shape[0]
        if isinstance(module, nn.Conv2d):
            kernel_h, kernel_w = module.kernel_size
            per_output = module.in_channels // module.groups * kernel_h * kernel_w
        else:
            per_output = module.in_features
        total += positions * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return total


def test_all_image_models_are_registered_for_the_task():
    for name in IMAGE_MODELS:
        assert MODELS.get(name).meta["task"] == "image_classification"


def test_cnn_scratch_size_and_cost():
    model = build("cnn_scratch", MNIST_INFO)
    assert 1_000_000 <= count(model) <= 2_000_000
    # Cheap enough for sixteen optimizers on a CPU: about 3M multiply-adds per 28x28 image.
    assert 2_500_000 <= multiply_adds(model, (1, 28, 28)) <= 4_500_000


def test_resnet18_size():
    assert 10_500_000 <= count(build("resnet18", MNIST_INFO)) <= 11_500_000
    assert 10_500_000 <= count(build("resnet18", CIFAR_INFO)) <= 11_500_000


def test_mnist_tiny_matches_the_published_layer_table():
    model = build("mnist_tiny", MNIST_INFO)
    assert count(model) == 18_662 < 20_000
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [count(c) for c in convs] == [140, 1778, 2032, 2610, 3260, 3982, 4378]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 7
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("info", [MNIST_INFO, CIFAR_INFO], ids=["28x28x1", "32x32x3"])
def test_output_shapes(name, info):
    torch.manual_seed(0)
    model = build(name, info).eval()
    side = info["image_size"]
    with torch.no_grad():
        out = model(torch.randn(2, info["in_channels"], side, side))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_knobs_change_the_model():
    default = count(build("cnn_scratch", MNIST_INFO))
    assert count(build("cnn_scratch", MNIST_INFO, width=0.5, hidden=128)) < default
    assert len(build("vit", MNIST_INFO, depth=2).net.encoder.layers) == 2


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_unknown_kwarg_is_a_user_error_listing_the_accepted_ones(name):
    expected = "does not accept 'layerz'; accepted model_kwargs"
    with pytest.raises(UserInputError, match=expected) as caught:
        build(name, MNIST_INFO, layerz=3)
    assert "\n" not in str(caught.value)


def test_cnn_scratch_lists_its_knobs():
    with pytest.raises(UserInputError, match="width, hidden, dropout"):
        build("cnn_scratch", MNIST_INFO, widht=2)


def test_bad_knob_values_and_non_image_info_are_user_errors():
    with pytest.raises(UserInputError, match="dropout"):
        build("cnn_scratch", MNIST_INFO, dropout=1.5)
    with pytest.raises(UserInputError, match="patch_size"):
        build("vit", MNIST_INFO, patch_size=5)
    with pytest.raises(UserInputError, match="image_size"):
        build("cnn_scratch", {"num_classes": 2, "vocab_size": 100})


def test_cnn_scratch_learns():
    """A few Adam steps fit a small random batch: gradients reach every layer."""
    torch.manual_seed(0)
    model = build("cnn_scratch", MNIST_INFO, dropout=0.0)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None for p in model.parameters())
