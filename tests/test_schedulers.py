"""Every schedule DESIGN.md names, warm-up in front of each, plateau on validation loss."""

from __future__ import annotations

import pytest
import torch

from nbhelpers.config import SCHEDULERS
from nbhelpers.schedulers import build_scheduler

EPOCHS, STEPS = 6, 5


def _trace(name, warmup_epochs=0.0, val_losses=None, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    schedule = build_scheduler(name, optimizer, epochs=EPOCHS, steps_per_epoch=STEPS,
                               warmup_epochs=warmup_epochs, **kwargs)
    schedule.start()
    lrs = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            lrs.append(schedule.lr)
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(val_losses[epoch] if val_losses else 1.0)
    return lrs


def test_every_named_schedule_builds():
    assert set(SCHEDULERS) - {"auto"} == {"cosine", "plateau", "step", "multistep", "exponential", "onecycle",
                                          "warmup_cosine", "warmup_linear", "inverse_sqrt", "none"}
    for name in set(SCHEDULERS) - {"auto"}:
        lrs = _trace(name)
        assert all(lr >= 0 for lr in lrs) and len(lrs) == EPOCHS * STEPS


def test_shapes_of_the_schedules():
    cosine = _trace("cosine")
    assert cosine[0] == pytest.approx(0.1) and cosine[-1] < 0.002
    assert all(a >= b for a, b in zip(cosine, cosine[1:]))
    assert _trace("none") == [pytest.approx(0.1)] * (EPOCHS * STEPS)
    step = _trace("step", step_size=2)
    assert step[STEPS * 2] == pytest.approx(0.01) and step[STEPS * 2 - 1] == pytest.approx(0.1)
    multistep = _trace("multistep", milestones=[3])
    assert multistep[STEPS * 3 - 1] == pytest.approx(0.1) and multistep[STEPS * 3] == pytest.approx(0.01)
    exponential = _trace("exponential")
    assert exponential[STEPS] == pytest.approx(0.1 * 0.97)
    onecycle = _trace("onecycle")
    assert max(onecycle) == pytest.approx(0.1, rel=1e-3) and onecycle[0] < 0.01 and onecycle[-1] < 1e-3
    inverse = _trace("inverse_sqrt", warmup_epochs=1)
    assert inverse[STEPS * 4] == pytest.approx(0.1 * (STEPS / (STEPS * 4)) ** 0.5)


@pytest.mark.parametrize("name", sorted(set(SCHEDULERS) - {"auto", "onecycle"}))
def test_warmup_ramps_up_in_front_of_every_schedule(name):
    lrs = _trace(name, warmup_epochs=1)
    warm = lrs[:STEPS]
    assert warm[0] < 0.05 and all(a < b for a, b in zip(warm, warm[1:]))
    assert max(lrs) == pytest.approx(0.1, rel=1e-6)


def test_plateau_steps_on_validation_loss():
    improving = _trace("plateau", val_losses=[5, 4, 3, 2, 1, 0.5])
    assert improving[-1] == pytest.approx(0.1)
    stuck = _trace("plateau", val_losses=[1, 1, 1, 1, 1, 1])
    assert stuck[-1] < 0.1


def test_state_dict_round_trip_continues_the_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    make = lambda: torch.optim.SGD([param], lr=0.1)  # noqa: E731
    a = build_scheduler("warmup_cosine", opt_a := make(), epochs=4, steps_per_epoch=5)
    for _ in range(7):
        opt_a.step(), a.after_batch()
    b = build_scheduler("warmup_cosine", opt_b := make(), epochs=4, steps_per_epoch=5)
    opt_b.load_state_dict(opt_a.state_dict())
    b.load_state_dict(a.state_dict())
    for _ in range(5):
        opt_a.step(), a.after_batch(), opt_b.step(), b.after_batch()
        assert a.lr == pytest.approx(b.lr)
