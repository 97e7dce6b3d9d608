"""The Trainer on CUDA: mixed precision, SAM under fp16, memory figures, pinned copies, no syncs.

Every test here needs a CUDA device and is skipped without one (run: pytest -m gpu).
CPU counterparts: tests/test_trainer.py (AMP on the CPU) and tests/test_gpu_path.py.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from nbhelpers.optim import make_optimizer
from nbhelpers.registry import MODELS
from nbhelpers.tasks.image_classification import ImageClassification
from nbhelpers.training.trainer import Trainer, to_device

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none found)")]

DEVICE = "cuda"


def _resnet(image_size: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.get("resnet18").factory(info={"in_channels": 3, "num_classes": 10, "image_size": image_size})


def _batches(steps: int, *, batch: int = 16, side: int = 16, device: str = "cpu", pin: bool = False):
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        x = torch.randn(batch, 3, side, side, generator=generator)
        y = torch.randint(0, 10, (batch,), generator=generator)
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        out.append((x.to(device), y.to(device)))
    return out


def _trainer(model: nn.Module, optimizer: str = "sgd_momentum", **kwargs) -> Trainer:
    opt, _ = make_optimizer(optimizer, model, lr=0.01)
    return Trainer(model=model, task=ImageClassification(), optimizer=opt, device=DEVICE, progress=False, **kwargs)


@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_the_convolutions_in_low_precision(amp, dtype):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = _resnet()
    seen = []
    model.net.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer = _trainer(model, amp=amp)
    before = [p.detach().clone() for p in model.parameters()]
    out = trainer._train_epoch(_batches(4, pin=True), epoch=1)
    assert set(seen) == {dtype}
    assert math.isfinite(out["metrics"]["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert (trainer.scaler is not None) is (amp == "fp16")


def test_fp16_grad_scaler_skips_overflowing_steps_and_backs_off():
    model = _resnet()
    trainer = _trainer(model, amp="fp16")
    scale = trainer.scaler.get_scale()
    # A loss of 1e30 times the real one overflows fp16 gradients: the step must be skipped.
    original = trainer.task.train_step

    def huge(model, batch):
        loss, stats = original(model, batch)
        return loss * 1e30, stats
    trainer.task.train_step = huge
    before = [p.detach().clone() for p in model.parameters()]
    trainer._train_step(to_device(_batches(1)[0], torch.device(DEVICE)))
    assert trainer.scaler.get_scale() == scale * 0.5
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", ["sam", "gsam"])
def test_sharpness_aware_under_fp16_trains_and_updates_batchnorm_once(name):
    model = _resnet()
    trainer = _trainer(model, name, amp="fp16", max_grad_norm=1.0)
    batches = _batches(4)
    tracked = model.net.bn1.num_batches_tracked.clone()
    out = trainer._train_epoch(batches, epoch=1)
    assert math.isfinite(out["metrics"]["loss"])
    assert int(model.net.bn1.num_batches_tracked - tracked) == len(batches)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_memory_figures_are_the_allocators_peak():
    model = _resnet()
    trainer = _trainer(model, "adamw")
    out = trainer._train_epoch(_batches(4, device=DEVICE), epoch=1)
    peak, steady = out["mem"]
    assert peak == torch.cuda.max_memory_allocated() / 2**20  # reset at the epoch's start
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    # Weights, gradients and AdamW's two moments are all alive at the peak.
    assert peak >= 4 * weights
    assert 0 < steady <= peak


def test_pinned_batches_are_copied_without_blocking_and_arrive_intact():
    batches = _batches(3, pin=True)
    assert all(x.is_pinned() for x, _ in batches)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*batches[0]), batch_size=4,
                                         pin_memory=True)
    assert next(iter(loader))[0].is_pinned()   # what Experiment builds on CUDA
    device = torch.device(DEVICE)
    moved = [to_device(b, device, non_blocking=True) for b in batches]
    torch.cuda.synchronize()
    for (x, y), (gx, gy) in zip(batches, moved):
        assert gx.device.type == "cuda" and torch.equal(gx.cpu(), x) and torch.equal(gy.cpu(), y)


def _sync_warnings(steps: int, **kwargs) -> int:
    trainer = _trainer(_resnet(), **kwargs)
    batches = _batches(steps, pin=True)
    trainer._train_epoch(_batches(2, pin=True), epoch=1)  # warm-up: cuDNN autotuning, allocator
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer._train_epoch(batches, epoch=2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


@pytest.mark.parametrize("kwargs", [{}, {"amp": "bf16"}, {"max_grad_norm": 1.0}, {"optimizer": "adamw"},
                                    {"optimizer": "sam", "amp": "bf16"}],
                         ids=["fp32", "bf16", "clipped", "adamw", "sam-bf16"])
def test_a_training_step_does_not_synchronize(kwargs):
    """Syncs per epoch (timer, summary) are fixed; none may come per step. (fp16 is left out:
    torch's GradScaler.step reads found_inf on the host every step, see gpu_path.md.)"""
    assert _sync_warnings(4, **kwargs) == _sync_warnings(12, **kwargs)


def test_gpu_throughput_benchmark_runs_on_cuda(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not a package
    from benchmarks.gpu_throughput import main
    results = main(["--device", "cuda", "--quick", "--json", str(tmp_path / "r.json")])
    assert results["resnet18"]["images_per_s"] > 0 and results["gpt_small"]["tokens_per_s"] > 0
    assert results["resnet18"]["peak_mb"] > 0
