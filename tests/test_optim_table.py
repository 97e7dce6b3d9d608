"""The optimizer table and build_optimizer(): all 16, the LR/WD policy, and a short run each."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError
from nbhelpers.optim import TABLE, all_names, build_optimizer, get_spec, make_optimizer, optimizer_state_bytes
from nbhelpers.optim.build import resolve_lr

SIXTEEN = ["sgd", "sgd_momentum", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "radam",
           "lion", "lars", "lamb", "adabelief", "yogi", "adafactor", "sam", "gsam"]
# Copies of the parameters each optimizer keeps as state (SAM and GSAM: their base, sgd_momentum).
STATE_COPIES = {"sgd_momentum": 1, "rmsprop": 1, "adagrad": 1, "lion": 1, "lars": 1, "sam": 1, "gsam": 1,
                "adadelta": 2, "adam": 2, "adamw": 2, "radam": 2, "lamb": 2, "adabelief": 2, "yogi": 2}
TORCH_SHIPS = ["sgd", "sgd_momentum", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "radam", "adafactor"]


def test_all_means_the_sixteen():
    assert all_names() == SIXTEEN
    assert get_spec("momentum").name == "sgd_momentum"
    for spec in TABLE:
        assert spec.default_lr > 0 and spec.weight_decay >= 0 and spec.paper
        assert spec.decay_style in ("l2", "decoupled", "layerwise")
    assert [s.name for s in TABLE if s.needs_closure] == ["sam", "gsam"]


def test_lion_takes_a_smaller_lr_and_larger_decay_than_adamw():
    lion, adamw = get_spec("lion"), get_spec("adamw")
    assert 3 <= adamw.default_lr / lion.default_lr <= 10
    assert lion.weight_decay >= 3 * adamw.weight_decay


def test_weight_decay_only_on_matrices():
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    optimizer, choice = make_optimizer("adamw", model, weight_decay=0.1)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decayed) == (p.ndim >= 2)
    assert choice.weight_decay == 0.1


def test_lr_resolution_order():
    spec = get_spec("sgd")
    assert resolve_lr(spec, task="image_classification", lr=None, lr_policy="per_opt", lr_overrides={}) == 0.05
    assert resolve_lr(spec, task="image_classification", lr=None, lr_policy="fixed", lr_overrides={}) == 1e-3
    assert resolve_lr(spec, task="image_classification", lr=0.2, lr_policy="per_opt", lr_overrides={}) == 0.2
    assert resolve_lr(spec, task=None, lr=0.2, lr_policy="per_opt", lr_overrides={"sgd": 5e-4}) == 5e-4


def test_build_optimizer_reads_overrides_and_sam_base():
    model = nn.Linear(3, 2)
    cfg = RunConfig(optimizer="momentum", lr_overrides="sgd_momentum=0.3,adam=1e-4")
    optimizer, choice = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.SGD) and choice.lr == 0.3
    assert optimizer.param_groups[0]["momentum"] == 0.9
    sam, choice = build_optimizer(RunConfig(optimizer="sam", sam_base="adamw"), model)
    assert isinstance(sam.base_optimizer, torch.optim.AdamW) and choice.base == "adamw"
    with pytest.raises(UserInputError):
        make_optimizer("adamw", model, lr=-1.0)


def test_adafactor_lr_is_driven_by_the_schedule():
    # torch's Adafactor has no relative-step mode: halving lr must halve the first step.
    steps = []
    for lr in (1e-2, 5e-3):
        p = nn.Parameter(torch.ones(4, 4))
        opt, _ = make_optimizer("adafactor", [p], lr=lr)
        p.grad = torch.full_like(p, 0.5)
        opt.step()
        steps.append((1 - p.detach()).abs().mean().item())
    assert steps[0] == pytest.approx(2 * steps[1], rel=1e-4)


def _rosenbrock(xy):
    x, y = xy.reshape(-1)
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


# LRs for a 2-parameter problem whose gradient is ~100 at the start. (RAdam's un-rectified
# first steps are plain momentum steps, which overshoot here at 0.05.)
ROSENBROCK_LR = {"sgd": 1e-3, "sgd_momentum": 2e-4, "rmsprop": 1e-2, "adagrad": 1.0, "adadelta": 5.0,
                 "adam": 0.05, "adamw": 0.05, "radam": 0.01, "adafactor": 0.05}


@pytest.mark.parametrize("name", TORCH_SHIPS)
def test_torch_optimizers_lower_rosenbrock(name):
    xy = nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    opt, _ = make_optimizer(name, [xy], lr=ROSENBROCK_LR[name], weight_decay=0.0)
    start = _rosenbrock(xy).item()
    for _ in range(500):
        opt.zero_grad()
        _rosenbrock(xy).backward()
        opt.step()
    # The valley is long and flat: first-order methods crawl along it, so ask for a halving.
    assert _rosenbrock(xy).item() < start / 2


@pytest.fixture(scope="module")
def digits_small():
    from pathlib import Path

    import nbhelpers.data  # noqa: F401  (registers digits)
    from nbhelpers.registry import DATASETS
    return DATASETS.get("digits").factory(data_dir=Path("."), max_samples=600, seed=0)


@pytest.mark.parametrize("name", SIXTEEN)
def test_every_optimizer_trains_cnn_scratch_above_chance(name, digits_small):
    """Four epochs on 600 digits with the table's defaults: well above 10% (chance)."""
    import nbhelpers.models  # noqa: F401  (registers cnn_scratch)
    from nbhelpers.registry import MODELS
    from nbhelpers.tasks.image_classification import ImageClassification
    from nbhelpers.training.trainer import Trainer
    from nbhelpers.schedulers import build_scheduler

    torch.manual_seed(0)
    model = MODELS.get("cnn_scratch").factory(info=digits_small.info, hidden=64)
    optimizer, _ = make_optimizer(name, model, task="image_classification")
    loader = torch.utils.data.DataLoader(digits_small.train, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    val = torch.utils.data.DataLoader(digits_small.val, batch_size=128)
    schedule = build_scheduler("cosine", optimizer, epochs=4, steps_per_epoch=len(loader))
    trainer = Trainer(model=model, task=ImageClassification(), optimizer=optimizer, schedule=schedule,
                      progress=False)
    fit = trainer.fit(loader, val, epochs=4)
    assert fit.status != "diverged", fit.error
    assert fit.best_val > 0.3, f"{name}: best validation accuracy {fit.best_val}"
    # What the optimizer keeps between steps, in units of the parameters' own bytes (step
    # counters add a few bytes; Adafactor keeps a row and a column vector per matrix).
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    ratio = optimizer_state_bytes(optimizer) / param_bytes
    if name == "sgd":
        assert ratio == 0
    elif name == "adafactor":
        assert 0 < ratio < 0.2
    else:
        assert STATE_COPIES[name] <= ratio <= STATE_COPIES[name] + 0.01, (name, ratio)
