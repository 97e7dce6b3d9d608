"""Semantic-segmentation models: unet and deeplabv3_resnet50.

Each is registered in MODELS with task="semantic_segmentation" and built as

    builder(info=bundle.info, **model_kwargs)

where info supplies in_channels and num_classes (nbhelpers/data/segmentation.py). Both map
images (B, in_channels, H, W) to per-pixel class logits at the input's resolution.

What the models return: unet returns the logits tensor (B, num_classes, H, W).
deeplabv3_resnet50 returns a dict, as torchvision's segmentation models do: "out" holds the
logits and, in training mode only, "aux" holds the auxiliary FCN head's logits (from the
backbone's layer3), which the task adds to the loss with weight 0.4. In eval mode the
auxiliary head is skipped: it plays no part in predictions, so it should cost nothing there.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.models.base import check_knobs, facts_from_info, require
from nbhelpers.registry import MODELS

TASK = "semantic_segmentation"
FROM_INFO = ("in_channels", "num_classes")


def _build(name: str, model_class: type[nn.Module], info: dict, model_kwargs: dict) -> nn.Module:
    """Construct `model_class` from the dataset's info plus the user's knobs, checking names."""
    check_knobs(name, model_class, model_kwargs, exclude=FROM_INFO)
    facts = facts_from_info(name, info, {key: key for key in FROM_INFO}, needs="a segmentation dataset")
    return model_class(**facts, **model_kwargs)




# --------------------------------------------------------------------------------------------
# unet
# --------------------------------------------------------------------------------------------

class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice: the unit block of U-Net."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Up(nn.Module):
    """Upsample by 2, concatenate the encoder's skip features, DoubleConv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, bilinear: bool):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            up_channels = in_channels
        else:
            self.up = nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2)
            up_channels = skip_channels
        self.conv = DoubleConv(up_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) with BatchNorm and same-padding convolutions.

    `depth` 2x2 max-pool downsamplings; channels width, 2 width, ..., 2^depth width; the
    decoder mirrors the encoder with skip connections and bilinear upsampling (or transposed
    convolutions with `bilinear=False`, as in the paper). With bilinear upsampling the
    bottleneck keeps 2^(depth-1) width channels and each decoder block halves its channels
    for the next, as common implementations do: the default (width 64, depth 4) has about
    13.4M parameters; `bilinear=False` restores the paper's 1024-channel bottleneck (31.0M).
    Inputs whose sides are not multiples of 2^depth are padded (reflection) and the logits
    cropped back. `channels_last` (on) stores the convolution weights and runs the network in
    the NHWC layout: oneDNN's CPU convolutions and BatchNorm are about 1.3-1.4x faster in it
    (width 16, 64x64, benchmarks/results/segmentation.md), and GPUs use it for tensor cores.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 2, width: int = 64,
                 depth: int = 4, bilinear: bool = True, channels_last: bool = True):
        super().__init__()
        require(int(width) >= 1, f"unet: width must be >= 1, got {width}")
        require(1 <= int(depth) <= 6, f"unet: depth must be between 1 and 6, got {depth}")
        width, depth = int(width), int(depth)
        self.depth = depth
        channels = [width * 2 ** level for level in range(depth + 1)]
        if bilinear:
            channels[-1] //= 2  # the bottleneck matches the skip it is concatenated with
        self.stem = DoubleConv(in_channels, channels[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(channels[level], channels[level + 1]))
            for level in range(depth))
        ups = []
        below = channels[-1]
        for level in reversed(range(depth)):
            # With bilinear upsampling each decoder block halves its channels for the next one.
            out = channels[level] // 2 if bilinear and level > 0 else channels[level]
            ups.append(Up(below, channels[level], out, bilinear=bilinear))
            below = out
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(below, num_classes, 1)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # In-place optimizer updates and load_state_dict keep this layout of the parameters.
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > 1 else "constant")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(y)[..., :height, :width]


@MODELS.register("unet", task=TASK,
                 description="U-Net (BatchNorm, 4 downsamplings, bilinear upsampling), ~13.4M params "
                             "at width 64")
def build_unet(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """unet for the dataset described by `info`; knobs: width, depth, bilinear, channels_last."""
    return _build("unet", UNet, info, model_kwargs)


# --------------------------------------------------------------------------------------------
# deeplabv3_resnet50 (torchvision)
# --------------------------------------------------------------------------------------------

AUX_WEIGHT = 0.4  # the auxiliary head's weight in the loss (torchvision's reference recipe)


def cached_backbone_weights() -> Any | None:
    """torchvision's ImageNet ResNet-50 weights enum if its file is in torch hub's cache, else None."""
    from torch.hub import get_dir
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V1  # the backbone torchvision's DeepLabV3 recipe uses
    filename = Path(weights.url).name
    return weights if (Path(get_dir()) / "checkpoints" / filename).exists() else None


class DeepLabV3ResNet50(nn.Module):
    """torchvision's deeplabv3_resnet50: ResNet-50 (output stride 8), ASPP head, FCN aux head.

    `pretrained_backbone`: "auto" uses the ImageNet backbone weights when torch hub's cache
    holds them and otherwise starts from random weights with a warning; "on" requires them
    (and may download them); "off" never uses them. The heads are always trained from scratch
    for the dataset's classes. About 42M parameters with the auxiliary head.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 21,
                 pretrained_backbone: str = "auto", aux_loss: bool = True):
        super().__init__()
        from torchvision.models import ResNet50_Weights
        from torchvision.models.segmentation import deeplabv3_resnet50

        require(in_channels == 3, "deeplabv3_resnet50 takes RGB images (3 channels), "
                                   f"got {in_channels}")
        require(pretrained_backbone in ("auto", "on", "off"),
                 f"deeplabv3_resnet50: pretrained_backbone must be auto, on or off, "
                 f"got {pretrained_backbone!r}")
        weights = None
        if pretrained_backbone == "on":
            weights = ResNet50_Weights.IMAGENET1K_V1
        elif pretrained_backbone == "auto":
            weights = cached_backbone_weights()
            if weights is None:
                warnings.warn("deeplabv3_resnet50: the ImageNet ResNet-50 backbone weights are not "
                              "in torch hub's cache, so the backbone starts from random weights "
                              "(pass pretrained_backbone='on' to download them)", stacklevel=2)
        self.backbone_pretrained = weights is not None
        self.net = deeplabv3_resnet50(weights=None, weights_backbone=weights,
                                      num_classes=num_classes, aux_loss=aux_loss)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        features = self.net.backbone(x)
        out = F.interpolate(self.net.classifier(features["out"]), size=size, mode="bilinear",
                            align_corners=False)
        result = {"out": out}
        if self.training and self.net.aux_classifier is not None:
            result["aux"] = F.interpolate(self.net.aux_classifier(features["aux"]), size=size,
                                          mode="bilinear", align_corners=False)
        return result


@MODELS.register("deeplabv3_resnet50", task=TASK,
                 description="DeepLabV3 with a ResNet-50 backbone and an aux head (torchvision), "
                             "~42M params")
def build_deeplabv3_resnet50(*, info: dict, **model_kwargs: Any) -> nn.Module:
    """deeplabv3_resnet50 for the dataset in `info`; knobs: pretrained_backbone, aux_loss."""
    return _build("deeplabv3_resnet50", DeepLabV3ResNet50, info, model_kwargs)
