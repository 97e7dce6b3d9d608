"""What notebooks/ner.py shows: tagged sentences as HTML and the CRF's transition scores.

* `sentences_html(records)`: each sentence twice, gold tags above the predicted ones, every
  entity a coloured span with its type (one colour per type); a predicted entity that is not
  exactly a gold one is outlined in red, a gold entity the model missed is outlined in grey.
  Plain inline styles, so the HTML export of an executed notebook shows it too.
* `transition_figure(crf, tag_names)`: a heatmap of the scores the CRF gives each move
  between tags (rows: from, columns: to), with the start and end scores as an extra row and
  column; transitions the IOB2 constraint forbids are hatched grey instead of coloured.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nbhelpers.data.ner import entity_spans

TYPE_COLOURS = {"PER": "#fde68a", "ORG": "#bfdbfe", "LOC": "#bbf7d0", "MISC": "#fbcfe8"}
# Darker shades of the same hues, for bars and lines.
TYPE_STRONG_COLOURS = {"PER": "#f59e0b", "ORG": "#3b82f6", "LOC": "#22c55e", "MISC": "#ec4899"}
OTHER_COLOUR = "#e5e7eb"


def _colour(kind: str) -> str:
    return TYPE_COLOURS.get(kind, OTHER_COLOUR)


def tagged_html(tokens: Sequence[str], tags: Sequence[str], *, against: Sequence[str] | None = None,
                wrong_border: str = "2px solid #dc2626") -> str:
    """One sentence as HTML with its entities as coloured spans.

    With `against` (the other tagging of the same sentence), an entity that `against` does not
    have exactly (same first token, last token and type) is outlined with `wrong_border`.
    """
    other = set(entity_spans(against)) if against is not None else None
    parts, cursor = [], 0
    for start, end, kind in entity_spans(tags):
        parts.extend(html.escape(t) for t in tokens[cursor:start])
        border = wrong_border if other is not None and (start, end, kind) not in other else "1px solid transparent"
        words = html.escape(" ".join(tokens[start:end]))
        parts.append(f'<span style="background:{_colour(kind)};border:{border};border-radius:4px;'
                     f'padding:1px 4px">{words} <sub style="font-size:70%;color:#374151">{kind}</sub></span>')
        cursor = end
    parts.extend(html.escape(t) for t in tokens[cursor:])
    return " ".join(parts)


def legend_html(types: Iterable[str]) -> str:
    """The colour of each entity type, and what the outlines mean."""
    swatches = " ".join(f'<span style="background:{_colour(t)};border-radius:4px;padding:1px 6px">{t}</span>'
                        for t in types)
    return (f"<p>{swatches} &nbsp; predicted entity that is not a gold one: "
            '<span style="border:2px solid #dc2626;border-radius:4px;padding:0 6px">red outline</span>; '
            'gold entity the model missed: '
            '<span style="border:2px dashed #6b7280;border-radius:4px;padding:0 6px">grey outline</span></p>')


def sentences_html(records: Iterable[Mapping[str, Any]], types: Iterable[str] = TYPE_COLOURS) -> str:
    """A table of sentences: gold tagging above the predicted one (records of predictions_*.jsonl)."""
    rows = []
    for record in records:
        tokens, gold, predicted = record["tokens"], record["reference"], record["prediction"]
        ok = set(entity_spans(gold)) == set(entity_spans(predicted))
        mark = "&#10003;" if ok else "&#10007;"
        rows.append(
            f'<tr><td rowspan="2" style="vertical-align:top;color:#6b7280">#{record.get("id", "")} {mark}</td>'
            f'<td style="color:#6b7280">gold</td><td style="text-align:left">'
            f'{tagged_html(tokens, gold, against=predicted, wrong_border="2px dashed #6b7280")}</td></tr>'
            f'<tr><td style="color:#6b7280">predicted</td><td style="text-align:left">'
            f'{tagged_html(tokens, predicted, against=gold)}</td></tr>')
    return legend_html(types) + '<table style="line-height:2">' + "".join(rows) + "</table>"


def transition_figure(crf: Any, tag_names: Sequence[str], title: str = "CRF transition scores"):
    """A matplotlib Figure: the learned transition scores, start and end included."""
    import matplotlib.pyplot as plt

    transitions, start, end = (x.detach().float().cpu().numpy() for x in crf.scores())
    allowed = crf.allowed.cpu().numpy()
    allowed_start = crf.allowed_start.cpu().numpy()
    k = len(tag_names)
    # Rows: start, then each "from" tag; columns: each "to" tag, then end.
    grid = np.full((k + 1, k + 1), np.nan)
    grid[0, :k] = np.where(allowed_start, start, np.nan)
    grid[1:, :k] = np.where(allowed, transitions, np.nan)
    grid[1:, k] = end
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * (k + 1), 0.9 + 0.55 * (k + 1)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
    forbidden = [(r, c) for r in range(k + 1) for c in range(k) if not np.isfinite(grid[r, c])]
    for row, col in forbidden:  # NaN cells: forbidden moves, grey and hatched
        ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor="#e5e7eb", hatch="//",
                                   edgecolor="#9ca3af", lw=0))
    for (row, col), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 * limit else "black")
    ax.set_xticks(range(k + 1), list(tag_names) + ["END"], rotation=45, ha="right")
    ax.set_yticks(range(k + 1), ["START"] + list(tag_names))
    ax.set_xlabel("to (next tag)")
    ax.set_ylabel("from (previous tag)")
    ax.set_title(title + ("\n(hatched: forbidden by IOB2)" if not allowed.all() else ""))
    fig.colorbar(image, ax=ax, shrink=0.8, label="score (added to the path's log-potential)")
    fig.tight_layout()
    return fig


def per_type_f1_figure(table, title: str):
    """Bars of F1 per entity type and overall (micro), from `per_type_table`'s DataFrame."""
    import matplotlib.pyplot as plt

    kinds = [k for k in TYPE_COLOURS if k in table.index] + [k for k in table.index
                                                             if k not in TYPE_COLOURS and "avg" not in k]
    labels = kinds + ["all (micro)"]
    values = [table.loc[k, "f1-score"] * 100 for k in kinds] + [table.loc["micro avg", "f1-score"] * 100]
    colours = [TYPE_STRONG_COLOURS.get(k, "#9ca3af") for k in kinds] + ["#4b5563"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(labels, values, color=colours)
    for i, value in enumerate(values):
        ax.text(i, value + 1, f"{value:.1f}", ha="center", fontsize=8)
    ax.set(ylabel="F1 (%)", ylim=(0, 105), title=title)
    fig.tight_layout()
    return fig


def per_type_table(records: Sequence[Mapping[str, Any]]):
    """seqeval's strict IOB2 precision/recall/F1/support per entity type, as a DataFrame."""
    import pandas as pd
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report([list(r["reference"]) for r in records],
                                   [list(r["prediction"]) for r in records],
                                   mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    table = pd.DataFrame(report).T[["precision", "recall", "f1-score", "support"]]
    table["support"] = table["support"].astype(int)
    return table
