"""build_optimizer(): from a RunConfig and a model to a torch optimizer.

The policy lives here in one place: which LR an optimizer gets (overrides, --lr, the
per-optimizer default), which weight decay, and which tensors are decayed (only those
with ndim >= 2: biases and normalization scales are left alone, as in nanoGPT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from nbhelpers.errors import UserInputError
from nbhelpers.optim.table import OptimizerSpec, default_sam_base, get_spec

# --lr-policy fixed: every optimizer gets this LR unless --lr or an override says otherwise.
FIXED_POLICY_LR = 1e-3

# optimizer_kwargs that build_optimizer() reads itself instead of passing them on:
#   decay_all_parameters: true   weight decay on every parameter, biases and norm gains too,
#                                as the ResNet/VGG/EfficientNet/ViT papers trained (their code
#                                passed model.parameters() to the optimizer). LARS and LAMB
#                                still leave ndim < 2 tensors alone: their trust ratio needs it.
BUILD_OPTIONS: dict[str, Any] = {"decay_all_parameters": bool}


@dataclass(frozen=True)
class OptimizerChoice:
    """What was built, for config.json and details.txt."""

    name: str
    lr: float
    weight_decay: float
    decay_style: str
    kwargs: dict[str, Any]
    base: str | None = None  # SAM/GSAM's base optimizer
    decay_all_parameters: bool = False  # True: biases and norm gains are decayed too


def parse_lr_overrides(text: str | dict | None) -> dict[str, float]:
    """Parse "sgd=5e-4,adam=3e-5" (or a mapping) into {canonical name: lr}."""
    if not text:
        return {}
    items = text.items() if isinstance(text, dict) else _split_pairs(str(text))
    overrides: dict[str, float] = {}
    for name, value in items:
        canonical = get_spec(name).name
        try:
            lr = float(value)
        except (TypeError, ValueError):
            raise UserInputError(
                f"--lr-overrides: {value!r} for {name!r} is not a number "
                "(expected NAME=LR pairs such as \"sgd=5e-4,adam=3e-5\")") from None
        if not lr > 0:
            raise UserInputError(f"--lr-overrides: the LR for {name!r} must be positive, got {value}")
        overrides[canonical] = lr
    return overrides


def _split_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for chunk in filter(None, (c.strip() for c in text.split(","))):
        name, sep, value = chunk.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UserInputError(
                f"--lr-overrides: {chunk!r} is not NAME=LR "
                "(expected comma-separated pairs such as \"sgd=5e-4,adam=3e-5\")")
        pairs.append((name.strip(), value.strip()))
    return pairs


def task_family(task: str | None) -> str | None:
    """The family ("vision" or "text") of a registered task; None for None."""
    if task is None:
        return None
    from nbhelpers.registry import TASKS  # late: the registry loads the tasks on first lookup
    return TASKS.get(task).meta["spec"].family


def resolve_lr(spec: OptimizerSpec, *, task: str | None, lr: float | None, lr_policy: str,
               lr_overrides: dict[str, float]) -> float:
    """Overrides beat an explicit --lr, which beats the policy's LR."""
    if spec.name in lr_overrides:
        return lr_overrides[spec.name]
    if lr is not None:
        return lr
    return spec.lr_for(task_family(task)) if lr_policy == "per_opt" else FIXED_POLICY_LR


def param_groups(model: nn.Module | Iterable[torch.Tensor], weight_decay: float, *,
                 decay_all: bool = False) -> list[dict]:
    """Two groups: tensors with ndim >= 2 get `weight_decay`, the rest (biases, norms) none.

    decay_all: one group, every tensor decayed (the papers' set-up).
    """
    params = model.parameters() if isinstance(model, nn.Module) else model
    params = [p for p in params if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}] if params else []
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(name: str, model: nn.Module | Iterable[torch.Tensor], *, lr: float | None = None,
                   weight_decay: float | None = None, task: str | None = None,
                   sam_base: str | None = None, **kwargs: Any) -> tuple[torch.optim.Optimizer, OptimizerChoice]:
    """Build optimizer `name` over a model (or tensors) with the table's defaults.

    lr and weight_decay default to the table's values; kwargs override the table's fixed
    constructor arguments (e.g. rho=0.1 for SAM).
    """
    spec = get_spec(name)
    family = task_family(task)
    lr = spec.lr_for(family) if lr is None else lr
    weight_decay = spec.weight_decay if weight_decay is None else weight_decay
    if lr < 0:
        raise UserInputError(f"the learning rate must not be negative, got {lr}")
    if weight_decay < 0:
        raise UserInputError(f"the weight decay must not be negative, got {weight_decay}")
    decay_all = bool(kwargs.pop("decay_all_parameters", False))
    groups = param_groups(model, weight_decay, decay_all=decay_all)
    options = {**spec.kwargs, **kwargs}
    base_name = None
    if spec.needs_closure:
        base_name = get_spec(sam_base or default_sam_base(family)).name
        base_spec = get_spec(base_name)
        options = {**base_spec.kwargs, **options}
        optimizer = spec.optimizer_class()(groups, base_optimizer=base_spec.optimizer_class(),
                                           lr=lr, **options)
    else:
        optimizer = spec.optimizer_class()(groups, lr=lr, **options)
    choice = OptimizerChoice(spec.name, lr, weight_decay, spec.decay_style, options, base_name, decay_all)
    return optimizer, choice


def build_optimizer(cfg: Any, model: nn.Module) -> tuple[torch.optim.Optimizer, OptimizerChoice]:
    """The optimizer a RunConfig asks for, over `model`'s parameters."""
    spec = get_spec(cfg.optimizer)
    lr = resolve_lr(spec, task=cfg.task, lr=cfg.lr, lr_policy=cfg.lr_policy,
                    lr_overrides=parse_lr_overrides(cfg.lr_overrides))
    return make_optimizer(spec.name, model, lr=lr, weight_decay=cfg.weight_decay, task=cfg.task,
                          sam_base=cfg.sam_base, **dict(cfg.optimizer_kwargs or {}))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state tensors (moments, buffers, step counters)."""
    inner = getattr(optimizer, "base_optimizer", None)
    states = [optimizer.state] + ([inner.state] if inner is not None and inner is not optimizer else [])
    total, seen = 0, set()
    for state in states:
        for per_param in state.values():
            for value in per_param.values():
                if torch.is_tensor(value) and id(value) not in seen:
                    seen.add(id(value))
                    total += value.numel() * value.element_size()
    return total
