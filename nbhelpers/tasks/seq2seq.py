"""What machine translation and summarization share: teacher forcing, decoding, text records.

Training is teacher forcing: the decoder reads target_ids[:, :-1] (<s> and the reference so
far) and is scored on target_ids[:, 1:] (the reference and </s>), cross-entropy with label
smoothing, <pad> ignored. The statistics are summed over target tokens.

`evaluate()` decodes: greedy on the validation split (cheap enough to run every `eval_every`
epochs), beam search (beam 5, length penalty 1.0) on the test split, both batched and
incremental (nbhelpers/models/decoding.py). Hypotheses are detokenized with the data's live
tokenizer and scored as text by the subclass's `corpus_metrics()` (sacrebleu, rouge-score).
Each record is `{"id", "source", "reference", "hypothesis"}`: the source and reference as
the dataset has them (never truncated), the hypothesis as decoded.
"""

from __future__ import annotations

import abc
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.models.decoding import beam_search, greedy_decode, max_target_lengths
from nbhelpers.tasks.base import Evaluation, Task, add_stats


class Seq2SeqTask(Task):
    """Base class of the two text-to-text tasks; subclasses set `spec` and `corpus_metrics()`."""

    beam_size = 5
    length_penalty = 1.0
    # How each split is decoded by evaluate(); the notebooks and benchmarks change these.
    decoding = {"val": "greedy", "test": "beam"}

    # -- training -------------------------------------------------------------------------
    def _token_loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean smoothed loss over target tokens, number of target tokens)."""
        target = batch["target_ids"]
        target_in, target_out = target[:, :-1], target[:, 1:]
        logits = model(batch["source_ids"], batch["source_mask"], target_in)
        pad = self.data.pad_id
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target_out.reshape(-1),
                               ignore_index=pad, label_smoothing=self.label_smoothing)
        return loss, (target_out != pad).sum()

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, tokens = self._token_loss(model, batch)
        return loss, {"loss_sum": loss.detach() * tokens, "tokens": tokens}

    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        tokens = float(totals["tokens"])
        return {"loss": float(totals["loss_sum"]) / tokens if tokens else float("nan")}

    def batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(batch["source_ids"].shape[0])

    # -- decoding -------------------------------------------------------------------------
    def decode(self, model: nn.Module, batch: Mapping[str, Any], method: str = "greedy") -> list[str]:
        """Hypotheses (text) for a batch: method "greedy" or "beam" (beam_size, length_penalty)."""
        info = self.data.info
        a, b = info.get("decode_max_len", (1.5, 10))
        # The hypothesis holds at most max_target_len - 1 tokens: the target minus its <s>.
        lengths = max_target_lengths(batch["source_mask"], a, b, cap=int(info["max_target_len"]) - 1)
        ids = dict(bos_id=int(info["bos_id"]), eos_id=int(info["eos_id"]), pad_id=int(info["pad_id"]),
                   max_lengths=lengths)
        if method == "greedy":
            hypotheses = greedy_decode(model, batch["source_ids"], batch["source_mask"], **ids)
        elif method == "beam":
            hypotheses, _ = beam_search(model, batch["source_ids"], batch["source_mask"], beam_size=self.beam_size,
                                        length_penalty=self.length_penalty, **ids)
        else:
            raise ValueError(f"decoding method must be 'greedy' or 'beam', got {method!r}")
        return self.data.tokenizer.decode_batch(hypotheses.tolist())

    def evaluate(self, model: nn.Module, loader: Iterable, split: str) -> Evaluation:
        """Teacher-forced loss, decoded hypotheses (greedy for val, beam for test) and corpus metrics."""
        method = self.decoding.get(split, "greedy")
        totals: dict[str, torch.Tensor] = {}
        records: list[dict[str, Any]] = []
        for batch in loader:
            _, stats = self.train_step(model, batch)
            add_stats(totals, stats)
            hypotheses = self.decode(model, batch, method)
            for source, reference, hypothesis in zip(batch["source_text"], batch["target_text"], hypotheses,
                                                     strict=True):
                records.append({"id": len(records), "source": source, "reference": reference,
                                "hypothesis": hypothesis})
        metrics = self.summarize(totals)
        metrics.update(self.corpus_metrics([r["hypothesis"] for r in records], [r["reference"] for r in records]))
        return Evaluation(metrics, records)

    @abc.abstractmethod
    def corpus_metrics(self, hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        """Every declared metric of the split, from detokenized hypotheses and references."""
