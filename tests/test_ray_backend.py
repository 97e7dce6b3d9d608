"""The ray backend on a real Ray cluster: same numbers as locally, files back from a node
that does not share the output folder, a crashed worker, --resume across backends, Ctrl-C.

One cluster for the module (`ray start --head` on free ports, two CPUs), joined by this
process; every sweep is one or two runs of a second each on digits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from nbhelpers.cli import main
from nbhelpers.sweep import run as sweep_run
from nbhelpers.sweep.ray_backend import COPY_FILES_ENV

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
RUN_IDS = ("cnn_scratch-adam-s0", "cnn_scratch-sgd-s0")
# Measurements of the machine, not results of the run.
MEASURED = ("wall_s", "samples_per_s", "mem_peak_mb", "mem_steady_mb")
# Ray's helper processes on a loaded two-core machine can take minutes to come up.
START_TIMEOUT_S = 240
# Local-only cluster: no token file in the home folder, no usage report.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
HEAD_ATTEMPTS = 3
# Set to a cluster's address to run these tests on it instead of starting one.
ADDRESS_ENV = "NBHELPERS_TEST_RAY_ADDRESS"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_head(temp_dir: str) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` in its own process group; returns it and its address.

    The raylet gives its agents a fixed 15 s to come up, and each agent imports jsonschema,
    which compiles rfc3987-syntax's grammar on import (2 CPU seconds here, a third of the
    agent's start); on two busy cores that misses the 15 s. The cluster's processes get a
    folder first on their path where that optional module of jsonschema is absent (its IRI
    format check is then skipped, which nothing here uses).
    """
    shim = Path(temp_dir) / "no-rfc3987"
    shim.mkdir(exist_ok=True)
    (shim / "rfc3987_syntax.py").write_text('raise ImportError("left out to start Ray quickly")\n')
    path = os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))
    port = _free_port()
    # Free ports for everything: Ray's fixed defaults would collide with another cluster on the machine.
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
               f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
               "--object-store-memory=100000000", f"--dashboard-agent-grpc-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
               f"--runtime-env-agent-port={_free_port()}"]
    with open(Path(temp_dir) / "head.log", "w") as log:
        process = subprocess.Popen(command, env={**os.environ, **RAY_ENV, "PYTHONPATH": path}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"127.0.0.1:{port}"


def _stop_head(process: subprocess.Popen) -> None:
    # `ray start --block` stops the cluster it started when it is terminated; its process
    # group (its own session) holds whatever is left.
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster():
    """The address of a two-CPU Ray cluster, joined by this process for the module."""
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    if os.environ.get(ADDRESS_ENV):
        ray.init(address=os.environ[ADDRESS_ENV], log_to_driver=False)
        yield os.environ[ADDRESS_ENV]
        ray.shutdown()
        return
    # Short: the cluster's unix sockets live below it (at most 107 characters).
    temp_dir = tempfile.mkdtemp(prefix="nbray")
    process = None
    try:
        for attempt in range(1, HEAD_ATTEMPTS + 1):
            process, address = _start_head(temp_dir)
            if _join(process, address):
                break
            log = (Path(temp_dir) / "head.log").read_text()[-2000:]
            _stop_head(process)
            if attempt == HEAD_ATTEMPTS:
                pytest.fail(f"the Ray head did not start:\n{log}")
        yield address
    finally:
        ray.shutdown()
        if process is not None:
            _stop_head(process)
        shutil.rmtree(temp_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _join(process: subprocess.Popen, address: str) -> bool:
    """Join the cluster once it is up; False when its head process ended or never came up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            ray.init(address=address, log_to_driver=False)
            return True
        except Exception:  # not up yet: ConnectionError, or the node not registered
            ray.shutdown()
            time.sleep(2)
    return False


def _params(folder: Path) -> Path:
    params = folder / "tiny.yaml"
    params.write_text("task: image_classification\ndataset: digits\nmodel: cnn_scratch\nepochs: 1\n"
                      "batch_size: 32\nmax_samples: 64\nmodel_kwargs: {hidden: 16}\nprogress: false\n"
                      "optimizers: [adam, sgd]\n")
    return params


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """Both runs through the local backend: the reference the Ray runs must match."""
    folder = tmp_path_factory.mktemp("local")
    params = _params(folder)
    assert main(["sweep", str(params), "--output-dir", str(folder / "out"), "--no-progress"]) == 0
    return params, folder / "out"


def _history(out: Path, run_id: str) -> list[dict]:
    rows = [json.loads(line) for line in (out / "runs" / run_id / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in MEASURED} for row in rows]


def _results(out: Path, run_id: str) -> dict:
    summary = json.loads((out / "runs" / run_id / "summary.json").read_text())
    return {k: summary.get(k) for k in ("status", "epochs_run", "best_epoch", "best_val", "train", "val", "test")}


def _assert_same_run(out: Path, reference: Path, run_id: str) -> None:
    history = _history(out, run_id)
    assert {"train_loss", "val_loss", "val_accuracy", "grad_norm"} <= set(history[0])
    assert history == _history(reference, run_id)
    assert _results(out, run_id) == _results(reference, run_id)
    assert _results(out, run_id)["test"]["accuracy"] is not None


def _manifest(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def test_ray_runs_give_the_local_numbers(cluster, local_sweep, tmp_path):
    params, reference = local_sweep
    out = tmp_path / "ray"
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--no-progress"]) == 0
    assert _manifest(out)["statuses"] == dict.fromkeys(RUN_IDS, "completed")
    for run_id in RUN_IDS:
        _assert_same_run(out, reference, run_id)
        assert (out / "notebooks" / f"{run_id}.ipynb").is_file()
    config = json.loads((out / "runs" / RUN_IDS[0] / "config.json").read_text())
    assert config["environment"]["cpu_threads"] == 1
    assert not list(out.glob(".*.tmp"))  # the shared-folder marker is gone


def test_resume_across_backends_on_an_unshared_filesystem(cluster, local_sweep, tmp_path, monkeypatch):
    """A local sweep with one run missing; `--backend ray --resume` runs just that one on a
    node that does not see the output folder, and its files come back."""
    params, reference = local_sweep
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    missing, kept = RUN_IDS
    shutil.rmtree(out / "runs" / missing)
    (out / "notebooks" / f"{missing}.ipynb").unlink()
    kept_files = {p: p.read_bytes() for p in (out / "runs" / kept).iterdir()}

    seen = tmp_path / "seen.txt"
    real_one_run = sweep_run._one_run

    def one_run_noting_its_folder(cfg, threads):  # pickled by value into the task
        with open(seen, "a") as handle:
            handle.write(f"{cfg.run_id} {cfg.output_dir}\n")
        return real_one_run(cfg, threads)

    monkeypatch.setattr(sweep_run, "_one_run", one_run_noting_its_folder)
    monkeypatch.setenv(COPY_FILES_ENV, "1")
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--resume",
                 "--no-progress"]) == 0

    (run_id, task_folder), = (line.split(" ", 1) for line in seen.read_text().splitlines())
    assert run_id == missing                                   # only the missing run ran
    assert Path(task_folder) != out.resolve() and not Path(task_folder).exists()  # a node-local folder, removed
    assert {p: p.read_bytes() for p in (out / "runs" / kept).iterdir()} == kept_files
    _assert_same_run(out, reference, missing)
    assert (out / "notebooks" / f"{missing}.ipynb").is_file()
    config = json.loads((out / "runs" / missing / "config.json").read_text())
    assert Path(config["config"]["output_dir"]) == out.resolve()         # paths rewritten to where the run lies
    for path in [*(out / "runs" / missing).iterdir(), out / "notebooks" / f"{missing}.ipynb"]:
        assert b"nbhelpers-ray-" not in path.read_bytes(), path.name
    assert _manifest(out)["statuses"] == dict.fromkeys(RUN_IDS, "completed")


def test_a_crashed_worker_is_a_failed_run_and_the_sweep_goes_on(cluster, tmp_path, monkeypatch):
    params = _params(tmp_path)
    out = tmp_path / "out"
    real_one_run = sweep_run._one_run

    def crash_on_sgd(cfg, threads):  # pickled by value into the task
        if cfg.optimizer == "sgd":
            os._exit(1)  # the Ray worker process dies, as when it is killed
        return real_one_run(cfg, threads)

    monkeypatch.setattr(sweep_run, "_one_run", crash_on_sgd)
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--no-progress"]) == 1
    manifest = _manifest(out)
    assert manifest["statuses"] == {"cnn_scratch-adam-s0": "completed", "cnn_scratch-sgd-s0": "failed"}
    assert "WorkerCrashedError" in manifest["errors"]["cnn_scratch-sgd-s0"]
    summary = json.loads((out / "runs" / "cnn_scratch-sgd-s0" / "summary.json").read_text())
    assert summary["status"] == "failed" and "WorkerCrashedError" in summary["error"]


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ray_not_installed_touches_nothing(local_sweep, tmp_path, monkeypatch, capsys):
    params, reference = local_sweep
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    before = _snapshot(out)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does without Ray
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs Ray installed" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize("argv, message", [
    (["--backend", "ray", "--gpus-per-run", "1.5"], "above 1 must be a whole number"),
    (["--backend", "ray", "--gpus-per-run", "-1"], "0 or more"),
    (["--backend", "ray", "--gpus-per-run", "nan"], "0 or more"),
    (["--gpus-per-run", "0.5"], "apply to --backend ray only"),
    (["--ray-address", "127.0.0.1:1"], "apply to --backend ray only"),
])
def test_bad_ray_options_are_one_sentence(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["sweep", str(_params(tmp_path)), "--output-dir", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not out.exists()


def test_a_run_no_node_can_hold_is_refused_before_anything_is_written(cluster, tmp_path, capsys):
    out = tmp_path / "out"
    for argv, message in ((["--gpus-per-run", "0.5"], "no node of the Ray cluster has 1 CPUs and 0.5 GPUs"),
                          (["--device", "cuda"], "the Ray cluster has no GPU")):
        assert main(["sweep", str(_params(tmp_path)), "--output-dir", str(out), "--backend", "ray", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
        assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_cancels_the_pending_tasks_and_resume_finishes(cluster, tmp_path):
    params = _params(tmp_path)
    params.write_text(params.read_text().replace("[adam, sgd]", "[adam, sgd, adamw]"))
    out = tmp_path / "out"
    run_ids = [*RUN_IDS, "cnn_scratch-adamw-s0"]

    def interrupt_once_running() -> None:
        # Two tasks run at a time on two CPUs: interrupt when one has started its notebook.
        deadline = time.monotonic() + 120
        while not list((out / "notebooks").glob("*.ipynb")) and time.monotonic() < deadline:
            time.sleep(0.2)
        import _thread
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--no-progress"]) == 130
    manifest = _manifest(out)  # whole JSON: it is written atomically
    assert manifest["runs"] == run_ids and set(manifest["statuses"]) < set(run_ids)
    # The cancelled tasks give their CPUs back (they would hold them to the end otherwise).
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2
    assert main(["sweep", str(params), "--output-dir", str(out), "--backend", "ray", "--resume",
                 "--no-progress"]) == 0
    assert _manifest(out)["statuses"] == dict.fromkeys(run_ids, "completed")


@pytest.mark.slow
def test_the_command_line_joins_the_cluster_named_by_ray_address(cluster, local_sweep, tmp_path):
    """A separate process, as a user runs it: RAY_ADDRESS names the cluster."""
    params, reference = local_sweep
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": cluster, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "nbhelpers", "sweep", str(params), "--output-dir", str(out),
                           "--backend", "ray", "--optimizers", "adam", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_run(out, reference, RUN_IDS[0])
