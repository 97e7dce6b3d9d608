"""The Trainer's step reads no device value: checked on the CPU with the profiler.

Every way Python reads a tensor's value (`.item()`, `float(t)`, `bool(t)`, `if t:`) runs
aten::_local_scalar_dense; on CUDA each one waits for the GPU's queue to drain. Counted over
an epoch of 3 steps and one of 9, the number must not grow with the steps (a few reads per
epoch, for the epoch's summary, are expected). The same code runs on CUDA; tests/test_gpu.py
repeats the check there with torch.cuda.set_sync_debug_mode.
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

from nbhelpers.optim import make_optimizer
from nbhelpers.registry import MODELS
from nbhelpers.tasks.image_classification import ImageClassification
from nbhelpers.training.loss_watch import LossWatch
from nbhelpers.training.trainer import Diverged, Trainer


def _reads(trainer: Trainer, steps: int) -> collections.Counter:
    torch.manual_seed(0)
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))) for _ in range(steps)]
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer._train_epoch(batches, epoch=1)
    return collections.Counter(e.name for e in prof.events())


def _resnet_trainer(optimizer: str, **kwargs) -> Trainer:
    torch.manual_seed(0)
    model = MODELS.get("resnet18").factory(info={"in_channels": 3, "num_classes": 10, "image_size": 8})
    opt, _ = make_optimizer(optimizer, model, lr=0.01)
    return Trainer(model=model, task=ImageClassification(), optimizer=opt, **kwargs)


# sgd_momentum and rmsprop are the presets' optimizers. (torch's Adam reads its step counters
# with .item() too, but they live on the CPU by design, so on CUDA that is no device sync;
# the CPU profiler cannot tell the two apart, hence Adam is not in this list.)
@pytest.mark.parametrize("optimizer, kwargs", [
    ("rmsprop", {"max_grad_norm": 1.0}),
    ("sgd_momentum", {"amp": "bf16", "progress": True}),
], ids=["rmsprop-clipped", "sgd_momentum-bf16-progress-bar"])
def test_value_reads_per_epoch_do_not_grow_with_the_steps(optimizer, kwargs):
    kwargs = {"progress": False, **kwargs}
    short = _reads(_resnet_trainer(optimizer, **kwargs), steps=3)
    long = _reads(_resnet_trainer(optimizer, **kwargs), steps=9)
    assert long["aten::_local_scalar_dense"] == short["aten::_local_scalar_dense"] <= 6
    # ... while the steps did run: one convolution backward per conv layer per step, 3x as many.
    assert long["aten::convolution_backward"] == 3 * short["aten::convolution_backward"] > 0


def test_loss_watch_reports_the_first_bad_step_exactly():
    watch = LossWatch(torch.device("cpu"), poll_every=4)
    seen = []
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0, float("inf"), float("nan"), 5.0]):
        watch.observe(step, torch.tensor(value))
        seen.append(watch.poll(step))
    # Polled at steps 0 and 4 only; the inf of step 5 (1-based) is seen at the second poll.
    assert seen == [False, False, False, False, True, True, True]
    assert (watch.first_bad_step, watch.bad_value) == (5, float("inf"))
    assert "step 5" in watch.message(epoch=2) and "epoch 2" in watch.message(epoch=2)


def test_loss_watch_finish_catches_what_polling_has_not_seen_yet():
    watch = LossWatch(torch.device("cpu"), poll_every=100)
    for step, value in enumerate([1.0, 1.0, float("nan")]):
        watch.observe(step, torch.tensor(value))
        watch.poll(step)
    assert watch.first_bad_step is None       # the one poll (step 0) was before the NaN
    assert watch.finish() and watch.first_bad_step == 3
    assert watch.last_loss != watch.last_loss  # NaN: the latest loss reached the host too
    watch.start_epoch()
    assert watch.first_bad_step is None and not watch.finish()


class _Exploding(nn.Module):
    """A one-weight model whose loss becomes NaN at the 4th call."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        scale = float("nan") if self.calls >= 4 else 1.0
        return (x * self.weight * scale).repeat(1, 2)


def test_a_nan_is_reported_at_the_step_it_appeared():
    model = _Exploding()
    opt, _ = make_optimizer("sgd", model, lr=0.01)
    trainer = Trainer(model=model, task=ImageClassification(), optimizer=opt, progress=False)
    batches = [(torch.ones(2, 1), torch.zeros(2, dtype=torch.long)) for _ in range(6)]
    with pytest.raises(Diverged, match="in epoch 1, step 4"):
        trainer._train_epoch(batches, epoch=1)
