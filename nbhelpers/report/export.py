"""`python -m nbhelpers export NOTEBOOK`: one notebook as a self-contained HTML page.

Two things set it apart from plain `jupyter nbconvert --to html`:
- cells tagged `remove-cell` / `remove-input` / `remove-output` are honoured (the
  optimizer explorer's widget cell disappears; its static figures stay);
- maths is rendered here, not in the browser: every `$...$` and `$$...$$` in markdown
  (cells and markdown outputs such as the update rules) becomes MathML with latex2mathml,
  which browsers display natively, and the page loads no MathJax from a CDN. It reads the
  same offline, zipped or in ten years.

Plain nbconvert still works on these notebooks: it ignores the tags, so the explorer's
source shows, and its widget output falls back to a sentence (text/plain) telling the
reader to open the notebook in JupyterLab.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor

from nbhelpers.errors import UserInputError

# Code (fenced blocks, inline spans) is left alone; maths outside it is converted.
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?!\$)")


def latex_to_mathml(latex: str, *, display: bool) -> str:
    """One formula as MathML (block or inline); left as LaTeX text if it cannot be converted."""
    from latex2mathml.converter import convert
    try:
        return convert(latex.strip(), display="block" if display else "inline")
    except Exception:  # an unsupported command: show the source rather than fail the export
        return f"<code>{latex.strip()}</code>"


def markdown_with_mathml(text: str) -> str:
    """Markdown whose maths is MathML (code spans and fenced blocks untouched)."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # even items lie outside code
        part = _DISPLAY.sub(lambda m: "\n\n" + latex_to_mathml(m.group(1), display=True) + "\n\n", parts[i])
        parts[i] = _INLINE.sub(lambda m: latex_to_mathml(m.group(1), display=False), part)
    return "".join(parts)


class MathToMathML(Preprocessor):
    """Markdown cells and text/markdown outputs with their maths as MathML."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            cell.source = markdown_with_mathml(cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = markdown_with_mathml(data["text/markdown"])
        return cell, resources


def read_any(path: Path) -> nbformat.NotebookNode:
    """An .ipynb, or a percent-format .py notebook (read with jupytext)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"there is no notebook {path} (give an .ipynb, or a notebooks/*.py source)")
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    if path.suffix == ".py":
        import jupytext
        return jupytext.read(path)
    raise UserInputError(f"{path.name} is not a notebook (accepted: .ipynb, or a percent-format .py)")


def export_notebook(notebook: str | Path, output: str | Path | None = None) -> Path:
    """Write `notebook` as HTML (default: beside it, .html) and return the path written."""
    from nbhelpers.report.build import write_atomic
    from nbhelpers.report.html import notebook_to_html
    notebook = Path(notebook)
    nb = read_any(notebook)
    target = Path(output) if output else notebook.with_suffix(".html")
    write_atomic(target, notebook_to_html(nb, title=notebook.stem, offline_math=True))
    return target
