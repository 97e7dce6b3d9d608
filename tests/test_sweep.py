"""Sweeps: expanding params files, executing notebooks with papermill, failures, --resume."""

from __future__ import annotations

import json

import pytest

from nbhelpers.cli import main
from nbhelpers.errors import UserInputError
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.training import Experiment

DEMO = "params/image_classification/digits-cnn_scratch.yaml"


def test_all_expands_to_sixteen_runs_with_readable_ids(tmp_path):
    plan = plan_from_args(DEMO, {"output_dir": str(tmp_path)})
    assert len(plan.configs) == 16
    assert plan.configs[1].run_id == "cnn_scratch-sgd_momentum-s0"
    assert all(c.epochs == 15 and c.batch_size == 32 for c in plan.configs)


def test_grid_seeds_and_command_line_overrides(tmp_path):
    params = tmp_path / "grid.yaml"
    params.write_text("task: image_classification\ndataset: digits\nmodel: cnn_scratch\n"
                      "optimizers: [adam, sgd]\nseeds: 2\ngrid:\n  model_kwargs.hidden: [32, 64]\n")
    plan = plan_from_args(params, {"epochs": 3})
    assert len(plan.configs) == 2 * 2 * 2
    ids = {c.run_id for c in plan.configs}
    assert "cnn_scratch-adam-hidden32-s1" in ids
    assert all(c.epochs == 3 for c in plan.configs)
    assert plan.output_dir.name == "grid"
    only_adam = plan_from_args(params, {"optimizers": "adam", "seeds": 1})
    assert {c.optimizer for c in only_adam.configs} == {"adam"} and len(only_adam.configs) == 2


def test_experiments_list_and_optimizer_filter(tmp_path):
    params = tmp_path / "exp.yaml"
    params.write_text("task: image_classification\ndataset: digits\nexperiments:\n"
                      "  - {model: cnn_scratch, optimizer: adam, model_kwargs.hidden: 16}\n"
                      "  - {model: mnist_tiny, optimizer: momentum}\n")
    plan = plan_from_args(params, {})
    assert [c.run_id for c in plan.configs] == ["cnn_scratch-adam-hidden16-s0", "mnist_tiny-sgd_momentum-s0"]
    assert len(plan_from_args(params, {"optimizers": "sgd_momentum"}).configs) == 1


def test_unknown_settings_are_refused(tmp_path):
    params = tmp_path / "typo.yaml"
    params.write_text("task: image_classification\nepochz: 3\n")
    with pytest.raises(UserInputError, match="unknown setting 'epochz'"):
        plan_from_args(params, {})


@pytest.mark.slow  # 46 s; test_reliability covers the statuses and exit code, test_trainer the exact resume
def test_sweep_records_failures_goes_on_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    params = tmp_path / "mixed.yaml"
    # One good run, one that diverges (absurd LR), one that fails (MNIST is not cached).
    params.write_text(
        "task: image_classification\ndataset: digits\nmodel: cnn_scratch\nepochs: 2\nbatch_size: 32\n"
        "max_samples: 96\nmodel_kwargs: {hidden: 32}\nprogress: false\n"
        f"data_dir: {tmp_path / 'empty-cache'}\n"
        "experiments:\n"
        "  - {optimizer: adamw}\n"
        "  - {optimizer: sgd, lr: 1.0e+12}\n"
        "  - {optimizer: adam, dataset: mnist}\n")
    code = main(["sweep", str(params), "--output-dir", str(out), "--workers", "2"])
    assert code == 1                                   # the exit status counts failed runs
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["statuses"] == {"cnn_scratch-adamw-s0": "completed", "cnn_scratch-sgd-lr1e+12-s0": "diverged",
                                    "cnn_scratch-adam-s0": "failed"}
    assert "mnist" in manifest["errors"]["cnn_scratch-adam-s0"]
    for run_id in manifest["runs"]:
        assert (out / "notebooks" / f"{run_id}.ipynb").exists()   # papermill keeps failed notebooks too
    failed = json.loads((out / "runs" / "cnn_scratch-adam-s0" / "summary.json").read_text())
    assert failed["status"] == "failed"

    # Interrupt a fourth run after one of its two epochs, then let --resume finish it.
    cfg = plan_from_args(params, {"output_dir": str(out)}).configs[0].replace(optimizer="radam")
    exp = Experiment(cfg)
    exp.load_data(), exp.build_model(), exp.build_optimizer(), exp.build_trainer()
    exp.trainer.on_epoch_end = lambda row: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        exp.fit()
    params.write_text(params.read_text() + "  - {optimizer: radam}\n")
    done_before = (out / "runs" / "cnn_scratch-adamw-s0" / "summary.json").read_text()
    capsys.readouterr()
    code = main(["sweep", str(params), "--output-dir", str(out), "--resume"])
    assert code == 1                                   # MNIST still is not cached
    assert (out / "runs" / "cnn_scratch-adamw-s0" / "summary.json").read_text() == done_before
    resumed = json.loads((out / "runs" / "cnn_scratch-radam-s0" / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed_from_epoch"] == 1
    assert resumed["epochs_run"] == 2

    assert main(["report", str(out), "--no-notebook"]) == 0
    results = (out / "report" / "results.csv").read_text()
    assert "diverged" in results and "failed" in results


def _sweep_end_to_end(tmp_path, optimizers: str, expected: list[str]) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", DEMO, "--optimizers", optimizers, "--epochs", "1", "--max-samples", "64",
                 "--model-kwargs", "hidden=16", "--output-dir", str(out), "--workers", "2",
                 "--no-progress", "--report"])
    assert code == 0
    statuses = json.loads((out / "sweep.json").read_text())["statuses"]
    assert len(statuses) == len(expected) and set(statuses.values()) == {"completed"}
    import pandas as pd
    table = pd.read_csv(out / "report" / "results.csv")
    assert sorted(table["optimizer"]) == sorted(expected)
    assert (out / "report" / "index.html").exists()
    assert len(list((out / "report" / "notebooks").glob("*.html"))) == len(expected)


def test_a_sign_and_a_two_pass_optimizer_sweep_end_to_end(tmp_path):
    """lion and sam (its closure's second pass) through papermill, the Trainer and the report, on
    a sliver of digits; every one of the 16 trains in test_optim_table, all 16 sweep in the slow test."""
    _sweep_end_to_end(tmp_path, "lion,sam", ["lion", "sam"])


@pytest.mark.slow  # sixteen papermill runs: about 2.5 minutes on 2 quiet cores
def test_optimizers_all_sweeps_the_sixteen_end_to_end(tmp_path):
    """Every optimizer through papermill, the Trainer and the report, on a sliver of digits."""
    from nbhelpers.optim import all_names
    _sweep_end_to_end(tmp_path, "all", list(all_names()))
