"""A two-optimizer sweep of the translation notebook through papermill, and its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TINY_DATA = {"train_size": 120, "eval_size": 12, "vocab_size": 320}


def test_a_two_optimizer_sweep_and_its_report(tmp_path):
    out = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "nbhelpers", "sweep", "params/machine_translation/toy_translation-transformer_seq2seq.yaml",
         "--optimizers", "adamw,sgd", "--epochs", "1", "--batch-size", "16", "--max-samples", "32",
         "--val-max-samples", "8", "--dataset-kwargs", ",".join(f"{k}={v}" for k, v in TINY_DATA.items()),
         "--model-kwargs", "size=tiny,d_model=16,heads=2,ff=32,layers=1",
         "--device", "cpu", "--output-dir", str(out), "--workers", "2", "--no-progress", "--report"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = pd.read_csv(out / "report" / "results.csv")
    assert sorted(table["optimizer"]) == ["adamw", "sgd"]
    for column in ("val_bleu", "test_bleu", "test_chrf"):  # a column per declared metric
        assert table[column].between(0, 100).all()
    markdown = (out / "report" / "results.md").read_text()
    assert "BLEU" in markdown and "chrF" in markdown
    assert (out / "report" / "index.html").is_file()
    for optimizer in ("adamw", "sgd"):
        run = out / "runs" / f"transformer_seq2seq-{optimizer}-s0"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and set(summary["test"]) == {"loss", "bleu", "chrf"}
