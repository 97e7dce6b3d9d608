"""Task notebooks: paired with jupytext, parameters documented, executed by papermill."""

from __future__ import annotations

import json
import subprocess
import sys

import jupytext
import nbformat
import papermill
import pytest

from nbhelpers.config import FIELD_NAMES
from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, notebook_parameters, read_notebook

TASK_NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.glob("*.py") if p.stem not in ("report", "optimizers", "leaderboard"))


def test_every_notebook_has_an_ipynb_pair_in_sync():
    # Outputs in the working copy are allowed (a notebook saved in JupyterLab): the nbstripout
    # filter keeps them out of commits; test_notebook_polish checks what git holds.
    for source in NOTEBOOK_DIR.glob("*.py"):
        paired = source.with_suffix(".ipynb")
        assert paired.exists(), f"{source.name} has no .ipynb pair (jupytext --sync)"
        ipynb = nbformat.read(paired, as_version=4)
        from_py = jupytext.read(source)
        assert [c.source for c in from_py.cells] == [c.source for c in ipynb.cells], \
            f"{paired.name} is out of sync with {source.name}: run jupytext --sync"


@pytest.mark.parametrize("notebook", TASK_NOTEBOOKS, ids=lambda p: p.stem)
def test_task_notebook_declares_every_runconfig_field(notebook):
    assert set(notebook_parameters(notebook)) == set(FIELD_NAMES)


def test_help_notebook_documents_the_parameters():
    result = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook",
                             str(NOTEBOOK_DIR / "image_classification.ipynb")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'optimizer: str (default "adamw")' in result.stdout
    assert "any of the 16" in result.stdout


def test_image_classification_notebook_runs_under_papermill(tmp_path):
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        read_notebook(NOTEBOOK_DIR / "image_classification.py"), str(out),
        parameters={"optimizer": "lion", "epochs": 2, "batch_size": 32, "max_samples": 96,
                    "model_kwargs": {"hidden": 32}, "output_dir": str(tmp_path / "sweep"), "progress": False},
        kernel_name="python3", progress_bar=False, start_timeout=120)
    run_dir = tmp_path / "sweep" / "runs" / "cnn_scratch-lion-s0"
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "history.jsonl", "summary.json",
                                                     "details.txt", "best_model.pt", "last.pt"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    assert 0 <= summary["test"]["accuracy"] <= 1
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) for c in executed.cells for o in c.get("outputs", []))
    assert "parameters" in text and "test:" in text
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2          # the sample images and the learning curves


def test_optimizers_notebook_draws_every_landscape_and_keeps_the_widget_out_of_html(tmp_path):
    from nbhelpers.report.html import notebook_to_html
    out = tmp_path / "optimizers.ipynb"
    papermill.execute_notebook(read_notebook(NOTEBOOK_DIR / "optimizers.py"), str(out),
                               parameters={"steps": 20, "tune_lr": False, "widget": False}, kernel_name="python3",
                               progress_bar=False, start_timeout=120)
    executed = nbformat.read(out, as_version=4)
    figures = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) >= 3                                  # one per landscape (plus the widget's)
    markdown = "".join(str(o.get("data", {}).get("text/markdown", ""))
                       for c in executed.cells for o in c.get("outputs", []))
    assert markdown.count("$$") >= 32                         # 16 equations
    widget_cells = [c for c in executed.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert len(widget_cells) == 1 and "interact" in widget_cells[0].source
    html = notebook_to_html(out)
    assert "widgets.interact" not in html and "Paths on 2-D landscapes" in html
