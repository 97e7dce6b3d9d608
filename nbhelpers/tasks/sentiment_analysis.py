"""Sentiment analysis: binary text classification, cross-entropy with label smoothing 0.05, accuracy.

Batches come from nbhelpers/data/sentiment.py as dicts of input_ids, attention_mask and
labels; the models of nbhelpers/models/sentiment.py map (input_ids, attention_mask) to logits.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from nbhelpers.registry import TASKS
from nbhelpers.tasks.base import ACCURACY, ClassificationTask, TaskSpec


class SentimentAnalysis(ClassificationTask):
    spec = TaskSpec(
        name="sentiment_analysis",
        description="classify a text as negative or positive (accuracy)",
        family="text",
        metrics={"accuracy": ACCURACY},
        primary_metric="accuracy",
        offline_dataset="lexicon_sentiment",
        scheduler="plateau",        # the seed guide: ReduceLROnPlateau on validation loss
        max_grad_norm=1.0,          # RNNs and transformers alike: clip the global norm at 1
        early_stopping_patience=3,
        label_smoothing=0.05,
        # A bag of words stays near 0.55 on lexicon_sentiment; a BiLSTM passes 0.85 on SST-2
        # only when it is trained well, so 0.85 separates optimizers on both.
        target=0.85,
        defaults={"model": "lstm_sentiment", "epochs": 20, "batch_size": 64},
    )

    def logits_and_labels(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return model(batch["input_ids"], batch["attention_mask"]), batch["labels"]

    def batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(batch["labels"].shape[0])


TASKS.add("sentiment_analysis", SentimentAnalysis, description=SentimentAnalysis.spec.description,
          spec=SentimentAnalysis.spec)
