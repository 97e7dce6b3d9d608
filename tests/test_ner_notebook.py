"""notebooks/ner.py under papermill: a small sweep of the offline params file with two
optimizers (each run is one executed notebook), then its report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params" / "ner" / "gazetteer_ner-bilstm_crf_charcnn_ner.yaml"


def test_every_dataset_model_pair_has_a_params_file():
    from nbhelpers.sweep.expand import plan_from_args

    for dataset in ("gazetteer_ner", "conll2003", "wikiann_en"):
        for model in ("lstm_crf_ner", "bilstm_crf_charcnn_ner"):
            plan = plan_from_args(ROOT / "params" / "ner" / f"{dataset}-{model}.yaml", {})
            assert len(plan.configs) == 16
            assert {(c.task, c.dataset, c.model) for c in plan.configs} == {("ner", dataset, model)}


def test_a_two_optimizer_sweep_runs_the_notebook_and_reports(tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    import nbformat

    from nbhelpers.report import build_report
    from nbhelpers.sweep.expand import plan_from_args
    from nbhelpers.sweep.run import run_sweep

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernels inherit it: two of them share two cores
    plan = plan_from_args(PARAMS, {"optimizers": "adamw,sgd", "epochs": 1, "batch_size": 32, "max_samples": 64,
                                   "model_kwargs": {"hidden": 16, "embed_dim": 16, "char_filters": 8},
                                   "device": "cpu", "output_dir": str(tmp_path / "sweep"), "progress": False})
    outcome = run_sweep(plan, workers=2)
    assert outcome.failed == 0, outcome.describe()

    for optimizer in ("adamw", "sgd"):
        run_id = f"bilstm_crf_charcnn_ner-{optimizer}-s0"
        summary = json.loads((plan.output_dir / "runs" / run_id / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["dataset"] == "gazetteer_ner"
        executed = nbformat.read(plan.output_dir / "notebooks" / f"{run_id}.ipynb", as_version=4)
        outputs = [o for c in executed.cells for o in c.get("outputs", [])]
        text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
        assert f"seqeval on predictions_test.jsonl: F1 {summary['test']['f1']:.4f}" in text
        assert "CRF constrained to IOB2: True" in text and "loss on this batch" in text
        html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
        assert "predicted</td>" in html and "background:#fde68a" in html  # tagged sentences, PER coloured
        # The learning curves, F1 per entity type and the transition heatmap.
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3

    report = build_report(plan.output_dir, execute_notebook=False)
    table = pd.read_csv(report / "results.csv")
    assert sorted(table["optimizer"]) == ["adamw", "sgd"]
    for metric in ("f1", "precision", "recall", "f1_PER", "f1_ORG", "f1_LOC", "f1_MISC", "loss"):
        assert f"test_{metric}" in table.columns and f"val_{metric}" in table.columns, metric
    assert table["test_f1"].between(0, 1).all()
    markdown = (report / "results.md").read_text()
    assert "F1 PER" in markdown and "precision" in markdown  # the metrics' labels head the columns
    assert (report / "index.html").is_file() and (report / "curves_epochs.png").is_file()
