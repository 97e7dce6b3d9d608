"""Profile the Trainer's training step of resnet18: which ops run, and does any wait for the device?

    python benchmarks/step_profile.py --device cpu      # what benchmarks/results/gpu_path.md shows
    python benchmarks/step_profile.py --device cuda     # the check to repeat on a GPU

Runs Trainer._train_epoch over a short and a long epoch (3 and 9 steps after a warm-up epoch)
under torch.profiler and counts, per epoch:
- aten::_local_scalar_dense: every Python read of a tensor value (.item(), float(t), bool(t));
  on CUDA each one waits for the queue to drain;
- on CUDA also the runtime calls that block the host: cudaStreamSynchronize,
  cudaDeviceSynchronize, cudaEventSynchronize, and synchronous cudaMemcpy.
A count that grows with the steps is a per-step sync. Also prints the ten most frequent ops of
the long epoch, per step.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbhelpers.optim import make_optimizer  # noqa: E402
from nbhelpers.registry import MODELS  # noqa: E402
from nbhelpers.tasks.image_classification import ImageClassification  # noqa: E402
from nbhelpers.training.trainer import Trainer  # noqa: E402

BLOCKING = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
            "cudaEventSynchronize", "cudaMemcpy")


def profile_epochs(device: torch.device, *, optimizer: str, amp: str, batch: int, side: int,
                   steps: tuple[int, ...] = (3, 9)) -> dict[int, collections.Counter]:
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = MODELS.get("resnet18").factory(info={"in_channels": 3, "num_classes": 10, "image_size": side})
    opt, _ = make_optimizer(optimizer, model, lr=0.01)
    trainer = Trainer(model=model, task=ImageClassification(), optimizer=opt, device=device, amp=amp,
                      progress=False)
    pin = device.type == "cuda"

    def batches(count):
        out = [(torch.randn(batch, 3, side, side), torch.randint(0, 10, (batch,))) for _ in range(count)]
        return [(x.pin_memory(), y.pin_memory()) for x, y in out] if pin else out

    trainer._train_epoch(batches(2), epoch=1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    counts = {}
    for n in steps:
        with profile(activities=activities) as prof:
            trainer._train_epoch(batches(n), epoch=2)
        counts[n] = collections.Counter(e.name for e in prof.events())
    return counts


def main(argv: list[str] | None = None) -> dict[int, collections.Counter]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--optimizer", default="sgd_momentum")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=32)
    args = parser.parse_args(argv)
    counts = profile_epochs(torch.device(args.device), optimizer=args.optimizer, amp=args.amp,
                            batch=args.batch, side=args.side)
    short, long = sorted(counts)
    print(f"resnet18, {args.optimizer}, amp {args.amp}, batch {args.batch} at {args.side}x{args.side}, "
          f"{args.device}; torch {torch.__version__}")
    print(f"| blocking call | epoch of {short} steps | epoch of {long} steps |")
    print("|---|---:|---:|")
    for name in BLOCKING:
        print(f"| {name} | {counts[short][name]} | {counts[long][name]} |")
    print(f"\nmost frequent ops per step (from the {long}-step epoch):")
    per_step = {k: (counts[long][k] - counts[short][k]) / (long - short) for k in counts[long]}
    for name, value in sorted(per_step.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {value:6.1f}  {name}")
    return counts


if __name__ == "__main__":
    main()
