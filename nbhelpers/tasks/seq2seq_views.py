"""What the translation and summarization notebooks show beside the run: decoded examples,
scores by source length and an attention heatmap. Each function reads a finished Experiment
(or its records) and changes nothing in the run."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from nbhelpers.training.trainer import DeviceLoader


@torch.no_grad()
def decode_split(exp: Any, split: str = "test", method: str = "greedy", limit: int | None = None) -> list[str]:
    """Hypotheses of the best checkpoint for a split ("val" or "test"), in the split's order."""
    loader = {"val": exp.val_loader, "test": exp.test_loader}[split]
    model = exp.model.eval()
    hypotheses: list[str] = []
    for batch in DeviceLoader(loader, exp.device):
        hypotheses += exp.task.decode(model, batch, method)
        if limit is not None and len(hypotheses) >= limit:
            break
    return hypotheses[:limit] if limit is not None else hypotheses


def side_by_side(records: Sequence[dict], greedy: Sequence[str], rows: int = 8, width: int = 160) -> pd.DataFrame:
    """Source, reference, greedy and beam hypotheses of the first `rows` records."""
    cut = lambda text: text if len(text) <= width else text[:width - 1] + "…"  # noqa: E731
    return pd.DataFrame([{"source": cut(r["source"]), "reference": cut(r["reference"]), "greedy": cut(g),
                          "beam 5": cut(r["hypothesis"])} for r, g in zip(records[:rows], greedy[:rows])])


def score_by_length(records: Sequence[dict], score: Callable[[list[str], list[str]], dict[str, float]],
                    metric: str, bins: int = 4) -> pd.DataFrame:
    """The corpus metric on groups of records of similar source length (words), shortest first.

    Groups are quantiles of the source length, so each holds about the same number of sentences.
    """
    lengths = np.array([len(r["source"].split()) for r in records])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)).round())
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        last = high == edges[-1]
        chosen = [r for r, n in zip(records, lengths) if low <= n and (n <= high if last else n < high)]
        if not chosen:
            continue
        value = score([r["hypothesis"] for r in chosen], [r["reference"] for r in chosen])[metric]
        rows.append({"source words": f"{int(low)}-{int(high) if last else int(high) - 1}",
                     "examples": len(chosen), metric: value})
    return pd.DataFrame(rows)


@torch.no_grad()
def attention_map(exp: Any, index: int = 0, split: str = "test") -> tuple[np.ndarray, list[str], list[str]]:
    """lstm_seq2seq's attention for one example: (weights (target x source), source pieces, target pieces).

    The target is the model's own greedy hypothesis, read back under teacher forcing, so the
    rows show where the model looked while writing each of its words.
    """
    model, data = exp.model.eval(), exp.data
    dataset = {"val": data.val, "test": data.test}[split]
    batch = next(iter(DeviceLoader([data.collate_fn([dataset[index]])], exp.device)))
    hypothesis = exp.task.decode(model, batch, "greedy")[0]
    tokenizer = data.tokenizer
    target = [int(data.info["bos_id"])] + tokenizer.encode(hypothesis) + [int(data.info["eos_id"])]
    target_in = torch.tensor([target[:-1]], device=exp.device)
    _, weights = model(batch["source_ids"], batch["source_mask"], target_in, return_attention=True)
    source_ids = batch["source_ids"][0][batch["source_mask"][0]].tolist()
    return (weights[0, :, :len(source_ids)].float().cpu().numpy(), tokenizer.pieces(source_ids),
            tokenizer.pieces(target[1:]))


def attention_figure(weights: np.ndarray, source: Sequence[str], target: Sequence[str], title: str = ""):
    """A heatmap: one row per target piece, one column per source piece (pyplot, for plt.show())."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.38 * len(source) + 2), max(3.5, 0.32 * len(target) + 1.5)))
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), source, rotation=70, fontsize=8)
    ax.set_yticks(range(len(target)), target, fontsize=8)
    ax.set_xlabel("source pieces (encoder)")
    ax.set_ylabel("hypothesis pieces (decoder)")
    ax.set_title(title or "attention weights (each row sums to 1)")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig
