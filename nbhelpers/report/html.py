"""HTML for the report: executed notebooks through nbconvert, and the index page.

Functions here return text; build.py decides where it goes and writes it
atomically. The index page is self-contained: inline CSS, relative links, no
scripts and no CDN, so the report folder can be zipped or served as is.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

# Cell tags honoured in exported notebooks (the Jupyter Book / nbconvert names).
REMOVE_CELL = "remove-cell"
REMOVE_INPUT = "remove-input"
REMOVE_OUTPUT = "remove-output"


# A "<" that an HTML parser would take for the start of a tag.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


class EscapeMarkdownOutputs(Preprocessor):
    """Markdown that a cell *printed* (captions built from run ids and grid values) may not
    carry live HTML: a tag in it is shown as text. Markdown cells written by the notebook's
    author and text/html outputs (the results table escapes its own cells) are left alone."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = _TAG_START.sub("&lt;", data["text/markdown"])
        return cell, resources


# The lab template without its MathJax <script> (from a CDN): for pages whose maths is MathML.
_NO_MATHJAX = ("{%- extends 'lab/index.html.j2' -%}\n"
               "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n")


def notebook_to_html(notebook: str | Path | nbformat.NotebookNode, *, title: str | None = None,
                     offline_math: bool = False) -> str:
    """An executed notebook as a standalone HTML page.

    Cells tagged `remove-cell` disappear, `remove-input` keeps only the output,
    `remove-output` keeps only the code (for example an ipywidget whose static
    figure is in another cell). With `offline_math`, maths is rendered to MathML here
    and the page loads no MathJax (report/export.py).
    """
    if not isinstance(notebook, nbformat.NotebookNode):
        path = Path(notebook)
        title = title or path.stem
        notebook = nbformat.read(path, as_version=4)
    if offline_math:
        from jinja2 import DictLoader

        from nbhelpers.report.export import MathToMathML
        exporter = HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": _NO_MATHJAX})],
                                template_file="offline.html.j2")
    else:
        exporter = HTMLExporter()
    exporter.register_preprocessor(
        TagRemovePreprocessor(
            remove_cell_tags={REMOVE_CELL},
            remove_input_tags={REMOVE_INPUT},
            remove_all_outputs_tags={REMOVE_OUTPUT},
        ),
        enabled=True,
    )
    exporter.register_preprocessor(EscapeMarkdownOutputs(), enabled=True)
    if offline_math:  # after the escaping, which would otherwise show the MathML as text
        exporter.register_preprocessor(MathToMathML(), enabled=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title or "notebook"}})
    return body


@dataclass(frozen=True)
class RunEntry:
    """One run as the index page lists it."""

    run_id: str
    status: str
    notebook_href: str | None  # relative link to the run's notebook HTML, None when the run has none
    details: str | None  # the content of details.txt


@dataclass(frozen=True)
class FigureEntry:
    href: str  # relative path of the PNG
    caption: str
    vector: tuple[str, ...] = ()  # relative paths of the same figure as SVG and PDF


BASE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #555; margin-top: 0; }
.table-wrap { overflow-x: auto; }
table.results { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
table.results caption { caption-side: bottom; text-align: left; color: #444; padding-top: 0.5rem;
                        max-width: 1100px; }
table.results th, table.results td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.55rem; white-space: nowrap; }
table.results thead th { border-bottom: 2px solid #444; text-align: left; }
table.results .num { text-align: right; }
table.results tbody tr:hover { background: #f4f7fb; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; max-width: 1000px; }
details { margin: 0.3rem 0; }
details pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
.status-diverged, .status-failed { color: #b00020; } .muted { color: #777; }
.verdict { font-size: 1.05rem; background: #f4f7fb; border-left: 4px solid #2b6cb0; padding: 0.6rem 0.9rem; }
"""


def index_page(*, title: str, subtitle: str, table_html: str, figures: list[FigureEntry], runs: list[RunEntry],
               report_notebook_href: str | None = None, downloads: list[str] | None = None,
               skipped: list[str] | None = None, opening: str = "") -> str:
    """The report's landing page: the outcome in words, results table, figures with captions, one entry per run."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{BASE_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="subtitle">{esc(subtitle)}</p>',
    ]
    links = []
    if report_notebook_href:
        links.append(f'<a href="{esc(report_notebook_href)}">executed report notebook</a>')
    links += [f'<a href="{esc(name)}">{esc(name)}</a>' for name in downloads or []]
    if links:
        parts.append("<p>" + " · ".join(links) + "</p>")
    if skipped:
        parts.append(f'<p class="muted">Not included (no summary.json yet): {esc(", ".join(skipped))}.</p>')
    if opening:
        parts.append(f'<p class="verdict" id="verdict">{esc(opening)}</p>')

    parts += ["<h2>Results</h2>", f'<div class="table-wrap">{table_html}</div>']

    parts.append("<h2>Figures</h2>")
    for number, figure in enumerate(figures, start=1):
        parts.append(
            f'<figure><img src="{esc(figure.href)}" alt="Figure {number}: {esc(figure.caption)}">'
            f"<figcaption><strong>Figure {number}.</strong> {esc(figure.caption)}"
            + "".join(f' <a href="{esc(v)}">{esc(v.rsplit(".", 1)[-1].upper())}</a>' for v in figure.vector)
            + "</figcaption></figure>"
        )

    parts.append("<h2>Runs</h2><ul>")
    for run in runs:
        status = f'<span class="status-{esc(run.status)}">{esc(run.status)}</span>'
        notebook = (f' · <a href="{esc(run.notebook_href)}">notebook</a>' if run.notebook_href
                    else ' · <span class="muted">no notebook</span>')
        details = (f"<details><summary>details.txt</summary><pre>{esc(run.details)}</pre></details>"
                   if run.details else "")
        parts.append(f"<li><code>{esc(run.run_id)}</code> · {status}{notebook}{details}</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
