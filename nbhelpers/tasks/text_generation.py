"""Text generation (language modelling): next-token cross-entropy, perplexity.

A batch is (input ids, target ids), each (batch, bptt) (nbhelpers/data/text_generation.py).
Statistics are summed over *tokens*, not sequences, so the epoch's perplexity is
exp(total NLL / total tokens): the usual corpus-level figure, independent of batch sizes.
Each prediction record holds one chunk's summed NLL (nats) and its token count, so
exp(sum of nll_sum / sum of tokens) over predictions_test.jsonl is the test perplexity.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import MetricSpec, Task, TaskSpec

# exp() of a mean NLL above this overflows a float; such a model's perplexity is infinite.
_MAX_EXP = math.log(1.7e308)


def perplexity(mean_nll: float) -> float:
    """exp(mean NLL in nats), inf when it overflows or the NLL is not finite."""
    if not math.isfinite(mean_nll):
        return float("nan") if math.isnan(mean_nll) else float("inf")
    return math.exp(mean_nll) if mean_nll < _MAX_EXP else float("inf")


class TextGeneration(Task):
    spec = TaskSpec(
        name="text_generation",
        description="predict the next word of a text (perplexity, lower is better)",
        family="text",
        metrics={"perplexity": MetricSpec("perplexity", higher_is_better=False, unit="ppl", digits=None)},
        primary_metric="perplexity",
        offline_dataset="grammar_lm",
        scheduler="cosine",
        max_grad_norm=1.0,          # the seed guide's clipping for language models
        early_stopping_patience=3,
        label_smoothing=0.0,        # perplexity is defined on the plain NLL
        target=None,                # perplexities of different corpora are not comparable
        # Tuned so that adamw brings gpt_small within 1.25x of grammar_lm's best possible
        # perplexity in under 5 minutes on 2 CPU cores (benchmarks/results/lm_convergence.md).
        defaults={"epochs": 6, "batch_size": 32},
    )

    def _nll(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Logits, per-token NLL (0 on padding) and the mask of real target tokens."""
        inputs, targets = batch
        logits = model(inputs)
        pad_id = None if self.data is None else self.data.pad_id
        ignore = -100 if pad_id is None else int(pad_id)
        token_nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                    ignore_index=ignore, reduction="none").reshape(targets.shape)
        return logits, token_nll, targets != ignore, ignore

    def train_step(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, token_nll, real, ignore = self._nll(model, batch)
        nll_sum, tokens = token_nll.sum(), real.sum()
        loss = nll_sum / tokens.clamp(min=1)
        if self.label_smoothing > 0:
            # Train on the smoothed loss, but report the plain NLL so perplexity stays a perplexity.
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[1].reshape(-1),
                                   ignore_index=ignore, label_smoothing=self.label_smoothing)
        return loss, {"nll_sum": nll_sum.detach(), "tokens": tokens}

    def eval_step(self, model: nn.Module, batch):
        """Per chunk: its summed NLL and token count, so perplexity is recomputable from the file."""
        _, token_nll, real, _ = self._nll(model, batch)
        per_row_nll, per_row_tokens = token_nll.sum(dim=1), real.sum(dim=1)
        records = [{"nll_sum": n, "tokens": t}
                   for n, t in zip(per_row_nll.tolist(), per_row_tokens.tolist(), strict=True)]
        return {"nll_sum": per_row_nll.sum(), "tokens": per_row_tokens.sum()}, records

    def summarize(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        tokens = float(totals["tokens"])
        mean_nll = float(totals["nll_sum"]) / tokens if tokens > 0 else float("nan")
        return {"loss": mean_nll, "perplexity": perplexity(mean_nll)}


TASKS.add("text_generation", TextGeneration, description=TextGeneration.spec.description,
          spec=TextGeneration.spec)
