"""The ner task: its facts, its loss and on-device entity counts, one run whose summary seqeval
recomputes from predictions_test.jsonl, and the seed guide's commands (the notebook and a sweep:
tests/test_ner_notebook.py)."""

from __future__ import annotations

import json
import random
import shlex
from pathlib import Path

import pytest
import torch

from nbhelpers.config import RunConfig
from nbhelpers.data.ner import build_gazetteer_ner
from nbhelpers.data.ner_gazetteer import TAGS
from nbhelpers.models.ner import build_bilstm_crf_charcnn_ner
from nbhelpers.registry import TASKS
from nbhelpers.tasks.ner import ENTITY_TYPES, TagScheme, entity_counts, scores_from_counts, seqeval_scores
from nbhelpers.training.rundir import read_jsonl

pytest.importorskip("seqeval")


@pytest.fixture(scope="module")
def small():
    return build_gazetteer_ner(max_samples=64)


@pytest.fixture
def one_thread():
    """One torch thread: the BiLSTM's many small operations crawl when two threads share two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_task_spec_facts():
    spec = TASKS.get("ner").meta["spec"]
    assert (spec.family, spec.primary_metric, spec.higher_is_better) == ("text", "f1", True)
    assert (spec.scheduler, spec.max_grad_norm, spec.early_stopping_patience) == ("plateau", 1.0, 5)
    assert spec.offline_dataset == "gazetteer_ner" and spec.defaults["model"] == "bilstm_crf_charcnn_ner"
    assert set(spec.metrics) == {"f1", "precision", "recall", *(f"f1_{k}" for k in ENTITY_TYPES)}
    assert all(m.unit == "%" and m.scale == 100.0 and m.higher_is_better for m in spec.metrics.values())


def _random_tags(rng, n):
    return [rng.choice(["O", "O", "O"] + list(TAGS[1:])) for _ in range(n)]


def test_entity_counts_on_the_device_equal_seqeval_strict():
    # Random tag sequences, invalid ones included (an I-X after O starts no entity in strict mode).
    rng = random.Random(0)
    scheme = TagScheme(TAGS)
    index = {t: i for i, t in enumerate(TAGS)}
    for _ in range(60):
        lengths = [rng.randint(1, 9) for _ in range(6)]
        gold = [_random_tags(rng, n) for n in lengths]
        pred = [[g if rng.random() < 0.6 else rng.choice(TAGS) for g in s] for s in gold]
        width = max(lengths)
        as_tensor = lambda rows: torch.tensor([[index[t] for t in r] + [rng.randrange(9)] * (width - len(r))  # noqa: E731
                                               for r in rows])
        mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
        counts = entity_counts(as_tensor(gold), as_tensor(pred), mask, scheme)
        ours = scores_from_counts(counts["tp"], counts["pred"], counts["gold"], scheme.types)
        reference = seqeval_scores(gold, pred)
        assert ours.keys() == reference.keys()
        for key, value in reference.items():
            assert value == pytest.approx(ours[key], abs=1e-12, nan_ok=True), key


def test_train_step_loss_is_the_crf_nll_per_token(small):
    torch.manual_seed(0)
    model = build_bilstm_crf_charcnn_ner(info=small.info, hidden=16, embed_dim=16, char_filters=8).eval()
    task = TASKS.get("ner").factory(data=small)
    batch = small.collate_fn([small.train[i] for i in range(8)])
    loss, stats = task.train_step(model, batch)
    emissions = model(batch["word_ids"], batch["mask"], batch["char_ids"])
    nll = model.crf(emissions, batch["tags"], batch["mask"])
    torch.testing.assert_close(loss, nll.sum() / batch["mask"].sum())
    assert int(stats["tokens"]) == int(batch["mask"].sum()) and int(stats["sentences"]) == 8
    assert int(stats["entities_gold"].sum()) == sum(t.startswith("B-") for i in range(8)
                                                    for t in [TAGS[x] for x in small.train[i][1]])
    metrics = task.summarize(stats)
    assert metrics["loss"] == pytest.approx(loss.item()) and 0 <= metrics["f1"] <= 1
    assert set(task.evaluate_loss(model, [batch])) == {"loss"}  # loss-only validation decodes nothing


def test_run_writes_predictions_that_seqeval_recomputes(tmp_path, one_thread):
    from nbhelpers.training import run_experiment

    cfg = RunConfig(task="ner", optimizer="adamw", epochs=2, batch_size=4, max_samples=200, lr=1e-2,
                    model_kwargs={"hidden": 24, "embed_dim": 24, "char_filters": 16}, device="cpu",
                    output_dir=str(tmp_path), progress=False)
    result = run_experiment(cfg)
    summary = result.summary
    assert summary["model"] == "bilstm_crf_charcnn_ner" and summary["dataset"] == "gazetteer_ner"
    assert summary["metric_specs"]["f1"]["label"] == "F1"
    records = read_jsonl(result.run_dir / "predictions_test.jsonl")
    assert [r["id"] for r in records] == list(range(200))
    assert all(len(r["tokens"]) == len(r["reference"]) == len(r["prediction"]) for r in records)
    recomputed = seqeval_scores([r["reference"] for r in records], [r["prediction"] for r in records])
    for key, value in recomputed.items():
        assert summary["test"][key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    assert summary["test"]["f1"] > 0.05  # it learned something in two small epochs
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert {"train_f1", "val_f1", "val_f1_PER", "train_loss"} <= set(history[0])
    config = json.loads((result.run_dir / "config.json").read_text())["config"]
    assert (config["scheduler"], config["max_grad_norm"], config["early_stopping_patience"]) == ("plateau", 1.0, 5)


# The seed guide's four NER commands, word for word (`python -m benchmark.main` is our
# `python -m nbhelpers run`).
SEED_COMMANDS = [
    f"""--task ner --dataset {dataset} --model {model} --optimizers all --epochs 20 --batch-size 64
    --max-samples {samples} --num-workers 8 --lr-policy per_opt --scheduler plateau --early-stopping-patience 5
    --max-grad-norm 1.0 --output-dir ./results"""
    for dataset, samples in (("conll2003", 8000), ("wikiann_en", 50000))
    for model in ("lstm_crf_ner", "lstm_crf_charcnn_ner")]


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=lambda c: "-".join(c.split()[3:6:2]))
def test_the_seed_guides_commands_are_accepted_as_they_are(command):
    from nbhelpers.cli import _plan, build_parser

    plan = _plan(build_parser().parse_args(["run", *shlex.split(command)]))
    assert len(plan.configs) == 16
    cfg = plan.configs[0]
    assert cfg.model in ("lstm_crf_ner", "bilstm_crf_charcnn_ner") and cfg.task == "ner"
    assert (cfg.epochs, cfg.batch_size, cfg.num_workers, cfg.scheduler) == (20, 64, 8, "plateau")
    assert (cfg.early_stopping_patience, cfg.max_grad_norm, cfg.lr_policy) == (5, 1.0, "per_opt")
    assert cfg.max_samples in (8000, 50000) and Path(cfg.output_dir) == Path("results")


@pytest.mark.slow
def test_the_seed_guides_conll_command_runs_on_local_conll_files(tmp_path, monkeypatch):
    """The first seed command exactly as written (16 optimizers x 20 epochs, 8 workers), on
    CoNLL-2003 text files of a few sentences in NBHELPERS_DATA_DIR."""
    from test_ner_data import _write_conll_text

    from nbhelpers.cli import main

    _write_conll_text(tmp_path / "data" / "conll2003")
    monkeypatch.setenv("NBHELPERS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", *shlex.split(SEED_COMMANDS[0]), "--no-progress"]) == 0
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*/summary.json")]
    assert len(summaries) == 16 and all(s["status"] in ("completed", "early_stopped") for s in summaries)
