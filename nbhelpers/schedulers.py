"""build_scheduler(): every LR schedule the project names, behind one small interface.

The Trainer calls `after_batch()` after every optimizer step and `after_epoch(val_loss)`
after every evaluation. Schedules that are smooth in time (cosine, the warm-up ones,
inverse_sqrt, onecycle) advance per step; step, multistep and exponential advance per
epoch, as in the papers they come from; plateau advances per epoch on validation loss.
A linear warm-up (`warmup_epochs`) works in front of each of them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from torch.optim.lr_scheduler import (ExponentialLR, LambdaLR, MultiStepLR, OneCycleLR,
                                      ReduceLROnPlateau, StepLR)

from nbhelpers.errors import UserInputError

PER_STEP = ("cosine", "warmup_cosine", "warmup_linear", "inverse_sqrt", "none")
PER_EPOCH = ("step", "multistep", "exponential")

# warmup_cosine / warmup_linear without an explicit --warmup-epochs warm up for this
# fraction of training (a common choice for Transformers).
DEFAULT_WARMUP_FRACTION = 0.05

# scheduler_kwargs each schedule reads, with their types (checked before a run starts:
# anything else would be ignored without a word).
_SMOOTH = {"min_lr_ratio": float}
SCHEDULER_OPTIONS: dict[str, dict[str, Any]] = {
    "cosine": _SMOOTH, "warmup_cosine": _SMOOTH, "warmup_linear": _SMOOTH,
    "inverse_sqrt": {}, "none": {},
    "onecycle": {"pct_start": float, "div_factor": float, "final_div_factor": float,
                 "anneal_strategy": Literal["cos", "linear"], "three_phase": bool,
                 "cycle_momentum": bool, "base_momentum": float, "max_momentum": float},
    "step": {"step_size": int, "gamma": float},
    "multistep": {"milestones": list, "gamma": float},
    "exponential": {"gamma": float},
    "plateau": {"factor": float, "patience": int, "threshold": float, "cooldown": int, "min_lr": float},
}


def has_momentum(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer has a momentum (SGD/RMSprop with momentum > 0, LARS) or a beta1."""
    defaults = optimizer.defaults
    if "betas" in defaults:
        return True
    return float(defaults.get("momentum") or 0.0) > 0.0


class LRSchedule:
    """One schedule plus an optional linear warm-up, stepped by the Trainer."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, *, epochs: int,
                 steps_per_epoch: int, warmup_epochs: float = 0.0, **kwargs: Any):
        self.optimizer = optimizer
        self.name = name
        self.total_steps = max(1, epochs * steps_per_epoch)
        self.steps_per_epoch = max(1, steps_per_epoch)
        if name in ("warmup_cosine", "warmup_linear") and warmup_epochs <= 0:
            warmup_epochs = DEFAULT_WARMUP_FRACTION * epochs
        self.warmup_steps = min(int(round(warmup_epochs * self.steps_per_epoch)), self.total_steps - 1)
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        # onecycle only: whether it cycles the momentum (or beta1) against the LR. None otherwise.
        self.momentum_cycled: bool | None = None
        self.inner = self._build_inner(name, epochs=epochs, **kwargs)

    # -- construction -------------------------------------------------------------------
    def _build_inner(self, name: str, *, epochs: int, **kwargs: Any):
        opt, warm, total = self.optimizer, self.warmup_steps, self.total_steps
        if name in PER_STEP:
            return LambdaLR(opt, _step_factor(name, warm, total, **kwargs))
        if name == "onecycle":
            # OneCycleLR has its own warm-up (pct_start); ours would fight it.
            self.warmup_steps = 0
            max_lrs = [g["initial_lr"] for g in opt.param_groups]
            # Cycling the momentum needs one: torch refuses Adagrad, Adadelta and Adafactor, and
            # would silently give plain SGD and RMSprop a momentum of 0.85-0.95 they never had.
            cycle = kwargs.get("cycle_momentum", has_momentum(opt))
            if cycle and not has_momentum(opt):
                raise UserInputError("scheduler onecycle: cycle_momentum needs an optimizer with a "
                                     "momentum or beta1, and this one has neither")
            self.momentum_cycled = bool(cycle)
            return OneCycleLR(opt, max_lr=max_lrs, total_steps=total,
                              pct_start=float(kwargs.get("pct_start", 0.3)),
                              anneal_strategy=kwargs.get("anneal_strategy", "cos"),
                              cycle_momentum=self.momentum_cycled,
                              base_momentum=kwargs.get("base_momentum", 0.85),
                              max_momentum=kwargs.get("max_momentum", 0.95),
                              div_factor=kwargs.get("div_factor", 25.0),
                              final_div_factor=kwargs.get("final_div_factor", 1e4),
                              three_phase=kwargs.get("three_phase", False))
        if name == "step":
            return StepLR(opt, step_size=kwargs.get("step_size", max(1, epochs // 3)),
                          gamma=kwargs.get("gamma", 0.1))
        if name == "multistep":
            milestones = kwargs.get("milestones") or [max(1, int(epochs * 0.5)), max(2, int(epochs * 0.75))]
            return MultiStepLR(opt, milestones=list(milestones), gamma=kwargs.get("gamma", 0.1))
        if name == "exponential":
            # EfficientNet's 0.97 per epoch (Tan & Le 2019).
            return ExponentialLR(opt, gamma=kwargs.get("gamma", 0.97))
        if name == "plateau":
            return ReduceLROnPlateau(opt, mode="min", factor=kwargs.get("factor", 0.5),
                                     patience=kwargs.get("patience", 1),
                                     threshold=kwargs.get("threshold", 1e-4),
                                     cooldown=kwargs.get("cooldown", 0), min_lr=kwargs.get("min_lr", 0.0))
        raise UserInputError(f"unknown scheduler {name!r}")

    # -- stepping -------------------------------------------------------------------------
    def after_batch(self) -> None:
        self.step_count += 1
        if self.name in PER_STEP or self.name == "onecycle":
            if self.step_count < self.total_steps or self.name != "onecycle":
                self.inner.step()
            return
        if self.step_count <= self.warmup_steps:
            # Epoch-based schedules: ramp the LR by hand, then hand over at full LR.
            factor = min(1.0, (self.step_count + 1) / (self.warmup_steps + 1))
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * factor

    def after_epoch(self, val_loss: float | None) -> None:
        # Epoch-based schedules start counting once the warm-up is over.
        if self.step_count <= self.warmup_steps:
            return
        if self.name in PER_EPOCH:
            self.inner.step()
        elif self.name == "plateau" and val_loss is not None and math.isfinite(val_loss):
            self.inner.step(val_loss)

    def start(self) -> None:
        """Set the LR of the first step (warm-up starts low)."""
        if self.warmup_steps and self.name not in PER_STEP:
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base / (self.warmup_steps + 1)

    def momentum_note(self) -> str:
        """What onecycle does with the momentum, in words (for details.txt); "" for other schedules."""
        if self.momentum_cycled is None:
            return ""
        if self.momentum_cycled:
            group = self.optimizer.param_groups[0]
            return (f"momentum (or beta1) cycled from {group['max_momentum']:g} down to "
                    f"{group['base_momentum']:g} and back, against the LR")
        return "momentum not cycled (the optimizer has no momentum or beta1, or cycle_momentum is off)"

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = state["step_count"]
        self.inner.load_state_dict(state["inner"])


def _step_factor(name: str, warmup: int, total: int, **kwargs: Any) -> Callable[[int], float]:
    """LR multiplier as a function of the step, for the per-step schedules."""
    floor = kwargs.get("min_lr_ratio", 0.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "none":
            return 1.0
        if name == "inverse_sqrt":
            return math.sqrt(max(warmup, 1) / max(step, 1)) if step >= max(warmup, 1) else 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "warmup_linear":
            return floor + (1 - floor) * (1.0 - progress)
        return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return factor


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, *, epochs: int,
                    steps_per_epoch: int, warmup_epochs: float = 0.0, **kwargs: Any) -> LRSchedule:
    """The LR schedule `name` for a run of `epochs` x `steps_per_epoch` optimizer steps."""
    return LRSchedule(optimizer, name, epochs=epochs, steps_per_epoch=steps_per_epoch,
                      warmup_epochs=warmup_epochs, **kwargs)
