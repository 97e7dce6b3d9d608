"""run_experiment(): one run from a RunConfig to a finished run directory.

The steps are methods of `Experiment` so that a task notebook can call them one cell at
a time and still produce exactly what `python -m nbhelpers run` produces:

    exp = Experiment(cfg)        # resolve the config, seed, pick the device, open the run dir
    data = exp.load_data()       # DataBundle (train/val/test)
    model = exp.build_model()    # the model, then the task, built from the live data facts
    optimizer = exp.build_optimizer()
    trainer = exp.build_trainer()  # loaders, LR schedule, Trainer (resumes from last.pt if asked)
    fit = exp.fit()
    summary = exp.finish()       # test evaluation of the best checkpoint, predictions, summary.json
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import nbhelpers
from nbhelpers.config import RunConfig, resolve_config
from nbhelpers.data.base import DataBundle, cap, default_data_dir
from nbhelpers.errors import UserInputError
from nbhelpers.optim import build_optimizer, optimizer_state_bytes
from nbhelpers.paths import resolve_output_dir
from nbhelpers.registry import DATASETS, MODELS, TASKS
from nbhelpers.schedulers import build_scheduler
from nbhelpers.training.details import details_text
from nbhelpers.training.rundir import (RunDir, checkpoint_settings, describe_mismatch, load_checkpoint, read_json,
                                      read_jsonl, settings_mismatch, write_json, write_jsonl, write_text)
from nbhelpers.training.trainer import FitResult, Trainer


@dataclass
class RunResult:
    """What run_experiment() hands back: the run directory and its summary."""

    run_dir: Path
    summary: dict[str, Any]
    history: list[dict]

    @property
    def status(self) -> str:
        return self.summary["status"]


def resolve_device(name: str) -> torch.device:
    """auto: CUDA if present, else Apple's MPS, else the CPU. Asking for a missing device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"device {name!r} was asked for but CUDA is not available here (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserInputError("device 'mps' was asked for but is not available here (use --device cpu or auto)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ensure_writable(folder: Path) -> None:
    """Fail early, with one sentence, when the output folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserInputError(f"cannot write to the output folder {folder}: {err.strerror or err}") from None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(nbhelpers.__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, device and git commit: what a reader needs to reproduce the run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"python": platform.python_version(), "torch": torch.__version__,
            "nbhelpers": nbhelpers.__version__, "device": str(device), "device_name": name,
            "cpu_threads": torch.get_num_threads(), "git_commit": _git_commit()}


class Experiment:
    """One run, step by step. See the module docstring for the order of the steps."""

    def __init__(self, cfg: RunConfig):
        self.started = time.perf_counter()
        # A notebook opened in JupyterLab runs in notebooks/: its relative output folder still
        # means the project's executed/ (nbhelpers/paths.py).
        output_dir = str(resolve_output_dir(cfg.output_dir))
        if output_dir != cfg.output_dir:
            cfg = cfg.replace(output_dir=output_dir)
        self.cfg = resolve_config(cfg)
        self.task_spec = TASKS.get(self.cfg.task).meta["spec"]
        self.device = resolve_device(self.cfg.device)
        self.run = RunDir(self.cfg.run_dir)
        ensure_writable(self.run.path.parent)
        self.run.clean_temporary()  # what a killed write left; this run is the folder's only writer
        seed_everything(self.cfg.seed)
        self.data: DataBundle | None = None
        self.model = None
        self.optimizer = None
        self.choice = None
        self.task = None
        self.examples: dict[str, int] = {}   # examples evaluated per split (for intervals)
        self.trainer: Trainer | None = None
        self.fit_result: FitResult | None = None
        self.resumed_from_epoch = 0

    # -- building -------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        builder = DATASETS.get(self.cfg.dataset).factory
        data_dir = Path(self.cfg.data_dir).expanduser() if self.cfg.data_dir else default_data_dir()
        # NBHELPERS_OFFLINE=1 (set by the tests) forbids downloads: only cached data is used.
        download = os.environ.get("NBHELPERS_OFFLINE", "0") != "1"
        self.data = builder(data_dir=data_dir, max_samples=self.cfg.max_samples, seed=self.cfg.seed,
                            download=download, **dict(self.cfg.dataset_kwargs))
        if self.cfg.target is None and self.data.info.get("target") is not None:
            # A corpus with a known optimum (grammar_lm) sets its own target.
            self.cfg = self.cfg.replace(target=float(self.data.info["target"]))
        return self.data

    def build_model(self):
        """The model, then the task: the task reads the data facts the model builder left
        (a model may install its own tokenizer), so it is built second."""
        # Re-seed so the initial weights depend on the seed alone, not on what data loading drew.
        torch.manual_seed(self.cfg.seed)
        builder = MODELS.get(self.cfg.model).factory
        self.model = builder(info=self.data.info, **dict(self.cfg.model_kwargs))
        self.task = TASKS.get(self.cfg.task).factory(data=self.data, label_smoothing=self.cfg.label_smoothing,
                                                     **dict(self.cfg.task_kwargs))
        return self.model

    def build_optimizer(self):
        self.optimizer, self.choice = build_optimizer(self.cfg, self.model)
        return self.optimizer

    def _loader(self, dataset, *, shuffle: bool, generator: torch.Generator | None = None) -> DataLoader:
        cuda = self.device.type == "cuda"
        workers = self.cfg.num_workers
        # No persistent workers: each epoch's workers are then seeded from the loader's generator
        # (saved in last.pt), so a resumed run draws the same augmentations as an uninterrupted one.
        return DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=shuffle,
                          generator=generator, num_workers=workers, pin_memory=cuda,
                          persistent_workers=False, collate_fn=self.data.collate_fn,
                          # a last batch of one sample breaks BatchNorm in training mode
                          drop_last=shuffle and len(dataset) > self.cfg.batch_size)

    def build_trainer(self) -> Trainer:
        cfg = self.cfg
        self.loader_generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = self._loader(self.data.train, shuffle=True, generator=self.loader_generator)
        self.val_loader = self._loader(cap(self.data.val, cfg.val_max_samples), shuffle=False)
        self.test_loader = self._loader(self.data.test, shuffle=False)
        schedule = build_scheduler(cfg.scheduler, self.optimizer, epochs=cfg.epochs,
                                   steps_per_epoch=len(self.train_loader),
                                   warmup_epochs=cfg.warmup_epochs, **dict(cfg.scheduler_kwargs))
        self.trainer = Trainer(model=self.model, task=self.task, optimizer=self.optimizer,
                               schedule=schedule, device=self.device, amp=cfg.amp,
                               max_grad_norm=cfg.max_grad_norm, patience=cfg.early_stopping_patience,
                               target=cfg.target, run_dir=self.run, progress=cfg.progress,
                               loader_generator=self.loader_generator, eval_every=cfg.eval_every)
        if cfg.resume and self.run.last.exists():
            state = load_checkpoint(self.run.last, map_location=self.device)
            check_resumable(self.run, state, cfg)
            if state.get("threads"):
                # The thread count changes low-order bits of CPU results: keep the first one.
                torch.set_num_threads(int(state["threads"]))
            best = load_checkpoint(self.run.best_model) if self.run.best_model.exists() else None
            self.trainer.load_state_dict(state, best)
            self.resumed_from_epoch = len(self.trainer.state.history)
        else:
            self.run.clear_results()  # a fresh start must not mix with an earlier attempt's files
        self.trainer.checkpoint_extra = {"settings": checkpoint_settings(cfg.to_dict()),
                                         "threads": torch.get_num_threads()}
        self._write_config(status="running")
        return self.trainer

    def _write_config(self, status: str) -> None:
        config = self.cfg.to_dict()
        if self.choice is not None:
            config.update(lr=self.choice.lr, weight_decay=self.choice.weight_decay)
            config["optimizer_kwargs"] = {k: v for k, v in self.choice.kwargs.items() if _jsonable(v)}
            if self.choice.decay_all_parameters:
                config["optimizer_kwargs"]["decay_all_parameters"] = True
        write_json(self.run.config, {"config": config, "environment": environment(self.device)})
        if status == "running":
            write_json(self.run.summary, {"run_id": self.cfg.run_id, "status": "running"})

    # -- running --------------------------------------------------------------------------
    def fit(self) -> FitResult:
        # What the process held before training (data, model, imports): the peak above it is
        # what training itself cost, which is what differs between optimizers.
        self.mem_baseline_mb = self.trainer._memory.current_mb()
        self.fit_result = self.trainer.fit(self.train_loader, self.val_loader, self.cfg.epochs)
        return self.fit_result

    def finish(self) -> dict[str, Any]:
        """Evaluate the best checkpoint on the test split and write summary.json and details.txt."""
        fit = self.fit_result
        has_best = fit.best_epoch is not None
        test = None
        if has_best:
            evaluation = self.trainer.evaluate(self.test_loader, "test")
            write_jsonl(self.run.predictions("test"), evaluation.records)
            test = evaluation.metrics
            self.examples["test"] = len(evaluation.records) or len(self.data.test)
        best_row = next((r for r in fit.history if r["epoch"] == fit.best_epoch), {})
        summary = self._summary(status=fit.status, error=fit.error, test=test, best_row=best_row)
        # details.txt first: a run whose summary says it ended always has its account.
        write_text(self.run.details, details_text(self, summary))
        write_json(self.run.summary, summary)
        return summary

    def _summary(self, *, status: str, error: str | None, test: dict | None, best_row: dict) -> dict[str, Any]:
        cfg, fit = self.cfg, self.fit_result
        history = fit.history if fit else []
        finished = [r for r in history if not r.get("diverged")]
        params_total = sum(p.numel() for p in self.model.parameters()) if self.model is not None else None
        params_trainable = (sum(p.numel() for p in self.model.parameters() if p.requires_grad)
                            if self.model is not None else None)
        split = lambda prefix: {k[len(prefix):]: v for k, v in best_row.items() if k.startswith(prefix)}  # noqa: E731
        return {
            "run_id": cfg.run_id, "task": cfg.task, "dataset": cfg.dataset, "model": cfg.model,
            "optimizer": cfg.optimizer, "seed": cfg.seed, "grid": dict(cfg.grid),
            # The dataset actually trained on when `dataset` was unavailable (a preset's stand-in).
            "stand_in": self.data.info.get("stand_in") if self.data is not None else None,
            "status": status, "error": error,
            "experiment": cfg.experiment,
            "primary_metric": self.task_spec.primary_metric,
            "higher_is_better": self.task_spec.higher_is_better,
            "metric_specs": self.task_spec.metric_specs(),
            "examples_val": len(self.val_loader.dataset) if getattr(self, "val_loader", None) else None,
            "examples_test": self.examples.get("test"),
            "epochs_run": len(finished), "best_epoch": fit.best_epoch if fit else None,
            "best_val": fit.best_val if fit else None,
            "train": split("train_") or None, "val": split("val_") or None, "test": test,
            "train_time_s": fit.train_time_s if fit else 0.0,
            "total_time_s": time.perf_counter() - self.started,
            "target": cfg.target,
            "epochs_to_target": fit.epochs_to_target if fit else None,
            "time_to_target_s": fit.time_to_target_s if fit else None,
            "params_total": params_total, "params_trainable": params_trainable,
            "optimizer_state_bytes": optimizer_state_bytes(self.optimizer) if self.optimizer is not None else None,
            # Exact bytes: parameters, and their gradients (one per trainable parameter, same dtype).
            "params_bytes": (sum(p.numel() * p.element_size() for p in self.model.parameters())
                             if self.model is not None else None),
            "grads_bytes": (sum(p.numel() * p.element_size() for p in self.model.parameters() if p.requires_grad)
                            if self.model is not None else None),
            "mem_baseline_mb": getattr(self, "mem_baseline_mb", None),
            "mem_peak_above_baseline_mb": _above(max((r["mem_peak_mb"] for r in finished), default=None),
                                                 getattr(self, "mem_baseline_mb", None)),
            "mem_peak_mb": max((r["mem_peak_mb"] for r in finished), default=None),
            "mem_steady_mb": (sum(r["mem_steady_mb"] for r in finished) / len(finished)) if finished else None,
            "device": str(self.device), "resumed_from_epoch": self.resumed_from_epoch,
        }

    def fail(self, err: BaseException) -> dict[str, Any]:
        """Record a crashed run as `failed`, keeping whatever history it had."""
        if self.fit_result is None and self.trainer is not None:
            self.fit_result = FitResult("failed", self.trainer.state.history, self.trainer.state.best_epoch,
                                        self.trainer.state.best_val, self.trainer.state.train_time_s)
        message = f"{type(err).__name__}: {err}".splitlines()[0]
        summary = self._summary(status="failed", error=message, test=None, best_row={})
        write_text(self.run.details, f"Run {self.cfg.run_id} failed.\n\n{traceback.format_exc()}")
        write_json(self.run.summary, summary)
        return summary


def _above(peak: float | None, baseline: float | None) -> float | None:
    return None if peak is None or baseline is None else max(0.0, peak - baseline)


def check_resumable(run: RunDir, state: dict[str, Any], cfg: RunConfig) -> None:
    """Refuse to continue a last.pt that was written with other settings (UserInputError)."""
    saved = state.get("settings")
    differing = settings_mismatch(saved, cfg.to_dict())
    if differing:
        raise UserInputError(
            f"cannot resume {run.path.name}: its last.pt was written with other settings: "
            f"{describe_mismatch(saved, cfg.to_dict(), differing)}; use the settings it ran with, "
            "or start it again without --resume (with --overwrite if it had finished)")


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, tuple, dict))


def run_experiment(cfg: RunConfig) -> RunResult:
    """Run one experiment in this process and write its run directory.

    With cfg.resume, a finished run is returned as it is and an interrupted one continues
    from last.pt. A crash is recorded in summary.json as `failed` and re-raised.
    """
    exp = Experiment(cfg)
    if cfg.resume and exp.run.is_finished():
        if exp.run.last.exists():  # kept as it is only if it ran with these settings
            check_resumable(exp.run, load_checkpoint(exp.run.last, mmap=True), exp.cfg)
        return RunResult(exp.run.path, read_json(exp.run.summary), read_jsonl(exp.run.history))
    if not cfg.resume:
        exp.run.clear_results()  # a new run: nothing of an earlier attempt may stand for it
    try:
        exp.load_data()
        exp.build_model()
        exp.build_optimizer()
        exp.build_trainer()
        exp.fit()
        summary = exp.finish()
    except UserInputError:
        raise
    except Exception as err:
        exp.fail(err)
        raise
    return RunResult(exp.run.path, summary, exp.fit_result.history)
