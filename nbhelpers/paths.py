"""Where relative output folders go: the project root, wherever the notebook runs.

JupyterLab starts a notebook's kernel in the notebook's folder, so a notebook opened from
`notebooks/` would write `executed/notebook` into `notebooks/executed/`. A relative output
folder is therefore read against the project root (the folder holding this package's
pyproject.toml) whenever the working folder is inside the project. Outside the project,
or with nbhelpers installed from a wheel (no project around it), it stays relative to the
working folder, as any command-line tool's would.
"""

from __future__ import annotations

from pathlib import Path

# The folder above the package: the project root in a checkout or an editable install,
# site-packages in a regular install (where there is no pyproject.toml naming nbhelpers).
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def project_root(start: Path | None = None) -> Path | None:
    """The checkout this nbhelpers belongs to, or None when it is installed without one."""
    base = Path(start) if start is not None else _PACKAGE_PARENT
    marker = base / "pyproject.toml"
    try:
        text = marker.read_text(encoding="utf-8")
    except OSError:
        return None
    return base if 'name = "nbhelpers"' in text else None


def resolve_output_dir(path: str | Path, *, root: Path | None = None, cwd: Path | None = None) -> Path:
    """`path` as the folder outputs go to (see the module docstring).

    Absolute paths are returned as they are; so are relative ones when the working folder
    is the project root itself or lies outside it (the path then means the same either way).
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    root = root if root is not None else project_root()
    if root is None:
        return path
    here = (cwd or Path.cwd()).resolve()
    root = root.resolve()
    if here == root or root not in here.parents:
        return path
    return root / path
