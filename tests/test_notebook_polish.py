"""Notebooks and papermill as a student meets them (issue 8): quiet sweeps, one progress bar
that survives saving, outputs in the project's executed/, notebooks committed without outputs,
`make sync-notebooks` without a virtualenv, the HTML export, and papermill's saves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbhelpers.paths import project_root, resolve_output_dir
from nbhelpers.sweep.notebooks import KERNEL_LOG, NOTEBOOK_DIR

ROOT = NOTEBOOK_DIR.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


# -- one tiny sweep through papermill, shared by the checks on its terminal output and notebook --
@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    result = subprocess.run(
        [sys.executable, "-m", "nbhelpers", "sweep", "--task", "image_classification", "--dataset", "digits",
         "--model", "mnist_tiny", "--optimizers", "adamw", "--epochs", "2", "--max-samples", "96",
         "--batch-size", "32", "--output-dir", str(out)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=900)
    return out, result


def test_sweep_prints_one_line_per_run_and_keeps_the_kernel_stderr_in_the_run_directory(tiny_sweep):
    out, result = tiny_sweep
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == ["mnist_tiny-adamw-s0: completed", lines[1]] and lines[1].startswith("sweep in "), lines
    log = out / "runs" / "mnist_tiny-adamw-s0" / KERNEL_LOG
    # What used to reach the terminal is kept, in the run's own folder.
    assert "Kernel is running over TCP" in log.read_text()


def test_saved_run_notebook_has_one_text_progress_bar_and_no_widgets(tiny_sweep):
    out, result = tiny_sweep
    assert result.returncode == 0, result.stderr
    nb = nbformat.read(out / "notebooks" / "mnist_tiny-adamw-s0.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})]  # "Error displaying widget" when reopened
    bars = [o["data"]["text/plain"] for o in outputs if str(o.get("data", {}).get("text/plain", "")).startswith("training")]
    assert len(bars) == 1, bars
    # Its last state, not a stale 0%: two epochs of 3 batches each (96 samples, batch 32).
    assert "100%" in bars[0] and "6/6" in bars[0] and "epoch=2/2" in bars[0]
    from nbhelpers.report.html import notebook_to_html
    page = notebook_to_html(nb, title="run")
    assert "training: 100%" in page and "training:   0%" not in page


def _count_saves(engine, tmp_path, monkeypatch) -> int:
    """How often `engine` writes the notebook for three cells (the calls papermill makes, no kernel)."""
    writes = []
    monkeypatch.setattr("papermill.engines.write_ipynb", lambda nb, path: writes.append(path))

    def cells_only(cls, nb_man, kernel_name, **kwargs):
        for index, cell in enumerate(nb_man.nb.cells):
            nb_man.cell_start(cell, index)
            nb_man.cell_complete(cell, index)

    monkeypatch.setattr(engine, "execute_managed_notebook", classmethod(cells_only))
    nb = new_notebook(cells=[new_code_cell("1"), new_markdown_cell("x"), new_code_cell("2")])
    nb.metadata["papermill"] = {}
    for cell in nb.cells:
        cell.metadata["tags"] = []
    engine.execute_notebook(nb, "python3", output_path=str(tmp_path / "out.ipynb"), progress_bar=False)
    return len(writes)


def test_run_notebooks_are_saved_at_start_and_end_not_around_every_cell(tmp_path, monkeypatch):
    from papermill.engines import NBClientEngine, papermill_engines

    from nbhelpers.sweep.notebooks import register_engine
    ours = _count_saves(papermill_engines.get_engine(register_engine()), tmp_path, monkeypatch)
    papermills = _count_saves(NBClientEngine, tmp_path, monkeypatch)
    assert ours == 2                   # the start, and the end (where a failure is recorded too)
    assert papermills >= 3 * ours      # papermill alone: before and after every cell


# -- relative output folders ---------------------------------------------------------------------
def test_relative_output_folder_from_the_notebooks_folder_lands_in_the_project(tmp_path):
    project = tmp_path / "checkout"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "nbhelpers"\n')
    root = project_root(project)
    assert root == project
    assert resolve_output_dir("executed/notebook", root=root, cwd=project / "notebooks") == project / "executed/notebook"
    # From the root itself, or from outside the project, a relative folder means the same as always.
    assert resolve_output_dir("executed/x", root=root, cwd=project) == Path("executed/x")
    assert resolve_output_dir("executed/x", root=root, cwd=tmp_path) == Path("executed/x")
    assert resolve_output_dir(tmp_path / "abs", root=root, cwd=project / "notebooks") == tmp_path / "abs"
    # Installed from a wheel: no pyproject.toml naming nbhelpers above the package.
    assert project_root(tmp_path) is None
    assert resolve_output_dir("executed/x", root=None, cwd=project / "notebooks") == Path("executed/x")


def test_experiment_started_in_notebooks_folder_writes_into_the_project_executed(tmp_path, monkeypatch):
    from nbhelpers import paths
    from nbhelpers.config import RunConfig
    from nbhelpers.training import Experiment
    project = tmp_path / "checkout"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "nbhelpers"\n')
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", project)
    monkeypatch.chdir(project / "notebooks")
    exp = Experiment(RunConfig(model="mnist_tiny", epochs=1, max_samples=32, output_dir="executed/notebook",
                               progress=False))
    assert exp.run.path.resolve().parent.parent == (project / "executed" / "notebook").resolve()
    assert not (project / "notebooks" / "executed").exists()


# -- notebooks committed without outputs ------------------------------------------------------------
def test_committed_notebooks_carry_no_outputs():
    """What git holds (HEAD), not the working copy a JupyterLab save may have filled."""
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "notebooks/*.ipynb"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert len(listed) >= 10
    for name in listed:
        text = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True, text=True).stdout
        if not text:  # added but not committed yet: the index then
            text = subprocess.run(["git", "show", f":{name}"], cwd=ROOT, capture_output=True, text=True).stdout
        nb = nbformat.reads(text, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells), f"{name} is committed with outputs"


def test_make_install_sets_up_the_filter_that_strips_outputs_on_commit(tmp_path):
    """A notebook saved with outputs in JupyterLab is committed without them (cell ids kept)."""
    for name in ("Makefile", ".gitattributes", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    source = ROOT / "notebooks" / "image_classification.ipynb"
    nb = nbformat.read(source, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [new_output("stream", name="stdout", text="trained\n")]
    code.execution_count = 3
    nbformat.write(nb, tmp_path / "notebooks" / "image_classification.ipynb")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True)
    # PIP=true: the filter set-up without installing anything.
    made = subprocess.run(["make", "install", "PIP=true", f"PYTHON={sys.executable}"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    subprocess.run(git + ["add", "."], cwd=tmp_path, check=True)
    staged = subprocess.run(git + ["show", ":notebooks/image_classification.ipynb"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert staged == source.read_text()  # outputs gone; otherwise byte-identical to the jupytext pair


# -- make sync-notebooks ------------------------------------------------------------------------------
def test_make_sync_notebooks_needs_no_jupytext_on_the_path(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    (tmp_path / "notebooks").mkdir()
    shutil.copy(NOTEBOOK_DIR / "optimizers.py", tmp_path / "notebooks" / "optimizers.py")
    # No virtualenv activated: PATH has the system tools but not this Python's scripts.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    made = subprocess.run(["make", "sync-notebooks", f"PYTHON={sys.executable}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "notebooks" / "optimizers.ipynb").is_file()


# -- the HTML export ------------------------------------------------------------------------------
def _explorer_notebook(path: Path) -> Path:
    """notebooks/optimizers.py as JupyterLab saves it after a run: the update rules as markdown
    output, the explorer's widget output without widget state."""
    from nbhelpers.report.export import read_any
    nb = read_any(NOTEBOOK_DIR / "optimizers.py")
    explorer = next(c for c in nb.cells if "remove-cell" in c.metadata.get("tags", []))
    explorer.outputs = [new_output("display_data", data={
        WIDGET_VIEW: {"model_id": "0123", "version_major": 2, "version_minor": 0},
        "text/plain": "(The interactive explorer: run this cell in JupyterLab to use it.)"})]
    rules = next(c for c in nb.cells if c.cell_type == "code" and "update_rule" in c.source)
    rules.outputs = [new_output("display_data", data={"text/markdown": "**adamw**\n\n$$\nm_t = \\beta_1 m_{t-1}\n$$",
                                                      "text/plain": "<Markdown>"})]
    nbformat.write(nb, path)
    return path


def test_export_command_drops_the_explorer_and_renders_maths_without_a_cdn(tmp_path):
    notebook = _explorer_notebook(tmp_path / "optimizers.ipynb")
    result = subprocess.run([sys.executable, "-m", "nbhelpers", "export", str(notebook)], capture_output=True,
                            text=True, env=_env(), cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "optimizers.html").read_text()
    assert "widgets.interactive" not in page and "run this cell in JupyterLab" not in page  # the remove-cell cell
    assert "Paths on 2-D landscapes" in page
    assert "<math" in page and "<mi>β</mi>" in page  # the update rule, as MathML
    assert "mathjax" not in page.lower() and "$$" not in page


def test_export_refuses_a_missing_notebook_in_one_sentence(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbhelpers", "export", str(tmp_path / "nope.ipynb")],
                            capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "nope.ipynb" in result.stderr


def test_plain_nbconvert_shows_the_explorer_as_a_sentence(tmp_path):
    notebook = _explorer_notebook(tmp_path / "optimizers.ipynb")
    result = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(notebook)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "optimizers.html").read_text()
    # The tag is ignored: the cell stays, and its widget falls back to a sentence, not a repr.
    assert "run this cell in JupyterLab" in page and "interactive(children" not in page


def test_explorer_cell_offers_the_sentence_as_its_text_fallback():
    source = (NOTEBOOK_DIR / "optimizers.py").read_text()
    assert '"text/plain": "(The interactive explorer: run this cell in JupyterLab to use it.)"' in source
    assert "widgets.interact(" not in source  # interact() would display the widget's repr as fallback


def test_a_task_notebooks_imports_leave_out_the_report_tool_chain():
    """The kernel of every run imports what the notebook imports: nbformat (with jsonschema's
    grammar compilation), nbconvert and scipy.stats cost seconds per run and serve only reports."""
    code = ("import sys; import matplotlib.pyplot, torch; from nbhelpers.config import RunConfig; "
            "from nbhelpers.optim.equations import update_rule; from nbhelpers.report.plots import run_curves_figure; "
            "from nbhelpers.training import Experiment; "
            "print(sorted(m for m in ('nbformat', 'nbconvert', 'jsonschema', 'scipy.stats') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
