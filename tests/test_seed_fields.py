"""The seeds, field by field: OneCycleLR's momentum, seed 003's runs, seed 002's presets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nbhelpers.optim import all_names, get_spec
from nbhelpers.optim.build import make_optimizer
from nbhelpers.schedulers import build_scheduler, has_momentum
from nbhelpers.sweep.expand import plan_from_args
from nbhelpers.training import run_experiment

# Which optimizers OneCycleLR may cycle: those with a momentum buffer in use or a beta1.
CYCLED = {"sgd_momentum", "adam", "adamw", "radam", "lion", "lars", "lamb", "adabelief", "yogi", "sam", "gsam"}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize("name", all_names())
def test_onecycle_cycles_momentum_only_where_the_optimizer_has_it(name):
    optimizer, _ = make_optimizer(name, _model(), task="image_classification")
    momenta_before = [g.get("momentum") for g in optimizer.param_groups]
    schedule = build_scheduler("onecycle", optimizer, epochs=2, steps_per_epoch=5)
    assert schedule.momentum_cycled is (name in CYCLED) is has_momentum(optimizer)
    for _ in range(6):
        optimizer.zero_grad()
        loss = optimizer.param_groups[0]["params"][0].sum()
        loss.backward()
        if get_spec(name).needs_closure:
            optimizer.step(lambda: optimizer.param_groups[0]["params"][0].sum())
        else:
            optimizer.step()
        schedule.after_batch()
    if name in CYCLED:
        assert "cycled" in schedule.momentum_note() and "not" not in schedule.momentum_note()
    else:  # plain SGD and RMSprop keep momentum 0; the others never get one
        assert [g.get("momentum") for g in optimizer.param_groups] == momenta_before
        assert schedule.momentum_note().startswith("momentum not cycled")


def test_details_say_what_onecycle_did_with_the_momentum(tiny_cfg):
    for optimizer, expected in (("adagrad", "momentum not cycled"), ("adam", "beta1) cycled from 0.95")):
        result = run_experiment(tiny_cfg.replace(optimizer=optimizer, scheduler="onecycle", epochs=1))
        assert expected in (result.run_dir / "details.txt").read_text()


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
def test_seed_003s_four_runs(dataset):
    plan = plan_from_args(f"params/image_classification/{dataset}-mnist_tiny-onecycle.yaml", {})
    runs = [(c.optimizer, c.lr, c.weight_decay, c.scheduler) for c in plan.configs]
    assert runs == [("sgd", 0.02, 1e-6, "onecycle"), ("sgd", 0.06, 1e-4, "none"),
                    ("adam", 0.01, 1e-4, "onecycle"), ("adamw", 0.02, 1e-4, "onecycle")]
    for cfg in plan.configs:
        assert (cfg.dataset, cfg.model, cfg.epochs, cfg.label_smoothing, cfg.target) == (
            dataset, "mnist_tiny", 20, 0.05, 0.994)
        assert cfg.early_stopping_patience == 0  # the report trained every run for 20 epochs


def test_seed_003s_second_run_keeps_its_lr_fixed(tmp_path):
    cfg = plan_from_args("params/image_classification/digits-mnist_tiny-onecycle.yaml",
                         {"epochs": 2, "max_samples": 64, "output_dir": str(tmp_path), "progress": False}).configs[1]
    history = run_experiment(cfg).history
    assert [row["lr"] for row in history] == [0.06, 0.06]
    assert "label smoothing 0.05" in (tmp_path / "runs" / cfg.run_id / "details.txt").read_text()


# Seed 002's table: batch, LR, optimizer, weight decay, schedule, warm-up, epochs.
PRESETS = {
    "resnet18-he2016": (256, 0.1, "sgd_momentum", 1e-4, "multistep", {"milestones": [30, 60, 90], "gamma": 0.1}, 0.0, 90),
    "vgg11-simonyan2015": (256, 0.01, "sgd_momentum", 5e-4, "multistep", {"milestones": [60, 120, 180], "gamma": 0.1}, 0.0, 300),
    "efficientnet_b0-tan2019": (256, 0.016, "rmsprop", 1e-5, "exponential", {"gamma": 0.97}, 0.0, 300),
    "vit-dosovitskiy2020": (224, 3e-3, "adam", 0.1, "warmup_cosine", {}, 10.0, 300),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_seed_002s_presets_field_by_field(preset):
    cfg = plan_from_args(f"params/presets/{preset}.yaml", {}).configs[0]
    got = (cfg.batch_size, cfg.lr, cfg.optimizer, cfg.weight_decay, cfg.scheduler, dict(cfg.scheduler_kwargs),
           cfg.warmup_epochs, cfg.epochs)
    assert got == PRESETS[preset]
    assert cfg.optimizer_kwargs["decay_all_parameters"] is True
    if preset.startswith("efficientnet"):
        assert {k: cfg.optimizer_kwargs[k] for k in ("alpha", "momentum", "eps")} == {"alpha": 0.9, "momentum": 0.9, "eps": 1e-3}


def test_decay_all_parameters_puts_biases_and_norms_under_weight_decay():
    model = _model()
    _, usual = make_optimizer("sgd_momentum", model, weight_decay=1e-4)
    optimizer, choice = make_optimizer("sgd_momentum", model, weight_decay=1e-4, decay_all_parameters=True)
    assert choice.decay_all_parameters and not usual.decay_all_parameters
    decayed = [p for g in optimizer.param_groups if g["weight_decay"] == 1e-4 for p in g["params"]]
    assert len(decayed) == len(list(model.parameters()))  # the 1-D biases and BatchNorm gains too
    assert "decay_all_parameters" not in optimizer.defaults  # read by the builder, not passed on


def test_a_preset_says_in_details_that_decay_covers_all_parameters(tiny_cfg):
    result = run_experiment(tiny_cfg.replace(epochs=1, optimizer_kwargs={"decay_all_parameters": True}))
    assert "all parameters" in (result.run_dir / "details.txt").read_text()
    assert result.run_dir.joinpath("config.json").read_text().count('"decay_all_parameters": true') == 1
