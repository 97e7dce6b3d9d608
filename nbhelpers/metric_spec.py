"""MetricSpec: how one metric reads (label, direction, unit, display scale).

Kept apart from nbhelpers.tasks (which needs torch) so that the report, which reads only
run directories, can rebuild the facts from summary.json without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class MetricSpec:
    """How one metric reads: its label, its direction, its unit and its display scale.

    `scale` turns the stored value into the displayed one: accuracy is stored as a fraction
    (0.9814) with unit "%" and scale 100, so it shows as 98.14; sacrebleu's BLEU is stored
    0-100 with scale 1 and is never multiplied.
    """

    label: str                   # header and axis text: "accuracy", "mIoU", "BLEU", "perplexity"
    higher_is_better: bool
    unit: str = ""               # "%", "BLEU", "ppl", "F1", "" (shown after the label)
    scale: float = 1.0           # displayed value = stored value * scale
    digits: int | None = 2       # decimals after scaling; None: 4 significant digits
    # A share of independent examples (accuracy, exact match): with one seed the report shows
    # the Wilson interval that the split's size alone gives it.
    proportion: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MetricSpec":
        known = {k: values[k] for k in ("label", "higher_is_better", "unit", "scale", "digits", "proportion") if k in values}
        return cls(**known)

    def display(self, value: float) -> float:
        """The stored value as it is shown (accuracy 0.98 -> 98.0)."""
        return float(value) * self.scale

    def header(self) -> str:
        """Column or axis text: 'accuracy (%)', 'BLEU', 'perplexity (ppl)'."""
        unit = self.unit if self.unit and self.unit.lower() != self.label.lower() else ""
        return f"{self.label} ({unit})" if unit else self.label

    def format(self, value: float) -> str:
        """The displayed value as text: 98.14, 27.67, 148.9 (4 significant digits)."""
        shown = self.display(value)
        return f"{shown:.4g}" if self.digits is None else f"{shown:.{self.digits}f}"


# The loss every task reports beside its metrics.
LOSS_SPEC = MetricSpec("loss", higher_is_better=False, digits=None)
