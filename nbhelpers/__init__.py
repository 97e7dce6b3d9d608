"""nbhelpers: the engine behind the optimizer-comparison notebooks.

Notebooks import this package; it never imports a notebook. See docs/design.md.
"""

__version__ = "0.1.0"
