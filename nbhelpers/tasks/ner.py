"""Named-entity recognition: a CRF's negative log-likelihood, scored by entity-level F1.

Batches come from nbhelpers/data/ner.py (word_ids, char_ids, tags, mask, tokens); the models
of nbhelpers/models/ner.py map them to emission scores and own a CRF (`model.crf`).

* Loss: the CRF's negative log-likelihood of the gold tags, summed over the batch's sentences
  and divided by its number of tokens: nats per token, like the language-model task, so the
  optimizers' learning rates mean the same here as on the other text tasks and the loss does
  not grow with sentence length.
* Metrics: entity-level precision, recall and F1 as seqeval computes them in strict IOB2 mode
  (`mode="strict", scheme=IOB2`): an entity counts as found only when its type, its first
  and its last token all match, and a stray I-X starts no entity. F1 (micro-averaged over
  entity types) is the primary metric; F1 of each type (PER, ORG, LOC, MISC) is reported
  too, null when the split has no entity of that type, gold or predicted (MISC on wikiann_en).
* evaluate() Viterbi-decodes every sentence and scores the decoded tags with seqeval itself.
  Training batches are decoded too (from the emissions already computed, without gradients)
  and their entities counted on the device by `entity_counts`, which follows the same strict
  rules, so the history has a training F1 without a host copy per batch.

Each record of predictions_val/test.jsonl is {"id", "tokens", "reference": gold IOB2 tags,
"prediction": predicted IOB2 tags}; seqeval on the file's reference/prediction lists gives
the summary's metrics exactly.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import Evaluation, MetricSpec, Task, TaskSpec, add_stats

ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")


def _percent(label: str) -> MetricSpec:
    return MetricSpec(label, higher_is_better=True, unit="%", scale=100.0)


METRICS = {"f1": _percent("F1"), "precision": _percent("precision"), "recall": _percent("recall"),
           **{f"f1_{kind}": _percent(f"F1 {kind}") for kind in ENTITY_TYPES}}


def seqeval_scores(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """f1, precision, recall and f1_<type> of tag sequences by seqeval (strict IOB2).

    Scores with nothing to divide by (no predicted or no gold entity) are 0, as seqeval's
    zero_division=0 gives; f1_<type> is NaN for a type absent from both lists.
    """
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    references, predictions = [list(r) for r in references], [list(p) for p in predictions]
    common = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    scores = {"f1": f1_score(references, predictions, **common),
              "precision": precision_score(references, predictions, **common),
              "recall": recall_score(references, predictions, **common)}
    with warnings.catch_warnings():  # a type predicted but never gold: recall undefined, reported as 0
        warnings.simplefilter("ignore")
        report = classification_report(references, predictions, output_dict=True, **common)
    for kind in ENTITY_TYPES:
        scores[f"f1_{kind}"] = float(report[kind]["f1-score"]) if kind in report else float("nan")
    return {name: float(value) for name, value in scores.items()}


class TagScheme:
    """For each tag id: the entity type it begins (B-X) or continues (I-X), as type indices."""

    def __init__(self, tag_names: Sequence[str], types: Sequence[str] = ENTITY_TYPES):
        self.types = list(types) + [t for t in dict.fromkeys(n[2:] for n in tag_names if n != "O")
                                    if t not in types]
        index = {kind: i for i, kind in enumerate(self.types)}
        self.begins = torch.tensor([index[n[2:]] if n.startswith("B-") else -1 for n in tag_names])
        self.inside = torch.tensor([index[n[2:]] if n.startswith("I-") else -1 for n in tag_names])


def _entities(tags: torch.Tensor, real: torch.Tensor, scheme: TagScheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position: the type of the entity starting there (-1: none) and where it ends (exclusive).

    Strict IOB2: an I-X continues an entity only inside a run of I-X tags that directly follows
    a B-X, so whether a token continues one is read off the run it belongs to, with no loop.
    """
    batch, length = tags.shape
    positions = torch.arange(length, device=tags.device).expand(batch, length)
    begins = scheme.begins.to(tags.device)[tags].masked_fill(~real, -1)
    inside = scheme.inside.to(tags.device)[tags].masked_fill(~real, -1)
    values = tags.masked_fill(~real, -1)
    change = torch.ones_like(real)
    change[:, 1:] = values[:, 1:] != values[:, :-1]
    run_start = torch.where(change, positions, torch.zeros_like(positions)).cummax(dim=1).values
    before = begins.gather(1, (run_start - 1).clamp(min=0)).masked_fill(run_start == 0, -1)
    continues = (inside >= 0) & (before == inside)
    # The first position at or after t that does not continue an entity (reverse running minimum).
    stops = torch.where(continues, torch.full_like(positions, length), positions)
    next_stop = stops.flip(1).cummin(dim=1).values.flip(1)
    ends = torch.cat([next_stop[:, 1:], torch.full_like(next_stop[:, :1], length)], dim=1)
    return begins, ends


def entity_counts(gold: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor,
                  scheme: TagScheme) -> dict[str, torch.Tensor]:
    """Per entity type: entities found exactly (tp), predicted (pred) and gold, on the device.

    Strict IOB2, as seqeval's strict mode: an entity is a B-X and the I-X that follow it; any
    other tag ends it, and an I-X without an open X entity belongs to none. A predicted entity
    is correct when a gold entity starts at the same token with the same type and both end at
    the same token.
    """
    real = mask.bool()
    gold_type, gold_end = _entities(gold, real, scheme)
    pred_type, pred_end = _entities(pred, real, scheme)
    hit = (gold_type >= 0) & (gold_type == pred_type) & (gold_end == pred_end)
    kinds = torch.arange(len(scheme.types), device=gold.device)

    def per_type(types: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return ((types.unsqueeze(-1) == kinds) & where.unsqueeze(-1)).sum(dim=(0, 1))

    return {"tp": per_type(gold_type, hit), "pred": per_type(pred_type, pred_type >= 0),
            "gold": per_type(gold_type, gold_type >= 0)}


def scores_from_counts(tp: torch.Tensor, pred: torch.Tensor, gold: torch.Tensor,
                       types: Sequence[str]) -> dict[str, float]:
    """Micro precision/recall/F1 and per-type F1 from entity counts (0 where undefined)."""
    def prf(tp_: float, pred_: float, gold_: float) -> tuple[float, float, float]:
        precision = tp_ / pred_ if pred_ else 0.0
        recall = tp_ / gold_ if gold_ else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    tp, pred, gold = (x.tolist() for x in (tp, pred, gold))
    precision, recall, f1 = prf(sum(tp), sum(pred), sum(gold))
    scores = {"f1": f1, "precision": precision, "recall": recall}
    for i, kind in enumerate(types):
        if kind in ENTITY_TYPES:
            scores[f"f1_{kind}"] = prf(tp[i], pred[i], gold[i])[2] if pred[i] or gold[i] else float("nan")
    return scores


class NamedEntityRecognition(Task):
    spec = TaskSpec(
        name="ner",
        description="tag the named entities of a sentence (entity-level F1, seqeval strict IOB2)",
        family="text",
        metrics=METRICS,
        primary_metric="f1",
        offline_dataset="gazetteer_ner",
        scheduler="plateau",        # the seed guide: ReduceLROnPlateau on validation loss
        max_grad_norm=1.0,          # the seed guide's clipping for the BiLSTM
        early_stopping_patience=5,  # the seed guide: patience ~3-5
        label_smoothing=0.0,        # a CRF's likelihood has no smoothed form here
        target=0.90,                # entity F1 a BiLSTM-CRF reaches on CoNLL-2003 when trained well
        # Tuned for the offline gazetteer_ner (benchmarks/results/ner.md); the seed guide's runs
        # on conll2003 and wikiann_en set 20 epochs and batch 64 (params/ner/).
        defaults={"model": "bilstm_crf_charcnn_ner", "epochs": 5, "batch_size": 32},
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._scheme: TagScheme | None = None

    # -- helpers --------------------------------------------------------------------------
    def tag_names(self) -> list[str]:
        return list(self.data.info["tag_names"])

    def scheme(self) -> TagScheme:
        if self._scheme is None:
            self._scheme = TagScheme(self.tag_names())
        return self._scheme

    @staticmethod
    def emissions(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        return model(batch["word_ids"], batch["mask"], batch["char_ids"])

    @staticmethod
    def _nll(model: nn.Module, emissions: torch.Tensor, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        nll = model.crf(emissions, batch["tags"], batch["mask"])
        return {"nll_sum": nll.sum(), "tokens": batch["mask"].sum(), "sentences": torch.tensor(
            nll.shape[0], device=nll.device)}

    # -- the contract ---------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emissions = self.emissions(model, batch)
        stats = self._nll(model, emissions, batch)
        loss = stats["nll_sum"] / stats["tokens"].clamp(min=1)
        predicted, _ = model.crf.decode(emissions.detach(), batch["mask"])
        counts = entity_counts(batch["tags"], predicted, batch["mask"], self.scheme())
        stats = {key: value.detach() for key, value in stats.items()}
        return loss, {**stats, **{f"entities_{key}": value for key, value in counts.items()}}

    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        tokens = float(totals["tokens"])
        metrics = {"loss": float(totals["nll_sum"]) / tokens if tokens else float("nan")}
        if "entities_tp" in totals:
            metrics.update(scores_from_counts(totals["entities_tp"], totals["entities_pred"],
                                              totals["entities_gold"], self.scheme().types))
        return metrics

    def evaluate_loss(self, model: nn.Module, loader: Iterable) -> dict[str, float]:
        """The CRF loss alone, without decoding (between full evaluations)."""
        totals: dict[str, torch.Tensor] = {}
        for batch in loader:
            add_stats(totals, self._nll(model, self.emissions(model, batch), batch))
        return self.summarize(totals)

    def evaluate(self, model: nn.Module, loader: Iterable, split: str) -> Evaluation:
        """Viterbi-decode every sentence; seqeval's strict IOB2 scores on the decoded tags."""
        names = self.tag_names()
        totals: dict[str, torch.Tensor] = {}
        records: list[dict[str, Any]] = []
        for batch in loader:
            emissions = self.emissions(model, batch)
            add_stats(totals, self._nll(model, emissions, batch))
            predicted, _ = model.crf.decode(emissions, batch["mask"])
            lengths = batch["mask"].sum(dim=1).tolist()
            for row, (tokens, n) in enumerate(zip(batch["tokens"], lengths, strict=True)):
                records.append({"id": len(records), "tokens": list(tokens),
                                "reference": [names[i] for i in batch["tags"][row, :n].tolist()],
                                "prediction": [names[i] for i in predicted[row, :n].tolist()]})
        metrics = self.summarize(totals)
        metrics.update(seqeval_scores([r["reference"] for r in records], [r["prediction"] for r in records]))
        return Evaluation(metrics, records)

    def batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(batch["word_ids"].shape[0])


TASKS.add("ner", NamedEntityRecognition, description=NamedEntityRecognition.spec.description,
          spec=NamedEntityRecognition.spec)
