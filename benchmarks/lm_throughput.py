"""Training throughput of the language models: tokens per second on this machine's CPU.

One training step is what the Trainer does per batch: the text_generation task's forward
(cross-entropy summed over tokens), backward, global-norm clipping to 1.0 and an AdamW step.
gpt_small and gru_lm at their default sizes, at grammar_lm's vocabulary and at a PTB-sized
one (10,000 words), batch 16 and 64, chunks of bptt = 64 tokens. The models take turns,
round after round (after --warmup untimed rounds), so a stretch of load from other
processes hits them all alike; the median step time of each gives tokens/s.

Usage: python benchmarks/lm_throughput.py [--repeats 10] [--warmup 2] [--threads N]
Writes a markdown table to benchmarks/results/lm_throughput.md (see --output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbhelpers.data.lm_grammar import toy_english  # noqa: E402
from nbhelpers.models.language_models import build_gpt_small, build_gru_lm  # noqa: E402
from nbhelpers.tasks.text_generation import TextGeneration  # noqa: E402

BPTT = 64
PTB_VOCAB = 10_000
BUILDERS = {"gpt_small": build_gpt_small, "gru_lm": build_gru_lm}


class Case:
    """One (model, vocabulary, batch) configuration with its own model, optimizer and batch."""

    def __init__(self, model_name: str, vocab: int, batch: int):
        torch.manual_seed(0)
        self.label = (model_name, vocab, batch)
        self.model = BUILDERS[model_name](info={"vocab_size": vocab, "bptt": BPTT}).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.01)
        self.task = TextGeneration()
        stream = torch.randint(0, vocab, (batch, BPTT + 1))
        self.batch = (stream[:, :-1], stream[:, 1:])
        self.tokens = batch * BPTT
        self.times: list[float] = []

    def step(self) -> float:
        began = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss, _ = self.task.train_step(self.model, self.batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, foreach=True)
        self.optimizer.step()
        return time.perf_counter() - began


def run(cases: list[Case], repeats: int, warmup: int) -> None:
    for round_index in range(warmup + repeats):
        shift = round_index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            elapsed = case.step()
            if round_index >= warmup:
                case.times.append(elapsed)


def table(cases: list[Case]) -> list[str]:
    rows = ["| model | vocabulary | batch | parameters | median step (ms) | tokens/s | sequences/s |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        model, vocab, batch = case.label
        median = statistics.median(case.times)
        rows.append(f"| {model} | {vocab:,} | {batch} | {case.params / 1e6:.2f}M | {median * 1e3:.0f} "
                    f"| {case.tokens / median:,.0f} | {batch / median:,.1f} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/lm_throughput.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    grammar_vocab = len(toy_english().vocabulary)
    cases = [Case(model, vocab, batch) for model in BUILDERS for vocab in (grammar_vocab, PTB_VOCAB)
             for batch in (16, 64)]
    load_before = os.getloadavg()
    began = time.perf_counter()
    run(cases, args.repeats, args.warmup)
    took = time.perf_counter() - began
    load_after = os.getloadavg()
    lines = [
        "# Language-model training throughput (CPU)",
        "",
        f"Measured {dt.date.today().isoformat()} with `python benchmarks/lm_throughput.py"
        f" --repeats {args.repeats} --warmup {args.warmup}"
        + (f" --threads {args.threads}" if args.threads else "") + "`:",
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; 1-minute load average {load_before[0]:.2f} before and "
        f"{load_after[0]:.2f} after ({took:.0f} s of timing).",
        "",
        "One step = the task's forward (summed token cross-entropy), backward, clipping to norm 1.0 "
        f"and an AdamW step, on chunks of {BPTT} tokens; default model sizes; grammar_lm's "
        f"vocabulary has {grammar_vocab} words, PTB's {PTB_VOCAB:,}. Median over "
        f"{args.repeats} rounds in which the configurations take turns.",
        "",
        *table(cases),
        "",
        "The machine is shared: a load average above the core count means other processes "
        "competed for the cores, and the figures are then lower bounds.",
    ]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
