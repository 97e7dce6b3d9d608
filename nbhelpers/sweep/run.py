"""Run a sweep: one papermill execution per run, locally in parallel or on Ray.

A failed run is recorded (its notebook keeps the error, its summary.json says `failed`)
and the sweep goes on. --resume skips finished runs and lets interrupted ones continue
from last.pt. sweep.json in the sweep folder lists every run and how it ended.
With --lr-grid the runs go in two phases (sweep/lr_grid.py): every LR on the first seed,
then each optimizer's selected LR on the other seeds.

Before anything is written the sweep takes the folder's lock (sweep/lock.py) and runs the
preflight checks (sweep/preflight.py). Worker processes watch their parent: when the sweep
is killed they stop too, instead of working through the runs still queued.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import closing, nullcontext
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError
from nbhelpers.sweep.expand import Plan
from nbhelpers.sweep.lock import FolderLock
from nbhelpers.sweep.preflight import preflight
from nbhelpers.training.experiment import ensure_writable
from nbhelpers.training.rundir import RunDir, clean_temporary, read_json, write_json

# How often a worker checks that the sweep that started it is still alive.
PARENT_POLL_S = 0.5


@dataclass
class SweepOutcome:
    output_dir: Path
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    lr_selection: list | None = None  # with an LR grid: nbhelpers.lr_selection.ArmSelection per optimizer

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "failed")

    @property
    def exit_status(self) -> int:
        """0 when every run ended (completed, early_stopped or diverged), 1 when one failed."""
        return 1 if self.failed else 0

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
    run = RunDir(cfg.run_dir)
    # What an earlier attempt left must not be read as this attempt's outcome: a fresh start
    # clears the folder, a resume keeps last.pt and the history but not the old status.
    if cfg.resume:
        run.summary.unlink(missing_ok=True)
    else:
        run.clear_results()
    error = None
    try:
        execute_run(cfg, notebook_out, threads=threads)
    except Exception as err:  # PapermillExecutionError, DeadKernelError, ...
        error = _one_line(err)
    summary = read_json(run.summary)
    if summary is None or summary.get("status") in (None, "running"):
        # The kernel died before the notebook could write its summary: record it here.
        summary = record_failed(cfg, error or "the notebook ended without a summary")
    status = summary["status"]
    if status == "failed" and error is None:
        error = summary.get("error")
    return cfg.run_id, status, error


def record_failed(cfg: RunConfig, error: str) -> dict:
    """Write a `failed` summary for a run whose notebook could not write its own."""
    summary = {"run_id": cfg.run_id, "task": cfg.task, "dataset": cfg.dataset, "model": cfg.model,
               "optimizer": cfg.optimizer, "seed": cfg.seed, "grid": dict(cfg.grid),
               "experiment": cfg.experiment, "status": "failed", "error": error}
    write_json(RunDir(cfg.run_dir).summary, summary)
    return summary


def threads_per_run(workers: int) -> int:
    """CPU threads for each of `workers` parallel runs: the cores shared out, never more than
    an OMP_NUM_THREADS the user set. Recorded in config.json; a resumed run reuses its own."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    threads = max(1, cores // max(1, workers))
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        threads = min(threads, int(limit))
    return threads


def _one_line(err: BaseException) -> str:
    name = getattr(err, "ename", None) or type(err).__name__
    value = getattr(err, "evalue", None) or str(err)
    return f"{name}: {str(value).strip().splitlines()[0] if str(value).strip() else ''}"


def run_sweep(plan: Plan, *, workers: int = 1, backend: str = "local", overwrite: bool = False,
              ray_address: str | None = None, gpus_per_run: float | None = None) -> SweepOutcome:
    """Execute every run of the plan; returns how each ended.

    `ray_address` and `gpus_per_run` are for the ray backend (see sweep/ray_backend.py).
    Raises UserInputError, with nothing written, when the plan cannot run (see preflight),
    the Ray cluster cannot be reached or cannot hold a run, or another sweep holds the folder.
    """
    check_backend(backend, ray_address=ray_address, gpus_per_run=gpus_per_run)
    threads = threads_per_run(workers)
    cluster = nullcontext()
    if backend == "ray":
        from nbhelpers.sweep.ray_backend import ray_cluster
        cluster = ray_cluster(ray_address)
    with cluster:
        resources = None
        if backend == "ray":
            from nbhelpers.sweep.ray_backend import task_resources
            resources = task_resources(plan.configs, threads=threads, gpus_per_run=gpus_per_run)
        ensure_writable(plan.output_dir)
        with FolderLock(plan.output_dir):
            # A Ray cluster's devices are its workers', not this machine's (task_resources checks them).
            preflight(plan, overwrite=overwrite, check_devices=backend == "local")
            clean_temporary(plan.output_dir)
            return _run_locked(plan, workers=workers, threads=threads, ray_resources=resources)


def _run_locked(plan: Plan, *, workers: int, threads: int, ray_resources: dict | None) -> SweepOutcome:
    from nbhelpers.sweep.lr_grid import forget_selection, run_in_phases
    started = time.perf_counter()
    outcome = SweepOutcome(plan.output_dir)
    runs = list(plan.configs)
    forget_selection(plan.output_dir)

    def execute(configs: list[RunConfig]) -> None:
        known = {c.run_id for c in runs}
        runs.extend(c for c in configs if c.run_id not in known)  # phase 2 of an LR grid
        _execute(configs, plan, outcome, started, runs, workers=workers, threads=threads,
                 ray_resources=ray_resources)

    def selected(selections: list) -> None:
        outcome.lr_selection = selections
        _write_manifest(plan, outcome, started, runs)

    if plan.lr_grid is None:
        execute(list(plan.configs))
    else:
        run_in_phases(plan.configs, plan.later, plan.lr_grid, plan.output_dir, execute, on_selection=selected)
    outcome.seconds = time.perf_counter() - started
    _write_manifest(plan, outcome, started, runs)
    return outcome


def _execute(configs: list[RunConfig], plan: Plan, outcome: SweepOutcome, started: float, runs: list[RunConfig],
             *, workers: int, threads: int, ray_resources: dict | None) -> None:
    """Run `configs` (skipping finished ones under --resume), recording each outcome in sweep.json."""
    todo = []
    for cfg in configs:
        if cfg.resume and RunDir(cfg.run_dir).is_finished():
            outcome.statuses[cfg.run_id] = RunDir(cfg.run_dir).status()
        else:
            todo.append(cfg)
    _write_manifest(plan, outcome, started, runs)
    if not todo:  # e.g. an LR grid's phase 2 with one seed: no Ray cluster or pool for nothing
        return
    # Always set, even for a single remaining run: the thread count changes CPU numerics.
    if ray_resources is not None:
        from nbhelpers.sweep.ray_backend import run_on_ray
        results = run_on_ray(todo, _one_run, output_dir=plan.output_dir, threads=threads,
                             resources=ray_resources, record_failure=record_failed)
    elif workers == 1 or len(todo) <= 1:
        results = (_one_run(cfg, threads) for cfg in todo)
    else:
        results = _in_processes(todo, workers, threads)
    # closing: on Ctrl-C the backend stops its outstanding runs before the interrupt goes on.
    with closing(results):
        for run_id, status, error in results:
            outcome.statuses[run_id] = status
            if error:
                outcome.errors[run_id] = error
            print(f"{run_id}: {status}" + (f" ({error})" if error else ""), flush=True)
            _write_manifest(plan, outcome, started, runs)


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker (and so its kernel) when the sweep process is gone.

    A killed sweep cannot tell its workers; without this they would work through the runs
    already queued for them. The kernel notices its parent's end itself (ipykernel polls).
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="watch-sweep", daemon=True).start()


def _in_processes(todo: list[RunConfig], workers: int, threads: int):
    # spawn, not fork: the parent may hold torch/OpenMP state that forking would corrupt.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_one_run, cfg, threads): cfg for cfg in todo}
        for future in as_completed(futures):
            cfg = futures[future]
            try:
                yield future.result()
            except Exception as err:  # the worker itself died (out of memory, killed)
                message = f"its worker process ended: {_one_line(err)}"
                record_failed(cfg, message)
                yield cfg.run_id, "failed", message
    except BaseException:
        # Ctrl-C or an error here: do not let the pool go on with the queued runs.
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    pool.shutdown(wait=True)


def _write_manifest(plan: Plan, outcome: SweepOutcome, started: float, runs: list[RunConfig]) -> None:
    manifest = {
        "name": plan.name, "params_file": str(plan.params_file) if plan.params_file else None,
        "task": plan.task, "runs": [c.run_id for c in runs],
        "statuses": outcome.statuses, "errors": outcome.errors,
        "elapsed_s": time.perf_counter() - started}
    if plan.lr_grid is not None:
        # The protocol and, once phase 1 has ended, each optimizer's selected LR (null: none
        # ended normally); lr_selection.json beside holds every candidate's validation value.
        manifest["lr_grid"] = plan.lr_grid.to_dict()
        manifest["lr_selection"] = ({s.arm: {"lr": s.selected_lr, "edge": s.edge} for s in outcome.lr_selection}
                                    if outcome.lr_selection is not None else None)
    write_json(plan.output_dir / "sweep.json", manifest)


def check_backend(backend: str, *, ray_address: str | None = None, gpus_per_run: float | None = None) -> None:
    """An unknown backend, Ray options without the ray backend, a bad --gpus-per-run, or Ray
    when Ray is not installed, is a UserInputError (raised before anything is read or written)."""
    from nbhelpers.sweep.ray_backend import INSTALL_HINT, check_ray_options
    if backend not in ("local", "ray"):
        raise UserInputError(f"unknown backend {backend!r} (accepted: local, ray)")
    if backend != "ray" and (ray_address is not None or gpus_per_run is not None):
        raise UserInputError("--ray-address and --gpus-per-run apply to --backend ray only")
    if backend == "ray":
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            raise UserInputError(INSTALL_HINT)
        check_ray_options(gpus_per_run=gpus_per_run)
