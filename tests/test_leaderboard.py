"""The leaderboard across sweeps: profile math by hand, ranks, intervals, the command, the notebook.

The hand example: optimizers A, B, C on workloads W1-W4 with times to target (inf = never)

        A     B     C
  W1   10    20   inf      fastest A: ratios 1, 2, inf
  W2   30    15    60      fastest B: ratios 2, 1, 4
  W3  inf   inf   inf      nobody reached it: every ratio inf
  W4    5   inf  12.5      fastest A: ratios 1, inf, 2.5

rho_A = 2/4 at tau 1 and 3/4 from tau 2 on; rho_B = 1/4, then 2/4 from 2; rho_C = 0, 1/4 from
2.5, 2/4 at 4. Scores (area from 1 to 4 over 3): A (1 + 2/3 + 0 + 1) / 4 = 2/3,
B (2/3 + 1 + 0 + 0) / 4 = 5/12, C (0 + 0 + 0 + 1.5/3) / 4 = 1/8.
"""

from __future__ import annotations

import html
import json
import math
import struct

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nbhelpers.cli import main
from nbhelpers.errors import UserInputError
from nbhelpers.metric_spec import LOSS_SPEC, MetricSpec
from nbhelpers.report.leaderboard import (leaderboard, leaderboard_tables, load_sweeps, performance_profile,
                                          profile_figure, profile_score, rank_within, target_text, time_ratios)
from nbhelpers.report.leaderboard_build import build_leaderboard

INF = math.inf
HAND_TIMES = pd.DataFrame({"A": [10, 30, INF, 5], "B": [20, 15, INF, INF], "C": [INF, 60, INF, 12.5]},
                          index=["W1", "W2", "W3", "W4"], dtype=float)
HAND_RATIOS = [[1, 2, INF], [2, 1, 4], [INF, INF, INF], [1, INF, 2.5]]
HAND_SCORES = {"A": 2 / 3, "B": 5 / 12, "C": 1 / 8}

ACCURACY = {"accuracy": {"label": "accuracy", "higher_is_better": True, "unit": "%", "scale": 100.0, "digits": 2},
            "loss": LOSS_SPEC.to_dict()}
PERPLEXITY = {"perplexity": {"label": "perplexity", "higher_is_better": False, "unit": "ppl", "scale": 1.0,
                             "digits": None}, "loss": LOSS_SPEC.to_dict()}


# ----------------------------------------------------------------------------- run directories
def _dump(path, data) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def write_run(sweep, *, optimizer, test, time_to_target=None, seed=0, task="image_classification",
              dataset="digits", model="cnn_scratch", metric="accuracy", metric_specs=None, target=0.99,
              status="completed"):
    """One run directory (config.json, history.jsonl, summary.json, details.txt) per docs/run_directory.md."""
    metric_specs = metric_specs or (ACCURACY if metric == "accuracy" else PERPLEXITY)
    higher = metric_specs[metric]["higher_is_better"]
    run_id = f"{model}-{optimizer}-s{seed}"
    run_dir = sweep / "runs" / run_id
    run_dir.mkdir(parents=True)
    config = {"task": task, "dataset": dataset, "model": model, "optimizer": optimizer, "seed": seed, "epochs": 2,
              "lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine", "model_kwargs": {}, "target": target}
    _dump(run_dir / "config.json", {"config": config, "environment": {"python": "3.11", "device": "cpu"}})
    reached = time_to_target is not None and math.isfinite(time_to_target)
    history = [{"epoch": e, "wall_s": 4.0 * e, "train_loss": 1.0 / e, "val_loss": 1.0 / e,
                f"val_{metric}": test, f"train_{metric}": test, "lr": 1e-3} for e in (1, 2)]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
    finite = test is not None and status != "diverged"
    summary = {
        "run_id": run_id, "task": task, "dataset": dataset, "model": model, "optimizer": optimizer, "seed": seed,
        "grid": {}, "status": status, "error": None if status == "completed" else f"{status} run",
        "experiment": None, "primary_metric": metric, "higher_is_better": higher, "metric_specs": metric_specs,
        "epochs_run": 2, "best_epoch": 2, "best_val": test,
        "train": {"loss": 0.5, metric: test}, "val": {"loss": 0.5, metric: test},
        "test": {"loss": 0.5, metric: test} if finite else None,
        "train_time_s": 8.0, "total_time_s": 9.0, "target": target,
        "time_to_target_s": time_to_target if reached else None, "epochs_to_target": 1 if reached else None,
        "params_total": 1000, "params_trainable": 1000, "optimizer_state_bytes": 0,
        "mem_peak_mb": 100.0, "mem_steady_mb": 90.0, "device": "cpu",
    }
    _dump(run_dir / "summary.json", summary)
    (run_dir / "details.txt").write_text(f"Run {run_id}.\n", encoding="utf-8")
    return run_dir


# The hand example as run directories, in two sweeps: W1, W2 (accuracy) and W3, W4 (perplexity).
WORKLOADS = {
    "W1": dict(dataset="digits", model="cnn_scratch", metric="accuracy", target=0.99),
    "W2": dict(dataset="digits", model="mnist_tiny", metric="accuracy", target=0.99),
    "W3": dict(task="text_generation", dataset="grammar_lm", model="gru_lm", metric="perplexity", target=32.4176),
    "W4": dict(task="text_generation", dataset="grammar_lm", model="gpt_small", metric="perplexity", target=40.0),
}
# Final test metrics: ties on W1 (A = B) and W4 (B = C, perplexity, lower is better); C diverged on W2.
HAND_METRICS = {"W1": {"A": 0.97, "B": 0.97, "C": 0.90}, "W2": {"A": 0.95, "B": 0.99, "C": None},
                "W3": {"A": 60.0, "B": 55.0, "C": 70.0}, "W4": {"A": 35.0, "B": 38.0, "C": 38.0}}
HAND_RANKS = {"W1": {"A": 1.5, "B": 1.5, "C": 3}, "W2": {"A": 2, "B": 1, "C": 3},
              "W3": {"A": 2, "B": 1, "C": 3}, "W4": {"A": 1, "B": 2.5, "C": 2.5}}


def make_hand_sweeps(root):
    sweeps = [root / "vision", root / "language"]
    for name, workload in WORKLOADS.items():
        sweep = sweeps[0] if workload["metric"] == "accuracy" else sweeps[1]
        for optimizer in "ABC":
            value = HAND_METRICS[name][optimizer]
            write_run(sweep, optimizer=optimizer, test=value, time_to_target=HAND_TIMES.loc[name, optimizer],
                      status="diverged" if value is None else "completed", **workload)
    return sweeps


def _label(workload):
    return f"{workload['dataset']}/{workload['model']}"


# ----------------------------------------------------------------------------- the math
def test_profile_matches_the_hand_computed_example():
    np.testing.assert_array_equal(time_ratios(HAND_TIMES).to_numpy(), np.array(HAND_RATIOS, dtype=float))
    rho = performance_profile(HAND_TIMES, [1.0, 1.99, 2.0, 2.5, 3.99, 4.0])
    expected = {"A": [2, 2, 3, 3, 3, 3], "B": [1, 1, 2, 2, 2, 2], "C": [0, 0, 0, 1, 1, 2]}
    for name, counts in expected.items():
        np.testing.assert_allclose(rho[name].to_numpy(), np.array(counts) / 4, err_msg=name)
    scores = profile_score(HAND_TIMES)
    for name, score in HAND_SCORES.items():
        assert scores[name] == pytest.approx(score)
    # The closed form is the integral of the step function: check it against a fine Riemann sum.
    taus = np.linspace(1, 4, 300_001)
    area = performance_profile(HAND_TIMES, taus).to_numpy()[:-1].mean(axis=0)
    np.testing.assert_allclose(area, [HAND_SCORES[n] for n in "ABC"], atol=1e-4)


def test_did_not_run_counts_as_never_reached_and_zero_time_is_fastest():
    missing = HAND_TIMES.copy()
    missing.loc["W1", "C"] = np.nan  # C did not run on W1 instead of never reaching the target
    pd.testing.assert_frame_equal(performance_profile(missing, [1, 2, 4]), performance_profile(HAND_TIMES, [1, 2, 4]))
    zero = pd.DataFrame({"A": [0.0], "B": [3.0]})
    assert list(time_ratios(zero).iloc[0]) == [1.0, INF]


def test_ranks_average_ties_follow_the_direction_and_put_no_result_last():
    accuracy = pd.Series([0.9, 0.8, 0.9, np.nan], index=["adam", "sgd", "lion", "broken"])
    assert rank_within(accuracy, higher_is_better=True).to_dict() == {"adam": 1.5, "sgd": 3, "lion": 1.5, "broken": 4}
    perplexity = pd.Series([100.0, 150.0, 100.0, np.nan, np.inf], index=list("abcde"))
    ranks = rank_within(perplexity, higher_is_better=False).to_dict()
    assert ranks == {"a": 1.5, "b": 3, "c": 1.5, "d": 4.5, "e": 4.5}  # NaN and inf: no finite result


def test_target_is_named_with_the_metric_facts():
    accuracy = MetricSpec.from_dict(ACCURACY["accuracy"])
    perplexity = MetricSpec.from_dict(PERPLEXITY["perplexity"])
    assert target_text(0.99, accuracy) == "val accuracy ≥ 99.00%"
    assert target_text(32.41764, perplexity) == "val perplexity ≤ 32.42 ppl"


# ----------------------------------------------------------------------------- from run directories
def test_leaderboard_of_run_directories_matches_the_hand_example(tmp_path):
    board = leaderboard(load_sweeps(make_hand_sweeps(tmp_path)))
    labels = {name: _label(w) for name, w in WORKLOADS.items()}
    assert sorted(board.workloads["workload"]) == sorted(labels.values())
    assert board.sweeps == ["vision", "language"]

    times = board.times.loc[[labels[n] for n in HAND_TIMES.index], ["A", "B", "C"]]
    np.testing.assert_array_equal(times.to_numpy(), HAND_TIMES.to_numpy())
    summary = board.optimizers.set_index("optimizer")
    for name, score in HAND_SCORES.items():
        assert summary.loc[name, "profile_score"] == pytest.approx(score)
    assert summary.loc["A", "fastest"] == 2 and summary.loc["B", "fastest"] == 1 and summary.loc["C", "fastest"] == 0

    cells = board.cells.set_index(["workload", "optimizer"])
    for name, ranks in HAND_RANKS.items():
        for optimizer, rank in ranks.items():
            assert cells.loc[(labels[name], optimizer), "rank"] == rank, (name, optimizer)
    for optimizer in "ABC":
        hand = np.mean([HAND_RANKS[w][optimizer] for w in HAND_RANKS])
        assert summary.loc[optimizer, "mean_rank"] == pytest.approx(hand)
    assert list(board.optimizers["optimizer"]) == ["B", "A", "C"]  # 1.5, 1.625, 2.875
    assert math.isnan(summary.loc["A", "rank_low"])  # one seed: no interval

    workloads = board.workloads.set_index("workload")
    assert not workloads.loc[labels["W3"], "higher_is_better"] and workloads.loc[labels["W1"], "higher_is_better"]
    ranks, metrics, time_table = leaderboard_tables(board)
    assert f"{labels['W1']}: val accuracy ≥ 99.00%" in time_table.cells.columns
    assert f"{labels['W3']}: val perplexity ≤ 32.42 ppl" in time_table.cells.columns
    w2 = f"{labels['W2']}: test accuracy (%) ↑"
    row = metrics.cells.set_index("optimizer")
    assert row.loc["B", w2] == "99.00" and row.loc["C", w2] == "no result"
    assert row.loc["A", f"{labels['W4']}: test perplexity (ppl) ↓"] == "35"


def test_seeds_give_intervals_median_times_and_bands(tmp_path):
    sweep = tmp_path / "seeds"
    values = {"adam": [0.96, 0.97, 0.95], "sgd": [0.80, 0.85, 0.90]}
    times = {"adam": [10.0, None, 14.0], "sgd": [20.0, 30.0, 25.0]}
    for model in ("cnn_scratch", "mnist_tiny"):
        for optimizer in values:
            for seed in range(3):
                write_run(sweep, optimizer=optimizer, model=model, seed=seed, test=values[optimizer][seed],
                          time_to_target=times[optimizer][seed])
    board = leaderboard(load_sweeps([sweep]))
    cell = board.cells.set_index(["workload", "optimizer"]).loc[("digits/cnn_scratch", "sgd")]
    data = np.array(values["sgd"])
    half = stats.t.ppf(0.975, df=2) * data.std(ddof=1) / math.sqrt(3)
    assert cell["mean"] == pytest.approx(data.mean())
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((data.mean() - half, data.mean() + half))
    adam = board.cells.set_index(["workload", "optimizer"]).loc[("digits/cnn_scratch", "adam")]
    assert adam["time_s"] == 14.0 and adam["n_reached"] == 2  # median of 10, 14 and never
    assert cell["time_s"] == 25.0

    summary = board.optimizers.set_index("optimizer")
    assert summary.loc["adam", "mean_rank"] == 1.0
    # Every resample of adam's seeds beats every resample of sgd's: the interval is a point.
    assert summary.loc["adam", "rank_low"] == summary.loc["adam", "rank_high"] == 1.0
    assert sorted(board.seed_times) == [0, 1, 2]
    assert board.seed_times[1].loc["digits/cnn_scratch", "adam"] == INF
    _, metrics, time_table = leaderboard_tables(board)
    assert metrics.cells.set_index("optimizer").iloc[0, 0].endswith("(n=3)")
    assert time_table.cells.set_index("optimizer").loc["adam"].iloc[0] == "14.0 s (2/3)"
    figure = profile_figure(board)
    assert len(figure.figure.axes[0].lines) == 2 * (1 + 3)  # per optimizer: the median line and one per seed
    assert "median" in figure.caption and "3 single seeds" in figure.caption


# ----------------------------------------------------------------------------- the command
def _png_dpi(data: bytes) -> float:
    """Dots per inch from a PNG's pHYs chunk (pixels per metre)."""
    at = data.index(b"pHYs")
    per_metre = struct.unpack(">I", data[at + 4:at + 8])[0]
    return per_metre * 0.0254


def test_command_on_two_fake_sweeps(tmp_path, capsys):
    vision, language = make_hand_sweeps(tmp_path)
    # A name with markup, as a config could carry one: it must reach the page escaped.
    write_run(vision, optimizer="A", dataset="digits<b>x</b>", model="mlp", test=0.5)
    out = tmp_path / "board"
    assert main(["leaderboard", str(vision), str(language), "--output-dir", str(out), "--no-notebook"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert names == {"index.html", "leaderboard.csv", "leaderboard.md", "mean_rank.png", "mean_rank.svg",
                     "performance_profile.png", "performance_profile.svg"}
    assert _png_dpi((out / "performance_profile.png").read_bytes()) == pytest.approx(200, abs=0.5)
    assert b"<svg" in (out / "performance_profile.svg").read_bytes()[:2000]

    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<b>x</b>" not in page and html.escape("digits<b>x</b>/mlp") in page
    # The extra workload ranks A first: A 7.5 / 5 = 1.5 ties B 6 / 4 = 1.5.
    assert 'id="opening"' in page and "A and B share the best mean rank (1.50" in page
    assert 'src="performance_profile.png"' in page and 'href="performance_profile.svg"' in page
    assert "http://" not in page and "https://" not in page and str(tmp_path) not in page
    assert html.escape("val perplexity ≤ 32.42 ppl") in page

    frame = pd.read_csv(out / "leaderboard.csv")
    assert len(frame) == 13 and set(frame["optimizer"]) == {"A", "B", "C"}
    w4 = frame[(frame["model"] == "gpt_small")].set_index("optimizer")
    assert w4.loc["B", "rank"] == 2.5 and w4.loc["A", "time_to_target_median_s"] == 5.0
    assert "### Time to target" in (out / "leaderboard.md").read_text(encoding="utf-8")


def test_command_rejects_bad_folders_in_one_sentence(tmp_path, capsys):
    out = tmp_path / "board"
    assert main(["leaderboard", str(tmp_path / "missing"), "--output-dir", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: no such sweep folder") and message.count("\n") == 0
    (tmp_path / "empty").mkdir()
    assert main(["leaderboard", str(tmp_path / "empty"), "--output-dir", str(out)]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(UserInputError):
        load_sweeps([])


@pytest.mark.slow
def test_leaderboard_notebook_executes_into_html(tmp_path):
    import nbformat
    sweeps = make_hand_sweeps(tmp_path)
    out = build_leaderboard(sweeps, tmp_path / "board")
    executed = nbformat.read(out / "leaderboard.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    page = (out / "leaderboard.html").read_text(encoding="utf-8")
    assert "B has the best mean rank" in page and "Performance profiles" in page and "image/svg+xml" in page
    assert 'class="results"' in page and str(tmp_path) not in page  # the injected paths stay out of the HTML
    assert 'href="leaderboard.html"' in (out / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow  # a browser start: about 10 s quiet
@pytest.mark.skipif(__import__("shutil").which("chromium") is None and __import__("shutil").which("google-chrome") is None,
                    reason="needs headless Chromium (apt-get install chromium)")
def test_leaderboard_page_in_a_real_browser_shows_the_opening_and_figures(tmp_path):
    from nbhelpers.report.screenshot import check_screenshot, screenshot
    out = build_leaderboard(make_hand_sweeps(tmp_path), tmp_path / "board", execute_notebook_too=False)
    check = check_screenshot(screenshot(out / "index.html", tmp_path / "board.png"))
    assert check.verdict_visible and check.figure_rows > 200, check
    # Without the opening paragraph's box the check fails: it can fail.
    page = (out / "index.html").read_text(encoding="utf-8")
    (out / "bare.html").write_text(page.replace('class="verdict opening"', 'class="opening"'), encoding="utf-8")
    assert not check_screenshot(screenshot(out / "bare.html", tmp_path / "bare.png")).verdict_visible


# ----------------------------------------------------------------------------- real runs
def test_leaderboard_over_real_tiny_sweeps_of_four_offline_tasks(tmp_path):
    from nbhelpers.config import RunConfig
    from nbhelpers.training import run_experiment

    workloads = [
        # Loose targets on the two classifiers so that one epoch can reach them; grammar_lm keeps its own.
        dict(task="image_classification", dataset="digits", model="mnist_tiny", max_samples=160, batch_size=32,
             target=0.01),
        dict(task="sentiment_analysis", dataset="lexicon_sentiment", model="lstm_sentiment", max_samples=160,
             batch_size=32, model_kwargs={"embed_dim": 16, "hidden": 16}, target=0.01),
        dict(task="text_generation", dataset="grammar_lm", model="gru_lm", max_samples=16, batch_size=8,
             model_kwargs={"d_model": 16}),
        # A newer task with a dense metric (mIoU from a confusion matrix): the board reads its facts too.
        dict(task="semantic_segmentation", dataset="shapes", model="unet", batch_size=8, target=0.01,
             dataset_kwargs={"num_train": 16, "num_val": 8, "num_test": 8}, model_kwargs={"width": 4, "depth": 2}),
    ]
    sweeps = []
    for workload in workloads:
        sweep = tmp_path / workload["task"]
        for optimizer in ("adam", "sgd"):
            run_experiment(RunConfig(optimizer=optimizer, epochs=1, device="cpu", progress=False,
                                     output_dir=str(sweep), **workload))
        sweeps.append(sweep)
    board = leaderboard(load_sweeps(sweeps))

    assert sorted(board.workloads["workload"]) == ["digits/mnist_tiny", "grammar_lm/gru_lm",
                                                   "lexicon_sentiment/lstm_sentiment", "shapes/unet"]
    runs = load_sweeps(sweeps)
    for _, workload in board.workloads.iterrows():
        of = runs[runs["dataset"] == workload["dataset"]].set_index("optimizer")
        test = of[f"test_{workload['metric']}"]
        ranks = board.cells[board.cells["workload"] == workload["workload"]].set_index("optimizer")["rank"]
        better = test.idxmax() if workload["higher_is_better"] else test.idxmin()
        assert ranks[better] == 1.0 or test.nunique() == 1
    assert not board.workloads.set_index("dataset").loc["grammar_lm", "higher_is_better"]
    times = board.times
    assert np.isfinite(times.loc["digits/mnist_tiny"]).all()       # the loose targets were reached
    assert np.isinf(times.loc["grammar_lm/gru_lm"]).all()          # one epoch is far from the grammar's optimum
    scores = board.optimizers["profile_score"]
    assert ((scores >= 0) & (scores <= 3 / 4 + 1e-9)).all() and scores.max() > 0  # 3 of 4 workloads reachable

    out = build_leaderboard(sweeps, tmp_path / "board", execute_notebook_too=False)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "grammar_lm/gru_lm" in page and html.escape("val perplexity ≤") in page and "shapes/unet" in page
