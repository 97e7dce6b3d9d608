"""machine_translation and text_summarization: the task facts, the loss, the metrics, and short runs
whose summary.json scores are recomputed from predictions_test.jsonl with sacrebleu and rouge-score."""

from __future__ import annotations

import json

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer

from nbhelpers.config import RunConfig
from nbhelpers.data.translation import build_toy_translation
from nbhelpers.registry import TASKS
from nbhelpers.tasks.machine_translation import bleu_and_chrf
from nbhelpers.tasks.text_summarization import rouge
from nbhelpers.training import run_experiment

TINY_TRANSFORMER = {"d_model": 32, "heads": 2, "ff": 64, "layers": 1}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_task_facts():
    for name, primary, metrics, model in (("machine_translation", "bleu", {"bleu", "chrf"}, "transformer_seq2seq"),
                                          ("text_summarization", "rougeL", {"rouge1", "rouge2", "rougeL"},
                                           "tiny_transformer_seq2seq")):
        spec = TASKS.get(name).meta["spec"]
        assert spec.primary_metric == primary and set(spec.metrics) == metrics and spec.higher_is_better
        assert (spec.family, spec.scheduler, spec.max_grad_norm, spec.early_stopping_patience) == ("text", "plateau",
                                                                                                     1.0, 5)
        assert spec.label_smoothing == 0.1 and spec.defaults["model"] == model
        assert all(m.scale == 1.0 for m in spec.metrics.values())  # stored 0-100, as the libraries print them
    assert TASKS.get("machine_translation").meta["spec"].offline_dataset == "toy_translation"
    assert TASKS.get("text_summarization").meta["spec"].offline_dataset == "toy_summaries"


def test_teacher_forcing_loss_ignores_padding_and_smooths_labels():
    data = build_toy_translation(data_dir=None, max_samples=8, seed=0, train_size=50, eval_size=8, vocab_size=300)
    task = TASKS.get("machine_translation").factory(data=data, label_smoothing=0.1)
    batch = data.collate_fn([data.train[i] for i in range(4)])
    seen = {}

    class Recorder(torch.nn.Module):  # fixed random logits; remembers what the decoder was fed
        def forward(self, source_ids, source_mask, target_in):
            seen["target_in"] = target_in
            return torch.randn(*target_in.shape, data.vocab_size, generator=torch.Generator().manual_seed(0))

    loss, stats = task.train_step(Recorder(), batch)
    target = batch["target_ids"]
    assert torch.equal(seen["target_in"], target[:, :-1])  # tgt_in = tgt[:-1], tgt_out = tgt[1:]
    logits = Recorder()(None, None, target[:, :-1])
    real = target[:, 1:] != 0
    token_losses = F.cross_entropy(logits.reshape(-1, data.vocab_size), target[:, 1:].reshape(-1), reduction="none",
                                   label_smoothing=0.1).reshape(real.shape)
    assert int(stats["tokens"]) == int(real.sum())
    assert float(loss) == pytest.approx(float(token_losses[real].mean()), rel=1e-5)
    assert task.summarize(stats)["loss"] == pytest.approx(float(loss), rel=1e-5)


def test_metric_helpers_match_the_libraries():
    references = ["the cat sat on the mat", "a dog barks", "das ist gut"]
    hypotheses = ["the cat sat on a mat", "a dog barked loudly", "das ist gut"]
    scores = bleu_and_chrf(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert bleu_and_chrf(references, references) == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    # ROUGE-Lsum splits on newlines: the same sentences in another order still score 100,
    # which plain ROUGE-L (one long sequence) would not.
    reference = "Maria painted the old museum.\nMaria sold a red bicycle."
    reordered = "Maria sold a red bicycle.\nMaria painted the old museum."
    assert rouge([reordered], [reference])["rougeL"] == pytest.approx(100.0)
    plain = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, reordered)["rougeL"].fmeasure
    assert plain < 0.9
    # Stemming: "painted" and "paints" share a stem.
    assert rouge(["Maria paints the museum."], ["Maria painted the museum."])["rouge1"] == pytest.approx(100.0)


def _recompute_translation(records):
    hypotheses, references = [r["hypothesis"] for r in records], [r["reference"] for r in records]
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score}


def _recompute_summaries(records):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(r["reference"], r["hypothesis"]) for r in records]
    mean = lambda kind: 100 * sum(s[kind].fmeasure for s in scores) / len(scores)  # noqa: E731
    return {"rouge1": mean("rouge1"), "rouge2": mean("rouge2"), "rougeL": mean("rougeLsum")}


@pytest.mark.parametrize("task, dataset, model, recompute", [
    ("machine_translation", "toy_translation", "transformer_seq2seq", _recompute_translation),
    ("text_summarization", "toy_summaries", "lstm_seq2seq", _recompute_summaries),
])
def test_a_short_run_writes_predictions_whose_scores_the_libraries_reproduce(tmp_path, one_thread, task, dataset,
                                                                             model, recompute):
    kwargs = {"embed_dim": 16, "hidden": 32, "layers": 1} if model == "lstm_seq2seq" else TINY_TRANSFORMER
    cfg = RunConfig(task=task, dataset=dataset, model=model, optimizer="adamw", epochs=2, batch_size=16,
                    max_samples=48, eval_every=2, model_kwargs=kwargs, lr=3e-3,
                    dataset_kwargs={"train_size": 200, "eval_size": 24, "vocab_size": 320},
                    output_dir=str(tmp_path), progress=False, device="cpu")
    result = run_experiment(cfg)
    summary = result.summary
    assert summary["status"] == "completed" and summary["primary_metric"] in summary["metric_specs"]
    history = result.history
    assert "val_loss" in history[0] and summary["primary_metric"] not in {k[4:] for k in history[0]}  # loss only
    assert f"val_{summary['primary_metric']}" in history[1]                                       # decoded
    records = [json.loads(line) for line in (result.run_dir / "predictions_test.jsonl").read_text().splitlines()]
    assert len(records) == 24 and [r["id"] for r in records] == list(range(24))
    assert set(records[0]) == {"id", "source", "reference", "hypothesis"}
    every = recompute(records)
    for name, value in every.items():
        assert summary["test"][name] == pytest.approx(value, abs=1e-6)
    assert (result.run_dir / "predictions_val.jsonl").is_file()
    details = (result.run_dir / "details.txt").read_text()
    assert "Byte-level BPE" in details
