"""Training throughput on one device: resnet18 images/s at 32x32, gpt_small tokens/s, peak memory.

    python benchmarks/gpu_throughput.py --device cuda              # the full run on a GPU
    python benchmarks/gpu_throughput.py --device cuda --compile    # the same with torch.compile
    python benchmarks/gpu_throughput.py --device cpu --quick       # the same code, small (a test runs it)

What is measured (training steps only: forward, loss, backward, optimizer step):
- resnet18 (the project's, 3x3 stride-1 stem) on random 32x32x3 images, SGD with momentum
  0.9 (resnet18-he2016's optimizer), in two ways:
  * `bare`: a hand-written loop on batches already on the device, channels_last, autocast;
    the ceiling for this model on this device;
  * `trainer`: the project's Trainer on pinned host batches (non-blocking copies each step)
    with the same autocast; the model in channels_last as well. The gap is the Trainer's cost
    plus the host-to-device copies.
- gpt_small at sequence length 128 and a 10,000-word vocabulary (PTB's), AdamW: tokens/s.
- memory: the allocator's peak (torch.cuda.max_memory_allocated) over warm-up and timed steps;
  on the CPU the process's peak resident set size (which includes everything the process holds).
Timed steps come after warm-up steps (cuDNN autotuning, torch.compile, allocator growth); the
clock is read after torch.cuda.synchronize().
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from nbhelpers.optim import make_optimizer  # noqa: E402
from nbhelpers.registry import MODELS  # noqa: E402
from nbhelpers.tasks.image_classification import ImageClassification  # noqa: E402
from nbhelpers.training.trainer import Trainer  # noqa: E402

# (batch, timed steps, warm-up steps) for the full run and for --quick (the CPU smoke run)
FULL = {"resnet18": (512, 50, 10), "gpt_small": (64, 30, 5)}
QUICK = {"resnet18": (4, 2, 1), "gpt_small": (4, 2, 1)}
SEQ_LEN, VOCAB = 128, 10_000
QUICK_SEQ_LEN = 32
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def _autocast(device: torch.device, amp: str):
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def _timed(step, device: torch.device, steps: int, warmup: int) -> tuple[float, float]:
    """(seconds for `steps` calls of step() after `warmup` calls, allocator peak MB over all)."""
    _reset_peak(device)
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start, _peak_mb(device)


def _resnet18(device: torch.device, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.get("resnet18").factory(info={"in_channels": 3, "num_classes": 10, "image_size": 32})
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def resnet18_bare(device: torch.device, *, batch: int, steps: int, warmup: int, amp: str,
                  channels_last: bool, compile: bool) -> dict[str, Any]:
    """images/s of a hand-written training loop on batches already on the device."""
    model = _resnet18(device, channels_last)
    optimizer, _ = make_optimizer("sgd_momentum", model, lr=0.1, weight_decay=1e-4)
    forward = torch.compile(model) if compile else model
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = F.cross_entropy(forward(x).float(), y)
        loss.backward()
        optimizer.step()

    seconds, peak = _timed(step, device, steps, warmup)
    return {"images_per_s": batch * steps / seconds, "peak_mb": peak, "batch": batch, "steps": steps}


def resnet18_trainer(device: torch.device, *, batch: int, steps: int, warmup: int, amp: str,
                     channels_last: bool, compile: bool) -> dict[str, Any]:
    """images/s through Trainer._train_epoch, from pinned host batches copied without blocking."""
    model = _resnet18(device, channels_last)
    optimizer, _ = make_optimizer("sgd_momentum", model, lr=0.1, weight_decay=1e-4)
    trainer = Trainer(model=model, task=ImageClassification(label_smoothing=0.0), optimizer=optimizer,
                      device=device, amp=amp, progress=False)
    if compile:  # the Trainer calls task.train_step(trainer.model, ...): compile what it calls
        trainer.model = torch.compile(model)
    pin = device.type == "cuda"
    generator = torch.Generator().manual_seed(0)

    def batches(count: int) -> list:
        out = []
        for _ in range(count):
            x = torch.randn(batch, 3, 32, 32, generator=generator)
            y = torch.randint(0, 10, (batch,), generator=generator)
            out.append((x.pin_memory(), y.pin_memory()) if pin else (x, y))
        return out

    trainer._train_epoch(batches(warmup), epoch=1)
    result = trainer._train_epoch(batches(steps), epoch=2)
    return {"images_per_s": result["samples"] / result["train_s"], "peak_mb": result["mem"][0],
            "batch": batch, "steps": steps}


def gpt_small_tokens(device: torch.device, *, batch: int, steps: int, warmup: int, amp: str,
                     seq_len: int, compile: bool) -> dict[str, Any]:
    """tokens/s of gpt_small training (next-token cross-entropy, AdamW)."""
    torch.manual_seed(0)
    model = MODELS.get("gpt_small").factory(info={"vocab_size": VOCAB, "bptt": seq_len}).to(device)
    optimizer, _ = make_optimizer("adamw", model, lr=3e-4)
    forward = torch.compile(model) if compile else model
    ids = torch.randint(0, VOCAB, (batch, seq_len + 1), device=device)
    inputs, targets = ids[:, :-1], ids[:, 1:]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            logits = forward(inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        optimizer.step()

    seconds, peak = _timed(step, device, steps, warmup)
    return {"tokens_per_s": batch * seq_len * steps / seconds, "peak_mb": peak, "batch": batch,
            "seq_len": seq_len, "steps": steps, "params": sum(p.numel() for p in model.parameters())}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"


def run(device: torch.device, *, quick: bool, amp: str, channels_last: bool, compile: bool,
        sizes: dict[str, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    sizes = sizes or (QUICK if quick else FULL)
    batch, steps, warmup = sizes["resnet18"]
    common = dict(batch=batch, steps=steps, warmup=warmup, amp=amp, channels_last=channels_last, compile=compile)
    resnet = resnet18_bare(device, **common)
    resnet["trainer"] = resnet18_trainer(device, **common)
    batch, steps, warmup = sizes["gpt_small"]
    gpt = gpt_small_tokens(device, batch=batch, steps=steps, warmup=warmup, amp=amp,
                           seq_len=QUICK_SEQ_LEN if quick else SEQ_LEN, compile=compile)
    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "date": str(datetime.date.today()), "amp": amp, "channels_last": channels_last,
            "compile": compile, "quick": quick, "resnet18": resnet, "gpt_small": gpt}


def markdown_row(r: dict[str, Any]) -> str:
    """One row of README's table."""
    setting = f"{r['amp']}{', channels_last' if r['channels_last'] else ''}{', compile' if r['compile'] else ''}"
    size = " (--quick)" if r["quick"] else ""
    rn, tr, gpt = r["resnet18"], r["resnet18"]["trainer"], r["gpt_small"]
    return (f"| {r['device_name']}{size} | {setting} | {rn['images_per_s']:,.0f} (batch {rn['batch']}) | "
            f"{tr['images_per_s']:,.0f} | {rn['peak_mb']:,.0f} | {gpt['tokens_per_s']:,.0f} "
            f"(batch {gpt['batch']}x{gpt['seq_len']}) | {gpt['peak_mb']:,.0f} | torch {r['torch']}, {r['date']} |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny batches and 2 steps (the CPU smoke run)")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), default="bf16")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--resnet18-batch", type=int, help="override the resnet18 batch size")
    parser.add_argument("--gpt-small-batch", type=int, help="override the gpt_small batch size")
    parser.add_argument("--steps", type=int, help="override the number of timed steps")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name, batch in (("resnet18", args.resnet18_batch), ("gpt_small", args.gpt_small_batch)):
        old_batch, steps, warmup = sizes[name]
        sizes[name] = (batch or old_batch, args.steps or steps, warmup)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but CUDA is not available here")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    results = run(device, quick=args.quick, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                  sizes=sizes)
    print(markdown_row(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
