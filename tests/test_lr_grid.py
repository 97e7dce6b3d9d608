"""The LR-grid protocol: expansion, validation, selection on validation, phases and resume, the report."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from nbhelpers.cli import main
from nbhelpers.errors import UserInputError
from nbhelpers.lr_selection import LrCandidate, grid_edge, read_selection, select_lr
from nbhelpers.optim import get_spec
from nbhelpers.sweep import run as sweep_run
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.sweep.lr_grid import arm_of, parse_lr_grid
from nbhelpers.training.rundir import RunDir, write_json

DEMO = "params/image_classification/digits-cnn_scratch.yaml"
TINY = {"epochs": 1, "max_samples": 64, "model_kwargs": {"hidden": 16}, "progress": False}


# ----------------------------------------------------------------------------- expansion
def test_multipliers_scale_each_optimizers_table_lr_and_name_the_runs(tmp_path):
    plan = plan_from_args(DEMO, {"optimizers": "sgd,adam,lion", "seeds": 3, "lr_grid": "x0.1,x1,x10",
                                 "output_dir": str(tmp_path)})
    assert [c.seed for c in plan.configs] == [0] * 9            # phase 1: every LR on the first seed
    for name in ("sgd", "adam", "lion"):
        centre = get_spec(name).lr_for("vision")
        lrs = sorted(c.lr for c in plan.configs if c.optimizer == name)
        assert lrs == pytest.approx([centre / 10, centre, centre * 10])
    ids = [c.run_id for c in plan.all_configs]
    assert len(set(ids)) == len(ids) == 9 * 3
    assert "cnn_scratch-sgd-lr0.005-s0" in ids and "cnn_scratch-lion-lr3e-05-s2" in ids
    assert all(c.lr_overrides == "" and c.grid["lr"] == c.lr for c in plan.all_configs)
    assert {c.seed for c in plan.later} == {1, 2}
    # One optimizer keeps one experiment number (the report's #) across its LRs and seeds.
    assert {c.experiment for c in plan.all_configs if c.optimizer == "adam"} == {2}
    assert {arm_of(c) for c in plan.all_configs} == {"cnn_scratch-sgd", "cnn_scratch-adam", "cnn_scratch-lion"}


def test_absolute_values_from_yaml_and_overrides_as_the_centre(tmp_path):
    params = tmp_path / "grid.yaml"
    # PyYAML reads 1e-4 (no dot) as text: the grid accepts both spellings.
    params.write_text("task: image_classification\ndataset: digits\nmodel: cnn_scratch\n"
                      "optimizers: [adam, sgd]\nlr_grid: [1e-4, 3.0e-4]\n")
    plan = plan_from_args(params, {"output_dir": str(tmp_path / "o")})
    assert {(c.optimizer, c.lr) for c in plan.configs} == {("adam", 1e-4), ("adam", 3e-4), ("sgd", 1e-4), ("sgd", 3e-4)}
    assert plan.lr_grid.relative is False and plan.later == ()
    relative = plan_from_args(DEMO, {"optimizers": "sgd", "lr_overrides": "sgd=0.2", "lr_grid": "x0.5,x1",
                                     "output_dir": str(tmp_path / "p")})
    assert sorted(c.lr for c in relative.configs) == [0.1, 0.2]   # around the override, which is then cleared


def test_without_a_grid_nothing_changes(tmp_path):
    plan = plan_from_args(DEMO, {"optimizers": "adam", "seeds": 2, "output_dir": str(tmp_path)})
    assert [c.run_id for c in plan.configs] == ["cnn_scratch-adam-s0", "cnn_scratch-adam-s1"]
    assert plan.lr_grid is None and plan.later == ()


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("text, words", [
    ("x0.1,abc", "neither a multiplier"),
    ("x0.1,1e-3", "mixes multipliers"),
    ("x1", "at least two values"),
    ("x0,x1", "positive number"),
    ("1e-3,-1e-3", "positive number"),
    ("x1,x1.0", "twice"),
    (",", "empty"),
    ("x1,xnan", "positive number"),
])
def test_bad_grids_are_one_sentence_and_exit_2(tmp_path, capsys, text, words):
    out = tmp_path / "out"
    code = main(["sweep", DEMO, "--optimizers", "adam", "--lr-grid", text, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()                                  # nothing written


def test_conflicting_lr_settings_are_refused(tmp_path):
    params = tmp_path / "both.yaml"
    params.write_text("task: image_classification\noptimizers: [adam]\ngrid:\n  lr: [0.001, 0.01]\n")
    with pytest.raises(UserInputError, match="in one place"):
        plan_from_args(params, {"lr_grid": "x1,x3"})
    with pytest.raises(UserInputError, match="'lr' cannot be given"):
        plan_from_args(DEMO, {"optimizers": "adam", "lr": 0.01, "lr_grid": "1e-3,1e-2"})
    with pytest.raises(UserInputError, match="'lr_overrides' cannot be given"):
        plan_from_args(DEMO, {"optimizers": "adam", "lr_overrides": "adam=0.1", "lr_grid": "1e-3,1e-2"})
    for bad in (True, {"a": 1}, []):
        with pytest.raises(UserInputError, match="LR grid"):
            parse_lr_grid(bad, source="params.yaml: lr_grid")


# ----------------------------------------------------------------------------- selection
def _c(lr, val, status="completed"):
    return LrCandidate(lr, f"m-o-lr{lr:g}-s0", status, val)


def test_selection_follows_the_metric_direction_and_ties_go_to_the_smaller_lr():
    candidates = [_c(1e-3, 0.90), _c(1e-2, 0.95), _c(1e-1, 0.93)]
    assert select_lr(candidates, higher_is_better=True).lr == 1e-2
    assert select_lr(candidates, higher_is_better=False).lr == 1e-3      # perplexity-like: lowest wins
    assert select_lr([_c(3e-3, 0.95), _c(1e-3, 0.95), _c(1e-2, 0.95)], higher_is_better=True).lr == 1e-3


def test_diverged_failed_and_unmeasured_runs_are_never_selected():
    candidates = [_c(1e-3, 0.50), _c(1e-2, 0.99, "diverged"), _c(1e-1, 0.999, "failed"), _c(1.0, None),
                  _c(3.0, math.nan), _c(10.0, 0.98, "running")]
    assert select_lr(candidates, higher_is_better=True).lr == 1e-3
    assert select_lr(candidates[1:], higher_is_better=True) is None
    assert select_lr([_c(1e-3, 0.7, "early_stopped"), _c(1e-2, 0.6)], higher_is_better=True).lr == 1e-3


def test_grid_edges():
    grid = [1e-4, 1e-3, 1e-2]
    assert grid_edge(1e-4, grid) == "low" and grid_edge(1e-2, grid) == "high"
    assert grid_edge(1e-3, grid) is None and grid_edge(None, grid) is None


# ----------------------------------------------------------------------------- phases, resume, report
# Fake runs: validation peaks at each optimizer's middle LR, except sgd (best at the smallest,
# an edge) and lion (its largest LR diverges after the best validation value of all). The test
# split prefers the largest LR everywhere, so a selection that peeked at test would differ.
def _fake_outcome(cfg, grid_lrs):
    rank = sorted(grid_lrs).index(cfg.lr)
    val = {"sgd": [0.9, 0.8, 0.7], "adam": [0.8, 0.95, 0.9], "lion": [0.7, 0.9, 0.99]}[cfg.optimizer][rank]
    status = "diverged" if cfg.optimizer == "lion" and rank == 2 else "completed"
    val -= 0.01 * cfg.seed
    return status, val, 0.5 + 0.2 * rank + 0.001 * cfg.seed


def _fake_sweep(monkeypatch, calls, *, stop_after=None):
    """Replace the papermill execution of one run by a summary.json written from _fake_outcome."""
    def fake_one_run(cfg, threads):
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt
        calls.append(cfg.run_id)
        grid_lrs = sorted(c.lr for c in plan_from_args(DEMO, {"optimizers": cfg.optimizer, "lr_grid": "x0.3,x1,x3",
                                                               "output_dir": cfg.output_dir}).configs)
        status, val, test = _fake_outcome(cfg, grid_lrs) if cfg.lr in grid_lrs else ("completed", 0.9, 0.9)
        summary = {"run_id": cfg.run_id, "task": cfg.task, "dataset": cfg.dataset, "model": cfg.model,
                   "optimizer": cfg.optimizer, "seed": cfg.seed, "grid": dict(cfg.grid), "experiment": cfg.experiment,
                   "status": status, "primary_metric": "accuracy", "higher_is_better": True,
                   "metric_specs": {"accuracy": {"label": "accuracy", "higher_is_better": True, "unit": "%",
                                                 "scale": 100.0, "digits": 2, "proportion": True}},
                   "best_val": val, "val": {"accuracy": val, "loss": 1 - val},
                   "test": {"accuracy": test, "loss": 1 - test},
                   "train": {"accuracy": val, "loss": 1 - val}, "epochs_run": 1, "best_epoch": 1, "examples_test": 269}
        write_json(RunDir(cfg.run_dir).summary, summary)
        write_json(RunDir(cfg.run_dir).path / "config.json", {"config": cfg.to_dict(), "environment": {}})
        return cfg.run_id, status, None

    monkeypatch.setattr(sweep_run, "_one_run", fake_one_run)


def test_phases_select_on_validation_resume_and_the_report_shows_selected_runs_only(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    args = {"optimizers": "sgd,adam,lion", "seeds": 3, "lr_grid": "x0.3,x1,x3", "output_dir": str(out), **TINY}
    calls: list[str] = []
    _fake_sweep(monkeypatch, calls, stop_after=9 + 2)          # stopped during phase 2
    with pytest.raises(KeyboardInterrupt):
        sweep_run.run_sweep(plan_from_args(DEMO, args), workers=1)
    grid, arms = read_selection(out)
    chosen = {a.optimizer: (a.selected_lr, a.edge) for a in arms}
    sgd, adam, lion = (get_spec(n).lr_for("vision") for n in ("sgd", "adam", "lion"))
    assert chosen == {"sgd": (pytest.approx(sgd * 0.3), "low"), "adam": (pytest.approx(adam), None),
                      "lion": (pytest.approx(lion), None)}               # lion's diverged best is not eligible
    assert grid["text"] == "x0.3,x1,x3"
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["lr_selection"]["cnn_scratch-sgd"]["edge"] == "low"

    # Without --resume the finished runs are refused; with it, phase 2 continues from the disk.
    with pytest.raises(UserInputError, match="already finished"):
        sweep_run.run_sweep(plan_from_args(DEMO, args), workers=1)
    calls.clear()
    _fake_sweep(monkeypatch, calls)
    outcome = sweep_run.run_sweep(plan_from_args(DEMO, {**args, "resume": True}), workers=1)
    assert len(calls) == 6 - 2 and all(not c.endswith("-s0") for c in calls)   # no phase-1 run again
    assert len(outcome.statuses) == 9 + 6
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["runs"]) == 15 and manifest["lr_grid"]["relative"] is True

    from nbhelpers.report import build_report
    report = build_report(out, execute_notebook=False)
    table = pd.read_csv(report / "results.csv")
    assert sorted(table["optimizer"]) == ["adam", "lion", "sgd"] and set(table["n_runs"]) == {3}
    assert "lr" in table.columns and "grid.lr" not in table.columns
    assert dict(zip(table["optimizer"], table["lr"])) == pytest.approx({"sgd": sgd * 0.3, "adam": adam, "lion": lion})
    assert dict(zip(table["optimizer"], table["lr_edge"].fillna(""))) == {"sgd": "low", "adam": "", "lion": ""}
    # Test numbers are those of the selected LR (validation chose; test would have chosen the largest).
    adam_test = table.loc[table["optimizer"] == "adam", "test_accuracy"].item()
    assert adam_test == pytest.approx(0.7 + 0.001)
    markdown = (report / "results.md").read_text()
    assert "(edge: low)" in markdown and "selected per optimizer on validation" in markdown
    assert markdown.count("| cnn_scratch |") == 3            # one row per optimizer, no grid rows
    page = (report / "index.html").read_text()
    assert "Learning rates were tuned per optimizer" in page and "sgd (smallest LR)" in page
    assert "the 6 runs at other LRs appear only in the LR-sensitivity figure" in page
    assert (report / "lr_sensitivity.svg").is_file() and "lr_sensitivity.png" in page
    from nbhelpers.report.leaderboard import load_sweeps
    board = load_sweeps([out])                                  # the leaderboard counts selected runs only
    assert len(board) == 9 and set(board["grid_label"]) == {""}


def test_report_without_a_grid_has_no_protocol(tmp_path, monkeypatch):
    out = tmp_path / "plain"
    out.mkdir()
    (out / "lr_selection.json").write_text('{"arms": []}')    # an earlier grid sweep's, in the same folder
    _fake_sweep(monkeypatch, [])
    sweep_run.run_sweep(plan_from_args(DEMO, {"optimizers": "adam,sgd", "output_dir": str(out), **TINY}), workers=1)
    from nbhelpers.report import build_report
    report = build_report(out, execute_notebook=False)
    assert not (report / "lr_sensitivity.png").exists() and not (out / "lr_selection.json").exists()
    assert "Learning rates were tuned" not in (report / "index.html").read_text()
    assert "lr_edge" not in pd.read_csv(report / "results.csv").columns
    assert "lr_grid" not in json.loads((out / "sweep.json").read_text())


# ----------------------------------------------------------------------------- real runs
def test_a_tiny_real_grid_in_process(tmp_path, capsys):
    """Real training (no fakes): two optimizers, two LRs, two seeds; then the report."""
    out = tmp_path / "real"
    code = main(["run", DEMO, "--optimizers", "adam,sgd", "--seeds", "2", "--lr-grid", "x0.1,x1", "--epochs", "1",
                 "--max-samples", "64", "--model-kwargs", "hidden=16", "--output-dir", str(out), "--no-progress"])
    assert code == 0
    grid, arms = read_selection(out)
    for arm in arms:
        summaries = {c.lr: json.loads((out / "runs" / c.run_id / "summary.json").read_text()) for c in arm.candidates}
        best = max(s["best_val"] for s in summaries.values())
        assert summaries[arm.selected_lr]["best_val"] == best
        assert min(lr for lr, s in summaries.items() if s["best_val"] == best) == arm.selected_lr
        assert (out / "runs" / arm.run_ids[1] / "summary.json").is_file() and arm.run_ids[1].endswith("-s1")
    assert len(list((out / "runs").iterdir())) == 4 + 2
    assert main(["report", str(out), "--no-notebook"]) == 0
    table = pd.read_csv(out / "report" / "results.csv")
    assert len(table) == 2 and set(table["n_runs"]) == {2}


@pytest.mark.slow  # 9 real runs: about 30 CPU seconds
def test_real_demo_runs_tie_identical_updates_and_not_a_broken_lr(tmp_path):
    """Issue 12's proof on real runs of the demo's params: adam and adamw at zero weight decay make
    identical updates, so the report must call them tied; sgd at lr 1e-6 barely moves and must not be."""
    out = tmp_path / "demo"
    code = main(["run", DEMO, "--optimizers", "adam,adamw,sgd", "--lr-overrides", "sgd=1e-6", "--weight-decay", "0",
                 "--seeds", "3", "--epochs", "3", "--max-samples", "640", "--model-kwargs", "hidden=16",
                 "--output-dir", str(out), "--no-progress"])
    assert code == 0
    from nbhelpers.report import load_runs, results_tables, verdict
    table = results_tables(load_runs(out))[0]
    numbers = table.numbers.set_index("optimizer")
    assert numbers.loc["adam", "test_accuracy"] == numbers.loc["adamw", "test_accuracy"]   # bit-identical runs
    assert numbers.loc["sgd", "test_accuracy"] < numbers.loc["adam", "test_accuracy"] - 0.1
    winner = "adam" if numbers.loc["adam", "best_in_model"] else "adamw"
    other = {"adam": "adamw", "adamw": "adam"}[winner]
    assert numbers.loc[other, "tied_with_best"] or numbers.loc[other, "best_in_model"]   # equal: bold as well
    assert not numbers.loc["sgd", "tied_with_best"] and not numbers.loc["sgd", "best_in_model"]
    text = verdict(table)
    assert f"{winner} has the best test accuracy" in text
    assert f"Tied with it at 95% (the data cannot tell them apart): {other}." in text


@pytest.mark.slow  # six papermill kernels and the executed report notebook
def test_a_tiny_grid_sweep_through_papermill_with_the_report_notebook(tmp_path):
    out = tmp_path / "sweep"
    code = main(["sweep", DEMO, "--optimizers", "adam,sgd", "--seeds", "2", "--lr-grid", "x0.1,x1", "--epochs", "1",
                 "--max-samples", "64", "--model-kwargs", "hidden=16", "--output-dir", str(out), "--workers", "2",
                 "--no-progress", "--report"])
    assert code == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["runs"]) == 6 and set(manifest["statuses"].values()) == {"completed"}
    selected = {arm: choice["lr"] for arm, choice in manifest["lr_selection"].items()}
    assert all(any(r == f"{arm}-lr{lr:g}-s1" for r in manifest["runs"]) for arm, lr in selected.items())
    notebook = (out / "report" / "report.html").read_text()
    assert "Learning rates were tuned per optimizer" in notebook and "LR sensitivity" in notebook


def test_demo_passes_seeds_and_the_grid_to_its_sweep(monkeypatch):
    from nbhelpers import cli
    seen = []
    args = cli.build_parser().parse_args(["demo", "--seeds", "3", "--lr-grid", "x0.3,x1,x3"])
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    assert cli._demo(args) == 0
    argv = seen[0]
    assert argv[0] == "sweep" and argv[argv.index("--seeds") + 1] == "3"
    assert argv[argv.index("--lr-grid") + 1] == "x0.3,x1,x3" and "--report" in argv
    assert argv[argv.index("--epochs") + 1] == str(cli.SEEDED_DEMO_EPOCHS)  # seeds share the time budget
    seen.clear()
    assert cli._demo(cli.build_parser().parse_args(["demo", "--seeds", "3", "--epochs", "15"])) == 0
    assert seen[0][seen[0].index("--epochs") + 1] == "15"
    assert cli._demo(cli.build_parser().parse_args(["demo"])) == 0
    assert "--epochs" not in seen[1]  # one seed: the params file's 15 epochs
