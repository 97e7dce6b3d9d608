"""Semantic segmentation end to end: the notebook under papermill, a two-optimizer sweep and its
report through the command line, and the seed guide's commands as they are.

Everything runs on small `shapes` splits with a 4-channel U-Net, so each run takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from nbhelpers.report.load import load_runs

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params" / "semantic_segmentation"
TINY_DATA = {"num_train": 32, "num_val": 8, "num_test": 8}
TINY_UNET = {"width": 4, "depth": 2}


def test_notebook_runs_under_papermill_and_matches_the_command_line(tmp_path):
    """The notebook's hand-made step changes nothing: it gives the numbers `run_experiment` gives
    (with sam, whose step takes a closure)."""
    import papermill

    from nbhelpers.config import RunConfig
    from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, read_notebook
    from nbhelpers.training import run_experiment

    common = {"optimizer": "sam", "epochs": 2, "batch_size": 8, "dataset_kwargs": TINY_DATA,
              "model_kwargs": TINY_UNET, "device": "cpu", "data_dir": str(tmp_path / "data"), "progress": False}
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        read_notebook(NOTEBOOK_DIR / "semantic_segmentation.py"), str(out),
        parameters={**common, "output_dir": str(tmp_path / "nb")},
        kernel_name="python3", progress_bar=False, start_timeout=120)
    summary = json.loads((tmp_path / "nb" / "runs" / "unet-sam-s0" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["dataset"] == "shapes" and summary["epochs_run"] == 2
    assert 0 <= summary["test"]["miou"] <= 1

    direct = run_experiment(RunConfig(task="semantic_segmentation", dataset="shapes", model="unet",
                                      output_dir=str(tmp_path / "cli"), **common)).summary
    for metric in ("miou", "pixel_accuracy", "dice", "loss"):
        assert summary["test"][metric] == pytest.approx(direct["test"][metric], rel=1e-6, abs=1e-9), metric

    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in executed.cells for o in c.get("outputs", []))
    assert "before the step" in text  # the hand-made training step ran
    recomputed = float(text.split("mIoU recomputed from them ")[1].split()[0])
    assert recomputed == pytest.approx(summary["test"]["miou"], abs=1e-6)
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # samples, curves, predictions, per-class IoU, confusion matrix


def test_two_optimizer_sweep_and_report_through_the_command_line(tmp_path):
    out = tmp_path / "sweep"
    base = [sys.executable, "-m", "nbhelpers"]
    sweep = subprocess.run(
        base + ["sweep", str(PARAMS / "shapes-unet.yaml"), "--optimizers", "adamw,sgd", "--epochs", "1",
                "--batch-size", "8", "--dataset-kwargs", "num_train=16,num_val=8,num_test=8",
                "--model-kwargs", "width=4,depth=2", "--device", "cpu", "--data-dir", str(tmp_path / "data"),
                "--output-dir", str(out), "--workers", "2", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    report = subprocess.run(base + ["report", str(out), "--no-notebook"], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert report.returncode == 0, report.stdout + report.stderr
    table = pd.read_csv(out / "report" / "results.csv")
    assert sorted(table["optimizer"]) == ["adamw", "sgd"]
    assert (table["primary_metric"] == "miou").all()
    assert "test_miou" in table and table["test_miou"].between(0, 1).all()
    assert "mIoU" in (out / "report" / "results.md").read_text()
    # Every metric of the task reaches the report's run table (pixel accuracy and Dice beside mIoU).
    runs = load_runs(out)
    for column in ("test_miou", "test_pixel_accuracy", "test_dice", "val_miou", "val_pixel_accuracy", "val_dice"):
        assert runs[column].between(0, 1).all(), column
    for name in ("curves_epochs.png", "curves_wallclock.png"):
        assert (out / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for optimizer in ("adamw", "sgd"):
        assert (out / "notebooks" / f"unet-{optimizer}-s0.ipynb").is_file()


@pytest.mark.parametrize("dataset,model,max_samples", [
    ("oxford_iiit_pet", "unet", None), ("oxford_iiit_pet", "deeplabv3_resnet50", None),
    ("ade20k", "unet", 12000), ("ade20k", "deeplabv3_resnet50", 12000)])
def test_seed_commands_expand_to_sixteen_runs_like_their_params_files(dataset, model, max_samples):
    """The seed guide's commands, flag for flag, and the params files that carry them."""
    from nbhelpers.sweep.expand import plan_from_args

    flags = {"task": "semantic_segmentation", "dataset": dataset, "model": model, "optimizers": "all",
             "epochs": 20, "batch_size": 8, "num_workers": 8, "lr_policy": "per_opt", "scheduler": "cosine",
             "early_stopping_patience": 5, "max_grad_norm": 1.0, "output_dir": "./results"}
    if max_samples:
        flags["max_samples"] = max_samples
    from_flags = plan_from_args(None, flags).configs
    from_file = plan_from_args(PARAMS / f"{dataset}-{model}.yaml", {"output_dir": "./results"}).configs
    assert len(from_flags) == 16 and [c.to_dict() for c in from_flags] == [c.to_dict() for c in from_file]
    assert {(c.epochs, c.batch_size, c.scheduler, c.max_grad_norm, c.max_samples) for c in from_flags} == {
        (20, 8, "cosine", 1.0, max_samples)}


@pytest.mark.slow
def test_seed_command_runs_as_it_is_on_local_pet_files(tmp_path):
    """`python -m nbhelpers run` with the guide's flags (one optimizer, a few images) on files in
    torchvision's layout: the pets loader, 256x256 inputs, U-Net at its default width."""
    from test_segmentation import _write_pets

    _write_pets(tmp_path / "data", n_trainval=10, n_test=2)
    result = subprocess.run(
        [sys.executable, "-m", "nbhelpers", "run", "--task", "semantic_segmentation", "--dataset",
         "oxford_iiit_pet", "--model", "unet", "--optimizers", "adamw", "--epochs", "1", "--batch-size", "8",
         "--num-workers", "0", "--lr-policy", "per_opt", "--scheduler", "cosine", "--early-stopping-patience", "5",
         "--max-grad-norm", "1.0", "--output-dir", str(tmp_path / "results"), "--max-samples", "4",
         "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**__import__("os").environ, "NBHELPERS_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "results" / "runs" / "unet-adamw-s0" / "summary.json").read_text())
    assert summary["status"] == "completed" and set(summary["test"]) >= {"miou", "pixel_accuracy", "dice"}
    assert summary["params_total"] > 7_000_000
