"""Run a sweep: one papermill execution per run, locally in parallel or on Ray.

A failed run is recorded (its notebook keeps the error, its summary.json says `failed`)
and the sweep goes on. --resume skips finished runs and lets interrupted ones continue
from last.pt. sweep.json in the sweep folder lists every run and how it ended.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError
from nbhelpers.sweep.expand import Plan
from nbhelpers.training.experiment import ensure_writable
from nbhelpers.training.rundir import RunDir, read_json, write_json


@dataclass
class SweepOutcome:
    output_dir: Path
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "failed")

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for status in self.statuses.values():
            counts[status] = counts.get(status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [f"sweep in {self.output_dir}: {len(self.statuses)} runs ({parts}) in {self.seconds:.0f} s"]
        lines += [f"  {run_id}: {err}" for run_id, err in self.errors.items()]
        return "\n".join(lines)


def _one_run(cfg: RunConfig, threads: int | None) -> tuple[str, str, str | None]:
    """Execute one run's notebook; returns (run_id, status, error). Runs in a worker process."""
    from nbhelpers.sweep.notebooks import execute_run
    notebook_out = Path(cfg.output_dir) / "notebooks" / f"{cfg.run_id}.ipynb"
    error = None
    try:
        execute_run(cfg, notebook_out, threads=threads)
    except Exception as err:  # PapermillExecutionError, DeadKernelError, ...
        error = _one_line(err)
    run = RunDir(cfg.run_dir)
    summary = read_json(run.summary)
    if summary is None or summary.get("status") in (None, "running"):
        # The kernel died before the notebook could write its summary: record it here.
        summary = {"run_id": cfg.run_id, "task": cfg.task, "dataset": cfg.dataset, "model": cfg.model,
                   "optimizer": cfg.optimizer, "seed": cfg.seed, "grid": dict(cfg.grid),
                   "status": "failed", "error": error or "the notebook ended without a summary"}
        write_json(run.summary, summary)
    status = summary["status"]
    if status == "failed" and error is None:
        error = summary.get("error")
    return cfg.run_id, status, error


def _one_line(err: BaseException) -> str:
    name = getattr(err, "ename", None) or type(err).__name__
    value = getattr(err, "evalue", None) or str(err)
    return f"{name}: {str(value).strip().splitlines()[0] if str(value).strip() else ''}"


def run_sweep(plan: Plan, *, workers: int = 1, backend: str = "local") -> SweepOutcome:
    """Execute every run of the plan; returns how each ended."""
    ensure_writable(plan.output_dir)
    started = time.perf_counter()
    outcome = SweepOutcome(plan.output_dir)
    todo = []
    for cfg in plan.configs:
        if cfg.resume and RunDir(cfg.run_dir).is_finished():
            outcome.statuses[cfg.run_id] = RunDir(cfg.run_dir).status()
        else:
            todo.append(cfg)
    _write_manifest(plan, outcome, started)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    if backend == "ray":
        from nbhelpers.sweep.ray_backend import run_on_ray
        results = run_on_ray(todo, _one_run, threads=threads)
    elif workers == 1 or len(todo) <= 1:
        results = (_one_run(cfg, None) for cfg in todo)
    else:
        results = _in_processes(todo, workers, threads)
    for run_id, status, error in results:
        outcome.statuses[run_id] = status
        if error:
            outcome.errors[run_id] = error
        print(f"{run_id}: {status}" + (f" ({error})" if error else ""), flush=True)
        _write_manifest(plan, outcome, started)
    outcome.seconds = time.perf_counter() - started
    _write_manifest(plan, outcome, started)
    return outcome


def _in_processes(todo: list[RunConfig], workers: int, threads: int):
    # spawn, not fork: the parent may hold torch/OpenMP state that forking would corrupt.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_one_run, cfg, threads) for cfg in todo]
        for future in as_completed(futures):
            yield future.result()


def _write_manifest(plan: Plan, outcome: SweepOutcome, started: float) -> None:
    write_json(plan.output_dir / "sweep.json", {
        "name": plan.name, "params_file": str(plan.params_file) if plan.params_file else None,
        "task": plan.task, "runs": [c.run_id for c in plan.configs],
        "statuses": outcome.statuses, "errors": outcome.errors,
        "elapsed_s": time.perf_counter() - started})


def check_backend(backend: str) -> None:
    if backend not in ("local", "ray"):
        raise UserInputError(f"unknown backend {backend!r} (accepted: local, ray)")
