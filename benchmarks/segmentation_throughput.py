"""Segmentation speed and the shapes accuracy check.

Two parts, each rerunnable alone; both land in benchmarks/results/segmentation.md (raw numbers
in segmentation.json beside it, so rerunning one part keeps the other's figures):

- throughput: training images/s (forward, the task's loss CE + 0.5 Dice, backward, an AdamW
  step) and inference images/s for unet and deeplabv3_resnet50 at the sizes the params files
  use (shapes 64x64 with the small U-Net; 256x256 for pets and ADE20K), on the CPU and, when
  CUDA is there, on the GPU with channels_last and bf16 autocast.
- convergence: the claim "on shapes with its params file, adamw brings unet to a test mIoU of
  at least 0.80 in at most 5 minutes of training on 2 CPU cores, and plain sgd is visibly
  behind at the same budget" (visibly: at least 0.10 mIoU lower). Each optimizer runs
  params/semantic_segmentation/shapes-unet.yaml through run_experiment(), as
  `python -m nbhelpers sweep ... --optimizers <name> --device cpu` would.

Usage: python benchmarks/segmentation_throughput.py [--part throughput|convergence|all]
       [--threads 2] [--extra adam,sgd_momentum]
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

# OpenMP threads that finish early spin while they wait for the others (libgomp's default): on a
# shared machine whose cores are busy the spinning thread takes a core from the one doing the
# work, and the run's CPU time grows several-fold (unet: 139 instead of 25 CPU-ms per image at
# 2 threads and a load of 4). Passive waiting must be chosen before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbhelpers.registry import MODELS, load_all  # noqa: E402
from nbhelpers.tasks.semantic_segmentation import SemanticSegmentation  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PARAMS = ROOT / "params" / "semantic_segmentation" / "shapes-unet.yaml"
MIOU_GOAL = 0.80
TIME_GOAL_S = 300.0
SEPARATION = 0.10  # sgd's test mIoU at least this much below adamw's

# (label, model, model_kwargs, classes, side, batch size)
CASES = (
    ("unet width 16 (shapes-unet.yaml)", "unet", {"width": 16}, 4, 64, 16),
    ("unet width 64 (default)", "unet", {}, 2, 256, 8),
    ("deeplabv3_resnet50", "deeplabv3_resnet50", {"pretrained_backbone": "off"}, 2, 256, 8),
)


def _machine(threads: int) -> str:
    load = os.getloadavg()
    policy = os.environ.get("OMP_WAIT_POLICY")
    return (f"torch {torch.__version__}, {threads} intra-op threads"
            + (f" (OMP_WAIT_POLICY={policy})" if policy else "") + f", {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}), 1-minute load average {load[0]:.2f}")


def _time(fn, *, warmup: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call of fn, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def measure(case, device: torch.device, *, fast: bool, steps: int) -> dict:
    """Training and inference images/s of one model at one size (fast: channels_last + bf16)."""
    label, name, kwargs, classes, side, batch = case
    torch.manual_seed(0)
    model = MODELS.get(name).factory(info={"in_channels": 3, "num_classes": classes}, **kwargs).to(device)
    images = torch.randn(batch, 3, side, side, device=device)
    labels = torch.randint(0, classes, (batch, side, side), device=device)
    if fast:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    task = SemanticSegmentation(dice_weight=0.5, class_balanced=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = task.train_step(model, (images, labels))
        loss.backward()
        optimizer.step()

    def infer():
        with torch.no_grad(), autocast:
            model(images)

    model.train()
    train_s, train_cpu = _time(train_step, warmup=1, steps=steps, device=device)
    model.eval()
    infer_s, infer_cpu = _time(infer, warmup=1, steps=steps, device=device)
    return {"label": label, "device": str(device), "fast": fast, "side": side, "batch": batch,
            "params": sum(p.numel() for p in model.parameters()),
            "train_images_per_s": batch / train_s, "infer_images_per_s": batch / infer_s,
            # Per CPU-second (all threads): what the work costs, whatever else held the cores.
            "train_images_per_cpu_s": batch / train_cpu, "infer_images_per_cpu_s": batch / infer_cpu}


def throughput(threads: int, steps: int, only: str = "") -> dict:
    cases = [case for case in CASES if not only or case[0].startswith(only)]
    rows = [measure(case, torch.device("cpu"), fast=False, steps=steps) for case in cases]
    for row in rows:
        print(json.dumps(row), flush=True)
    if torch.cuda.is_available():
        for case in cases:
            for fast in (False, True):
                rows.append(measure(case, torch.device("cuda"), fast=fast, steps=max(steps, 10)))
                print(json.dumps(rows[-1]), flush=True)
    return {"date": dt.date.today().isoformat(), "machine": _machine(threads), "steps": steps, "rows": rows}


def one_run(optimizer: str, runs_dir: Path) -> dict:
    from nbhelpers.sweep.expand import plan_from_args
    from nbhelpers.training import run_experiment

    cfg = plan_from_args(PARAMS, {"optimizers": optimizer, "device": "cpu", "progress": False,
                                  "output_dir": str(runs_dir)}).configs[0]
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    result = run_experiment(cfg)
    cpu_s = time.process_time() - cpu_before
    s = result.summary
    config = json.loads((result.run_dir / "config.json").read_text())["config"]
    return {"optimizer": optimizer, "lr": config["lr"], "weight_decay": config["weight_decay"],
            "epochs": cfg.epochs, "batch_size": cfg.batch_size, "status": s["status"],
            "epochs_run": s["epochs_run"], "best_epoch": s["best_epoch"], "best_val": s["best_val"],
            "test": s["test"] or {}, "train_time_s": s["train_time_s"], "total_time_s": s["total_time_s"],
            "cpu_s": cpu_s, "load": [load_before, os.getloadavg()[0]],
            "time_to_target_s": s["time_to_target_s"], "epochs_to_target": s["epochs_to_target"],
            "curve": [(row["epoch"], row["wall_s"], row.get("val_miou")) for row in result.history]}


def convergence(threads: int, names: list[str], runs_dir: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        runs = []
        for name in names:
            runs.append(one_run(name, runs_dir or Path(scratch)))
            r = runs[-1]
            print(f"{name}: test mIoU {r['test'].get('miou')}, {r['train_time_s']:.0f} s training, "
                  f"{r['cpu_s']:.0f} s CPU", flush=True)
    return {"date": dt.date.today().isoformat(), "machine": _machine(threads), "runs": runs}


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def throughput_section(data: dict) -> list[str]:
    lines = ["## Throughput", "",
             f"Measured {data['date']}: {data['machine']} when it started; {data['steps']} timed steps "
             "after one warm-up step. Training: forward, CE + 0.5 Dice (class-balanced), backward, AdamW "
             "step. The machine is shared: with a load average above the core count the figures are "
             "lower bounds of what the models do on idle cores.", "",
             "| model | device | channels_last + bf16 | input | batch | parameters | train images/s | "
             "inference images/s | train images per CPU-second | inference images per CPU-second |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        per_cpu = (f"{r['train_images_per_cpu_s']:.1f} | {r['infer_images_per_cpu_s']:.1f}"
                   if "train_images_per_cpu_s" in r else "n/a | n/a")
        lines.append(f"| {r['label']} | {r['device']} | {'yes' if r['fast'] else 'no'} | "
                     f"{r['side']}x{r['side']} | {r['batch']} | {r['params']:,} | "
                     f"{r['train_images_per_s']:.1f} | {r['infer_images_per_s']:.1f} | {per_cpu} |")
    return lines


def convergence_section(data: dict) -> list[str]:
    claim = ("adamw", "sgd")
    runs = sorted(data["runs"], key=lambda r: (claim.index(r["optimizer"]) if r["optimizer"] in claim else 2,
                                               r["optimizer"]))
    first = runs[0]
    lines = ["## Accuracy check: shapes / unet with its params file", "",
             f"Measured {data['date']}: {data['machine']} when the last batch of runs started (each "
             "run's own load average is in the table). Settings: "
             f"params/semantic_segmentation/shapes-unet.yaml as it is ({first['epochs']} epochs, batch "
             f"{first['batch_size']}, unet width 16, cosine schedule, clipping 1.0, patience 5, per-optimizer "
             "LR and weight decay), seed 0, device cpu. Training time is the Trainer's clock (evaluation "
             "excluded); process CPU time counts every thread of the run (training and evaluation), so on "
             "an idle 2-core machine the training wall time would be about half of it.", "",
             "| optimizer | epochs | lr | weight decay | status | best val mIoU | test mIoU | test pixel acc. | "
             "test Dice | val mIoU 0.80 after | training time (s) | whole run (s) | process CPU (s) | "
             "load average (start, end) |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in runs:
        reached = (f"epoch {r['epochs_to_target']}, {r['time_to_target_s']:.0f} s"
                   if r["epochs_to_target"] else "not reached")
        t = r["test"]
        lines.append(f"| {r['optimizer']} | {r['epochs']} | {r['lr']:g} | {r['weight_decay']:g} | {r['status']} | "
                     f"{_fmt(r['best_val'])} | {_fmt(t.get('miou'))} | {_fmt(t.get('pixel_accuracy'))} | "
                     f"{_fmt(t.get('dice'))} | {reached} | {r['train_time_s']:.0f} | {r['total_time_s']:.0f} | "
                     f"{r['cpu_s']:.0f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    width = max(len(r["curve"]) for r in runs)
    lines += ["", "Validation mIoU after each epoch (cumulative training seconds in brackets):", "",
              "| optimizer | " + " | ".join(f"epoch {e}" for e in range(1, width + 1)) + " |",
              "|---|" + "---:|" * width]
    for r in runs:
        cells = [f"{m:.3f} ({w:.0f} s)" if m is not None else "diverged" for _, w, m in r["curve"]]
        lines.append(f"| {r['optimizer']} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
    adamw = next((r for r in runs if r["optimizer"] == "adamw"), None)
    sgd = next((r for r in runs if r["optimizer"] == "sgd"), None)
    lines += ["", "### Verdict", ""]
    if adamw and sgd and adamw["test"].get("miou") is not None and sgd["test"].get("miou") is not None:
        a, s = adamw["test"]["miou"], sgd["test"]["miou"]
        in_time = adamw["train_time_s"] <= TIME_GOAL_S
        in_cpu = adamw["cpu_s"] <= 2 * TIME_GOAL_S
        lines += [
            f"- adamw: test mIoU {a:.3f} ({'at least' if a >= MIOU_GOAL else 'BELOW'} {MIOU_GOAL}) after "
            f"{adamw['train_time_s']:.0f} s of training wall time ({'within' if in_time else 'OVER'} 5 minutes "
            f"on this loaded machine) and {adamw['cpu_s']:.0f} s of process CPU time "
            f"({'within' if in_cpu else 'OVER'} the 600 CPU-seconds that 5 minutes on 2 cores provide).",
            f"- sgd: test mIoU {s:.3f}, {a - s:.3f} below adamw ({'visibly behind' if a - s >= SEPARATION else 'NOT separated'}: "
            f"the goal is at least {SEPARATION}).",
            f"- The claim {'HOLDS' if a >= MIOU_GOAL and in_cpu and a - s >= SEPARATION else 'DOES NOT HOLD'} "
            "(judged on CPU time, because wall time on this shared machine depends on the other processes)."]
    else:
        lines.append("- adamw and sgd must both finish to judge the claim.")
    return lines


def write_markdown(data: dict, path: Path) -> str:
    lines = ["# Semantic segmentation: throughput and the shapes accuracy check", "",
             "Written by `python benchmarks/segmentation_throughput.py`.", ""]
    if "throughput" in data:
        lines += throughput_section(data["throughput"]) + [""]
    if "convergence" in data:
        lines += convergence_section(data["convergence"]) + [""]
    notes = data.get("notes")
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def main(argv=None) -> int:
    load_all()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("throughput", "convergence", "all"), default="all")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per throughput measurement")
    ap.add_argument("--optimizers", default="adamw,sgd", help="the claim's optimizers")
    ap.add_argument("--extra", default="", help="more optimizers for the accuracy table")
    ap.add_argument("--runs-dir", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--output", type=Path, default=RESULTS / "segmentation.md")
    ap.add_argument("--only", default="", help="throughput: only the models whose label starts with this; "
                                               "the other rows of the results file stay")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    raw_path = args.output.with_suffix(".json")
    data = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    if args.part in ("throughput", "all"):
        fresh = throughput(args.threads, args.steps, args.only)
        labels = {row["label"] for row in fresh["rows"]}
        kept = [row for row in data.get("throughput", {}).get("rows", []) if row["label"] not in labels]
        data["throughput"] = {**fresh, "rows": fresh["rows"] + kept}
    if args.part in ("convergence", "all"):
        names = [n.strip() for n in f"{args.optimizers},{args.extra}".split(",") if n.strip()]
        fresh = convergence(args.threads, names, args.runs_dir)
        # Runs of other optimizers measured earlier stay (one optimizer can be rerun alone).
        kept = [r for r in data.get("convergence", {}).get("runs", []) if r["optimizer"] not in names]
        data["convergence"] = {**fresh, "runs": fresh["runs"] + kept}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(data, indent=1) + "\n")
    print(write_markdown(data, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
