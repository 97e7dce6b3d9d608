"""The optimizer table: one frozen record of facts per optimizer.

`list`, `describe`, config validation and build_optimizer() all read this table, so a
new optimizer is one file in this folder plus one row here. Classes are named by a
"module:Class" path and imported only when built, which keeps `python -m nbhelpers
list optimizers` fast and lets each optimizer file stand alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from nbhelpers.registry import OPTIMIZERS


@dataclass(frozen=True)
class OptimizerSpec:
    """Facts about one optimizer; nothing here depends on a particular run."""

    name: str
    target: str                      # "module:Class"
    description: str                 # one line for `list optimizers`
    paper: str                       # where the update rule (and its defaults) come from
    default_lr: float                # used by --lr-policy per_opt
    weight_decay: float              # the family heuristic used when --weight-decay is not given
    # "l2": added to the gradient; "decoupled": shrinks the weights beside the update (AdamW);
    # "layerwise": added to the update before a layer-wise trust ratio scales it (LAMB).
    decay_style: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # fixed constructor arguments
    needs_closure: bool = False      # SAM/GSAM: two forward/backward passes per step
    aliases: tuple[str, ...] = ()
    # Another LR for a task family ("vision" or "text", TaskSpec.family): plain SGD wants a
    # far larger step on text models than on vision models, Adam-based SAM a far smaller one.
    lr_by_family: Mapping[str, float] = field(default_factory=dict)

    def optimizer_class(self) -> type:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    def lr_for(self, family: str | None) -> float:
        """The default LR for a task family ("vision", "text"); None: the vision default."""
        return self.lr_by_family.get(family or "", self.default_lr)


def _for_text(lr: float) -> dict[str, float]:
    return {"text": lr}


# Learning rates are for batch sizes of 32-128 and models of 1-60M parameters; each
# comes from the optimizer's paper or torch's documented default, adjusted where noted.
TABLE: tuple[OptimizerSpec, ...] = (
    OptimizerSpec(
        "sgd", "torch.optim:SGD", "plain stochastic gradient descent",
        "Robbins & Monro 1951", default_lr=0.05, weight_decay=5e-4, decay_style="l2",
        lr_by_family=_for_text(0.5)),
    OptimizerSpec(
        "sgd_momentum", "torch.optim:SGD", "SGD with heavy-ball momentum 0.9",
        "Polyak 1964; Sutskever et al. 2013", default_lr=0.05, weight_decay=5e-4,
        decay_style="l2", kwargs={"momentum": 0.9}, aliases=("momentum",),
        lr_by_family=_for_text(0.1)),
    OptimizerSpec(
        "rmsprop", "torch.optim:RMSprop", "RMSprop: gradient scaled by a running RMS (alpha 0.99)",
        "Tieleman & Hinton 2012", default_lr=1e-3, weight_decay=1e-5, decay_style="l2"),
    OptimizerSpec(
        "adagrad", "torch.optim:Adagrad", "Adagrad: per-coordinate steps shrink with summed squared gradients",
        "Duchi et al. 2011", default_lr=1e-2, weight_decay=1e-5, decay_style="l2"),
    OptimizerSpec(
        "adadelta", "torch.optim:Adadelta", "Adadelta: unit-corrected steps from running averages, LR 1.0",
        "Zeiler 2012", default_lr=1.0, weight_decay=1e-5, decay_style="l2"),
    OptimizerSpec(
        "adam", "torch.optim:Adam", "Adam: bias-corrected first and second moments",
        "Kingma & Ba 2015", default_lr=1e-3, weight_decay=0.0, decay_style="l2"),
    OptimizerSpec(
        "adamw", "torch.optim:AdamW", "AdamW: Adam with decoupled weight decay",
        "Loshchilov & Hutter 2019", default_lr=1e-3, weight_decay=1e-2, decay_style="decoupled"),
    OptimizerSpec(
        "radam", "torch.optim:RAdam", "RAdam: Adam with a rectified variance warm-up",
        "Liu et al. 2020", default_lr=1e-3, weight_decay=0.0, decay_style="l2"),
    # Lion's sign update has a larger norm than Adam's: the paper advises a 3-10x smaller
    # LR and a 3-10x larger decoupled decay, keeping lr * wd about the same as AdamW's.
    OptimizerSpec(
        "lion", "nbhelpers.optim.lion:Lion", "Lion: sign of an interpolated momentum (3-10x smaller LR than AdamW)",
        "Chen et al. 2023, Symbolic Discovery of Optimization Algorithms",
        default_lr=3e-4, weight_decay=0.1, decay_style="decoupled"),
    # LARS scales each layer's step to trust_coefficient * ||w||; the global LR is
    # therefore much larger than SGD's.
    OptimizerSpec(
        "lars", "nbhelpers.optim.lars:LARS", "LARS: SGD-momentum with layer-wise trust ratios",
        "You et al. 2017, Large Batch Training of Convolutional Networks",
        default_lr=1.0, weight_decay=5e-4, decay_style="l2",
        kwargs={"momentum": 0.9, "trust_coefficient": 0.001}),
    OptimizerSpec(
        "lamb", "nbhelpers.optim.lamb:LAMB", "LAMB: Adam direction with layer-wise trust ratios",
        "You et al. 2020, Large Batch Optimization for Deep Learning",
        default_lr=2e-3, weight_decay=1e-2, decay_style="layerwise"),
    OptimizerSpec(
        "adabelief", "nbhelpers.optim.adabelief:AdaBelief", "AdaBelief: Adam with the variance of the gradient around its mean",
        "Zhuang et al. 2020, AdaBelief Optimizer",
        default_lr=1e-3, weight_decay=1e-2, decay_style="decoupled"),
    OptimizerSpec(
        "yogi", "nbhelpers.optim.yogi:Yogi", "Yogi: Adam with an additive, sign-controlled second moment",
        "Zaheer et al. 2018, Adaptive Methods for Nonconvex Optimization",
        default_lr=1e-2, weight_decay=0.0, decay_style="l2", lr_by_family=_for_text(1e-3)),
    # torch's Adafactor has no relative-step mode: its step is lr (capped by 1/sqrt(t))
    # times the parameter RMS, so the shared schedulers drive it like any other LR.
    OptimizerSpec(
        "adafactor", "torch.optim:Adafactor", "Adafactor: factored second moments, parameter-relative steps",
        "Shazeer & Stern 2018", default_lr=1e-2, weight_decay=0.0, decay_style="decoupled"),
    OptimizerSpec(
        "sam", "nbhelpers.optim.sam:SAM", "SAM: base step with the gradient at an adversarial nearby point",
        "Foret et al. 2021, Sharpness-Aware Minimization",
        default_lr=0.05, weight_decay=5e-4, decay_style="l2", kwargs={"rho": 0.05},
        needs_closure=True, lr_by_family=_for_text(1e-3)),
    OptimizerSpec(
        "gsam", "nbhelpers.optim.gsam:GSAM", "GSAM: SAM that also descends the surrogate gap (alpha x the part of g orthogonal to the SAM gradient)",
        "Zhuang et al. 2022, Surrogate Gap Guided Sharpness-Aware Minimization",
        default_lr=0.05, weight_decay=5e-4, decay_style="l2", kwargs={"rho": 0.05, "alpha": 0.4},
        needs_closure=True, lr_by_family=_for_text(1e-3)),
)

# Which base optimizer SAM and GSAM wrap when --sam-base is not given.
SAM_BASE_FOR_IMAGES = "sgd_momentum"
SAM_BASE_FOR_TEXT = "adamw"

for _spec in TABLE:
    OPTIMIZERS.add(_spec.name, _spec.optimizer_class, description=_spec.description,
                   aliases=_spec.aliases, spec=_spec)


def get_spec(name: str) -> OptimizerSpec:
    """The table row for an optimizer name or alias (raises with a suggestion if unknown)."""
    return OPTIMIZERS.get(name).meta["spec"]


def all_names() -> list[str]:
    """The 16 names that `--optimizers all` means, in table order."""
    return [spec.name for spec in TABLE]


def default_sam_base(family: str | None) -> str:
    """SAM/GSAM's base for a task family: SGD with momentum for vision (and None), AdamW for text."""
    return SAM_BASE_FOR_TEXT if family == "text" else SAM_BASE_FOR_IMAGES


def resolve_optimizer_class(name: str) -> tuple[type, dict[str, Any]]:
    """(class, fixed constructor kwargs) of a registered optimizer; used by SAM/GSAM's base."""
    spec = get_spec(name)
    if spec.needs_closure:
        raise ValueError(f"{spec.name} cannot be the base optimizer of SAM/GSAM")
    return spec.optimizer_class(), dict(spec.kwargs)
