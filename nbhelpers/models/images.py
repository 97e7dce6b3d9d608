"""Image-classification models: cnn_scratch, resnet18, mnist_tiny and the paper presets
vgg11, efficientnet_b0 and vit, all adapted to 28x28 and 32x32 inputs.

Each is registered in MODELS with task="image_classification" and built as

    builder(info=bundle.info, **model_kwargs)

where info supplies in_channels, num_classes and image_size (see nbhelpers/data/images.py)
and model_kwargs are the model's knobs: the keyword-only constructor arguments other than
those three. An unknown knob is a UserInputError that lists the accepted ones.
torchvision is imported only by the builders that wrap its models.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from nbhelpers.models.base import check_knobs, facts_from_info, require
from nbhelpers.registry import MODELS

TASK = "image_classification"
FROM_INFO = ("in_channels", "num_classes", "image_size")


def _build(name: str, model_class: type[nn.Module], info: dict, model_kwargs: dict) -> nn.Module:
    """Construct `model_class` from the dataset's info plus the user's knobs, checking names."""
    check_knobs(name, model_class, model_kwargs, exclude=FROM_INFO)
    facts = facts_from_info(name, info, {key: key for key in FROM_INFO}, needs="an image dataset")
    return model_class(**facts, **model_kwargs)




# --------------------------------------------------------------------------------------------
# cnn_scratch
# --------------------------------------------------------------------------------------------

class CNNScratch(nn.Module):
    """Three Conv3x3-ReLU blocks (two of them max-pooled) and a two-layer MLP head, no BN.

    At defaults on 28x28x1 it has about 1.23M parameters, nearly all in the first head layer,
    and costs about 3.1M multiply-adds per image: cheap enough to train sixteen optimizers on
    a CPU, and, without normalization layers, sensitive to the learning rate and weight decay.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, hidden: int = 384, dropout: float = 0.25):
        super().__init__()
        require(width > 0, f"cnn_scratch: width must be > 0, got {width}")
        require(hidden >= 1, f"cnn_scratch: hidden must be >= 1, got {hidden}")
        require(0 <= dropout < 1, f"cnn_scratch: dropout must be in [0, 1), got {dropout}")
        require(image_size >= 4, f"cnn_scratch: images must be at least 4x4, got {image_size}")
        c1, c2, c3 = (max(1, round(base * width)) for base in (16, 32, 64))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            # No third pool: at 7x7 the head still sees where strokes are.
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
        )
        side = image_size // 2 // 2  # two floor-mode 2x2 pools
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * side * side, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@MODELS.register("cnn_scratch", task=TASK,
                 description="small Conv-ReLU-Pool CNN with an MLP head (~1.2M params at 28x28)")
def build_cnn_scratch(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """cnn_scratch for the dataset described by `info`; knobs: width, hidden, dropout."""
    return _build("cnn_scratch", CNNScratch, info, model_kwargs)


# --------------------------------------------------------------------------------------------
# mnist_tiny: the 18,662-parameter MNIST network
# --------------------------------------------------------------------------------------------

class MNISTTiny(nn.Module):
    """Seven 3x3 convolutions (BN before each ReLU), two max-pools, global average pool, FC.

    Channels 14-14-16 | pool | 18-20 | pool | 22 (padding 1) - 22; 18,662 parameters for one
    input channel and ten classes. Unpadded convolutions shrink 28 -> 22 -> 11 -> 7 -> 3 -> 1.
    """

    CHANNELS = (14, 14, 16, 18, 20, 22, 22)

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 dropout: float = 0.0):
        super().__init__()
        require(0 <= dropout < 1, f"mnist_tiny: dropout must be in [0, 1), got {dropout}")
        # The convolutions and pools need at least 26 pixels to leave a 1x1 map.
        require(image_size >= 26, f"mnist_tiny needs images of at least 26x26, got {image_size}")
        layers: list[nn.Module] = []
        channels = in_channels
        for index, out in enumerate(self.CHANNELS):
            padding = 1 if index == 5 else 0
            layers += [nn.Conv2d(channels, out, 3, padding=padding), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            if index in (2, 4):
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # Dropout is off by default (the original relies on BN and label smoothing).
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@MODELS.register("mnist_tiny", task=TASK,
                 description="18,662-parameter 7-conv BN network for MNIST (< 20k parameters)")
def build_mnist_tiny(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """mnist_tiny for the dataset described by `info`; knob: dropout (before the FC layer)."""
    return _build("mnist_tiny", MNISTTiny, info, model_kwargs)


# --------------------------------------------------------------------------------------------
# torchvision architectures, adapted to small images (random initialization, no weights)
# --------------------------------------------------------------------------------------------

class ResNet18(nn.Module):
    """torchvision's ResNet-18 with a small-image stem: 3x3 stride-1 conv1 and no max-pool.

    The ImageNet stem (7x7 stride 2, then a max-pool) would shrink a 28x28 image to 7x7 before
    the first block; this stem keeps full resolution, as CIFAR ResNets do. ~11.2M parameters.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 zero_init_residual: bool = False):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@MODELS.register("resnet18", task=TASK,
                 description="ResNet-18 (torchvision), 3x3 stride-1 stem for small images, ~11M")
def build_resnet18(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """resnet18 for the dataset described by `info`; knob: zero_init_residual."""
    return _build("resnet18", ResNet18, info, model_kwargs)


class VGG11(nn.Module):
    """VGG-11 with BN (torchvision's layer recipe) and a small classifier head.

    The first conv takes `in_channels`; the pools round up (ceil_mode) so a 28x28 image
    survives all five (28 -> 14 -> 7 -> 4 -> 2 -> 1; 32x32 is unchanged by this); the 7x7
    average pool and the 4096-wide ImageNet classifier give way to a global average pool and
    512 -> hidden -> num_classes. ~9.5M parameters at defaults; initialized as torchvision's VGG.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        # make_layers builds only the convolutional part: vgg11_bn() would first allocate and
        # initialize the 120M-parameter ImageNet classifier that we throw away (~2 s, 0.5 GB).
        from torchvision.models.vgg import cfgs, make_layers

        require(hidden >= 1, f"vgg11: hidden must be >= 1, got {hidden}")
        require(0 <= dropout < 1, f"vgg11: dropout must be in [0, 1), got {dropout}")
        features = make_layers(cfgs["A"], batch_norm=True)  # "A" is VGG-11
        first = features[0]
        features[0] = nn.Conv2d(in_channels, first.out_channels, 3, padding=1)
        for module in features:
            if isinstance(module, nn.MaxPool2d):
                module.ceil_mode = True
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(512, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))
        self._init_like_torchvision()

    def _init_like_torchvision(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@MODELS.register("vgg11", task=TASK,
                 description="VGG-11 with BN (torchvision features) and a small head, ~9.5M params")
def build_vgg11(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """vgg11 for the dataset described by `info`; knobs: hidden, dropout."""
    return _build("vgg11", VGG11, info, model_kwargs)


class EfficientNetB0(nn.Module):
    """torchvision's EfficientNet-B0 with a stride-1 stem taking `in_channels`.

    The ImageNet network downsamples 32x; with a stride-1 stem it downsamples 16x, leaving a
    2x2 map from 28x28 or 32x32 images for the global pool. ~4.0M parameters; stochastic depth
    and dropout as in torchvision (0.2 each).
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 dropout: float = 0.2, stochastic_depth_prob: float = 0.2):
        super().__init__()
        from torchvision.models import efficientnet_b0

        require(0 <= dropout < 1, f"efficientnet_b0: dropout must be in [0, 1), got {dropout}")
        require(0 <= stochastic_depth_prob < 1,
                 "efficientnet_b0: stochastic_depth_prob must be in [0, 1), "
                 f"got {stochastic_depth_prob}")
        net = efficientnet_b0(weights=None, num_classes=num_classes, dropout=dropout,
                              stochastic_depth_prob=stochastic_depth_prob)
        stem = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1, padding=1,
                                       bias=False)
        nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@MODELS.register("efficientnet_b0", task=TASK,
                 description="EfficientNet-B0 (torchvision), stride-1 stem for small images, ~4M")
def build_efficientnet_b0(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """efficientnet_b0 for the dataset in `info`; knobs: dropout, stochastic_depth_prob."""
    return _build("efficientnet_b0", EfficientNetB0, info, model_kwargs)


# ViT-B/16 (Dosovitskiy et al. 2020, table 1): 12 layers, width 768, MLP 3072, 12 heads,
# 16x16 patches at 224x224, as torchvision's vit_b_16 builds it.
VIT_B16 = {"patch_size": 16, "hidden_dim": 768, "depth": 12, "heads": 12, "mlp_dim": 3072}
VIT_B16_SIZE = 224
VIT_VARIANTS = ("small", "b16")


class ViT(nn.Module):
    """A small Vision Transformer (torchvision's VisionTransformer) on 4x4 patches.

    ImageNet ViTs cut 16x16 patches, which leaves a 32x32 image only 4 tokens; 4x4 patches give
    49 tokens at 28x28 and 64 at 32x32. Defaults: width 192 and 3 heads as in ViT-Tiny, with 6
    instead of 12 layers, ~2.7M parameters. The image side must be a multiple of patch_size.

    variant="b16" builds the paper's ViT-B/16 instead (~86M parameters, the shape knobs are
    then fixed): 196 tokens of 16x16 patches at 224x224. Images of another size are resized to
    224x224 (bilinear) inside forward(), as the paper fine-tuned at a higher resolution than
    the data's; at 32x32 that costs 17.6G multiply-adds per image, 96x the small ViT's 0.18G.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 variant: str = "small", patch_size: int = 4, hidden_dim: int = 192, depth: int = 6,
                 heads: int = 3, mlp_dim: int = 768, dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer

        require(variant in VIT_VARIANTS,
                f"vit: variant must be one of {', '.join(VIT_VARIANTS)}, got {variant!r}")
        self.variant = variant
        # Only ViT-B/16 resizes; the small ViT is built for the data's size and says so otherwise.
        self.resize_to: int | None = VIT_B16_SIZE if variant == "b16" and image_size != VIT_B16_SIZE else None
        if variant == "b16":
            shape = {"patch_size": patch_size, "hidden_dim": hidden_dim, "depth": depth, "heads": heads,
                     "mlp_dim": mlp_dim}
            changed = sorted(k for k, v in shape.items() if v != inspect.signature(ViT).parameters[k].default)
            require(not changed, f"vit: variant 'b16' fixes {', '.join(changed)}; leave them out or use "
                                 "variant 'small'")
            patch_size, hidden_dim, depth, heads, mlp_dim = (VIT_B16[k] for k in
                                                             ("patch_size", "hidden_dim", "depth", "heads", "mlp_dim"))
            image_size = VIT_B16_SIZE
        require(patch_size >= 1 and image_size % patch_size == 0,
                 f"vit: image size {image_size} is not a multiple of patch_size {patch_size}")
        require(hidden_dim % heads == 0,
                 f"vit: hidden_dim {hidden_dim} is not a multiple of heads {heads}")
        net = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=depth,
                                num_heads=heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim,
                                dropout=dropout, attention_dropout=attention_dropout,
                                num_classes=num_classes)
        # torchvision hard-codes 3 input channels in the patch projection; re-create it with the
        # same initialization (truncated normal with std sqrt(1 / fan_in)).
        net.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size)
        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(net.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(net.conv_proj.bias)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_to is not None:
            x = nn.functional.interpolate(x, size=(self.resize_to, self.resize_to), mode="bilinear",
                                          align_corners=False)
        return self.net(x)


@MODELS.register("vit", task=TASK,
                 description="small ViT on 4x4 patches (width 192, 6 layers), ~2.7M params; "
                             "variant b16: ViT-B/16 at 224x224, ~86M")
def build_vit(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """vit for the dataset described by `info`; knobs: variant (small | b16), patch_size,
    hidden_dim, depth, heads, mlp_dim, dropout, attention_dropout."""
    return _build("vit", ViT, info, model_kwargs)
