"""How much time does the Trainer add over a bare PyTorch loop?

Same model, data, batch size, optimizer and LR schedule, in one process: the two loops
take turns training the very same model and optimizer (bare epoch, Trainer epoch, bare,
Trainer, ...), after a warm-up epoch each. Sharing the tensors matters on the CPU: two
copies of a model can differ in speed by tens of percent from where their memory happens
to lie, which would swamp the few percent measured here. Taking turns means drifts in
machine load hit both alike. The
overhead is the ratio of the fastest epochs minus one (the minimum is the estimate least
disturbed by other processes, as in timeit); the medians are reported beside it.

The Trainer's epoch includes what a user gets by default: the progress bar, the
per-step loss check, the gradient-norm measurement, metric sums, memory sampling and
the schedule; evaluation is outside both timings.

    python benchmarks/trainer_overhead.py                  # cnn_scratch on digits
    python benchmarks/trainer_overhead.py --case gpt_small # gpt_small on grammar_lm
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nbhelpers.data  # noqa: F401  (registers datasets)
import nbhelpers.models  # noqa: F401  (registers models)
from nbhelpers.optim import make_optimizer
from nbhelpers.registry import DATASETS, MODELS, TASKS
from nbhelpers.schedulers import build_scheduler
from nbhelpers.training.trainer import Trainer

CASES = {
    # case: (task, dataset, model, batch size, max_samples, model kwargs)
    "cnn_scratch": ("image_classification", "digits", "cnn_scratch", 32, None, {}),
    "gpt_small": ("text_generation", "grammar_lm", "gpt_small", 16, 1000, {}),
}


def bare_epoch(model, loader, optimizer, schedule, *, label_smoothing: float, clip: float | None) -> float:
    """The loop a user would write by hand: forward, loss, backward, (clip), step."""
    model.train()
    start = time.perf_counter()
    for inputs, targets in loader:
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               label_smoothing=label_smoothing)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.after_batch()
    return time.perf_counter() - start


def trainer_epoch(trainer: Trainer, loader, epoch: int) -> float:
    return trainer._train_epoch(loader, epoch)["train_s"]


def measure(case: str, repeats: int) -> dict:
    task_name, dataset, model_name, batch_size, max_samples, model_kwargs = CASES[case]
    data = DATASETS.get(dataset).factory(data_dir=Path("."), max_samples=max_samples, seed=0, download=False)
    task = TASKS.get(task_name).factory(data=data)
    spec = task.spec
    torch.manual_seed(0)
    model = MODELS.get(model_name).factory(info=data.info, **model_kwargs)
    loader = torch.utils.data.DataLoader(data.train, batch_size=batch_size, shuffle=True, drop_last=True,
                                         collate_fn=data.collate_fn, generator=torch.Generator().manual_seed(0))
    epochs = repeats + 1
    optimizer, _ = make_optimizer("adamw", model, task=task_name)
    # One schedule over both loops' epochs: each loop advances it by its own steps.
    schedule = build_scheduler(spec.scheduler, optimizer, epochs=2 * epochs, steps_per_epoch=len(loader))
    trainer = Trainer(model=model, task=task, optimizer=optimizer, schedule=schedule,
                      max_grad_norm=spec.max_grad_norm, progress=True)
    bare, ours = [], []
    for epoch in range(epochs):
        a = bare_epoch(model, loader, optimizer, schedule, label_smoothing=task.label_smoothing,
                       clip=spec.max_grad_norm)
        b = trainer_epoch(trainer, loader, epoch + 1)
        if epoch > 0:  # the first epoch of each warms up allocators and caches
            bare.append(a)
            ours.append(b)
    return {"case": case, "steps_per_epoch": len(loader), "batch_size": batch_size,
            "bare_s": min(bare), "trainer_s": min(ours), "overhead": min(ours) / min(bare) - 1.0,
            "bare_median_s": statistics.median(bare), "trainer_median_s": statistics.median(ours),
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/trainer_overhead.md")
    args = parser.parse_args()
    rows = [measure(case, args.repeats) for case in (args.case or ["cnn_scratch"])]
    lines = ["# Trainer overhead over a bare PyTorch loop",
             "",
             f"Measured {datetime.date.today()} with `python benchmarks/trainer_overhead.py "
             f"{' '.join('--case ' + r['case'] for r in rows)} --repeats {args.repeats}`; torch {torch.__version__}, "
             f"{torch.get_num_threads()} CPU threads, {platform.machine()}. {args.repeats} interleaved training "
             "epochs each after one warm-up epoch (evaluation excluded), AdamW, the task's default schedule "
             "and clipping; fastest epoch of each (medians in brackets).",
             "",
             "| case | params | batch | steps/epoch | bare loop (s/epoch) | Trainer (s/epoch) | overhead |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    # median in brackets: how much the machine's load moved the numbers
    for r in rows:
        lines.append(f"| {r['case']} | {r['params']:,} | {r['batch_size']} | {r['steps_per_epoch']} | "
                     f"{r['bare_s']:.3f} ({r['bare_median_s']:.3f}) | {r['trainer_s']:.3f} ({r['trainer_median_s']:.3f}) | "
                     f"{r['overhead']:+.1%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
