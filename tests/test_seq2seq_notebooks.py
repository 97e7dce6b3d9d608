"""The translation and summarization notebooks under papermill on tiny settings, every params
file, and the seed guide's commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from nbhelpers.config import validate_config
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, read_notebook

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {task: sorted((ROOT / "params" / task).glob("*.yaml")) for task in ("machine_translation",
                                                                           "text_summarization")}
TINY_DATA = {"train_size": 120, "eval_size": 12, "vocab_size": 320}


def _outputs(notebook) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in notebook.cells for o in c.get("outputs", []))


def _images(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("task, model, model_kwargs, metric", [
    # lstm_seq2seq on translation: the heatmap cell runs too.
    ("machine_translation", "lstm_seq2seq", {"embed_dim": 16, "hidden": 16, "layers": 1}, "bleu"),
    ("text_summarization", "tiny_transformer_seq2seq", {"d_model": 16, "heads": 2, "ff": 32, "layers": 1}, "rougeL"),
])
def test_notebook_runs_under_papermill(tmp_path, monkeypatch, task, model, model_kwargs, metric):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        read_notebook(NOTEBOOK_DIR / f"{task}.py"), str(out),
        parameters={"model": model, "optimizer": "sgd", "epochs": 1, "batch_size": 16, "max_samples": 32,
                    "val_max_samples": 8, "dataset_kwargs": TINY_DATA, "model_kwargs": model_kwargs,
                    "device": "cpu", "output_dir": str(tmp_path / "sweep"), "progress": False},
        kernel_name="python3", progress_bar=False, start_timeout=120)
    run_dir = tmp_path / "sweep" / "runs" / f"{model}-sgd-s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["task"] == task
    assert 0 <= summary["test"][metric] <= 100
    assert len((run_dir / "predictions_test.jsonl").read_text().splitlines()) == 12
    executed = nbformat.read(out, as_version=4)
    text = _outputs(executed)
    assert "pieces:" in text and "before the step" in text and "test:" in text
    assert "beam search changed" in text and "source words" in text
    # curves, score by length, and for the LSTM the attention heatmap
    assert _images(executed) >= (3 if model == "lstm_seq2seq" else 2)


@pytest.mark.parametrize("path", PARAMS["machine_translation"] + PARAMS["text_summarization"],
                         ids=lambda p: p.stem)
def test_every_params_file_expands_to_valid_runs(path):
    plan = plan_from_args(path, {})
    assert len(plan.configs) == 16  # every optimizer
    for cfg in plan.configs[:2]:
        validate_config(cfg)
    dataset, model = path.stem.split("-")
    assert {(c.dataset, c.model) for c in plan.configs} == {(dataset, model)}


def test_transformer_params_files_warm_up_then_decay_as_inverse_square_root():
    for path in PARAMS["machine_translation"] + PARAMS["text_summarization"]:
        cfg = plan_from_args(path, {}).configs[0]
        if cfg.model == "lstm_seq2seq":
            assert cfg.scheduler == "plateau", path.name  # the seed guide's choice for RNNs
        else:
            assert cfg.scheduler == "inverse_sqrt" and cfg.warmup_epochs > 0, path.name


def test_there_is_a_params_file_for_every_dataset_and_model():
    from nbhelpers.config import datasets_for, models_for
    for task, files in PARAMS.items():
        expected = {f"{d}-{m}" for d in datasets_for(task) for m in models_for(task)}
        assert {p.stem for p in files} == expected and len(expected) == 12


SEED_COMMANDS = [
    ("machine_translation", "iwslt14_en_de", "transformer_seq2seq", "64", "50000"),
    ("machine_translation", "iwslt14_en_de", "lstm_seq2seq", "64", "50000"),
    ("machine_translation", "europarl_bilingual", "transformer_seq2seq", "64", "60000"),
    ("machine_translation", "europarl_bilingual", "lstm_seq2seq", "64", "60000"),
    ("text_summarization", "cnn_dailymail", "bart_small", "16", "50000"),
    ("text_summarization", "cnn_dailymail", "tiny_transformer_seq2seq", "32", "50000"),
    ("text_summarization", "aeslc", "bart_small", "16", "10000"),
    ("text_summarization", "aeslc", "tiny_transformer_seq2seq", "32", "10000"),
]


def _seed_args(task, dataset, model, batch, samples, out):
    return ["run", "--task", task, "--dataset", dataset, "--model", model, "--optimizers", "all",
            "--epochs", "20", "--batch-size", batch, "--max-samples", samples, "--num-workers", "8",
            "--lr-policy", "per_opt", "--scheduler", "plateau", "--early-stopping-patience", "5",
            "--max-grad-norm", "1.0", "--output-dir", str(out)]


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=lambda c: f"{c[1]}-{c[2]}")
def test_the_seed_guides_commands_are_understood(command, tmp_path):
    from nbhelpers.cli import _plan, build_parser  # the command line's own path from flags to runs
    plan = _plan(build_parser().parse_args(_seed_args(*command, tmp_path)))
    assert len(plan.configs) == 16
    cfg = validate_config(plan.configs[0])
    assert (cfg.task, cfg.dataset, cfg.model, cfg.epochs, cfg.num_workers) == (*command[:3], 20, 8)


def test_a_seed_command_without_the_data_says_so_in_one_sentence(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbhelpers", *_seed_args(*SEED_COMMANDS[0], tmp_path / "out"),
                             "--data-dir", str(tmp_path / "cache")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "iwslt14_en_de" in error[0] and "toy_translation" in error[0]
