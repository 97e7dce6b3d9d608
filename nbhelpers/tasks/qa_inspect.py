"""Looking inside a QA model, for the notebook: one question's windows, probabilities and spans.

`inspect_example()` runs a model on every window of one question and returns, for the window
that holds the decoded answer, each token with its start and end probability (softmax over the
window's positions, the [NULL] slot included), plus the gold and predicted character spans.
`highlight_html()` renders the context with the gold answer(s) and the prediction marked.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import torch
from torch import nn

from nbhelpers.tasks.qa_decoding import MAX_ANSWER_LEN, best_per_example, best_spans, window_candidates


@dataclass
class ExampleView:
    """What the notebook shows of one question."""

    question: str
    context: str
    answers: tuple[str, ...]
    gold_span: tuple[int, int] | None          # the training span (characters)
    predicted_span: tuple[int, int] | None     # the decoded answer (characters)
    tokens: list[str]                          # the tokens of the answer's window ([NULL] first)
    start_probabilities: list[float]
    end_probabilities: list[float]
    window: int                                # which of the question's windows that is
    windows: int                               # how many windows the question has

    @property
    def prediction(self) -> str:
        return "" if self.predicted_span is None else self.context[slice(*self.predicted_span)]


@torch.no_grad()
def inspect_example(model: nn.Module, split, index: int, collate, *, device: torch.device | str = "cpu",
                    max_answer_len: int = MAX_ANSWER_LEN) -> ExampleView:
    """Run `model` (left in the mode it was in) on all windows of example `index` of `split`."""
    was_training = model.training
    model.eval()
    try:
        windows = split.windows_of(index)
        batch = collate([split[i] for i in windows])
        batch = {key: value.to(device) for key, value in batch.items()}
        start_logits, end_logits = model(batch["question_ids"], batch["question_mask"],
                                         batch["context_ids"], batch["context_mask"])
        offsets = batch["offsets"]
        start, end, score = best_spans(start_logits, end_logits, offsets[..., 0] >= 0, max_answer_len)
        best = best_per_example(window_candidates(batch["example_index"], start, end, score, offsets)).get(index)
        row = int(score.argmax()) if best is not None else 0
    finally:
        model.train(was_training)
    example = split.examples[index]
    length = int(batch["context_mask"][row].sum())
    ids = batch["context_ids"][row, :length].tolist()
    tokenizer = getattr(split, "tokenizer", None)
    tokens = tokenizer.convert_ids_to_tokens(ids) if tokenizer is not None else [str(i) for i in ids]
    return ExampleView(
        question=example.question, context=example.context, answers=example.answers, gold_span=example.span,
        predicted_span=None if best is None else (best.char_start, best.char_end),
        tokens=tokens,
        start_probabilities=torch.softmax(start_logits[row, :length].float(), 0).tolist(),
        end_probabilities=torch.softmax(end_logits[row, :length].float(), 0).tolist(),
        window=row, windows=len(windows))


def highlight_html(context: str, gold: tuple[int, int] | None, predicted: tuple[int, int] | None) -> str:
    """The context as HTML: the gold span on a green background, the prediction underlined in red
    (both at once where they overlap)."""
    marks = sorted({0, len(context)} | {p for span in (gold, predicted) if span for p in span})
    parts = []
    for begin, stop in zip(marks, marks[1:]):
        text = html.escape(context[begin:stop])
        in_gold = gold is not None and gold[0] <= begin and stop <= gold[1]
        in_predicted = predicted is not None and predicted[0] <= begin and stop <= predicted[1]
        style = []
        if in_gold:
            style.append("background:#c8f0c8")
        if in_predicted:
            style.append("border-bottom:3px solid #d62728")
        parts.append(f'<span style="{";".join(style)}">{text}</span>' if style else text)
    legend = ('<div style="font-size:90%;color:#555">'
              '<span style="background:#c8f0c8">gold answer</span> &nbsp; '
              '<span style="border-bottom:3px solid #d62728">prediction</span></div>')
    return f'<div style="line-height:1.8;max-width:60em">{"".join(parts)}</div>{legend}'


__all__ = ["ExampleView", "highlight_html", "inspect_example"]
