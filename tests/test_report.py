"""Tests of nbhelpers.report on run directories written by hand, per docs/run_directory.md.

The fake language-model sweep: two architectures (gpt_small, lstm_lm) x layers
(1, 2) x three optimizers (adam, adamw, sgd), with two seeds of lstm_lm-adamw-1
layer, one diverged run (NaN history), one failed run (no history) and one run
of a single epoch. Perplexity: lower is better. A small accuracy sweep checks
the other direction.
"""

from __future__ import annotations

import json
import math
import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from nbhelpers.errors import UserInputError
from nbhelpers.metric_spec import LOSS_SPEC, MetricSpec
from nbhelpers.registry import TASKS
from nbhelpers.report import (
    build_report,
    format_metric,
    human_count,
    load_histories,
    load_runs,
    make_figures,
    notebook_to_html,
    results_table,
    results_tables,
    to_html,
    to_latex,
    to_markdown,
    use_log_scale,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Final validation perplexity of each LM configuration; the curves decay to it.
BASE_PPL = {"lstm_lm": 150.0, "gpt_small": 180.0}
OPT_FACTOR = {"adam": 1.0, "adamw": 0.95, "sgd": 10.0}
LAYER_FACTOR = {1: 1.0, 2: 1.1}
PARAMS = {("lstm_lm", 1): 34_100_000, ("lstm_lm", 2): 36_200_000,
          ("gpt_small", 1): 38_400_000, ("gpt_small", 2): 45_500_000}


def _dump(path, data) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def write_run(sweep, *, model, optimizer, seed=0, layers=None, task="text_generation", dataset="ptb_text_only",
              metric="perplexity", higher_is_better=False, final=150.0, epochs=4, status="completed",
              diverge_after=None, target=200.0, params=1_000_000, experiment=None, metric_specs=None, extra=None,
              examples=None, test_override=None):
    """One run directory with config.json, history.jsonl, summary.json and details.txt.

    The metric facts are the registered task's (as a real run writes them) unless given.
    """
    if metric_specs is None:
        metric_specs = TASKS.get(task).meta["spec"].metric_specs()
    grid = {"layers": layers} if layers is not None else {}
    run_id = f"{model}-{optimizer}" + (f"-layers{layers}" if layers is not None else "") + f"-s{seed}"
    run_dir = sweep / "runs" / run_id
    run_dir.mkdir(parents=True)
    config = {
        "task": task, "dataset": dataset, "model": model, "optimizer": optimizer, "epochs": epochs,
        "batch_size": 16, "lr": 1e-3, "lr_policy": "per_opt", "lr_overrides": "", "weight_decay": 0.0,
        "scheduler": "cosine", "warmup_epochs": 0, "max_grad_norm": 1.0, "early_stopping_patience": 0,
        "label_smoothing": 0.0, "max_samples": None, "num_workers": 0, "seed": seed, "device": "cpu",
        "amp": "off", "model_kwargs": ({"layers": layers} if layers is not None else {}), "output_dir": str(sweep),
    }
    _dump(run_dir / "config.json", {"config": config, "environment": {
        "python": "3.11.7", "torch": "2.14.1", "nbhelpers": "0.1.0", "device": "cpu",
        "device_name": "test cpu", "git_commit": None, "hostname_hash": None}})

    history = []
    if status != "failed":
        for epoch in range(1, epochs + 1):
            progress = epoch / epochs
            if higher_is_better:
                val = final * (0.6 + 0.4 * progress)
                train = min(1.0, val * 1.01)
                loss = 2.0 * (1.0 - val) + 0.05
            else:
                val = final * (10.0 ** (1.0 - progress))  # one decade above `final` at epoch 0
                train = val * 0.8
                loss = math.log(val)
            if diverge_after is not None and epoch > diverge_after:
                val = train = loss = float("nan")
            history.append({
                "epoch": epoch, "wall_s": 2.5 * epoch + (1.0 if optimizer == "sgd" else 0.0), "train_loss": loss * 0.95,
                f"train_{metric}": train, "val_loss": loss, f"val_{metric}": val, "lr": 1e-3, "grad_norm": 1.0,
                "samples_per_s": 100.0, "mem_peak_mb": 500.0 + epoch, "mem_steady_mb": 400.0,
            })
        (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")

    finite = [h for h in history if math.isfinite(h[f"val_{metric}"])]
    best = (max if higher_is_better else min)(finite, key=lambda h: h[f"val_{metric}"]) if finite else None
    def hit(value):
        return value >= target if higher_is_better else value <= target

    reached = [h for h in finite if hit(h[f"val_{metric}"])]
    summary = {
        "run_id": run_id, "task": task, "dataset": dataset, "model": model, "optimizer": optimizer, "seed": seed,
        "grid": grid, "status": status, "error": None if status in ("completed", "early_stopped") else f"{status} run",
        "primary_metric": metric, "higher_is_better": higher_is_better, "metric_specs": metric_specs,
        "experiment": experiment, "epochs_run": len(history), "best_epoch": best["epoch"] if best else None,
        "best_val": best[f"val_{metric}"] if best else None,
        "train": {"loss": best["train_loss"], metric: best[f"train_{metric}"]} if best else {},
        "val": {"loss": best["val_loss"], metric: best[f"val_{metric}"]} if best else {},
        "test": ({"loss": best["val_loss"] * 1.01, metric: test_value(best[f"val_{metric}"], higher_is_better)}
                 if best and status != "diverged" else None),
        "train_time_s": history[-1]["wall_s"] if history else 0.0, "total_time_s": 3.0 * len(history) + 1.0,
        "target": target, "time_to_target_s": reached[0]["wall_s"] if reached else None,
        "epochs_to_target": reached[0]["epoch"] if reached else None,
        "params_total": params, "params_trainable": params - 1000,
        "optimizer_state_bytes": 0 if optimizer == "sgd" else 8 * params,
        "mem_peak_mb": 500.0 + len(history), "mem_steady_mb": 400.0, "device": "cpu",
    }
    summary["examples_test"] = examples
    if test_override is not None and summary.get("test"):
        summary["test"][metric] = test_override
    for split, values in (extra or {}).items():
        if summary.get(split) is not None:
            summary[split].update(values)
    _dump(run_dir / "summary.json", summary)
    (run_dir / "details.txt").write_text(f"Run {run_id}.\nPreprocessing: none.\nOutcome: {status}.\n", encoding="utf-8")
    return run_id


def test_value(val, higher_is_better):
    """The test metric the fake runs report: slightly worse than validation."""
    return val * 0.99 if higher_is_better else val * 1.03


test_value.__test__ = False  # a helper, not a test


def make_lm_sweep(root):
    """The language-model sweep described in the module docstring; returns its folder."""
    sweep = root / "ptb-sweep"
    for model in ("lstm_lm", "gpt_small"):
        for layers in (1, 2):
            for optimizer in ("adam", "adamw", "sgd"):
                final = BASE_PPL[model] * OPT_FACTOR[optimizer] * LAYER_FACTOR[layers]
                kwargs = dict(model=model, optimizer=optimizer, layers=layers, final=final,
                              params=PARAMS[(model, layers)])
                if (model, layers, optimizer) == ("lstm_lm", 2, "sgd"):
                    kwargs["status"] = "failed"
                if (model, layers, optimizer) == ("gpt_small", 2, "sgd"):
                    kwargs.update(status="diverged", diverge_after=2)
                if (model, layers, optimizer) == ("gpt_small", 2, "adam"):
                    kwargs["epochs"] = 1
                write_run(sweep, **kwargs)
    # A second seed of lstm_lm-adamw-1 layer, 2% worse.
    write_run(sweep, model="lstm_lm", optimizer="adamw", layers=1, seed=1,
              final=BASE_PPL["lstm_lm"] * OPT_FACTOR["adamw"] * 1.02, params=PARAMS[("lstm_lm", 1)])
    return sweep


def make_accuracy_sweep(root):
    sweep = root / "digits-sweep"
    finals = {("cnn_scratch", "adam"): 0.97, ("cnn_scratch", "sgd"): 0.90,
              ("mnist_tiny", "adam"): 0.93, ("mnist_tiny", "sgd"): 0.95}
    for (model, optimizer), final in finals.items():
        write_run(sweep, model=model, optimizer=optimizer, task="image_classification", dataset="digits",
                  metric="accuracy", higher_is_better=True, final=final, target=0.94, params=18_662)
    return sweep


def write_run_notebook(sweep, run_id):
    """A tiny executed notebook: markdown, a code cell with output, and a cell tagged remove-cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    code = nbformat.v4.new_code_cell("print('visible result 12345')", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="visible result 12345\n")]
    hidden = nbformat.v4.new_code_cell("secret_widget_source_marker = 1", execution_count=2)
    hidden.metadata["tags"] = ["remove-cell"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Run {run_id}"), code, hidden]
    path = sweep / "notebooks" / f"{run_id}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ----------------------------------------------------------------------------- loading
def test_load_runs_flattens_and_skips_in_progress(tmp_path):
    sweep = make_lm_sweep(tmp_path)
    (sweep / "runs" / "lstm_lm-lion-layers1-s0").mkdir()  # in progress: no summary.json yet
    with pytest.warns(UserWarning, match="lstm_lm-lion-layers1-s0"):
        runs = load_runs(sweep)
    with pytest.warns(UserWarning, match="no summary.json"):
        histories = load_histories(sweep)
    assert len(runs) == 13
    assert runs.attrs["skipped"] == ["lstm_lm-lion-layers1-s0"]
    row = runs.set_index("run_id").loc["gpt_small-adam-layers2-s0"]
    assert row["layers"] == 2 and row["model_kwargs.layers"] == 2 and row["grid.layers"] == 2
    assert row["config.batch_size"] == 16 and row["env.torch"] == "2.14.1"
    assert row["test_perplexity"] == pytest.approx(180 * 1.1 * 1.03)
    failed = runs.set_index("run_id").loc["lstm_lm-sgd-layers2-s0"]
    assert failed["status"] == "failed" and math.isnan(failed["best_epoch"])

    assert list(histories.columns[:3]) == ["run_id", "epoch", "wall_s"]
    assert "lstm_lm-sgd-layers2-s0" not in set(histories["run_id"])  # failed: no history
    diverged = histories[histories["run_id"] == "gpt_small-sgd-layers2-s0"]
    assert diverged["val_perplexity"].isna().sum() == 2 and diverged["val_perplexity"].notna().sum() == 2


@pytest.mark.parametrize("make", [lambda p: p, lambda p: (p / "runs").mkdir() or p])
def test_no_runs_raises_user_input_error(tmp_path, make):
    sweep = make(tmp_path)
    with pytest.raises(UserInputError, match="no runs found in"):
        load_runs(sweep)
    with pytest.raises(UserInputError):
        build_report(sweep, execute_notebook=False)
    assert not (tmp_path / "report").exists()


# ----------------------------------------------------------------------------- the table
def test_rows_sorted_by_architecture_layers_optimizer(tmp_path):
    table = results_table(load_runs(make_lm_sweep(tmp_path)))
    numbers = table.numbers
    order = list(zip(numbers["model"], numbers["layers"], numbers["optimizer"], strict=True))
    assert order == sorted(order)
    assert order[0] == ("gpt_small", 1, "adam") and order[-1] == ("lstm_lm", 2, "sgd")
    assert list(numbers["exp"]) == list(range(1, 13))
    assert list(table.cells["#"]) == [str(i) for i in range(1, 13)]
    expected = {"layers", "optimizer", "model", "n", "params", "trainable", "opt. state", "status"}
    assert expected <= set(table.cells.columns)


def test_seeds_aggregate_to_mean_and_std(tmp_path):
    table = results_table(load_runs(make_lm_sweep(tmp_path)))
    row = table.numbers.set_index(["model", "layers", "optimizer"]).loc[("lstm_lm", 1, "adamw")]
    vals = np.array([150 * 0.95, 150 * 0.95 * 1.02]) * 1.03
    assert row["n_runs"] == 2 and row["seeds"] == "0 1"
    assert row["test_perplexity"] == pytest.approx(vals.mean())
    assert row["test_perplexity_std"] == pytest.approx(vals.std(ddof=1))
    i = int(row["exp"]) - 1
    # 95% t-interval over 2 seeds: t(0.975, 1 degree of freedom) = 12.7062 (a t-table's value).
    half = 12.7062 * vals.std(ddof=1) / math.sqrt(2)
    assert table.cells["test perplexity (ppl)"].iloc[i] == f"{vals.mean():.4g} ± {half:.4g}"
    assert row["test_perplexity_ci_low"] == pytest.approx(vals.mean() - half, rel=1e-4)
    assert table.cells["n"].iloc[i] == "2"
    assert "95% t-interval over the n seeds" in table.caption


def _bold_rows_md(md: str) -> dict[str, str]:
    """model -> the bold cell text, from the markdown table."""
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    found = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for cell in cells:
            if cell.startswith("**"):
                assert cell.strip("*") not in found.values()
                found[cells[header.index("model")]] = cell.strip("*")
    return found


def test_best_per_architecture_is_bold_lower_is_better(tmp_path):
    table = results_table(load_runs(make_lm_sweep(tmp_path)))
    best_lstm = f"{np.mean([150 * 0.95, 150 * 0.95 * 1.02]) * 1.03:.4g}"  # lstm_lm adamw 1 layer (2 seeds)
    best_gpt = f"{180 * 0.95 * 1.03:.4g}"  # gpt_small adamw 1 layer (perplexity: 4 significant digits)
    md = to_markdown(table)
    bold = _bold_rows_md(md)
    assert set(bold) == {"lstm_lm", "gpt_small"}
    assert bold["gpt_small"] == best_gpt and bold["lstm_lm"].startswith(best_lstm + " ± ")
    assert md.count("**") == 4

    tex = to_latex(table)
    # two tables (main columns, then all), each with the two best cells in bold
    assert tex.count(r"\textbf{") == 4 and rf"\textbf{{{best_gpt}}}" in tex
    assert r"\textbf{" + best_lstm + r" $\pm$ " in tex
    assert r"gpt\_small" in tex and "gpt_small" not in tex.replace(r"gpt\_small", "")
    assert tex.count(r"\begin{tabular}") == 2 and r"\caption{" in tex and r"\toprule" in tex and r"\hline" not in tex
    assert r"\label{tab:results-detail}" in tex and r"Table~\ref{tab:results-detail}" in tex

    page = to_html(table)
    strong = re.findall(r"<strong>(.*?)</strong>", page)
    assert "<em>" not in page  # perplexities over 1 or 2 seeds: no tie can be claimed here
    assert len(strong) == 2 and best_gpt in strong and any(s.startswith(best_lstm) for s in strong)


def test_best_per_architecture_higher_is_better(tmp_path):
    table = results_table(load_runs(make_accuracy_sweep(tmp_path)))
    assert table.higher_is_better and "test accuracy (%)" in table.cells.columns
    bold = _bold_rows_md(to_markdown(table))
    assert bold == {"cnn_scratch": f"{0.97 * 0.99 * 100:.2f}", "mnist_tiny": f"{0.95 * 0.99 * 100:.2f}"}
    assert "layers" not in table.cells.columns and "n" not in table.cells.columns
    assert "ep. to accuracy 94.00%" in table.cells.columns  # the 'epochs to target' column, named by its target


def test_caption_explains_every_abbreviation(tmp_path):
    table = results_table(load_runs(make_lm_sweep(tmp_path)))
    for phrase in ("perplexity (ppl), lower is better", "# = the experiment's number in the params file", "val",
                   "validation", "n = number of seeds", "Bold = best test perplexity within each model",
                   "k = thousand", "M = million",
                   "opt. state", "KiB", "peak MB / steady MB", "ep. to perplexity 200", "never = not reached",
                   "– = not available", "diverged", "layers = number of layers"):
        assert phrase in table.caption, phrase
    assert table.caption in to_markdown(table) and "\\caption{" in to_latex(table)


def test_csv_parses_back_with_raw_numbers(tmp_path):
    sweep = make_lm_sweep(tmp_path)
    report = build_report(sweep, execute_notebook=False)
    frame = pd.read_csv(report / "results.csv")
    assert len(frame) == 12 and not frame.astype(str).apply(lambda c: c.str.contains(r"\*\*|<strong>|±")).any().any()
    row = frame.set_index("run_ids").loc["gpt_small-adamw-layers1-s0"]
    assert row["test_perplexity"] == pytest.approx(180 * 0.95 * 1.03)
    assert row["params_total"] == 38_400_000 and bool(row["best_in_model"])
    assert row["status"] == "completed" and row["epochs_run"] == 4
    failed = frame.set_index("run_ids").loc["lstm_lm-sgd-layers2-s0"]
    assert failed["status"] == "failed" and math.isnan(failed["test_perplexity"])


def test_formatting_follows_the_declared_spec():
    accuracy = MetricSpec("accuracy", higher_is_better=True, unit="%", scale=100.0)
    bleu = MetricSpec("BLEU", higher_is_better=True, unit="BLEU")
    assert format_metric(0.98765, accuracy) == "98.77"
    assert format_metric(0.98765, accuracy, std=0.001) == "98.77 ± 0.10"
    assert format_metric(34.5678, bleu) == "34.57" and bleu.header() == "BLEU"  # never multiplied
    assert format_metric(0.5, bleu) == "0.50"  # a BLEU of 0.5 stays 0.5: nothing is guessed from the range
    assert format_metric(148.8612, MetricSpec("perplexity", False, "ppl", digits=None)) == "148.9"
    assert format_metric(4.39123, LOSS_SPEC) == "4.391"
    assert format_metric(float("nan"), LOSS_SPEC) == "–"
    assert human_count(34_100_000) == "34.1M" and human_count(18_662) == "18.7k" and human_count(950) == "950"


def test_every_declared_metric_gets_columns_and_bleu_is_not_scaled(tmp_path):
    sweep = tmp_path / "mt"
    specs = {"bleu": {"label": "BLEU", "higher_is_better": True, "unit": "BLEU", "scale": 1.0, "digits": 2},
             "chrf": {"label": "chrF", "higher_is_better": True, "unit": "", "scale": 1.0, "digits": 2},
             "loss": LOSS_SPEC.to_dict()}
    for optimizer, final in (("adam", 0.8), ("sgd", 0.6)):
        # A BLEU below 1 (a weak run): the old report would have multiplied it by 100.
        write_run(sweep, model="cnn_scratch", optimizer=optimizer, task="image_classification", dataset="digits",
                  metric="bleu", higher_is_better=True, final=final, target=0.5, metric_specs=specs,
                  extra={"test": {"chrf": 40.0 + final}, "val": {"chrf": 41.0}})
    table = results_table(load_runs(sweep))
    assert {"val BLEU", "test BLEU", "val chrF", "test chrF", "test loss"} <= set(table.cells.columns)
    assert "train chrF" not in table.cells.columns  # never measured on the training split
    cells = table.cells.set_index("optimizer")
    assert cells.loc["adam", "test BLEU"] == f"{0.8 * 0.99:.2f}" and cells.loc["adam", "test chrF"] == "40.80"


def test_two_datasets_give_two_tables_with_their_own_bold(tmp_path):
    sweep = tmp_path / "two"
    for dataset, finals in (("digits", {"adam": 0.97, "sgd": 0.90}), ("mnist", {"adam": 0.95, "sgd": 0.99})):
        for number, (optimizer, final) in enumerate(finals.items(), start=1):
            write_run(sweep / dataset, model="cnn_scratch", optimizer=optimizer, task="image_classification",
                      dataset=dataset, metric="accuracy", higher_is_better=True, final=final, target=0.94,
                      experiment=number)
    for dataset in ("digits", "mnist"):  # one sweep folder holding both datasets' runs
        for run in (sweep / dataset / "runs").iterdir():
            target = sweep / "runs" / f"{dataset}-{run.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            run.rename(target)
    tables = results_tables(load_runs(sweep))
    assert [t.numbers["dataset"].iloc[0] for t in tables] == ["digits", "mnist"]
    best = [t.numbers.set_index("optimizer")["best_in_model"] for t in tables]
    assert bool(best[0]["adam"]) and not best[0]["sgd"] and bool(best[1]["sgd"]) and not best[1]["adam"]
    assert all("dataset" not in t.cells.columns for t in tables)
    report = build_report(sweep, execute_notebook=False)
    md = (report / "results.md").read_text(encoding="utf-8")
    assert md.count("Table: ") == 2 and "### image_classification on mnist" in md
    assert md.count("**") == 4
    assert (report / "curves_epochs-digits.png").is_file() and (report / "curves_epochs-mnist.png").is_file()


def test_one_seed_accuracy_shows_its_wilson_interval_and_ties_by_overlap(tmp_path):
    sweep = tmp_path / "wilson"
    # 269 test images (the digits test split): 264 vs 263 correct overlap; 215 does not.
    for optimizer, correct in (("adamw", 264), ("lion", 263), ("sgd", 215)):
        write_run(sweep, model="cnn_scratch", optimizer=optimizer, task="image_classification", dataset="digits",
                  metric="accuracy", higher_is_better=True, final=0.99, target=0.94, examples=269,
                  test_override=correct / 269)
    table = results_table(load_runs(sweep))
    cells = table.cells.set_index("optimizer")
    # Wilson 95% interval for 264/269, from a textbook formula: centre and half-width by hand.
    p, n, z = 264 / 269, 269, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert cells.loc["adamw", "test accuracy (%)"] == f"{p * 100:.2f} ({(centre - half) * 100:.2f}–{(centre + half) * 100:.2f})"
    numbers = table.numbers.set_index("optimizer")
    assert bool(numbers.loc["adamw", "best_in_model"]) and bool(numbers.loc["lion", "tied_with_best"])
    assert not numbers.loc["sgd", "tied_with_best"]
    md = to_markdown(table)
    assert f"*{cells.loc['lion', 'test accuracy (%)']}*" in md and "Wilson" in table.caption


def test_seeds_decide_ties_with_a_paired_t_test(tmp_path):
    from nbhelpers.report.stats import tied_with_best
    same = {"a": {0: 0.9, 1: 0.92, 2: 0.91}, "b": {0: 0.9, 1: 0.92, 2: 0.91}}
    assert tied_with_best(same, "a") == {"b"}                          # identical on every seed
    noisy = {"a": {0: 0.90, 1: 0.93, 2: 0.91}, "b": {0: 0.91, 1: 0.90, 2: 0.92}}
    assert tied_with_best(noisy, "a") == {"b"}                          # differences change sign
    behind = {"a": {0: 0.90, 1: 0.93, 2: 0.91}, "c": {0: 0.50, 1: 0.52, 2: 0.49}}
    assert tied_with_best(behind, "a") == set()
    constant_gap = {"a": {0: 0.9, 1: 0.8}, "d": {0: 0.89, 1: 0.79}}
    assert tied_with_best(constant_gap, "a") == set()                  # the same gap on every seed
    assert tied_with_best({"a": {0: 0.9}, "e": {0: 0.1}}, "a") == set()  # one seed, no intervals: no claim


def test_hash_column_is_the_experiment_number_of_the_params_file(tmp_path):
    sweep = tmp_path / "numbered"
    # Listed in the params file as 1: sgd, 2: adam; sorted by optimizer the table shows adam first.
    for number, optimizer in ((1, "sgd"), (2, "adam")):
        write_run(sweep, model="cnn_scratch", optimizer=optimizer, task="image_classification", dataset="digits",
                  metric="accuracy", higher_is_better=True, final=0.9, target=0.94, experiment=number)
    table = results_table(load_runs(sweep))
    assert list(table.cells["optimizer"]) == ["adam", "sgd"] and list(table.cells["#"]) == ["2", "1"]


# ----------------------------------------------------------------------------- figures
def test_log_scale_helper():
    assert use_log_scale([2000.0, 1500.0, 160.0, 142.5], higher_is_better=False)  # perplexities over decades
    assert not use_log_scale([180.0, 150.0, 142.5], higher_is_better=False)  # within one decade
    assert not use_log_scale([0.05, 0.5, 0.99], higher_is_better=True)  # accuracies never
    assert not use_log_scale([float("nan"), float("inf")], higher_is_better=False)
    assert use_log_scale([float("nan"), 5000.0, 100.0], higher_is_better=False)  # NaN from a diverged run ignored


def test_figures_handle_one_epoch_and_diverged_runs(tmp_path):
    sweep = make_lm_sweep(tmp_path)
    figures = {f.filename: f for f in make_figures(load_runs(sweep), load_histories(sweep))}
    assert set(figures) == {"ranking.png", "curves_epochs.png", "curves_wallclock.png", "loss_epochs.png",
                            "memory.png"}
    axes = figures["curves_epochs.png"].figure.axes
    assert [ax.get_title() for ax in axes] == ["SGD-type", "adaptive"]  # small multiples by family
    ax = axes[1]
    assert ax.get_yscale() == "log" and "perplexity" in ax.get_ylabel() and ax.get_xlabel() == "epoch"
    assert "training time (s" in figures["curves_wallclock.png"].figure.axes[0].get_xlabel()
    one_epoch = [line for line in ax.lines if len(line.get_xdata()) == 1]
    assert one_epoch and all(line.get_marker() == "o" for line in one_epoch)
    caption = figures["curves_epochs.png"].caption
    assert "solid" in caption and "faded" in caption and "ptb_text_only" in caption and "band" in caption
    assert "lstm_lm-sgd-layers2-s0" in caption  # the failed run is named as not shown
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "sgd, gpt_small, layers 2 (diverged)" in legend          # optimizer names, not run ids
    adaptive = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "adamw, lstm_lm, layers 1" in adaptive
    # lstm_lm-adamw-1 layer has two seeds: one line for their mean and one band between them
    assert len([c for c in ax.collections if c.get_label().startswith("_")]) == 1


def test_an_optimizer_keeps_its_colour_in_every_figure(tmp_path):
    from matplotlib.colors import to_rgba

    from nbhelpers.report.style import optimizer_colour
    sweep = make_lm_sweep(tmp_path)
    figures = {f.filename: f for f in make_figures(load_runs(sweep), load_histories(sweep))}
    for name in ("curves_epochs.png", "loss_epochs.png"):
        for ax in figures[name].figure.axes:
            for line in ax.lines:
                if line.get_label().startswith("adamw"):
                    assert to_rgba(line.get_color())[:3] == optimizer_colour("adamw")[:3]
    assert optimizer_colour("adam") != optimizer_colour("adamw") != optimizer_colour("sgd")


def test_saturated_accuracy_is_drawn_as_error_on_a_log_axis(tmp_path):
    sweep = make_accuracy_sweep(tmp_path)
    figures = {f.filename: f for f in make_figures(load_runs(sweep), load_histories(sweep))}
    ax = figures["curves_epochs.png"].figure.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "validation error (%) (log scale)"
    adam = next(line for a in figures["curves_epochs.png"].figure.axes for line in a.lines
                if line.get_label() == "adam, cnn_scratch")
    # final validation accuracy 97% is drawn as 3% error
    assert adam.get_ydata()[-1] == pytest.approx(3.0)
    assert "100% - accuracy" in figures["curves_epochs.png"].caption


def test_ranking_figure_sorts_best_first_with_intervals(tmp_path):
    sweep = make_lm_sweep(tmp_path)
    ranking = next(f for f in make_figures(load_runs(sweep), load_histories(sweep)) if f.filename == "ranking.png")
    panels = {ax.get_title(): ax for ax in ranking.figure.axes}
    assert set(panels) == {"gpt_small", "lstm_lm"}
    labels = [t.get_text() for t in panels["lstm_lm"].get_yticklabels()]
    assert labels[0] == "adamw, layers 1" and labels[-1].startswith("sgd")
    assert panels["gpt_small"].get_xscale() == "log"  # perplexities spanning more than a decade
    assert "95% t-interval" in ranking.caption


# ----------------------------------------------------------------------------- HTML and the whole report
def test_notebook_html_drops_remove_cell(tmp_path):
    path = write_run_notebook(tmp_path, "cnn_scratch-adam-s0")
    page = notebook_to_html(path)
    assert "visible result 12345" in page and "secret_widget_source_marker" not in page


def test_build_report_without_notebook_execution(tmp_path):
    sweep = make_lm_sweep(tmp_path)
    with_notebook = "gpt_small-adamw-layers1-s0"
    write_run_notebook(sweep, with_notebook)
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    report = build_report(sweep, execute_notebook=False)
    assert report == sweep / "report"
    after = sorted(p.relative_to(sweep) for p in sweep.rglob("*") if "report" not in p.relative_to(sweep).parts)
    assert after == before  # runs/ and notebooks/ untouched

    for name in ("index.html", "results.csv", "results.md", "results.tex"):
        assert (report / name).is_file(), name
    for name in ("ranking", "curves_epochs", "curves_wallclock", "loss_epochs", "memory"):
        data = (report / f"{name}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
        assert (report / f"{name}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert (report / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(report.glob(".*"))  # no temporary files left behind

    index = (report / "index.html").read_text(encoding="utf-8")
    exported = report / "notebooks" / f"{with_notebook}.html"
    assert exported.is_file() and "secret_widget_source_marker" not in exported.read_text(encoding="utf-8")
    assert index.count('href="notebooks/') == 1 and f'href="notebooks/{with_notebook}.html"' in index
    for name in ("curves_epochs.png", "curves_wallclock.png", "loss_epochs.png", "memory.png", "ranking.png"):
        assert f'src="{name}"' in index
    assert 'href="ranking.svg"' in index and 'href="ranking.pdf"' in index
    assert '<p class="verdict"' in index and "has the best test perplexity" in index
    assert "<details class=\"detail\">" in index                        # the detail table
    table = results_table(load_runs(sweep))
    figures = make_figures(load_runs(sweep), load_histories(sweep))
    import html as html_module

    assert html_module.escape(table.caption) in index
    for figure in figures:
        assert html_module.escape(figure.caption) in index
    assert "<details>" in index and "Outcome: diverged." in index
    assert "ptb-sweep: text_generation on ptb_text_only" in index
    assert "http://" not in index and "https://" not in index  # self-contained
    assert 'href="report.html"' not in index  # not executed

    # Re-running overwrites the report in place.
    (report / "results.md").write_text("stale", encoding="utf-8")
    build_report(sweep, execute_notebook=False)
    assert (report / "results.md").read_text(encoding="utf-8").startswith("| # |")


def test_build_report_executes_report_notebook(tmp_path):
    sweep = make_accuracy_sweep(tmp_path)
    report = build_report(sweep, execute_notebook=True)
    page = (report / "report.html").read_text(encoding="utf-8")
    assert 'class="results"' in page and "cnn_scratch" in page and "Bold = best test accuracy" in page
    assert (report / "report.ipynb").is_file()
    executed = nbformat.read(report / "report.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert 'href="report.html"' in (report / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow  # a browser start per page: about 10 s quiet, minutes on a loaded machine
@pytest.mark.skipif(__import__("shutil").which("chromium") is None and __import__("shutil").which("google-chrome") is None,
                    reason="needs headless Chromium (apt-get install chromium)")
def test_index_page_in_a_real_browser_shows_the_verdict_and_figures(tmp_path):
    from nbhelpers.report.screenshot import check_screenshot, screenshot
    sweep = make_accuracy_sweep(tmp_path)
    report = build_report(sweep, execute_notebook=False)
    shot = screenshot(report / "index.html", tmp_path / "index.png")
    check = check_screenshot(shot)
    assert check.verdict_visible and check.figure_rows > 200, check
    # The same page without its opening paragraph fails the check: it can fail.
    page = (report / "index.html").read_text(encoding="utf-8")
    (report / "bare.html").write_text(page.replace('class="verdict"', 'class="plain"'), encoding="utf-8")
    assert not check_screenshot(screenshot(report / "bare.html", tmp_path / "bare.png")).verdict_visible
