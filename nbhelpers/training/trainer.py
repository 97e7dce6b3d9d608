"""The Trainer: one loop for every task, optimizer and device.

It owns what the notebooks should not have to repeat: mixed precision, gradient
clipping, the two passes of SAM/GSAM, early stopping that restores the best weights,
checkpoints for resuming, divergence, and honest time and memory figures. The task
supplies the loss, the evaluation and the metrics (nbhelpers.tasks.base.Task): the Trainer
sums the task's per-batch statistics as tensors and asks the task to summarize them, and
for validation and test it hands the task a loader of batches already on the device.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from nbhelpers.schedulers import LRSchedule
from nbhelpers.tasks.base import Evaluation, Task, add_stats
from nbhelpers.training.loss_watch import LossWatch
from nbhelpers.training.monitors import MemoryMonitor, TrainTimer
from nbhelpers.training.progress import progress_bar
from nbhelpers.training.rundir import RunDir, save_torch, write_jsonl

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Without clipping the gradient norm is only a diagnostic: measure it every 8th step, which
# keeps its cost (a pass over all gradients) out of most steps.
GRAD_NORM_EVERY = 8


class DeviceLoader:
    """A loader whose batches arrive on `device` (what Task.evaluate is promised)."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device

    def __iter__(self):
        non_blocking = self.device.type == "cuda"
        for batch in self.loader:
            yield to_device(batch, self.device, non_blocking)

    def __len__(self) -> int:
        return len(self.loader)


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    status: str                      # completed | early_stopped | diverged
    history: list[dict]
    best_epoch: int | None
    best_val: float | None
    train_time_s: float
    error: str | None = None
    epochs_to_target: int | None = None
    time_to_target_s: float | None = None


@dataclass
class _Progress:
    """Everything about the fit that a resume must restore besides model and optimizer."""

    history: list[dict] = field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_time_s: float = 0.0
    epochs_to_target: int | None = None
    time_to_target_s: float | None = None


def to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) batch to `device`."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged (SAM's second pass must not update them)."""
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            if module.momentum is None:  # cumulative average: back up the buffers instead
                saved.append((module, None, module.running_mean.clone(), module.running_var.clone()))
            else:
                saved.append((module, module.momentum, None, None))
                module.momentum = 0.0
            saved[-1] = (*saved[-1], module.num_batches_tracked.clone())
    try:
        yield
    finally:
        for module, momentum, mean, var, tracked in saved:
            if momentum is None:
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)
            else:
                module.momentum = momentum
            module.num_batches_tracked.copy_(tracked)


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    # NumPy's state goes in as a tensor and plain numbers, not as an ndarray: last.pt is read
    # with torch.load(weights_only=True), whose default allow-list has no NumPy types.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


class Trainer:
    """Fits a model on a task; see fit()."""

    def __init__(self, *, model: nn.Module, task: Task, optimizer: torch.optim.Optimizer,
                 schedule: LRSchedule | None = None, device: torch.device | str = "cpu",
                 amp: str = "off", max_grad_norm: float | None = None, patience: int = 0,
                 target: float | None = None, run_dir: RunDir | None = None,
                 progress: bool = True, loader_generator: torch.Generator | None = None, eval_every: int = 1,
                 on_epoch_end: Callable[[dict], None] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.task = task
        self.optimizer = optimizer
        self.schedule = schedule
        self.amp_dtype = AMP_DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None
        self.max_grad_norm = max_grad_norm if max_grad_norm and max_grad_norm > 0 else None
        self.patience = patience if patience and patience > 0 else 0
        self.target = target
        self.run_dir = run_dir
        self.progress = progress
        self.loader_generator = loader_generator
        self.on_epoch_end = on_epoch_end
        # Epochs between full (decoding) validations; loss-only validation in between.
        self.eval_every = max(1, int(eval_every))
        self.higher_is_better = task.spec.higher_is_better
        self.primary = task.spec.primary_metric
        self.sharpness_aware = hasattr(optimizer, "base_optimizer")
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.state = _Progress()
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._memory = MemoryMonitor(self.device)
        # NaN/inf checks without a host sync per step (see loss_watch.py).
        self._loss_watch = LossWatch(self.device)
        if self.sharpness_aware:
            self.optimizer.before_base_step = self._before_base_step
        self._grad_norm_sum = torch.zeros((), device=self.device)
        self._grad_norm_count = 0
        self._step_in_epoch = 0
        self._skip_step = False
        self._bar = None  # the run's progress bar while fit() runs
        self._bar_text: dict[str, str] = {}
        # Saved in last.pt as it is: Experiment records the run's settings and thread count here.
        self.checkpoint_extra: dict[str, Any] = {}

    # -- one step -------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _grad_norm(self) -> torch.Tensor:
        """Global gradient norm, clipped in place when clipping is on."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.max_grad_norm is not None:
            return torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm, foreach=True)
        return torch.nn.utils.get_total_norm(grads, foreach=True) if grads else torch.zeros((), device=self.device)

    def _before_base_step(self) -> bool:
        """SAM/GSAM hook: clip the gradient the base optimizer will use; skip if not finite."""
        norm = self._grad_norm()
        self._grad_norm_sum += norm.detach().float()
        self._grad_norm_count += 1
        if self.scaler is not None and not torch.isfinite(norm):
            self._skip_step = True
            return False
        return True

    def _unscale_in_place(self) -> None:
        inv = 1.0 / self.scaler.get_scale()
        torch._foreach_mul_([p.grad for p in self.params if p.grad is not None], inv)

    def _train_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss, stats = self.task.train_step(self.model, batch)
        self._backward(loss)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.sharpness_aware:
            self._sharpness_aware_step(batch)
        else:
            if self.max_grad_norm is not None or self._step_in_epoch % GRAD_NORM_EVERY == 0:
                self._grad_norm_sum += self._grad_norm().detach().float()
                self._grad_norm_count += 1
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        return loss, stats

    def _sharpness_aware_step(self, batch: Any) -> None:
        """SAM/GSAM: the optimizer perturbs the weights and calls back for a second pass."""
        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad(), frozen_batchnorm_stats(self.model), self._autocast():
                second_loss, _ = self.task.train_step(self.model, batch)
            self._backward(second_loss)
            if self.scaler is not None:
                self._unscale_in_place()
            return second_loss.detach()

        self._skip_step = False
        first_pass_finite = True
        if self.scaler is not None:
            grads = [p.grad for p in self.params if p.grad is not None]
            first_pass_finite = bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        if first_pass_finite:
            self.optimizer.step(closure)
        if self.scaler is not None:
            if self._skip_step:  # the second pass overflowed: back off like GradScaler would
                self.scaler.update(self.scaler.get_scale() * self.scaler.get_backoff_factor())
            else:
                self.scaler.update()

    # -- epochs ---------------------------------------------------------------------------
    def _train_epoch(self, loader, epoch: int) -> dict[str, float]:
        self.model.train()
        steps = len(loader)
        self._memory.start_epoch(steps)
        self._grad_norm_sum = torch.zeros((), device=self.device)
        self._grad_norm_count = 0
        totals: dict[str, torch.Tensor] = {}
        samples = 0
        bar = self._bar
        timer = TrainTimer(self.device)
        timer.start()
        non_blocking = self.device.type == "cuda"
        watch = self._loss_watch
        watch.start_epoch()
        # Nothing in this loop reads a device tensor's value: on CUDA the host runs ahead and
        # keeps the GPU's queue full (benchmarks/results/gpu_path.md lists what was checked).
        for step, batch in enumerate(loader):
            self._step_in_epoch = step
            batch = to_device(batch, self.device, non_blocking)
            loss, stats = self._train_step(batch)
            add_stats(totals, stats)
            samples += self.task.batch_size(batch)
            watch.observe(step, loss)
            if watch.poll(step):
                raise Diverged(watch.message(epoch))
            if self.schedule is not None:
                self.schedule.after_batch()
            self._memory.sample(step)
            if bar is not None and not bar.disable and step % 20 == 0 and watch.last_loss is not None:
                self._bar_text["loss"] = f"{watch.last_loss:.4f}"  # a few steps old on CUDA
                bar.set_postfix(self._bar_text, refresh=False)
            if bar is not None:
                bar.update()
        if watch.finish():
            raise Diverged(watch.message(epoch))
        seconds = timer.stop()
        metrics = self.task.summarize(totals)
        if not math.isfinite(metrics["loss"]):
            raise Diverged(f"the training loss became {metrics['loss']} in epoch {epoch}")
        peak, steady = self._memory.end_epoch()
        return {"train_s": seconds, "samples": samples, "metrics": metrics,
                "grad_norm": float(self._grad_norm_sum) / max(1, self._grad_norm_count), "mem": (peak, steady)}

    def _eval_context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(self._autocast())
        return stack

    def evaluate(self, loader, split: str = "val") -> Evaluation:
        """The task's full evaluation of the current weights on a split (eval mode, no gradients)."""
        self.model.eval()
        with self._eval_context():
            return self.task.evaluate(self.model, DeviceLoader(loader, self.device), split)

    def evaluate_loss(self, loader) -> dict[str, float]:
        """The task's loss-only validation (no decoding), for the epochs between full evaluations."""
        self.model.eval()
        with self._eval_context():
            return self.task.evaluate_loss(self.model, DeviceLoader(loader, self.device))

    def _is_full_eval_epoch(self, epoch: int, epochs: int) -> bool:
        return epoch % self.eval_every == 0 or epoch == epochs

    def _improved(self, value: float, loss: float | None = None) -> bool:
        # An epoch whose validation loss is NaN/inf is never the best, whatever its metric says.
        if not math.isfinite(value) or (loss is not None and not math.isfinite(loss)):
            return False
        best = self.state.best_val
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best

    def _reached_target(self, value: float) -> bool:
        if self.target is None or not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def fit(self, train_loader, val_loader, epochs: int) -> FitResult:
        """Train up to `epochs` (continuing after any epochs already done), then restore the best weights."""
        status, error = "completed", None
        first_epoch = len(self.state.history) + 1
        if self.schedule is not None and first_epoch == 1:
            self.schedule.start()
        # One bar for the whole run, over every training step (not one per epoch).
        steps = len(train_loader)
        bar = self._bar = progress_bar(total=epochs * steps, initial=(first_epoch - 1) * steps,
                                       desc="training", enabled=self.progress)
        self._bar_text = {}
        for epoch in range(first_epoch, epochs + 1):
            self._bar_text["epoch"] = f"{epoch}/{epochs}"
            lr = float(self.optimizer.param_groups[0]["lr"])
            try:
                train = self._train_epoch(train_loader, epoch)
            except Diverged as err:
                status, error = "diverged", str(err)
                self.state.history.append({"epoch": epoch, "wall_s": self.state.train_time_s,
                                           "train_loss": float("nan"), "lr": lr, "diverged": True})
                if self.run_dir is not None:  # keep the history; last.pt stays at the last good epoch
                    write_jsonl(self.run_dir.history, self.state.history)
                break
            self.state.train_time_s += train["train_s"]
            full = self._is_full_eval_epoch(epoch, epochs)
            evaluation = self.evaluate(val_loader, "val") if full else None
            val = evaluation.metrics if full else self.evaluate_loss(val_loader)
            row = {"epoch": epoch, "wall_s": self.state.train_time_s}
            row.update({f"train_{k}": v for k, v in train["metrics"].items()})
            row.update({f"val_{k}": v for k, v in val.items()})
            row.update({"lr": lr, "grad_norm": train["grad_norm"],
                        "samples_per_s": train["samples"] / max(train["train_s"], 1e-9),
                        "mem_peak_mb": train["mem"][0], "mem_steady_mb": train["mem"][1]})
            self.state.history.append(row)
            # Loss-only epochs have no primary metric: they neither pick the best epoch nor
            # count towards early stopping's patience.
            value = val.get(self.primary, float("nan"))
            if full and self._improved(value, val.get("loss")):
                self.state.best_val, self.state.best_epoch, self.state.bad_epochs = value, epoch, 0
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                if self.run_dir is not None:
                    save_torch(self.run_dir.best_model, self._best_weights)
                    write_jsonl(self.run_dir.predictions("val"), evaluation.records)
            elif full:
                self.state.bad_epochs += 1
            if self.state.epochs_to_target is None and self._reached_target(value):
                self.state.epochs_to_target, self.state.time_to_target_s = epoch, self.state.train_time_s
            if self.schedule is not None:
                self.schedule.after_epoch(val.get("loss"))
            if full:
                self._bar_text[f"val_{self.primary}"] = f"{value:.4f}"
                bar.set_postfix(self._bar_text, refresh=False)
            self._checkpoint()
            if self.on_epoch_end is not None:
                self.on_epoch_end(row)
            if self.patience and self.state.bad_epochs >= self.patience:
                status = "early_stopped"
                break
        bar.close()
        self._bar = None
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        return FitResult(status, self.state.history, self.state.best_epoch, self.state.best_val,
                         self.state.train_time_s, error, self.state.epochs_to_target,
                         self.state.time_to_target_s)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(self.loader_generator),
            "progress": copy.deepcopy(self.state.__dict__),
            **self.checkpoint_extra,
        }

    def load_state_dict(self, state: dict[str, Any], best_weights: dict[str, torch.Tensor] | None = None) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], self.loader_generator)
        self.state = _Progress(**state["progress"])
        self._best_weights = best_weights

    def _checkpoint(self) -> None:
        if self.run_dir is None:
            return
        write_jsonl(self.run_dir.history, self.state.history)
        save_torch(self.run_dir.last, self.state_dict())
