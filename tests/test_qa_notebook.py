"""Question answering end to end: the notebook under papermill, a two-optimizer sweep and its
report, the params files, and seed 001's commands (on SQuAD/TweetQA files written here)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from nbhelpers.squad_metric import squad_scores

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params" / "question_answering"
TINY = {"max_samples": 90, "batch_size": 16, "epochs": 1, "device": "cpu", "progress": False,
        "dataset_kwargs": {"train_passages": 30, "eval_passages": 10}}
# seed 001, section 6: the flags of its four commands (python -m benchmark.main there).
SEED_COMMANDS = {
    ("squad_v1", "transformer_qa"): ["--epochs", "20", "--batch-size", "32", "--max-samples", "50000"],
    ("squad_v1", "bilstm_attention_qa"): ["--epochs", "20", "--batch-size", "64", "--max-samples", "50000"],
    ("tweet_qa", "transformer_qa"): ["--epochs", "20", "--batch-size", "32", "--max-samples", "10000"],
    ("tweet_qa", "bilstm_attention_qa"): ["--epochs", "20", "--batch-size", "64", "--max-samples", "10000"],
}
COMMON = ["--optimizers", "all", "--num-workers", "8", "--lr-policy", "per_opt", "--scheduler", "plateau",
          "--early-stopping-patience", "5", "--max-grad-norm", "1.0"]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()]


def test_notebook_runs_under_papermill(tmp_path):
    import nbformat
    import papermill

    from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, read_notebook

    out = tmp_path / "executed.ipynb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        papermill.execute_notebook(
            read_notebook(NOTEBOOK_DIR / "question_answering.py"), str(out),
            parameters={**TINY, "optimizer": "sam", "model_kwargs": {"embed_dim": 16, "hidden": 16},
                        "output_dir": str(tmp_path / "sweep")},
            kernel_name="python3", progress_bar=False, start_timeout=120)
    run_dir = tmp_path / "sweep" / "runs" / "bilstm_attention_qa-sam-s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 1 and summary["dataset"] == "toy_qa"
    records = _records(run_dir)
    again = squad_scores([r["prediction"] for r in records], [r["answers"] for r in records])
    assert summary["test"]["f1"] == pytest.approx(again["f1"])
    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "before" in text and "after" in text and "relative update" in text       # the step by hand
    assert "recomputed from 30 predictions" in text and "not exactly right" in text
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "gold answer" in html and "#c8f0c8" in html                               # highlighted passage
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4              # curves + 3 questions


def test_two_optimizer_sweep_and_its_report(tmp_path):
    from nbhelpers.report import build_report
    from nbhelpers.sweep.expand import plan_from_args
    from nbhelpers.sweep.run import run_sweep

    plan = plan_from_args(PARAMS / "toy_qa-bilstm_attention_qa.yaml",
                          {**TINY, "optimizers": "adamw,sgd", "model_kwargs": {"embed_dim": 16, "hidden": 16},
                           "output_dir": str(tmp_path / "qa")})
    assert [c.run_id for c in plan.configs] == ["bilstm_attention_qa-adamw-s0", "bilstm_attention_qa-sgd-s0"]
    outcome = run_sweep(plan, workers=2)
    assert outcome.failed == 0, outcome.describe()
    report = build_report(plan.output_dir, execute_notebook=False)
    table = pd.read_csv(report / "results.csv")
    assert sorted(table["optimizer"]) == ["adamw", "sgd"]
    assert any("f1" in column.lower() for column in table.columns)
    for name in ("curves_epochs.png", "curves_wallclock.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "F1" in (report / "results.md").read_text()
    for run_id in outcome.statuses:
        summary = json.loads((plan.output_dir / "runs" / run_id / "summary.json").read_text())
        assert summary["metric_specs"]["f1"]["label"] == "F1"


def test_a_params_file_for_every_dataset_and_model():
    from nbhelpers.registry import DATASETS, MODELS, tasks_of
    from nbhelpers.sweep.expand import plan_from_args

    datasets = [e.name for e in DATASETS if "question_answering" in tasks_of(e)]
    models = [e.name for e in MODELS if "question_answering" in tasks_of(e)]
    assert sorted(datasets) == ["squad_v1", "toy_qa", "tweet_qa"]
    for dataset in datasets:
        for model in models:
            plan = plan_from_args(PARAMS / f"{dataset}-{model}.yaml", {})
            assert len(plan.configs) == 16 and {(c.dataset, c.model) for c in plan.configs} == {(dataset, model)}
            assert {(c.scheduler, c.max_grad_norm, c.early_stopping_patience) for c in plan.configs} == {("plateau", 1.0, 5)}


@pytest.mark.parametrize("dataset, model", list(SEED_COMMANDS))
def test_seed_commands_expand_as_the_seed_says(dataset, model):
    from nbhelpers.cli import build_parser
    from nbhelpers.cli import _plan

    argv = ["run", "--task", "question_answering", "--dataset", dataset, "--model", model,
            *COMMON, *SEED_COMMANDS[(dataset, model)], "--output-dir", "./results"]
    plan = _plan(build_parser().parse_args(argv))
    assert len(plan.configs) == 16
    first = plan.configs[0]
    assert (first.epochs, first.max_samples, first.num_workers, first.scheduler) == (
        20, int(SEED_COMMANDS[(dataset, model)][5]), 8, "plateau")


def test_seed_squad_command_runs_on_local_files(tmp_path, monkeypatch):
    """The seed's SQuAD command as it is (one optimizer, one epoch, a small model so it ends)."""
    from nbhelpers.cli import main

    folder = tmp_path / "data" / "squad_v1"
    folder.mkdir(parents=True)
    articles = []
    for k in range(40):
        context = f"In {1900 + k}, the engineer Ada{k} built a bridge over the river Nile{k} in town Z{k}."
        articles.append({"title": f"A{k}", "paragraphs": [{"context": context, "qas": [
            {"id": f"a{k}", "question": f"Which river did Ada{k} bridge?",
             "answers": [{"text": f"Nile{k}", "answer_start": context.index("Nile")}]}]}]})
    (folder / "train-v1.1.json").write_text(json.dumps({"data": articles, "version": "1.1"}))
    (folder / "dev-v1.1.json").write_text(json.dumps({"data": articles[:8], "version": "1.1"}))
    monkeypatch.setenv("NBHELPERS_DATA_DIR", str(tmp_path / "data"))
    argv = ["run", "--task", "question_answering", "--dataset", "squad_v1", "--model", "bilstm_attention_qa",
            *COMMON, *SEED_COMMANDS[("squad_v1", "bilstm_attention_qa")], "--output-dir", str(tmp_path / "results")]
    argv[argv.index("all")] = "adamw"
    argv[argv.index("--epochs") + 1] = "1"
    argv[argv.index("--num-workers") + 1] = "0"   # no worker processes inside the test
    code = main(argv + ["--model-kwargs", "embed_dim=8,hidden=8", "--device", "cpu", "--no-progress"])
    assert code == 0
    run_dir = tmp_path / "results" / "runs" / "bilstm_attention_qa-adamw-s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["dataset"] == "squad_v1"
    assert len(_records(run_dir)) == 8
