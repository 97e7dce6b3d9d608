"""Execute a task notebook for one run with papermill.

Pitfalls handled here (DESIGN.md): papermill reads only .ipynb, so the percent-format
.py is read with jupytext and handed over as a NotebookNode; its `cwd` argument would
chdir the whole process, so every path passed is absolute instead; an unknown parameter
would only log a warning, so names are checked against the parameters cell first.
"""

from __future__ import annotations

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
    import jupytext
    nb = jupytext.read(path)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    return nb


@lru_cache(maxsize=None)
def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names declared in the notebook's cell tagged `parameters`."""
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


def execute_run(cfg: RunConfig, output_notebook: Path, *, threads: int | None = None) -> None:
    """Execute the task notebook for `cfg` into `output_notebook`; raises if the notebook fails.

    papermill writes the output notebook even when a cell fails (with an error banner),
    so a failed run can be read in its notebook.
    """
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
    try:
        papermill.execute_notebook(read_notebook(notebook), str(output_notebook), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, start_timeout=START_TIMEOUT_S)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
