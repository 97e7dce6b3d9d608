"""The Trainer and run_experiment: run directory, resume, divergence, SAM, AMP, clipping."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from nbhelpers.training import Experiment, run_experiment
from nbhelpers.training.rundir import read_jsonl
from nbhelpers.training.trainer import Trainer, frozen_batchnorm_stats

RUN_FILES = {"config.json", "history.jsonl", "summary.json", "details.txt", "best_model.pt", "last.pt",
             "predictions_val.jsonl", "predictions_test.jsonl"}
# What must be identical between an interrupted-and-resumed run and an uninterrupted one.
LEARNING_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "grad_norm")


def test_run_directory_holds_the_contract(tiny_cfg):
    result = run_experiment(tiny_cfg)
    assert {p.name for p in result.run_dir.iterdir()} == RUN_FILES
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["primary_metric"] == "accuracy" and summary["higher_is_better"] is True
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
    exp = Experiment(tiny_cfg)
    exp.load_data()
    model = exp.build_model()
    assert summary["params_total"] == sum(p.numel() for p in model.parameters())
    saved = torch.load(result.run_dir / "best_model.pt")
    assert summary["params_total"] == sum(saved[name].numel() for name, _ in model.named_parameters())
    assert summary["metric_specs"]["accuracy"] == {"label": "accuracy", "higher_is_better": True, "unit": "%",
                                                   "scale": 100.0, "digits": 2, "proportion": True}
    assert summary["examples_test"] == len(read_jsonl(result.run_dir / "predictions_test.jsonl")) == 160 and summary["params_bytes"] == 4 * summary["params_total"]
    assert summary["optimizer_state_bytes"] > 0          # AdamW keeps two moments per tensor
    history = read_jsonl(result.run_dir / "history.jsonl")
    assert [row["epoch"] for row in history] == [1, 2]
    for key in ("wall_s", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                "grad_norm", "samples_per_s", "mem_peak_mb", "mem_steady_mb"):
        assert key in history[0], key
    assert history[1]["wall_s"] > history[0]["wall_s"] > 0
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["config"]["lr"] == pytest.approx(1e-3) and config["config"]["scheduler"] == "cosine"
    assert config["environment"]["torch"] == torch.__version__
    assert "Training policy" in (result.run_dir / "details.txt").read_text()


class _Interrupt(Exception):
    pass


def test_resumed_run_reproduces_the_uninterrupted_history(tiny_cfg):
    # Dropout and shuffling both draw random numbers: the resume must restore every RNG.
    cfg = tiny_cfg.replace(epochs=4, model_kwargs={"hidden": 32, "dropout": 0.3})
    whole = run_experiment(cfg.replace(output_dir=tiny_cfg.output_dir + "-whole")).history

    exp = Experiment(cfg)
    exp.load_data(), exp.build_model(), exp.build_optimizer(), exp.build_trainer()

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise _Interrupt()
    exp.trainer.on_epoch_end = stop_after_two
    with pytest.raises(_Interrupt):
        exp.fit()
    assert len(read_jsonl(exp.run.history)) == 2

    resumed = run_experiment(cfg.replace(resume=True))
    assert resumed.summary["resumed_from_epoch"] == 2
    assert len(resumed.history) == 4
    for expected, got in zip(whole, resumed.history):
        for key in LEARNING_KEYS:
            assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), (got["epoch"], key)


def test_resume_returns_a_finished_run_untouched(tiny_cfg):
    first = run_experiment(tiny_cfg)
    before = (first.run_dir / "summary.json").read_text()
    again = run_experiment(tiny_cfg.replace(resume=True))
    assert (first.run_dir / "summary.json").read_text() == before
    assert again.summary == json.loads(before)


def test_nan_loss_ends_the_run_as_diverged_with_history_kept(tiny_cfg):
    result = run_experiment(tiny_cfg.replace(optimizer="sgd", lr=1e12, epochs=3))
    assert result.summary["status"] == "diverged"
    assert "loss became" in result.summary["error"]
    history = read_jsonl(result.run_dir / "history.jsonl")
    assert history and history[-1].get("diverged") is True


class _ScriptedTask:
    """A task whose validation metric follows a script, epoch by epoch (not a real task)."""

    from nbhelpers.tasks.base import ACCURACY, TaskSpec
    spec = TaskSpec(name="scripted", description="", family="vision", metrics={"accuracy": ACCURACY},
                    primary_metric="accuracy", offline_dataset="", scheduler="none", max_grad_norm=None,
                    early_stopping_patience=0)

    def __init__(self, script):
        self.script, self.epoch = list(script), 0

    def train_step(self, model, batch):
        loss = (model.weight - 1.0).pow(2).sum()
        return loss, {"loss_sum": loss.detach(), "count": torch.tensor(1)}

    def summarize(self, totals):
        return {"loss": float(totals["loss_sum"]) / float(totals["count"])}

    def batch_size(self, batch):
        return 1

    def evaluate(self, model, loader, split):
        from nbhelpers.tasks.base import Evaluation
        self.epoch += 1
        return Evaluation({"loss": 0.0, "accuracy": self.script[self.epoch - 1]}, [{"epoch": self.epoch}])


def test_early_stopping_restores_the_weights_of_the_best_epoch(tmp_path):
    # The weights move every epoch; the script makes epoch 2 the best and stops after two worse ones.
    from nbhelpers.training.rundir import RunDir
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weights = []
    run = RunDir(tmp_path / "run")
    run.create()
    trainer = Trainer(model=model, task=_ScriptedTask([0.5, 0.9, 0.6, 0.4, 0.95]), optimizer=optimizer,
                      patience=2, progress=False, run_dir=run,
                      on_epoch_end=lambda row: weights.append(float(model.weight.detach())))
    fit = trainer.fit([None] * 3, [None], epochs=5)
    assert fit.status == "early_stopped" and fit.best_epoch == 2 and len(fit.history) == 4
    assert len(set(weights)) == 4                       # the weights really moved each epoch
    assert float(model.weight.detach()) == weights[1] != weights[-1]
    assert float(torch.load(run.best_model)["weight"]) == weights[1]
    assert read_jsonl(run.predictions("val")) == [{"epoch": 2}]   # the best epoch's records


def test_eval_every_decodes_only_every_nth_epoch_and_the_last(tmp_path):
    task = _ScriptedTask([0.1, 0.2, 0.3])
    calls = []
    task.evaluate_loss = lambda model, loader: calls.append("loss") or {"loss": 1.0}
    model = nn.Linear(1, 1, bias=False)
    trainer = Trainer(model=model, task=task, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      progress=False, eval_every=2)
    fit = trainer.fit([None] * 2, [None], epochs=5)
    assert calls == ["loss", "loss"]                    # epochs 1 and 3; 2, 4 and 5 decode
    assert [("val_accuracy" in row) for row in fit.history] == [False, True, False, True, True]
    assert fit.best_epoch == 5 and fit.best_val == 0.3


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _batches(n=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def _trainer(optimizer_name, model, **kwargs):
    from nbhelpers.optim import make_optimizer
    from nbhelpers.tasks.image_classification import ImageClassification
    optimizer, _ = make_optimizer(optimizer_name, model, lr=0.01)
    return Trainer(model=model, task=ImageClassification(), optimizer=optimizer, progress=False, **kwargs)


def test_frozen_batchnorm_keeps_running_stats():
    model = _BNNet().train()
    before = (model.bn.running_mean.clone(), model.bn.num_batches_tracked.clone())
    with frozen_batchnorm_stats(model):
        model(torch.randn(8, 1, 8, 8))
    assert torch.equal(model.bn.running_mean, before[0])
    assert torch.equal(model.bn.num_batches_tracked, before[1])


@pytest.mark.parametrize("name", ["sam", "gsam"])
def test_sharpness_aware_steps_update_batchnorm_once_and_clip_the_base_gradient(name):
    model = _BNNet()
    trainer = _trainer(name, model, max_grad_norm=1e-3)
    seen_norms = []
    hook = trainer.optimizer.before_base_step

    def spy():
        ok = hook()
        seen_norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))
        return ok
    trainer.optimizer.before_base_step = spy
    batches = _batches()
    trainer._train_epoch(batches, epoch=1)
    assert int(model.bn.num_batches_tracked) == len(batches)     # one update per step, not two
    assert len(seen_norms) == len(batches)
    assert max(seen_norms) <= 1e-3 * 1.0001                      # clipped before the base step


@pytest.mark.parametrize("amp, name", [("bf16", "adamw"), ("bf16", "sam"), ("fp16", "adamw"), ("fp16", "sam")])
def test_mixed_precision_trains_on_cpu(amp, name):
    model = _BNNet()
    start = [p.detach().clone() for p in model.parameters()]
    trainer = _trainer(name, model, amp=amp, max_grad_norm=1.0)
    out = trainer._train_epoch(_batches(), epoch=1)
    assert math.isfinite(out["metrics"]["loss"])
    moved = any(not torch.equal(a, b) for a, b in zip(start, model.parameters()))
    assert moved
