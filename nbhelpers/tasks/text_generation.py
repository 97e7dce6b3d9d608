"""Text generation (language modelling): next-token cross-entropy, perplexity.

A batch is (input ids, target ids), each (batch, bptt) (nbhelpers/data/text_generation.py).
Statistics are summed over *tokens*, not sequences, so the epoch's perplexity is
exp(total NLL / total tokens): the usual corpus-level figure, independent of batch sizes.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import Task, TaskSpec

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
        primary_metric="perplexity",
        higher_is_better=False,
        metrics=("perplexity",),
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

    def forward(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs, targets = batch
        logits = model(inputs)
        flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        pad_id = self.info.get("pad_id")
        ignore = -100 if pad_id is None else int(pad_id)
        nll_sum = F.cross_entropy(flat_logits.float(), flat_targets, ignore_index=ignore, reduction="sum")
        tokens = (flat_targets != ignore).sum()
        nll = nll_sum / tokens.clamp(min=1)
        loss = nll
        if self.label_smoothing > 0:
            # Train on the smoothed loss, but report the plain NLL so perplexity stays a perplexity.
            loss = F.cross_entropy(flat_logits.float(), flat_targets, ignore_index=ignore,
                                   label_smoothing=self.label_smoothing)
        return loss, {"nll_sum": nll_sum.detach(), "tokens": tokens}

    def summarize(self, totals: Mapping[str, float]) -> dict[str, float]:
        tokens = float(totals["tokens"])
        mean_nll = float(totals["nll_sum"]) / tokens if tokens > 0 else float("nan")
        return {"loss": mean_nll, "perplexity": perplexity(mean_nll)}


TASKS.add("text_generation", TextGeneration, description=TextGeneration.spec.description,
          spec=TextGeneration.spec)
