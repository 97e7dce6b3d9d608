"""One look for every figure of every report: optimizer colours and families.

The names and families are spelled out here, not imported from nbhelpers.optim, so the
report (which reads run directories only) does not import torch.
"""

from __future__ import annotations

from matplotlib import colormaps

# The 16 optimizers in the table's order, by family (the curves' small multiples).
FAMILIES: dict[str, tuple[str, ...]] = {
    "SGD-type": ("sgd", "sgd_momentum"),
    "adaptive": ("rmsprop", "adagrad", "adadelta", "adam", "adamw", "radam", "adabelief", "yogi"),
    "sign / large-batch": ("lion", "lars", "lamb"),
    "sharpness-aware": ("sam", "gsam"),
    "factored": ("adafactor",),
}
OPTIMIZERS: tuple[str, ...] = tuple(name for names in FAMILIES.values() for name in names)
_FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}
OTHER_FAMILY = "other"

# tab20 holds 10 dark/light pairs; a fixed slot per optimizer keeps its colour the same in
# every figure of every report. Neighbours in a family get distinct hues.
_SLOTS = {"sgd": 0, "sgd_momentum": 2, "rmsprop": 4, "adagrad": 6, "adadelta": 8, "adam": 10, "adamw": 12,
          "radam": 14, "adabelief": 16, "yogi": 18, "lion": 1, "lars": 3, "lamb": 5, "sam": 7, "gsam": 9,
          "adafactor": 11}


def family_of(optimizer: str) -> str:
    """The family an optimizer's curves are drawn in ("other" for a name outside the 16)."""
    return _FAMILY_OF.get(str(optimizer), OTHER_FAMILY)


def optimizer_colour(optimizer: str):
    """The optimizer's colour, the same everywhere; grey for names outside the 16."""
    slot = _SLOTS.get(str(optimizer))
    return colormaps["tab20"](slot) if slot is not None else (0.45, 0.45, 0.45, 1.0)
