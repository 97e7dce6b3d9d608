"""Extractive question answering: start/end cross-entropy, span decoding, SQuAD EM and F1.

Batches are windows of contexts with their question (nbhelpers/data/qa.py); models return start
and end logits over each window's positions, position 0 being the "not in this window" slot
(nbhelpers/models/qa.py).

Training: the loss of a window is CE(start logits, gold start) + CE(end logits, gold end), the
sum of the two cross-entropies, averaged over the windows of the batch; no label smoothing (it
would put probability on padding and on every token alike, which span QA has no use for). The
training split is never decoded, so the history has a training loss but no training F1.

Evaluation decodes: for every question, the best span over all of its windows (start <= end, at
most `max_answer_len` tokens, context tokens only; nbhelpers/tasks/qa_decoding.py), mapped back
to the characters of the original context, and scores that text against every gold answer with
the SQuAD v1.1 script's exact match and F1 (nbhelpers/squad_metric.py), both 0-100. Each record
of predictions_<split>.jsonl holds id, qid (the dataset's own id), question, prediction and
answers (with the record's own exact_match and f1), so squad_scores() over the file gives the
summary's figures again.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from nbhelpers.errors import UserInputError
from nbhelpers.registry import TASKS
from nbhelpers.squad_metric import best_over_answers
from nbhelpers.tasks.base import Evaluation, MetricSpec, Task, TaskSpec, add_stats
from nbhelpers.tasks.qa_decoding import MAX_ANSWER_LEN, best_per_example, best_spans, span_text, window_candidates


def span_logits(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's start and end logits for a batch of windows."""
    return model(batch["question_ids"], batch["question_mask"], batch["context_ids"], batch["context_mask"])


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, starts: torch.Tensor,
              ends: torch.Tensor) -> torch.Tensor:
    """Per window: CE of the start plus CE of the end (float32, whatever autocast produced)."""
    return (F.cross_entropy(start_logits.float(), starts, reduction="none")
            + F.cross_entropy(end_logits.float(), ends, reduction="none"))


def _examples_of(loader: Any, split: str, data: Any) -> list:
    """The split's examples: from the loader's dataset (through Subset and device wrappers),
    else from the bundle by split name."""
    dataset = getattr(getattr(loader, "loader", loader), "dataset", None)
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if dataset is None or not hasattr(dataset, "examples"):
        dataset = {"val": getattr(data, "val", None), "test": getattr(data, "test", None),
                   "train": getattr(data, "train", None)}.get(split)
    if dataset is None or not hasattr(dataset, "examples"):
        raise ValueError(f"question_answering: cannot find the examples of the {split!r} split")
    return dataset.examples


class QuestionAnswering(Task):
    spec = TaskSpec(
        name="question_answering",
        description="find the answer to a question as a span of a passage (SQuAD v1.1 F1)",
        family="text",
        metrics={"f1": MetricSpec("F1", higher_is_better=True),
                 "exact_match": MetricSpec("exact match", higher_is_better=True)},
        primary_metric="f1",
        offline_dataset="toy_qa",
        scheduler="plateau",        # the seed guide: ReduceLROnPlateau (on the validation loss)
        max_grad_norm=1.0,
        early_stopping_patience=5,
        label_smoothing=0.0,
        target=None,                # toy_qa sets its own (info["target"]); SQuAD/TweetQA have none
        defaults={"model": "bilstm_attention_qa", "epochs": 20, "batch_size": 32},
    )

    def __init__(self, *, data: Any = None, label_smoothing: float | None = None):
        super().__init__(data=data, label_smoothing=label_smoothing)
        if self.label_smoothing:
            raise UserInputError(f"question_answering trains on plain start/end cross-entropy; "
                                 f"label_smoothing must be 0, got {self.label_smoothing}")

    @property
    def max_answer_len(self) -> int:
        info = {} if self.data is None else self.data.info
        return int(info.get("max_answer_len", MAX_ANSWER_LEN))

    def train_step(self, model: nn.Module, batch: Mapping[str, torch.Tensor]):
        start_logits, end_logits = span_logits(model, batch)
        losses = span_loss(start_logits, end_logits, batch["start_positions"], batch["end_positions"])
        return losses.mean(), {"loss_sum": losses.detach().sum(),
                               "windows": torch.tensor(losses.shape[0], device=losses.device)}

    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        windows = float(totals["windows"]) if "windows" in totals else 0.0
        return {"loss": float(totals["loss_sum"]) / windows if windows else float("nan")}

    def batch_size(self, batch: Mapping[str, torch.Tensor]) -> int:
        return int(batch["context_ids"].shape[0])

    def evaluate(self, model: nn.Module, loader: Iterable, split: str) -> Evaluation:
        """Decode every question's best span over its windows and score it (see the docstring)."""
        examples = _examples_of(loader, split, self.data)
        totals: dict[str, torch.Tensor] = {}
        candidates, order = [], {}
        for batch in loader:
            start_logits, end_logits = span_logits(model, batch)
            losses = span_loss(start_logits, end_logits, batch["start_positions"], batch["end_positions"])
            add_stats(totals, {"loss_sum": losses.sum(),
                               "windows": torch.tensor(losses.shape[0], device=losses.device)})
            offsets = batch["offsets"]
            start, end, score = best_spans(start_logits, end_logits, offsets[..., 0] >= 0, self.max_answer_len)
            candidates.extend(window_candidates(batch["example_index"], start, end, score, offsets))
            for index in batch["example_index"].tolist():
                order.setdefault(index, len(order))
        best = best_per_example(candidates)
        records = []
        for index in order:  # loader order: the order of the split
            example = examples[index]
            prediction = span_text(example.context, best.get(index))
            em, f1 = best_over_answers(prediction, example.answers)
            records.append({"id": len(records), "qid": example.qid, "question": example.question,
                            "prediction": prediction, "answers": list(example.answers),
                            "exact_match": 100.0 * em, "f1": 100.0 * f1})
        metrics = self.summarize(totals) if totals else {"loss": float("nan")}
        count = max(len(records), 1)
        metrics["f1"] = sum(r["f1"] for r in records) / count
        metrics["exact_match"] = sum(r["exact_match"] for r in records) / count
        return Evaluation(metrics, records)


TASKS.add("question_answering", QuestionAnswering, description=QuestionAnswering.spec.description,
          spec=QuestionAnswering.spec)
