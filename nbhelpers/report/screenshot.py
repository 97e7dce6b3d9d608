"""Look at a report as a reader does: headless Chromium renders a page to a PNG, and a few
checks say whether the opening paragraph and the figures are visible.

    python -m nbhelpers.report.screenshot executed/demo/report/index.html [--out shot.png]
    python -m nbhelpers.report.screenshot executed/leaderboard/index.html

Chromium is not a Python package: on Debian `apt-get install chromium`. Without it the
command says so in one sentence and exits 2.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.image import imread

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The opening paragraph's background (report/html.py, .verdict): finding it in the first
# screen means the paragraph rendered above the fold.
VERDICT_RGB = (0xF4 / 255, 0xF7 / 255, 0xFB / 255)


def find_browser() -> str | None:
    """The first headless-capable Chrome or Chromium on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 4000, timeout: float = 120) -> Path:
    """Render `page` (a local HTML file) into the PNG `out` with headless Chromium."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium or Chrome found on PATH (on Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={out}", Path(page).resolve().as_uri()]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    return out


@dataclass(frozen=True)
class PageCheck:
    """What a reader sees: the opening paragraph in the first screen, and figures below it."""

    verdict_visible: bool
    figure_rows: int            # rows of the page that hold colourful pixels (the figures' lines and bars)
    height: int

    @property
    def ok(self) -> bool:
        return self.verdict_visible and self.figure_rows > 200


def check_screenshot(png: Path, *, first_screen: int = 900) -> PageCheck:
    """Look for the opening paragraph's box in the first screen and for coloured figure content."""
    image = imread(png)[..., :3]
    top = image[:first_screen]
    verdict = np.all(np.abs(top - np.array(VERDICT_RGB)) < 2 / 255, axis=-1).sum() > 5_000
    # Saturated colours (lines, bars, markers) are figures: text, tables and page are grey.
    saturation = image.max(axis=-1) - image.min(axis=-1)
    figure_rows = int((saturation > 0.25).any(axis=1).sum())
    return PageCheck(bool(verdict), figure_rows, image.shape[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.report.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("page", help="an HTML page of a report or a leaderboard (index.html)")
    parser.add_argument("--out", help="where the PNG goes (default: beside the page, <name>.screenshot.png)")
    args = parser.parse_args(argv)
    page = Path(args.page)
    if not page.is_file():
        print(f"error: {page} is not a file; give the path of a report's index.html", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else page.with_suffix(".screenshot.png")
    try:
        screenshot(page, out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    check = check_screenshot(out)
    print(f"{out}: opening paragraph {'visible' if check.verdict_visible else 'NOT visible'} in the first screen, "
          f"{check.figure_rows} rows of figure content")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
