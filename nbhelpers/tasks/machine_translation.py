"""Machine translation: teacher-forced cross-entropy (label smoothing 0.1), decoded BLEU and chrF.

Batches and models: nbhelpers/data/translation.py and nbhelpers/models/seq2seq.py. Training,
decoding and records are shared with summarization (nbhelpers/tasks/seq2seq.py). Metrics are
sacrebleu's corpus BLEU (its default 13a tokenization, on detokenized text) and chrF, both
0-100; BLEU is primary. Recompute them from predictions_test.jsonl with
`sacrebleu.corpus_bleu(hypotheses, [references])` and `sacrebleu.corpus_chrf(...)`.
"""

from __future__ import annotations

from typing import Sequence

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import MetricSpec, TaskSpec
from nbhelpers.tasks.seq2seq import Seq2SeqTask


def bleu_and_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """sacrebleu's corpus BLEU and chrF (one reference per sentence), 0-100."""
    import sacrebleu

    if not hypotheses:
        return {"bleu": float("nan"), "chrf": float("nan")}
    return {"bleu": float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score),
            "chrf": float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)}


class MachineTranslation(Seq2SeqTask):
    spec = TaskSpec(
        name="machine_translation",
        description="translate a sentence (sacrebleu BLEU and chrF on decoded text; beam 5 on test)",
        family="text",
        metrics={"bleu": MetricSpec("BLEU", higher_is_better=True, unit="BLEU"),
                 "chrf": MetricSpec("chrF", higher_is_better=True)},
        primary_metric="bleu",
        offline_dataset="toy_translation",
        scheduler="plateau",         # the seed guide: ReduceLROnPlateau on the validation loss
        max_grad_norm=1.0,
        early_stopping_patience=5,   # the seed guide's recommendation for seq2seq
        label_smoothing=0.1,
        target=None,                 # BLEU of different corpora is not comparable; toy_translation sets 90
        defaults={"model": "transformer_seq2seq", "epochs": 20, "batch_size": 64},
    )

    def corpus_metrics(self, hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        return bleu_and_chrf(hypotheses, references)


TASKS.add("machine_translation", MachineTranslation, description=MachineTranslation.spec.description,
          spec=MachineTranslation.spec)
