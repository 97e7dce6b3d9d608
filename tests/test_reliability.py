"""Results are never stale or mixed: resume checks, refusals before writing, locks, exit status.

Each test reproduces one way a user could end up with numbers that are not what they
asked for (or with a traceback instead of a sentence), on runs of a few seconds.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nbhelpers.cli import main
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.training import Experiment, run_experiment
from nbhelpers.training.rundir import read_json, read_jsonl
from nbhelpers.training.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
TINY = ("task: image_classification\ndataset: digits\nmodel: cnn_scratch\noptimizers: [adam]\n"
        "epochs: {epochs}\nbatch_size: 32\nmax_samples: 64\nmodel_kwargs: {{hidden: 8}}\nprogress: false\n")
LEARNING_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "grad_norm")
CUDA = torch.cuda.is_available()


def _params(folder: Path, extra: str = "", epochs: int = 1, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(TINY.format(epochs=epochs) + extra)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


class _Stop(Exception):
    pass


def _interrupted(cfg, after_epoch: int = 1) -> Experiment:
    """A run stopped (as if killed) after `after_epoch` epochs: last.pt and history stay."""
    exp = Experiment(cfg)
    exp.load_data(), exp.build_model(), exp.build_optimizer(), exp.build_trainer()

    def stop(row):
        if row["epoch"] == after_epoch:
            raise _Stop()
    exp.trainer.on_epoch_end = stop
    with pytest.raises(_Stop):
        exp.fit()
    return exp


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An output folder holding one completed run (and its params file)."""
    folder = tmp_path_factory.mktemp("finished")
    params = _params(folder)
    assert main(["run", str(params), "--output-dir", str(folder / "out")]) == 0
    return params, folder / "out"


# --------------------------------------------------------------------------------------------
# 1. --resume over a last.pt written with other settings
# --------------------------------------------------------------------------------------------

def test_resume_with_other_settings_is_refused_naming_them(tmp_path, capsys):
    params, out = _params(tmp_path, epochs=2), tmp_path / "out"
    cfg = plan_from_args(params, {"output_dir": str(out)}).configs[0]
    _interrupted(cfg)
    before = _snapshot(out)
    for command in ("run", "sweep"):
        code = main([command, str(params), "--output-dir", str(out), "--resume", "--lr", "0.01"])
        err = _one_sentence(capsys)
        assert code == 2 and "last.pt" in err and "lr (null in last.pt, 0.01 now)" in err, err
        assert _snapshot(out) == before
    assert main(["run", str(params), "--output-dir", str(out), "--resume"]) == 0
    assert read_json(cfg.run_dir / "summary.json")["resumed_from_epoch"] == 1


# --------------------------------------------------------------------------------------------
# 2. Finished runs are not silently run again; the device is checked first
# --------------------------------------------------------------------------------------------

def test_finished_runs_need_resume_or_overwrite(tmp_path, capsys):
    params, out = _params(tmp_path), tmp_path / "out"
    assert main(["run", str(params), "--output-dir", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    for command in ("run", "sweep"):
        assert main([command, str(params), "--output-dir", str(out)]) == 2
        assert "use --resume" in _one_sentence(capsys) and _snapshot(out) == before
    if not CUDA:  # a device that is not there fails every run: refused before anything starts
        assert main(["sweep", str(params), "--output-dir", str(out), "--device", "cuda", "--overwrite"]) == 2
        assert "CUDA is not available" in _one_sentence(capsys) and _snapshot(out) == before
    assert main(["run", str(params), "--output-dir", str(out), "--resume"]) == 0
    assert _snapshot(out) == before
    summary = out / "runs" / "cnn_scratch-adam-s0" / "summary.json"
    assert main(["run", str(params), "--output-dir", str(out), "--overwrite"]) == 0
    assert summary.read_bytes() != before["runs/cnn_scratch-adam-s0/summary.json"]
    assert read_json(summary)["status"] == "completed"


# --------------------------------------------------------------------------------------------
# 3. Bad values: exit 2, one sentence, the earlier completed run byte-identical
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, flags, yaml, fragment", [
    ("run", ["--label-smoothing", "2"], "", "label smoothing must be at least 0 and below 1"),
    ("run", ["--model-kwargs", "dropout=abc"], "", "dropout must be a number, got 'abc'"),
    ("sweep", [], "optimizer_kwargs: {bogus: 1}\n", "does not accept 'bogus'"),
    ("run", ["--seed", "-1"], "", "seed must be a whole number >= 0"),
    ("run", ["--optimizers", "sam", "--sam-base", "sam"], "", "need a plain base optimizer"),
    ("sweep", [], "scheduler_kwargs: {bogus: 1}\n", "scheduler 'cosine' does not accept 'bogus'"),
    ("run", ["--optimizers", ""], "", "no optimizer named"),
    ("sweep", [], "seeds: two\n", "'seeds' is how many seeds"),
    ("sweep", [], "seeds: -2\n", "'seeds' is how many seeds"),
    ("sweep", [], "seeds: 0\n", "'seeds' is how many seeds"),
    ("sweep", [], "experiments: 5\n", "'experiments' must be a list of runs"),
])
def test_bad_values_are_refused_before_anything_is_written(finished, tmp_path, capsys, command, flags, yaml, fragment):
    params, out = finished
    bad = _params(tmp_path, yaml, name="bad.yaml")
    before = _snapshot(out)
    code = main([command, str(bad), "--output-dir", str(out), *flags])
    err = _one_sentence(capsys)
    assert code == 2 and fragment in err, err
    assert _snapshot(out) == before


# --------------------------------------------------------------------------------------------
# 4. An epoch whose validation loss is NaN is never the best
# --------------------------------------------------------------------------------------------

def test_nan_validation_loss_is_never_the_best_epoch(tiny_cfg, monkeypatch):
    from nbhelpers.tasks.base import Evaluation
    real = Trainer.evaluate
    faked = {"val": 0}

    def evaluate(self, loader, split="val"):
        result = real(self, loader, split)
        if split != "val":
            return result
        faked["val"] += 1
        if faked["val"] == 1:  # a perfect score, but the loss is NaN: numerically broken weights
            return Evaluation({**result.metrics, "loss": float("nan"), "accuracy": 1.0}, result.records)
        return Evaluation({**result.metrics, "accuracy": 0.25}, result.records)
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    result = run_experiment(tiny_cfg)
    assert result.summary["best_epoch"] == 2 and result.summary["best_val"] == 0.25


# --------------------------------------------------------------------------------------------
# 5. One sweep per folder at a time; a dead holder's lock is taken over
# --------------------------------------------------------------------------------------------

def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path, capsys):
    from nbhelpers.sweep.lock import FolderLock
    params, out = _params(tmp_path), tmp_path / "out"
    with FolderLock(out):
        assert main(["sweep", str(params), "--output-dir", str(out)]) == 2
        assert f"another sweep (pid {os.getpid()})" in _one_sentence(capsys)
        assert not (out / "sweep.json").exists() and not (out / "runs").exists()
    assert not (out / "sweep.lock").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    params, out = _params(tmp_path), tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    (out / "sweep.lock").write_text(f"{dead.pid}\n")
    assert main(["run", str(params), "--output-dir", str(out)]) == 0
    assert not (out / "sweep.lock").exists()


# --------------------------------------------------------------------------------------------
# 6. Exact resume: the thread count, DataLoader workers; what changes numbers is documented
# --------------------------------------------------------------------------------------------

def test_resume_reuses_the_recorded_thread_count(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=2)
    assert torch.get_num_threads() == 1
    _interrupted(cfg)
    try:
        torch.set_num_threads(2)  # e.g. resumed with another --workers
        result = run_experiment(cfg.replace(resume=True))
        config = read_json(result.run_dir / "config.json")
        assert config["environment"]["cpu_threads"] == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_resume_with_dataloader_workers_is_exact(tiny_cfg, tmp_path):
    """MNIST's random rotation runs in the worker processes: their seeds must survive a resume."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 80), ("t10k", 16)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    cfg = tiny_cfg.replace(dataset="mnist", data_dir=str(tmp_path / "data"), epochs=3, batch_size=16,
                           max_samples=None, num_workers=1)
    whole = run_experiment(cfg.replace(output_dir=str(tmp_path / "whole"))).history
    _interrupted(cfg)
    resumed = run_experiment(cfg.replace(resume=True)).history
    for expected, got in zip(whole, resumed, strict=True):
        for key in LEARNING_KEYS:
            assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), (got["epoch"], key)


def test_one_remaining_run_is_given_cores_divided_by_workers(tmp_path, monkeypatch):
    import nbhelpers.sweep.run as sweep_run
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    given = []
    monkeypatch.setattr(sweep_run, "_one_run", lambda cfg, threads: given.append(threads) or (cfg.run_id, "completed", None))
    plan = plan_from_args(_params(tmp_path), {"output_dir": str(tmp_path / "out")})
    assert sweep_run.run_sweep(plan, workers=2).exit_status == 0
    assert given == [4]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own limit is kept
    assert sweep_run.run_sweep(plan, workers=2, overwrite=True).exit_status == 0
    assert given == [4, 3]


@pytest.mark.slow
def test_one_remaining_run_gets_its_share_of_the_cores(tmp_path, monkeypatch):
    from nbhelpers.sweep.run import run_sweep
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a kernel that inherited it would use both cores
    plan = plan_from_args(_params(tmp_path), {"output_dir": str(tmp_path / "out")})
    outcome = run_sweep(plan, workers=2)
    assert outcome.exit_status == 0
    config = read_json(plan.configs[0].run_dir / "config.json")
    assert config["environment"]["cpu_threads"] == 1  # 2 cores shared by 2 workers


def test_readme_says_which_settings_change_the_numbers():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Same settings, same numbers"):]
    section = section[:section.index("\n## ", 4)]
    for setting in ("--workers", "num_workers", "--device", "--amp", "threads", "--resume"):
        assert setting in section, setting


# --------------------------------------------------------------------------------------------
# 7. Killing the sweep stops its workers (and their kernels)
# --------------------------------------------------------------------------------------------

def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(root: int) -> set[int]:
    table, found, frontier = _processes(), set(), {root}
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _kernels_started(root: int) -> bool:
    """Whether the sweep's workers have started their kernels (grandchildren of the sweep)."""
    table = _processes()
    workers = {pid for pid, (ppid, _) in table.items() if ppid == root}
    return sum(1 for ppid, _ in table.values() if ppid in workers) >= 2


def _alive(pid: int) -> bool:
    state = _processes().get(pid)
    return state is not None and state[1] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_worker_ends_when_the_sweep_that_started_it_is_killed(tmp_path):
    watcher = ("import os, time\n"
               "from nbhelpers.sweep.run import _exit_with_parent\n"
               "_exit_with_parent(os.getppid())\n"
               "print('watching', flush=True)\n"
               "time.sleep(120)\n")
    parent = ("import subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', {watcher!r}])\n"
              "print(child.pid, flush=True)\n"
              "child.wait()\n")  # a watcher that cannot start ends the test instead of hanging it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sweep = subprocess.Popen([sys.executable, "-c", parent], env=env, stdout=subprocess.PIPE, text=True)
    worker = int(sweep.stdout.readline())
    try:
        assert sweep.stdout.readline().strip() == "watching"  # the worker's own output, same pipe
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.2)
        assert not _alive(worker)
    finally:
        for pid in (sweep.pid, worker):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_killing_the_sweep_stops_its_workers(tmp_path):
    params = _params(tmp_path, epochs=3)
    params.write_text(params.read_text().replace("optimizers: [adam]", "optimizers: [adam, sgd, adamw, radam, lion, yogi]"))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "sweep.log", "w")
    sweep = subprocess.Popen([sys.executable, "-m", "nbhelpers", "sweep", str(params), "--output-dir", str(out),
                              "--workers", "2"], env=env, stdout=log, stderr=log, start_new_session=True)
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _kernels_started(sweep.pid):
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()
            time.sleep(0.5)
        family = _descendants(sweep.pid)  # the workers and the kernels they started
        assert len([p for p in family if _processes().get(p, (0,))[0] == sweep.pid]) >= 2
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.5)
        assert not [p for p in family if _alive(p)], "workers or kernels outlived the sweep"
    finally:
        for pid in [sweep.pid, *family]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


# --------------------------------------------------------------------------------------------
# 8. Exit status: 0 when every run ended, 1 when one failed, 2 only for bad input
# --------------------------------------------------------------------------------------------

def test_exit_status_is_1_when_a_run_failed_and_0_when_all_ended(tmp_path, monkeypatch, capsys):
    params, out = _params(tmp_path), tmp_path / "out"
    real_fit = Experiment.fit

    def fit(self):
        if self.cfg.optimizer in ("adam", "sgd"):
            raise RuntimeError("a crash that is not the user's input")
        return real_fit(self)
    monkeypatch.setattr(Experiment, "fit", fit)
    assert main(["run", str(params), "--output-dir", str(out), "--optimizers", "adam,sgd,adamw"]) == 1
    monkeypatch.setattr(Experiment, "fit", real_fit)
    code = main(["run", str(params), "--output-dir", str(out / "diverged"), "--optimizers", "sgd", "--lr", "1e12"])
    assert code == 0 and read_json(out / "diverged" / "runs" / "cnn_scratch-sgd-s0" / "summary.json")["status"] == "diverged"


@pytest.mark.slow
def test_a_sweep_with_two_failed_runs_exits_1(tmp_path):
    params = _params(tmp_path, f"data_dir: {tmp_path / 'no-data'}\nexperiments:\n"
                               "  - {optimizer: adam, dataset: mnist}\n  - {optimizer: sgd, dataset: mnist}\n"
                               "  - {optimizer: sgd, lr: 1.0e+12}\n")
    assert main(["sweep", str(params), "--output-dir", str(tmp_path / "out"), "--workers", "2"]) == 1
    statuses = read_json(tmp_path / "out" / "sweep.json")["statuses"]
    assert sorted(statuses.values()) == ["diverged", "failed", "failed"]


# --------------------------------------------------------------------------------------------
# 9. Ray missing, an unwritable report folder, a full disk: one sentence each
# --------------------------------------------------------------------------------------------

def test_ray_backend_without_ray_touches_nothing(finished, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: imports of it fail
    params, out = finished
    manifest = out / "sweep.json"
    manifest.write_text(json.dumps({"statuses": {"cnn_scratch-adam-s0": "completed"}}))
    before = _snapshot(out)
    try:
        assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--resume"]) == 2
        assert "needs Ray installed" in _one_sentence(capsys) and _snapshot(out) == before
    finally:
        manifest.unlink()


def test_report_into_a_folder_that_cannot_be_written_is_one_sentence(finished, tmp_path, capsys):
    _, out = finished
    sweep = tmp_path / "sweep"
    shutil.copytree(out, sweep)
    (sweep / "report").write_text("a file where the report folder would go")
    assert main(["report", str(sweep), "--no-notebook"]) == 2
    assert "cannot write to the output folder" in _one_sentence(capsys)
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        (sweep / "report").unlink()
        sweep.chmod(0o555)
        try:
            assert main(["report", str(sweep), "--no-notebook"]) == 2
            assert "cannot write to the output folder" in _one_sentence(capsys)
        finally:
            sweep.chmod(0o755)


def test_a_full_disk_is_one_sentence_and_exit_1(finished, tmp_path, monkeypatch, capsys):
    _, out = finished
    sweep = tmp_path / "sweep"
    shutil.copytree(out, sweep)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    import nbhelpers.report.build as build
    monkeypatch.setattr(build, "write_atomic", full)
    assert main(["report", str(sweep), "--no-notebook"]) == 1
    assert "No space left on device" in _one_sentence(capsys)
    monkeypatch.undo()

    monkeypatch.setattr(os, "fsync", full)  # every atomic write of the sweep fails
    params = _params(tmp_path, name="full.yaml")
    assert main(["sweep", str(params), "--output-dir", str(tmp_path / "full-out")]) == 1
    err = _one_sentence(capsys)
    assert "sweep.json" in err and "No space left on device" in err


# --------------------------------------------------------------------------------------------
# 10. Leftover temporary files, details.txt before the status, the user's umask
# --------------------------------------------------------------------------------------------

def test_leftover_temporary_files_are_cleaned(finished, tmp_path):
    params, out = finished
    sweep = tmp_path / "sweep"
    shutil.copytree(out, sweep)
    run = sweep / "runs" / "cnn_scratch-adam-s0"
    leftovers = [run / ".summary.json.k2j3h4.tmp", run / ".last.pt.x8y9z0.tmp", sweep / ".sweep.json.abc123.tmp"]
    for path in leftovers:
        path.write_text("half written")
    (run / "summary.json").write_text('{"status": "running"}')  # as if killed: --resume goes on with it
    assert main(["run", str(params), "--output-dir", str(sweep), "--resume"]) == 0
    assert not [p for p in leftovers if p.exists()]
    assert read_json(run / "summary.json")["status"] == "completed"
    (sweep / "report").mkdir(exist_ok=True)
    (sweep / "report" / ".index.html.q1w2e3.tmp").write_text("half written")
    (sweep / "report" / ".report.x7c8v9.ipynb").write_text("{}")
    assert main(["report", str(sweep), "--no-notebook"]) == 0
    assert not list((sweep / "report").glob(".*.tmp")) and not list((sweep / "report").glob(".report.*"))


def test_a_run_is_never_completed_without_details(tiny_cfg, monkeypatch):
    import nbhelpers.training.experiment as experiment
    real = experiment.write_text

    def killed_while_writing_details(path, text):
        if Path(path).name == "details.txt":
            raise KeyboardInterrupt  # the kill -9 of a test: no except clause runs
        real(path, text)
    monkeypatch.setattr(experiment, "write_text", killed_while_writing_details)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_cfg)
    assert read_json(Path(tiny_cfg.output_dir) / "runs" / "cnn_scratch-adamw-s0" / "summary.json")["status"] == "running"


def test_files_get_the_users_umask(tiny_cfg):
    previous = os.umask(0o027)
    try:
        result = run_experiment(tiny_cfg.replace(epochs=1))
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in result.run_dir.iterdir()}
    assert set(modes.values()) == {0o640}, modes
    assert read_jsonl(result.run_dir / "history.jsonl")
