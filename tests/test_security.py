"""Security: run ids that stay inside --output-dir, escaped report HTML, checkpoints read as data."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
import torch

from nbhelpers.cli import main
from nbhelpers.errors import UserInputError
from nbhelpers.report.html import FigureEntry, RunEntry, index_page, notebook_to_html
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.training.rundir import load_checkpoint

MARKUP = "<img src=x onerror=alert(1)>"
TINY = ("task: image_classification\ndataset: digits\nmodel: cnn_scratch\noptimizers: [adam]\n"
        "epochs: 1\nbatch_size: 32\nmax_samples: 48\nmodel_kwargs: {hidden: 8}\nprogress: false\n")


def _files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_grid_values_cannot_leave_the_output_folder_nor_inject_html(tmp_path, capsys):
    params = tmp_path / "hostile.yaml"
    # data_dir takes any string and digits ignores it: the values reach only the run ids.
    params.write_text(TINY + f"grid:\n  data_dir: ['/../../../../escape', '{MARKUP}']\n")
    out = tmp_path / "deep" / "er" / "out"
    plan = plan_from_args(params, {"output_dir": str(out)})
    for cfg in plan.configs:
        assert "/" not in cfg.run_id and "<" not in cfg.run_id
        assert cfg.run_dir.resolve().parent == (out / "runs").resolve()

    assert main(["run", str(params), "--output-dir", str(out)]) == 0
    assert {p.name for p in (out / "runs").iterdir()} == {c.run_id for c in plan.configs}
    assert _files_under(tmp_path) == sorted(["hostile.yaml", *[f"deep/er/out/{f}" for f in _files_under(out)]])

    # The report (its executed notebook included) shows the values, never runs them.
    assert main(["report", str(out)]) == 0, capsys.readouterr().err
    pages = {p.name: p.read_text() for p in (out / "report").glob("*.html")}
    assert {"index.html", "report.html"} <= set(pages)
    for name, page in pages.items():
        assert MARKUP not in page, name


def test_markup_printed_by_a_notebook_is_shown_as_text():
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(Markdown(caption))")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": f"**Figure 1.** validation accuracy of run {MARKUP}; $\\rho_t > 5$ and $a < b$"})]
    notebook.cells = [nbformat.v4.new_markdown_cell("An <em>author's</em> cell"), cell]
    page = notebook_to_html(notebook, title="t")
    assert MARKUP not in page and "&lt;img src=x onerror=alert(1)" in page
    assert "<em>author's</em>" in page          # what the notebook's author wrote stays HTML
    assert "\\rho_t &gt; 5" in page or "\\rho_t > 5" in page  # maths untouched


def test_index_page_escapes_run_ids_captions_and_details():
    page = index_page(title=MARKUP, subtitle=MARKUP, table_html="<table></table>",
                      figures=[FigureEntry("curves.png", f"runs {MARKUP}")],
                      runs=[RunEntry(MARKUP, "completed", None, MARKUP)])
    assert MARKUP not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") >= 4


class _Payload:
    """What a crafted checkpoint holds: unpickling it would call os.mkdir(marker)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_crafted_checkpoint_is_refused_not_executed(tmp_path, capsys):
    params = tmp_path / "tiny.yaml"
    params.write_text(TINY)
    out = tmp_path / "out"
    cfg = plan_from_args(params, {"output_dir": str(out)}).configs[0]
    cfg.run_dir.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"model": {}, "settings": None, "payload": _Payload(marker)}, cfg.run_dir / "last.pt")
    (cfg.run_dir / "summary.json").write_text(json.dumps({"run_id": cfg.run_id, "status": "running"}))

    code = main(["run", str(params), "--output-dir", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert "cannot be loaded safely" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UserInputError):
        load_checkpoint(cfg.run_dir / "last.pt")
    assert not marker.exists()


def test_checkpoints_the_trainer_writes_load_as_data(tiny_cfg):
    from nbhelpers.training import run_experiment
    run = run_experiment(tiny_cfg.replace(epochs=1))
    state = load_checkpoint(run.run_dir / "last.pt")
    assert set(state) >= {"model", "optimizer", "rng", "progress", "settings", "threads"}
    assert state["settings"]["optimizer"] == "adamw" and "output_dir" not in state["settings"]
    assert load_checkpoint(run.run_dir / "best_model.pt").keys() == state["model"].keys()
