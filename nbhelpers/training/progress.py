"""One progress bar per run, readable live, in a saved notebook and in its HTML.

tqdm.auto draws an ipywidget in a kernel. A widget is stored in the .ipynb as a reference to
widget state that papermill does not save, so a reopened notebook shows "Error displaying
widget" and the HTML export a frozen "0%". In a kernel the bar is therefore plain text, one
display output updated in place (IPython's display handle): JupyterLab shows it moving, and
the saved notebook and its HTML keep its last state. In a terminal it is tqdm's text bar on
stderr.
"""

from __future__ import annotations

import io
import sys

from tqdm.std import tqdm as std_tqdm


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill), False in a terminal or a plain script."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class DisplayBar(std_tqdm):
    """tqdm drawn as one text/plain display output that every refresh replaces."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        kwargs["file"] = io.StringIO()  # tqdm's own writes go nowhere; display() draws instead
        kwargs.setdefault("ascii", False)
        kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        from IPython.display import display
        bundle = {"text/plain": msg if msg is not None else self.__str__()}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        return True


def progress_bar(*, total: int, desc: str, enabled: bool = True, initial: int = 0) -> std_tqdm:
    """The run's bar: a DisplayBar in a kernel, tqdm's terminal bar elsewhere."""
    if not enabled:
        return std_tqdm(total=total, disable=True)
    if in_kernel():
        # Each redraw is a message to the front end (and a change papermill records): few.
        return DisplayBar(total=total, desc=desc, initial=initial, mininterval=1.0)
    return std_tqdm(total=total, desc=desc, initial=initial, mininterval=0.5, dynamic_ncols=True)
