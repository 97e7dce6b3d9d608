"""Span decoding for extractive question answering: from start/end logits to answer text.

A model scores every position of a context window twice: how likely the answer starts there
(start logit) and how likely it ends there (end logit). The answer is the span (i, j) with the
largest start_logit[i] + end_logit[j] such that

* i <= j and j - i + 1 <= max_answer_len tokens (30 by default, as in Hugging Face's
  postprocess_qa_predictions: start and end are predicted independently, so nothing else stops
  a span from running backwards or across the whole passage);
* both i and j are context tokens: position 0 of every window (the "no answer here" slot)
  and padding never are.

A long context is split into overlapping windows (nbhelpers/data/qa.py); its answer is the
best-scoring span over all of its windows, compared by the same raw logit sum (what Hugging
Face's run_qa does), and mapped back through the window's character offsets to the text of the
original context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

MAX_ANSWER_LEN = 30


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor,
               max_answer_len: int = MAX_ANSWER_LEN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best allowed span of each window of a batch.

    start_logits, end_logits: (B, T); context_mask: (B, T), True where a position is a token of
    the context (not the null slot, not padding). Returns (start, end, score), each (B,): the
    indices of the best span and start_logits[start] + end_logits[end]. A window without any
    context token gets start = end = 0 and score -inf.

    Vectorised over a (B, T, T) score matrix, which for windows of a few hundred tokens is
    cheaper than a Python loop over candidates.
    """
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len must be at least 1, got {max_answer_len}")
    start_logits, end_logits = start_logits.float(), end_logits.float()
    batch, length = start_logits.shape
    mask = context_mask.bool()
    scores = start_logits.unsqueeze(2) + end_logits.unsqueeze(1)          # [b, i, j]
    i = torch.arange(length, device=scores.device)
    width = i.unsqueeze(0) - i.unsqueeze(1)                                  # j - i
    allowed = (width >= 0) & (width < max_answer_len)
    allowed = allowed.unsqueeze(0) & mask.unsqueeze(2) & mask.unsqueeze(1)
    scores = scores.masked_fill(~allowed, float("-inf"))
    best, flat = scores.reshape(batch, -1).max(dim=1)
    start, end = flat // length, flat % length
    empty = torch.isinf(best)
    return start.masked_fill(empty, 0), end.masked_fill(empty, 0), best


@dataclass(frozen=True)
class SpanCandidate:
    """One window's best span, in characters of the original context."""

    example: int          # index of the example (question) in its split
    char_start: int
    char_end: int         # exclusive
    score: float


def window_candidates(example_index: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                      score: torch.Tensor, offsets: torch.Tensor) -> list[SpanCandidate]:
    """Turn best_spans()' token indices into character spans of the original contexts.

    offsets: (B, T, 2), the [start, end) characters of each window position in the example's
    context (-1 where the position is not a context token). Windows without a candidate
    (score -inf) are left out.
    """
    rows = torch.arange(start.shape[0], device=start.device)
    char_start = offsets[rows, start, 0]
    char_end = offsets[rows, end, 1]
    found = []
    for example, s, e, value in zip(example_index.tolist(), char_start.tolist(), char_end.tolist(),
                                    score.tolist()):
        if value != float("-inf"):
            found.append(SpanCandidate(int(example), int(s), int(e), float(value)))
    return found


def best_per_example(candidates: Iterable[SpanCandidate]) -> dict[int, SpanCandidate]:
    """Across windows: the highest-scoring candidate of each example (first one on ties)."""
    best: dict[int, SpanCandidate] = {}
    for candidate in candidates:
        kept = best.get(candidate.example)
        if kept is None or candidate.score > kept.score:
            best[candidate.example] = candidate
    return best


def span_text(context: str, candidate: SpanCandidate | None) -> str:
    """The answer text of a candidate ("" when an example got no candidate at all)."""
    return "" if candidate is None else context[candidate.char_start:candidate.char_end]


def brute_force_best_span(start_logits: Sequence[float], end_logits: Sequence[float],
                          context: Sequence[bool], max_answer_len: int = MAX_ANSWER_LEN
                          ) -> tuple[int, int, float] | None:
    """Reference for the tests: try every (i, j) in plain Python. None if no span is allowed."""
    best = None
    for i in range(len(start_logits)):
        for j in range(i, min(len(end_logits), i + max_answer_len)):
            if context[i] and context[j]:
                value = float(start_logits[i]) + float(end_logits[j])
                if best is None or value > best[2]:
                    best = (i, j, value)
    return best


__all__ = ["MAX_ANSWER_LEN", "SpanCandidate", "best_per_example", "best_spans",
           "brute_force_best_span", "span_text", "window_candidates"]
