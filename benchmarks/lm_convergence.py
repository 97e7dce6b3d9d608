"""Does gpt_small reach grammar_lm's best possible perplexity, and do the optimizers separate?

The claim under test: "On grammar_lm with default settings, adamw brings gpt_small within
1.25x of the best possible perplexity in at most 5 CPU minutes, and plain sgd stays visibly
behind" (visibly: its test perplexity at least 10% above adamw's).

Each optimizer gets one run_experiment() with the text_generation task's defaults (epochs
and batch size from TaskSpec.defaults, every other setting 'auto' or the RunConfig default),
on the CPU, exactly as `python -m nbhelpers run --task text_generation --model gpt_small
--optimizers <name> --epochs E --batch-size B --device cpu` would do it. The run's target is
set to 1.25x the best possible perplexity, so summary.json records when it was first reached.

Usage: python benchmarks/lm_convergence.py [--optimizers adamw,sgd] [--extra adam,sgd_momentum,lion]
Writes benchmarks/results/lm_convergence.md (see --output); runs go to a temporary folder
unless --runs-dir is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbhelpers.config import RunConfig  # noqa: E402
from nbhelpers.data.text_generation import DEFAULT_BPTT, grammar_best_perplexity  # noqa: E402
from nbhelpers.registry import TASKS, load_all  # noqa: E402
from nbhelpers.training import run_experiment  # noqa: E402

RATIO_GOAL = 1.25          # adamw's test perplexity / best possible
TIME_GOAL_S = 300.0        # five minutes of training
SEPARATION = 1.10          # sgd's test perplexity / adamw's, at least


def one_run(optimizer: str, *, epochs: int, batch_size: int, runs_dir: Path, best: float) -> dict:
    """Run gpt_small on grammar_lm with `optimizer`; returns the numbers the report needs."""
    cfg = RunConfig(task="text_generation", dataset="grammar_lm", model="gpt_small", optimizer=optimizer,
                    epochs=epochs, batch_size=batch_size, device="cpu", target=RATIO_GOAL * best,
                    output_dir=str(runs_dir), progress=False)
    cpu_before = time.process_time()
    result = run_experiment(cfg)
    cpu_s = time.process_time() - cpu_before
    s = result.summary
    config = json.loads((result.run_dir / "config.json").read_text())["config"]
    return {"optimizer": optimizer, "lr": config["lr"], "weight_decay": config["weight_decay"],
            "status": s["status"], "epochs_run": s["epochs_run"], "best_epoch": s["best_epoch"],
            "best_val": s["best_val"], "test": (s["test"] or {}).get("perplexity"),
            "train_time_s": s["train_time_s"], "total_time_s": s["total_time_s"], "cpu_s": cpu_s,
            "time_to_target_s": s["time_to_target_s"], "epochs_to_target": s["epochs_to_target"],
            "curve": [(row["epoch"], row["wall_s"], row.get("val_perplexity")) for row in result.history]}


def _fmt(value, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def report(results: list[dict], *, best: float, epochs: int, batch_size: int, load: tuple, took: float) -> str:
    adamw = next((r for r in results if r["optimizer"] == "adamw"), None)
    sgd = next((r for r in results if r["optimizer"] == "sgd"), None)
    lines = [
        "# gpt_small on grammar_lm: convergence and optimizer separation (CPU)",
        "",
        f"Measured {dt.date.today().isoformat()} with `python benchmarks/lm_convergence.py`: torch "
        f"{torch.__version__}, {torch.get_num_threads()} intra-op threads, {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}); 1-minute load average {load[0]:.2f} before and "
        f"{load[1]:.2f} after ({took / 60:.1f} minutes in all). The machine is shared with other "
        "processes: a load average above the core count means they competed for the cores, and the "
        "times below are then upper bounds.",
        "",
        f"Settings: the text_generation task's defaults ({epochs} epochs, batch {batch_size}, bptt "
        f"{DEFAULT_BPTT}, cosine schedule, clipping at 1.0, patience 3, per-optimizer LR and weight "
        "decay from nbhelpers/optim/table.py), gpt_small at its default size, seed 0, device cpu. "
        f"Best possible test perplexity on these chunks: **{best:.3f}** (exact); 1.25x of it: "
        f"{RATIO_GOAL * best:.2f}.",
        "",
        "| optimizer | lr | weight decay | status | best val ppl | test ppl | test / best | "
        "reached 1.25x after (epoch, s) | training time (s) | whole run (s) | process CPU (s) |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        reached = (f"epoch {r['epochs_to_target']}, {r['time_to_target_s']:.0f} s"
                   if r["epochs_to_target"] else "not reached")
        lines.append(
            f"| {r['optimizer']} | {r['lr']:g} | {r['weight_decay']:g} | {r['status']} | "
            f"{_fmt(r['best_val'])} | {_fmt(r['test'])} | {_fmt(r['test'] and r['test'] / best, '{:.3f}')} | "
            f"{reached} | {r['train_time_s']:.0f} | {r['total_time_s']:.0f} | {r['cpu_s']:.0f} |")
    lines += ["", "Validation perplexity after each epoch (cumulative training seconds in brackets):", ""]
    width = max(len(r["curve"]) for r in results)
    lines.append("| optimizer | " + " | ".join(f"epoch {e}" for e in range(1, width + 1)) + " |")
    lines.append("|---|" + "---:|" * width)
    for r in results:
        cells = [f"{ppl:.2f} ({wall:.0f} s)" if ppl is not None else "diverged" for _, wall, ppl in r["curve"]]
        lines.append(f"| {r['optimizer']} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
    lines += ["", "## Verdict", ""]
    if adamw and sgd and adamw["test"] and sgd["test"]:
        ratio = adamw["test"] / best
        within_time = adamw["train_time_s"] <= TIME_GOAL_S
        separated = sgd["test"] >= SEPARATION * adamw["test"]
        lines += [
            f"- adamw: test perplexity {adamw['test']:.2f} = {ratio:.3f}x the best possible "
            f"({'within' if ratio <= RATIO_GOAL else 'NOT within'} {RATIO_GOAL}x), after "
            f"{adamw['train_time_s']:.0f} s of training ({'within' if within_time else 'OVER'} the 5 minutes; "
            f"whole run with evaluation {adamw['total_time_s']:.0f} s); 1.25x first reached "
            + (f"after epoch {adamw['epochs_to_target']} ({adamw['time_to_target_s']:.0f} s)."
               if adamw["epochs_to_target"] else "never."),
            f"- sgd: test perplexity {sgd['test']:.2f} = {sgd['test'] / best:.3f}x the best possible, "
            f"{sgd['test'] / adamw['test']:.2f}x adamw's ({'separated' if separated else 'NOT separated'}: "
            f"the goal is at least {SEPARATION:.2f}x).",
            f"- The claim {'HOLDS' if ratio <= RATIO_GOAL and within_time and separated else 'DOES NOT HOLD'} "
            "on this run.",
        ]
    else:
        lines.append("- adamw and sgd must both finish with a test perplexity to judge the claim.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    load_all()
    spec = TASKS.get("text_generation").meta["spec"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizers", default="adamw,sgd", help="the claim's optimizers (default adamw,sgd)")
    ap.add_argument("--extra", default="", help="more optimizers to record, e.g. adam,sgd_momentum,lion")
    ap.add_argument("--epochs", type=int, default=spec.defaults["epochs"])
    ap.add_argument("--batch-size", type=int, default=spec.defaults["batch_size"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--runs-dir", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/lm_convergence.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in f"{args.optimizers},{args.extra}".split(",") if n.strip()]
    best = grammar_best_perplexity(DEFAULT_BPTT)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        results = []
        for name in names:
            results.append(one_run(name, epochs=args.epochs, batch_size=args.batch_size,
                                   runs_dir=runs_dir, best=best))
            r = results[-1]
            print(f"{name}: test perplexity {_fmt(r['test'])} ({_fmt(r['test'] and r['test'] / best, '{:.3f}')}x "
                  f"best), {r['train_time_s']:.0f} s training", flush=True)
    text = report(results, best=best, epochs=args.epochs, batch_size=args.batch_size,
                  load=(load_before, os.getloadavg()[0]), took=time.perf_counter() - began)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
