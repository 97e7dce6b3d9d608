"""The evaluation contract: tensor statistics, decoding evaluate(), predictions files, metric facts.

Two toy tasks stand in for the coming ones: a dense task whose metric (mIoU) comes from a
confusion matrix summed through the Trainer, and a decoding task whose evaluate() turns
model outputs into text scored with sacrebleu. Neither is registered; they drive the
Trainer directly, as a task module would.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nbhelpers.config import RunConfig
from nbhelpers.data.base import DataBundle
from nbhelpers.metric_spec import MetricSpec
from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import ClassificationTask, Evaluation, Task, TaskSpec
from nbhelpers.training import Experiment, run_experiment
from nbhelpers.training.rundir import RunDir, read_jsonl
from nbhelpers.training.trainer import Trainer

C = 3  # classes of the toy dense task


def _spec(name, metrics, primary, family="vision"):
    return TaskSpec(name=name, description="toy", family=family, metrics=metrics, primary_metric=primary,
                    offline_dataset="", scheduler="none", max_grad_norm=None, early_stopping_patience=0)


class ToyDense(Task):
    """Per-pixel classes; the statistic is a C x C confusion matrix (rows: truth, columns: prediction)."""

    spec = _spec("toy_dense", {"miou": MetricSpec("mIoU", True, "%", 100.0)}, "miou")

    def train_step(self, model, batch):
        images, masks = batch
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, masks)
        pred = logits.detach().argmax(dim=1)
        confusion = torch.bincount(masks.reshape(-1) * C + pred.reshape(-1), minlength=C * C).reshape(C, C)
        return loss, {"loss_sum": loss.detach() * masks.numel(), "pixels": torch.tensor(masks.numel()),
                      "confusion": confusion}

    def summarize(self, totals):
        confusion = totals["confusion"].double()
        intersection = confusion.diag()
        union = confusion.sum(0) + confusion.sum(1) - intersection
        present = union > 0
        return {"loss": float(totals["loss_sum"]) / float(totals["pixels"]),
                "miou": float((intersection[present] / union[present]).mean())}


def _dense_data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 2, 6, 6, generator=g)
    masks = (images[:, 0] > 0).long() + (images[:, 1] > 0.8).long()  # 3 classes, learnable per pixel
    return images, masks


def test_confusion_matrix_statistics_pass_through_the_trainer_and_match_numpy():
    torch.manual_seed(0)
    model = nn.Conv2d(2, C, 1)
    images, masks = _dense_data()
    loader = DataLoader(TensorDataset(images, masks), batch_size=5)
    trainer = Trainer(model=model, task=ToyDense(), optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                      progress=False)
    trainer.fit(loader, loader, epochs=2)
    evaluation = trainer.evaluate(loader, "val")

    with torch.no_grad():  # the same mIoU, by hand, in numpy
        pred = model(images).argmax(dim=1).numpy().ravel()
    truth = masks.numpy().ravel()
    ious = []
    for c in range(C):
        inter = np.sum((pred == c) & (truth == c))
        union = np.sum((pred == c) | (truth == c))
        if union:
            ious.append(inter / union)
    assert evaluation.metrics["miou"] == pytest.approx(float(np.mean(ious)), rel=1e-12)
    assert 0 < evaluation.metrics["miou"] < 1


class Reverser(nn.Module):
    """Maps each input position to logits over a tiny vocabulary (enough to learn a permutation)."""

    def __init__(self, vocab=6, length=4):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.linear = nn.Linear(vocab * length, vocab * length)

    def forward(self, ids):
        one_hot = nn.functional.one_hot(ids, self.vocab).float().flatten(1)
        return self.linear(one_hot).view(-1, self.length, self.vocab)


WORDS = ["zero", "one", "two", "three", "four", "five"]


class ToyDecoding(Task):
    """Reverse a sequence; evaluate() decodes greedily to text and scores corpus BLEU with sacrebleu."""

    spec = _spec("toy_decoding", {"bleu": MetricSpec("BLEU", True, "BLEU")}, "bleu", family="text")

    def train_step(self, model, batch):
        source, target = batch
        logits = model(source)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        return loss, {"loss_sum": loss.detach() * target.numel(), "tokens": torch.tensor(target.numel())}

    def summarize(self, totals):
        return {"loss": float(totals["loss_sum"]) / float(totals["tokens"])}

    def evaluate(self, model, loader, split):
        import sacrebleu
        totals, records = {}, []
        for source, target in loader:
            _, stats = self.train_step(model, (source, target))
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
            hypotheses = model(source).argmax(dim=-1)
            for src, hyp, ref in zip(source.tolist(), hypotheses.tolist(), target.tolist(), strict=True):
                records.append({"id": len(records), "source": " ".join(WORDS[i] for i in src),
                                "hypothesis": " ".join(WORDS[i] for i in hyp),
                                "reference": " ".join(WORDS[i] for i in ref)})
        bleu = sacrebleu.corpus_bleu([r["hypothesis"] for r in records], [[r["reference"] for r in records]])
        return Evaluation({**self.summarize(totals), "bleu": bleu.score}, records)


def test_a_decoding_task_writes_predictions_whose_metric_recomputes(tmp_path):
    sacrebleu = pytest.importorskip("sacrebleu", reason="sacrebleu is part of the [text] extra")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    source = torch.randint(0, 6, (40, 4), generator=g)
    loader = DataLoader(TensorDataset(source, source.flip(1)), batch_size=8)
    model = Reverser()
    run = RunDir(tmp_path / "run")
    run.create()
    trainer = Trainer(model=model, task=ToyDecoding(), optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
                      progress=False, run_dir=run)
    fit = trainer.fit(loader, loader, epochs=3)
    records = read_jsonl(run.predictions("val"))
    assert len(records) == 40 and [r["id"] for r in records] == list(range(40))
    recomputed = sacrebleu.corpus_bleu([r["hypothesis"] for r in records], [[r["reference"] for r in records]])
    assert recomputed.score == pytest.approx(fit.best_val) and fit.best_val > 10  # it learned something
    assert fit.history[fit.best_epoch - 1]["val_bleu"] == fit.best_val


def test_dense_classification_ignores_index_255_in_loss_and_accuracy():
    class Dense(ClassificationTask):
        spec = _spec("dense", {"accuracy": MetricSpec("accuracy", True, "%", 100.0)}, "accuracy")

        def logits_and_labels(self, model, batch):
            return batch[0], batch[1]

    logits = torch.zeros(2, 3, 2, 2)
    logits[:, 1] = 5.0                                    # predicts class 1 everywhere
    labels = torch.tensor([[[1, 1], [0, 255]], [[255, 255], [1, 2]]])
    task = Dense()
    loss, stats = task.train_step(None, (logits, labels))
    assert int(stats["count"]) == 5 and int(stats["correct"]) == 3   # 3 of the 5 labelled pixels
    assert task.summarize(stats)["accuracy"] == pytest.approx(0.6)
    valid = labels != 255
    expected = nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[valid], labels[valid])
    assert float(loss) == pytest.approx(float(expected))
    _, records = task.eval_step(None, (logits, labels))
    assert records == [{"correct": 2, "count": 3}, {"correct": 1, "count": 2}]


def test_a_bundle_with_its_own_ignore_index_is_honoured():
    class Dense(ClassificationTask):
        spec = _spec("dense2", {"accuracy": MetricSpec("accuracy", True, "%", 100.0)}, "accuracy")

        def logits_and_labels(self, model, batch):
            return batch[0], batch[1]

    bundle = DataBundle(train=[], val=[], test=[], info={"ignore_index": -1})
    _, stats = Dense(data=bundle).train_step(None, (torch.zeros(1, 2, 1, 2), torch.tensor([[[0, -1]]])))
    assert int(stats["count"]) == 1


def test_registries_load_themselves_on_first_lookup():
    code = ("from nbhelpers.registry import MODELS, TASKS; "
            "print(MODELS.get('cnn_scratch').name, TASKS.get('text_generation').meta['spec'].family)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cnn_scratch", "text"]


def test_task_families_replace_task_names_in_the_optimizer_table():
    from nbhelpers.optim import get_spec
    from nbhelpers.optim.build import resolve_lr
    families = {e.name: e.meta["spec"].family for e in TASKS}
    assert families["image_classification"] == "vision" and families["text_generation"] == "text"
    sgd = get_spec("sgd")
    assert resolve_lr(sgd, task="sentiment_analysis", lr=None, lr_policy="per_opt", lr_overrides={}) == 0.5
    assert resolve_lr(sgd, task="image_classification", lr=None, lr_policy="per_opt", lr_overrides={}) == 0.05


def test_the_task_sees_the_tokenizer_the_model_installed(tmp_path):
    # distilbert_sentiment trains a WordPiece tokenizer in build_model; the task must see that
    # one, not the word tokenizer the data came with.
    pytest.importorskip("transformers")
    cfg = RunConfig(task="sentiment_analysis", model="distilbert_sentiment", max_samples=64, epochs=1,
                    model_kwargs={"pretrained": False, "dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32,
                                  "vocab_size": 300},
                    output_dir=str(tmp_path), progress=False)
    exp = Experiment(cfg)
    data = exp.load_data()
    word_tokenizer = data.tokenizer
    exp.build_model()
    assert exp.task.data is data
    assert data.tokenizer is not word_tokenizer and exp.task.data.tokenizer is data.tokenizer
    assert exp.task.data.vocab_size == len(data.tokenizer)


@pytest.mark.parametrize("task, model, kwargs", [
    ("image_classification", "mnist_tiny", {}),
    ("sentiment_analysis", "lstm_sentiment", {"model_kwargs": {"hidden": 16, "embed_dim": 16}}),
    ("text_generation", "gru_lm", {"model_kwargs": {"d_model": 16}}),
])
def test_every_task_writes_predictions_that_recompute_its_test_metric(tmp_path, task, model, kwargs):
    cfg = RunConfig(task=task, model=model, epochs=1, batch_size=16, max_samples=48, output_dir=str(tmp_path),
                    progress=False, **kwargs)
    result = run_experiment(cfg)
    summary = result.summary
    assert set(summary["metric_specs"]) == {summary["primary_metric"], "loss"}
    test = read_jsonl(result.run_dir / "predictions_test.jsonl")
    val = read_jsonl(result.run_dir / "predictions_val.jsonl")
    assert test and val and [r["id"] for r in test] == list(range(len(test)))
    if summary["primary_metric"] == "accuracy":
        from sklearn.metrics import accuracy_score
        recomputed = accuracy_score([r["reference"] for r in test], [r["prediction"] for r in test])
        assert isinstance(test[0]["reference"], str)          # class names, not indices
    else:
        recomputed = math.exp(sum(r["nll_sum"] for r in test) / sum(r["tokens"] for r in test))
    assert recomputed == pytest.approx(summary["test"][summary["primary_metric"]], rel=1e-6)
    assert json.loads((result.run_dir / "summary.json").read_text())["metric_specs"] == summary["metric_specs"]
