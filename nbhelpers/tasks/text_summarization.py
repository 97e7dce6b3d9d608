"""Text summarization: teacher-forced cross-entropy (label smoothing 0.1), decoded ROUGE.

Batches and models: nbhelpers/data/summarization.py and nbhelpers/models/seq2seq.py; training,
decoding and records are shared with translation (nbhelpers/tasks/seq2seq.py). Metrics are
rouge-score's ROUGE-1, ROUGE-2 and ROUGE-Lsum F-measures with Porter stemming, averaged over
the split and shown 0-100. ROUGE-Lsum splits summaries into sentences on newlines (as
CNN/DailyMail's highlights and toy_summaries' references are written); it is the primary
metric, "ROUGE-L". Recompute them from predictions_test.jsonl with
`rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)`, scoring
(reference, hypothesis) per record and averaging the F-measures.
"""

from __future__ import annotations

from typing import Sequence

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import MetricSpec, TaskSpec
from nbhelpers.tasks.seq2seq import Seq2SeqTask

ROUGE_TYPES = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeLsum"}  # our name -> rouge-score's


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/Lsum F-measures (stemming; sentences split on newlines), 0-100."""
    from rouge_score import rouge_scorer

    if not hypotheses:
        return {name: float("nan") for name in ROUGE_TYPES}
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES.values()), use_stemmer=True)
    sums = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        scores = scorer.score(reference, hypothesis)  # (target, prediction)
        for name, kind in ROUGE_TYPES.items():
            sums[name] += scores[kind].fmeasure
    return {name: 100.0 * total / len(hypotheses) for name, total in sums.items()}


class TextSummarization(Seq2SeqTask):
    spec = TaskSpec(
        name="text_summarization",
        description="summarize a document (rouge-score ROUGE-1/2/Lsum F1 on decoded text; beam 5 on test)",
        family="text",
        metrics={"rougeL": MetricSpec("ROUGE-L", higher_is_better=True),
                 "rouge1": MetricSpec("ROUGE-1", higher_is_better=True),
                 "rouge2": MetricSpec("ROUGE-2", higher_is_better=True)},
        primary_metric="rougeL",
        offline_dataset="toy_summaries",
        scheduler="plateau",
        max_grad_norm=1.0,
        early_stopping_patience=5,
        label_smoothing=0.1,
        target=None,                 # toy_summaries sets 80
        defaults={"model": "tiny_transformer_seq2seq", "epochs": 20, "batch_size": 32},
    )

    def corpus_metrics(self, hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        return rouge(hypotheses, references)


TASKS.add("text_summarization", TextSummarization, description=TextSummarization.spec.description,
          spec=TextSummarization.spec)
