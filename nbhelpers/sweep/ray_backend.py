"""The Ray backend: the sweep's runs as Ray tasks, one task per run.

Each task executes the run's notebook with the same function as the local backend
(`_one_run` in sweep/run.py), with the same thread count, so a run gives the same history
through Ray as locally. A task asks Ray for as many CPUs as its run uses threads and for
`gpus_per_run` GPUs (fractions below 1 share a GPU between runs).

The cluster: `address` (--ray-address), else RAY_ADDRESS, else a new local cluster that
ends with the sweep. A Ray session the caller opened already is used as it is.

Where run directories are written. The driver writes a marker file with a random token into
the output folder. A task that finds the marker there sees the same filesystem and writes
its run straight into the output folder, as the local backend does. A task that does not
(another machine, another disk) runs into a temporary folder on its node and returns the
run's files as bytes; the driver writes them into the output folder, each atomically. Paths
in the returned text files are rewritten from the node's temporary folder to the output
folder. A resumed run's files travel the other way through Ray's object store, fetched only
by a node that needs them. NBHELPERS_RAY_COPY_FILES=1 makes every task take the second
path (a shared but slow filesystem; the tests).

Failures: a run whose notebook fails is `failed`, as locally. A task that dies (its worker
crashed or was killed, its node was lost) is `failed` too, with Ray's reason, and the sweep
goes on; Ray does not retry it, since `--resume` runs it again. On Ctrl-C the tasks still
pending are cancelled before the interrupt goes on.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError

COPY_FILES_ENV = "NBHELPERS_RAY_COPY_FILES"
INSTALL_HINT = "the ray backend needs Ray installed: pip install 'ray[default]' (or use --backend local)"
# How long the driver waits for a task before it looks at Ctrl-C again.
WAIT_S = 1.0
# Text files whose paths are rewritten when a run comes back from a node's temporary folder.
_TEXT_SUFFIXES = (".json", ".jsonl", ".ipynb", ".txt")

Result = tuple[str, str, "str | None"]


def check_ray_options(*, gpus_per_run: float | None) -> None:
    """--gpus-per-run: 0 or more, fractions only below 1 (Ray shares a GPU in fractions)."""
    if gpus_per_run is None:
        return
    if not math.isfinite(gpus_per_run) or gpus_per_run < 0:
        raise UserInputError(f"--gpus-per-run must be a number of GPUs, 0 or more, got {gpus_per_run:g}")
    if gpus_per_run > 1 and not float(gpus_per_run).is_integer():
        raise UserInputError(f"--gpus-per-run above 1 must be a whole number (Ray shares a GPU only in "
                             f"fractions below 1), got {gpus_per_run:g}")


@contextmanager
def ray_cluster(address: str | None = None) -> Iterator[None]:
    """Connect to the cluster at `address` (else RAY_ADDRESS, else a new local one) for the
    length of the block; a session the caller opened already is left as it is."""
    import ray
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # "local", not None: None would join a cluster that `ray start` left on this machine.
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
    except (ConnectionError, TimeoutError, ValueError) as err:
        where = f"at {address}" if address else "on this machine"
        raise UserInputError(f"cannot reach a Ray cluster {where} ({_first_line(err)}); check --ray-address "
                             "or RAY_ADDRESS, or unset both to start a local one") from None
    try:
        yield
    finally:
        ray.shutdown()


def task_resources(configs: list[RunConfig], *, threads: int, gpus_per_run: float | None) -> dict:
    """num_cpus and num_gpus of each run's task, checked against the cluster's nodes.

    Without --gpus-per-run a run gets one GPU when the cluster has GPUs and the runs may use
    one (--device other than cpu), else none. A run that no node can hold would wait forever,
    so it is refused here, before anything is written.
    """
    import ray
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    devices = {cfg.device for cfg in configs}
    has_gpus = any(node.get("GPU", 0) >= 1 for node in nodes)
    if gpus_per_run is None:
        gpus = 1 if has_gpus and devices != {"cpu"} else 0
    else:
        gpus = gpus_per_run
    cuda = sorted(d for d in devices if d.startswith("cuda"))
    if cuda and gpus == 0:
        raise UserInputError(f"--device {cuda[0]} needs a GPU per run but the runs get none "
                             f"({'set --gpus-per-run' if has_gpus else 'the Ray cluster has no GPU'})")
    if not any(node.get("CPU", 0) >= threads and node.get("GPU", 0) >= gpus for node in nodes):
        offers = ", ".join(f"{node.get('CPU', 0):g} CPUs/{node.get('GPU', 0):g} GPUs" for node in nodes) or "none"
        raise UserInputError(f"no node of the Ray cluster has {threads} CPUs and {gpus:g} GPUs for one run "
                             f"(nodes: {offers}); lower --gpus-per-run, or raise --workers or lower "
                             "OMP_NUM_THREADS for fewer threads per run")
    return {"num_cpus": threads, "num_gpus": gpus}


def run_on_ray(todo: Iterable[RunConfig], one_run: Callable[[RunConfig, int], Result], *, output_dir: Path,
               threads: int, resources: dict, record_failure: Callable[[RunConfig, str], None]
               ) -> Iterator[Result]:
    """Submit every run as a Ray task and yield (run_id, status, error) as they finish.

    `record_failure(cfg, error)` writes a failed summary for a run whose task died. Closing
    the generator, or an exception while it waits (Ctrl-C), cancels the tasks still pending.
    """
    import ray
    output_dir = Path(output_dir).resolve()
    copy_always = os.environ.get(COPY_FILES_ENV, "").strip() not in ("", "0")
    marker = None if copy_always else _write_marker(output_dir)
    task = ray.remote(_execute).options(max_retries=0, **resources)
    pending: dict = {}
    try:
        for cfg in todo:
            cfg = _absolute_paths(cfg, output_dir)
            # A nested ObjectRef is not fetched with the arguments: only a node that does not
            # see the output folder pulls the resumed run's files.
            sent = [ray.put(_read_tree(output_dir, cfg.run_id))] if cfg.resume else None
            pending[task.remote(cfg, one_run, threads, marker and marker.name, sent)] = cfg
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            for ref in done:
                cfg = pending.pop(ref)
                yield _collect(ref, cfg, output_dir, record_failure)
    except BaseException:
        # Ctrl-C, or the sweep stopped reading: the pending runs must not go on alone.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def _absolute_paths(cfg: RunConfig, output_dir: Path) -> RunConfig:
    """Paths as the submitting machine means them: a worker's working folder is its own.
    A data folder under `~` stays so, for each node's own home."""
    data_dir = cfg.data_dir
    if data_dir and not data_dir.startswith("~"):
        data_dir = str(Path(data_dir).resolve())
    return cfg.replace(output_dir=str(output_dir), data_dir=data_dir)


def _write_marker(output_dir: Path) -> Path:
    # Named like the temporary files the sweep's start removes, should the driver be killed.
    marker = output_dir / f".ray-shared.{secrets.token_hex(8)}.tmp"
    marker.write_text(marker.name)
    return marker


def _sees(output_dir: str, marker_name: str | None) -> bool:
    if not marker_name:
        return False
    try:
        return (Path(output_dir) / marker_name).read_text() == marker_name
    except OSError:
        return False


@dataclass
class _TaskOutcome:
    result: Result
    files: dict[str, bytes] | None  # None: written into the shared output folder


def _execute(cfg: RunConfig, one_run: Callable, threads: int, marker_name: str | None,
             sent: list | None) -> _TaskOutcome:
    """The Ray task: one run, into the shared output folder or a temporary one on this node."""
    if _sees(cfg.output_dir, marker_name):
        return _TaskOutcome(one_run(cfg, threads), None)
    import ray
    with tempfile.TemporaryDirectory(prefix="nbhelpers-ray-") as tmp:
        local = os.path.realpath(tmp)  # the notebook records resolved paths
        if sent:
            _write_tree(Path(local), ray.get(sent[0]))
        result = one_run(cfg.replace(output_dir=local), threads)
        files = _read_tree(Path(local), cfg.run_id)
    return _TaskOutcome(result, {name: _rewrite_paths(name, data, local, cfg.output_dir)
                                 for name, data in files.items()})


def _collect(ref, cfg: RunConfig, output_dir: Path, record_failure: Callable) -> Result:
    import ray
    from ray.exceptions import RayError, RayTaskError
    try:
        outcome: _TaskOutcome = ray.get(ref)
    except RayTaskError as err:  # an exception outside the notebook (which _one_run records)
        error = f"its Ray task failed: {_first_line(err.cause if err.cause is not None else err)}"
    except RayError as err:  # WorkerCrashedError, TaskCancelledError, a lost node, ...
        error = f"its Ray task ended: {_first_line(err)}"
    else:
        if outcome.files is not None:
            _install_run(output_dir, cfg.run_id, outcome.files)
        return outcome.result
    record_failure(cfg, error)
    return cfg.run_id, "failed", error


def _run_parts(run_id: str) -> tuple[str, str]:
    """A run's files relative to the sweep folder: its run directory and its notebook."""
    return f"runs/{run_id}", f"notebooks/{run_id}.ipynb"


def _read_tree(root: Path, run_id: str) -> dict[str, bytes]:
    run_dir, notebook = _run_parts(run_id)
    files = {}
    if (root / run_dir).is_dir():
        for path in sorted((root / run_dir).rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    if (root / notebook).is_file():
        files[notebook] = (root / notebook).read_bytes()
    return files


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _install_run(output_dir: Path, run_id: str, files: dict[str, bytes]) -> None:
    """Write a run's returned files into the output folder, each atomically, and remove what
    an earlier attempt left there that this one did not write."""
    from nbhelpers.training.rundir import write_bytes
    run_dir, notebook = _run_parts(run_id)
    for name in files:
        if not (name == notebook or name.startswith(run_dir + "/")) or ".." in Path(name).parts:
            raise ValueError(f"a Ray task returned a file outside run {run_id}: {name}")
    for name, data in files.items():
        write_bytes(output_dir / name, data)
    if (output_dir / run_dir).is_dir():
        for path in (output_dir / run_dir).rglob("*"):
            if path.is_file() and path.relative_to(output_dir).as_posix() not in files:
                path.unlink(missing_ok=True)


def _rewrite_paths(name: str, data: bytes, old: str, new: str) -> bytes:
    """`old` -> `new` in a text file, so the run reads as written where it now lies.

    Only where both paths need no escaping in JSON (any ordinary path), so that replacing
    them inside JSON strings keeps the file valid.
    """
    if not name.endswith(_TEXT_SUFFIXES) or any(json.dumps(p)[1:-1] != p for p in (old, new)):
        return data
    return data.replace(old.encode(), new.encode())


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
