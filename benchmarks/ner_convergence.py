"""Do the NER models learn gazetteer_ner in CPU minutes, and do the character features and the
optimizers make the differences they should?

The claims under test (issue: structured prediction, NER part):

1. adamw brings bilstm_crf_charcnn_ner to test F1 >= 0.90 within 5 minutes of training on a
   2-core CPU;
2. the char-CNN model beats lstm_crf_ner on the test split, whose names never occur in
   training (by at least 2 F1 points);
3. plain sgd is visibly behind adamw: its test F1 at least 2 points lower, or its validation F1
   at least 5 points lower after the first epoch.

Each run is one run_experiment() with the settings of params/ner/gazetteer_ner-*.yaml (5
epochs, batch 32, plateau LR on the validation loss, clipping 1.0, patience 5, per-optimizer LR
and weight decay), on the CPU, as `python -m nbhelpers run --task ner --dataset gazetteer_ner
--model <model> --optimizers <name> --epochs 5 --batch-size 32 --device cpu` would do it.

Usage: python benchmarks/ner_convergence.py [--extra adam,sgd_momentum] [--threads 2]
Writes benchmarks/results/ner.md (see --output); runs go to a temporary folder unless
--runs-dir is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from nbhelpers.registry import load_all  # noqa: E402
from nbhelpers.training import run_experiment  # noqa: E402

F1_GOAL = 0.90
TIME_GOAL_S = 300.0
CHAR_MARGIN = 0.02      # char-CNN test F1 over lstm_crf_ner's, at least
SGD_TEST_GAP = 0.02     # adamw's test F1 over sgd's, at least ...
SGD_EPOCH1_GAP = 0.05   # ... or adamw's validation F1 over sgd's after epoch 1, at least
CHAR_MODEL, WORD_MODEL = "bilstm_crf_charcnn_ner", "lstm_crf_ner"


def one_run(model: str, optimizer: str, *, epochs: int, batch_size: int, runs_dir: Path) -> dict:
    """One run on gazetteer_ner; returns the numbers the report needs."""
    cfg = RunConfig(task="ner", dataset="gazetteer_ner", model=model, optimizer=optimizer, epochs=epochs,
                    batch_size=batch_size, scheduler="plateau", early_stopping_patience=5, max_grad_norm=1.0,
                    device="cpu", output_dir=str(runs_dir), progress=False)
    cpu_before = time.process_time()
    result = run_experiment(cfg)
    s = result.summary
    test = s["test"] or {}
    return {"model": model, "optimizer": optimizer, "status": s["status"], "epochs_run": s["epochs_run"],
            "best_epoch": s["best_epoch"], "best_val": s["best_val"], "test": test.get("f1"),
            "test_types": {k[3:]: v for k, v in test.items() if k.startswith("f1_")},
            "params": s["params_total"], "train_time_s": s["train_time_s"], "total_time_s": s["total_time_s"],
            "cpu_s": time.process_time() - cpu_before, "time_to_target_s": s["time_to_target_s"],
            "epochs_to_target": s["epochs_to_target"],
            "curve": [(row["epoch"], row["wall_s"], row.get("val_f1")) for row in result.history]}


def _f(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _find(results: list[dict], model: str, optimizer: str) -> dict | None:
    return next((r for r in results if r["model"] == model and r["optimizer"] == optimizer), None)


def verdict(results: list[dict]) -> list[str]:
    adamw, word, sgd = (_find(results, m, o) for m, o in ((CHAR_MODEL, "adamw"), (WORD_MODEL, "adamw"),
                                                             (CHAR_MODEL, "sgd")))
    if not (adamw and word and sgd and None not in (adamw["test"], word["test"], sgd["test"])):
        return ["- the three runs (char-CNN/adamw, lstm_crf_ner/adamw, char-CNN/sgd) must finish to judge."]
    lines = []
    one = adamw["test"] >= F1_GOAL and adamw["train_time_s"] <= TIME_GOAL_S
    lines.append(
        f"- 1. adamw / {CHAR_MODEL}: test F1 {_f(adamw['test'])} ({'>=' if adamw['test'] >= F1_GOAL else '<'} "
        f"{100 * F1_GOAL:.0f}) after {adamw['train_time_s']:.0f} s of training ("
        f"{'within' if adamw['train_time_s'] <= TIME_GOAL_S else 'OVER'} 5 minutes); validation F1 "
        f"{100 * F1_GOAL:.0f} first reached "
        + (f"after epoch {adamw['epochs_to_target']} ({adamw['time_to_target_s']:.0f} s)."
           if adamw["epochs_to_target"] else "never."))
    two = adamw["test"] - word["test"] >= CHAR_MARGIN
    lines.append(f"- 2. char-CNN {_f(adamw['test'])} vs lstm_crf_ner {_f(word['test'])} test F1 on unseen names: "
                 f"{100 * (adamw['test'] - word['test']):+.2f} points "
                 f"({'beats it' if two else 'does NOT beat it'} by the {100 * CHAR_MARGIN:.0f} required).")
    first = lambda r: r["curve"][0][2] if r["curve"] and r["curve"][0][2] is not None else 0.0  # noqa: E731
    gap_test, gap_epoch1 = adamw["test"] - sgd["test"], first(adamw) - first(sgd)
    three = gap_test >= SGD_TEST_GAP or gap_epoch1 >= SGD_EPOCH1_GAP
    lines.append(f"- 3. sgd / {CHAR_MODEL}: test F1 {_f(sgd['test'])} ({100 * gap_test:+.2f} points behind adamw), "
                 f"validation F1 after epoch 1 {_f(first(sgd))} vs adamw's {_f(first(adamw))} "
                 f"({100 * gap_epoch1:+.2f} points): {'visibly behind' if three else 'NOT visibly behind'}.")
    lines.append(f"- The claims {'HOLD' if one and two and three else 'DO NOT all hold'} on this run.")
    return lines


def report(results: list[dict], *, epochs: int, batch_size: int, load: tuple, took: float) -> str:
    lines = [
        "# NER on gazetteer_ner: convergence, character features and optimizer separation (CPU)",
        "",
        f"Measured {dt.date.today().isoformat()} with `python benchmarks/ner_convergence.py`: torch "
        f"{torch.__version__}, {torch.get_num_threads()} intra-op threads, {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}); 1-minute load average {load[0]:.2f} before and "
        f"{load[1]:.2f} after ({took / 60:.1f} minutes in all). The machine is shared with other "
        "processes: a load average above the core count means they competed for the cores, and the "
        "times below are then upper bounds.",
        "",
        f"Settings: params/ner/gazetteer_ner-*.yaml ({epochs} epochs, batch {batch_size}, plateau LR on "
        "the validation loss, clipping at 1.0, patience 5, per-optimizer LR and weight decay from "
        "nbhelpers/optim/table.py), models at their default sizes, seed 0, device cpu. Test names "
        "never occur in training. F1 is seqeval's strict IOB2 entity F1, in %.",
        "",
        "| model | optimizer | params | status | best val F1 | test F1 | PER | ORG | LOC | MISC | "
        "val F1 90 after (epoch, s) | training (s) | whole run (s) | process CPU (s) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        reached = (f"epoch {r['epochs_to_target']}, {r['time_to_target_s']:.0f} s" if r["epochs_to_target"]
                   else "not reached")
        types = [_f(r["test_types"].get(k)) for k in ("PER", "ORG", "LOC", "MISC")]
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['params']:,} | {r['status']} | {_f(r['best_val'])} | "
                     f"{_f(r['test'])} | {' | '.join(types)} | {reached} | {r['train_time_s']:.0f} | "
                     f"{r['total_time_s']:.0f} | {r['cpu_s']:.0f} |")
    lines += ["", "Validation F1 after each epoch (cumulative training seconds in brackets):", ""]
    width = max(len(r["curve"]) for r in results)
    lines.append("| model / optimizer | " + " | ".join(f"epoch {e}" for e in range(1, width + 1)) + " |")
    lines.append("|---|" + "---:|" * width)
    for r in results:
        cells = [f"{_f(f1)} ({wall:.0f} s)" if f1 is not None else "diverged" for _, wall, f1 in r["curve"]]
        lines.append(f"| {r['model']} / {r['optimizer']} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
    lines += ["", "## Verdict", ""] + verdict(results)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    load_all()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", default="", help="more optimizers for the char-CNN model, e.g. adam,sgd_momentum")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--runs-dir", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ner.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = [(CHAR_MODEL, "adamw"), (WORD_MODEL, "adamw"), (CHAR_MODEL, "sgd")]
    plan += [(CHAR_MODEL, name.strip()) for name in args.extra.split(",") if name.strip()]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        results = []
        for model, optimizer in plan:
            results.append(one_run(model, optimizer, epochs=args.epochs, batch_size=args.batch_size,
                                   runs_dir=runs_dir))
            r = results[-1]
            print(f"{model} / {optimizer}: test F1 {_f(r['test'])}, {r['train_time_s']:.0f} s training", flush=True)
    text = report(results, epochs=args.epochs, batch_size=args.batch_size,
                  load=(load_before, os.getloadavg()[0]), took=time.perf_counter() - began)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
