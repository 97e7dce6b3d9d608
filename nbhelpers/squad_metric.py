"""SQuAD v1.1 exact match and F1, as the official evaluation script computes them.

The official script (evaluate-v1.1.py, Rajpurkar et al. 2016) normalises both strings the same
way before comparing them: lowercase, drop every ASCII punctuation character, drop the words
"a", "an" and "the", and collapse whitespace. Exact match is 1 when the normalised strings are
equal; F1 is the harmonic mean of precision and recall over the normalised *tokens* (split on
whitespace, counted with multiplicity). Each prediction is scored against every gold answer and
keeps the best score; the corpus figures are the means times 100 (so 0-100, as published).

Written out here (not imported from `evaluate`, whose "squad" metric is fetched from the hub at
run time) because predictions_test.jsonl must be re-scorable offline; tests/test_qa.py checks it
on cases worked out by hand. It lives outside data/ and tasks/ because both use it: the task to
score answers, the tweet_qa loader to find the training span closest to a free-form answer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, remove punctuation, remove the articles a/an/the, collapse whitespace.

    The order matters and is the script's: punctuation goes before the articles, so "the-end"
    becomes "theend" (not "end"), and an article glued to punctuation ("(the)") is removed.
    """
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def answer_tokens(text: str) -> list[str]:
    """The tokens F1 counts: the normalised text split on whitespace."""
    return normalize_answer(text).split()


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str | Sequence[str], gold: str | Sequence[str]) -> float:
    """Token-overlap F1 (0-1) between a prediction and one gold answer.

    Either side may be given already tokenised (a list from answer_tokens()), which saves work
    when one side is compared many times. As in v1.1 of the script, an empty side scores 0.
    """
    pred = answer_tokens(prediction) if isinstance(prediction, str) else list(prediction)
    ref = answer_tokens(gold) if isinstance(gold, str) else list(gold)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over_answers(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the maximum of each over the gold answers.

    A question without gold answers scores (0, 0): the official script has no such case, and
    our datasets drop them before they are scored.
    """
    if not answers:
        return 0.0, 0.0
    return (max(exact_match(prediction, gold) for gold in answers),
            max(token_f1(prediction, gold) for gold in answers))


def squad_scores(predictions: Iterable[str], answer_lists: Iterable[Sequence[str]]) -> dict[str, float]:
    """Corpus exact match and F1 on the 0-100 scale of the official script.

    `predictions[i]` is scored against `answer_lists[i]`; an empty corpus scores 0.
    """
    total_em = total_f1 = 0.0
    count = 0
    for prediction, answers in zip(predictions, answer_lists, strict=True):
        em, f1 = best_over_answers(prediction, answers)
        total_em += em
        total_f1 += f1
        count += 1
    if count == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {"exact_match": 100.0 * total_em / count, "f1": 100.0 * total_f1 / count}


__all__ = ["answer_tokens", "best_over_answers", "exact_match", "normalize_answer",
           "squad_scores", "token_f1"]
