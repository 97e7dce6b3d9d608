"""Execute a task notebook for one run with papermill.

Pitfalls handled here (DESIGN.md): papermill reads only .ipynb, so the percent-format
.py is read with jupytext and handed over as a NotebookNode; its `cwd` argument would
chdir the whole process, so every path passed is absolute instead; an unknown parameter
would only log a warning, so names are checked against the parameters cell first.

What the kernel process itself prints (ipykernel's "Kernel is running over TCP without
encryption", "KeyboardInterrupt caught in kernel", C-level warnings), and what papermill
and nbclient log, goes to a log file per run (`kernel.log` in the run directory), not to
the terminal: a sweep prints one line per run. The kernel keeps TCP (the ipc transport
would silence only the first message, and not on Windows); its stderr is simply not ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"
# Kernel start plus `import torch` takes several seconds; on a loaded machine, more.
START_TIMEOUT_S = 120


def notebook_for(task: str) -> Path:
    path = NOTEBOOK_DIR / f"{task}.py"
    if not path.exists():
        raise UserInputError(f"there is no notebook for task {task!r} (looked for {path})")
    return path


def read_notebook(path: Path):
    """A percent-format .py notebook as the NotebookNode papermill expects.

    papermill's own loader gives every cell a `tags` list; a node handed over directly
    must have them too, or papermill fails looking for the parameters cell.
    """
    import_jsonschema_quickly()
    import jupytext
    nb = jupytext.read(path)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    return nb


@lru_cache(maxsize=None)
def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names declared in the notebook's cell tagged `parameters`."""
    import_jsonschema_quickly()
    from papermill.inspection import _infer_parameters
    return tuple(p.name for p in _infer_parameters(read_notebook(path)))


def run_parameters(cfg: RunConfig, notebook: Path) -> dict[str, Any]:
    """The papermill parameters for one run, checked against the notebook's parameters cell."""
    values = cfg.to_dict()
    values["output_dir"] = str(Path(cfg.output_dir).resolve())
    if cfg.data_dir:
        values["data_dir"] = str(Path(cfg.data_dir).expanduser().resolve())
    declared = set(notebook_parameters(notebook))
    missing = sorted(set(values) - declared)
    if missing:
        raise UserInputError(f"notebook {notebook.name} does not declare the parameter(s) {', '.join(missing)}")
    return values


KERNEL_LOG = "kernel.log"
# The loggers papermill and nbclient write to (nbclient is handed papermill's).
_LOGGERS = ("papermill", "traitlets")


def _kernel_manager_class(log):
    """An AsyncKernelManager whose kernel process writes its stdout and stderr into `log`."""
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


@contextlib.contextmanager
def kernel_logged_to(path: Path, *, append: bool = False):
    """papermill.execute_notebook keyword arguments that send the kernel's output and the
    execution's log messages to the file `path` instead of this process's stderr."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", buffering=1, encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        saved = []
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            saved.append((logger, logger.propagate))
            logger.addHandler(handler)
            logger.propagate = False  # not also to the terminal (logging's last-resort handler)
        try:
            yield {"kernel_manager_class": _kernel_manager_class(log)}
        finally:
            for logger, propagate in saved:
                logger.removeHandler(handler)
                logger.propagate = propagate


# papermill writes the whole output notebook (validated against the schema) before and after
# every cell, markdown included: about 40 writes per task notebook, 20-40 ms each, while the
# kernel waits. This engine writes at the start, at most every SAVE_EVERY_S during the run
# and at the end (also after a failure), so a run killed midway still leaves a recent copy.
ENGINE = "nbhelpers"
SAVE_EVERY_S = 10.0


def register_engine() -> str:
    """Register (once) the papermill engine with sparse saves; returns its name."""
    import_jsonschema_quickly()
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
    if ENGINE in papermill_engines._engines:
        return ENGINE

    class SparseSaves(NotebookExecutionManager):
        final = False
        saved = False

        def save(self, **kwargs):
            waited = (self.now() - self.last_save_time).total_seconds()
            if self.final or not self.saved or waited >= SAVE_EVERY_S:
                super().save(**kwargs)
                self.saved = True

        def notebook_complete(self, **kwargs):
            self.final = True
            return super().notebook_complete(**kwargs)

    class SparseSaveEngine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):
            # papermill's Engine.execute_notebook, with the manager above.
            nb_man = SparseSaves(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                 autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE, SparseSaveEngine)
    return ENGINE


def import_jsonschema_quickly() -> None:
    """Import jsonschema (nbformat's validator) without its optional rfc3987_syntax.

    jsonschema imports rfc3987_syntax when it is installed (JupyterLab's jupyter-events
    brings it), and that compiles a grammar at import: about 2 CPU seconds per sweep process
    (benchmarks/papermill_overhead.py), for IRI formats that the notebook schema never uses.
    It is hidden only during this import, and only when jsonschema is not loaded yet.
    """
    import sys
    if "jsonschema" in sys.modules:
        return
    hidden = sys.modules.setdefault("rfc3987_syntax", None) is None
    try:
        import jsonschema  # noqa: F401
    finally:
        if hidden and "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None:
            del sys.modules["rfc3987_syntax"]


def execute_run(cfg: RunConfig, output_notebook: Path, *, threads: int | None = None) -> None:
    """Execute the task notebook for `cfg` into `output_notebook`; raises if the notebook fails.

    papermill writes the output notebook even when a cell fails (with an error banner),
    so a failed run can be read in its notebook.
    """
    import_jsonschema_quickly()
    import papermill

    notebook = notebook_for(cfg.task)
    parameters = run_parameters(cfg, notebook)
    output_notebook = Path(output_notebook).resolve()
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    # The kernel inherits the environment: keep parallel runs from oversubscribing cores
    # (set only around the kernel's start, so the sweep process itself is left as it was).
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    if threads:
        os.environ.update({name: str(threads) for name in names})
    log = Path(parameters["output_dir"]) / "runs" / cfg.run_id / KERNEL_LOG
    try:
        with kernel_logged_to(log, append=cfg.resume) as quiet:
            papermill.execute_notebook(read_notebook(notebook), str(output_notebook), parameters=parameters,
                                       kernel_name="python3", progress_bar=False, start_timeout=START_TIMEOUT_S,
                                       engine_name=register_engine(), **quiet)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
