"""The statistics behind "optimizer A beats B": intervals and ties, from scipy.stats.

- Several seeds: the mean and a 95% **t-interval** over the seeds (Student's t with n - 1
  degrees of freedom; `scipy.stats.t`). It says how much the result moves with the seed.
- One seed, a proportion metric (accuracy): the 95% **Wilson score interval** for the
  share of correct test examples (`scipy.stats.binomtest(...).proportion_ci`). It says how
  wide one example is: on 269 test images, one image is 0.37 points.
- **Ties.** An optimizer is tied with the best when the data cannot tell them apart at 95%:
  with two or more common seeds, a two-sided paired t-test over the seeds
  (`scipy.stats.ttest_rel`, pairs = same seed, p >= 0.05); with one seed, overlapping
  Wilson intervals (proportion metrics only). Identical results on every seed are tied; a
  difference of the same size on every seed is not. Otherwise nothing is claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A value with its 95% interval and how it was made ("t" over seeds, "wilson", or "none")."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of the finite values and Student's t-interval over them (none for one value)."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(array.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    mean = float(array.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, "none")
    from scipy import stats  # here, not at the top: a task notebook's plots must not pay for scipy
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * array.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, "t")


def wilson_interval(share: float, examples: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a proportion measured on `examples` independent examples."""
    if not (math.isfinite(share) and examples and examples > 0):
        return Interval(share, math.nan, math.nan, 1, "none")
    successes = int(round(share * examples))
    from scipy import stats
    ci = stats.binomtest(successes, int(examples)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(share, float(ci.low), float(ci.high), 1, "wilson")


def tied_with_best(per_seed: Mapping[str, Mapping[int, float]], best: str, *,
                   intervals: Mapping[str, Interval] | None = None, alpha: float = 1 - CONFIDENCE) -> set[str]:
    """The names (other than `best`) that cannot be told apart from `best` at 95%.

    per_seed: name -> {seed: value}. See the module docstring for the rules.
    """
    tied: set[str] = set()
    reference = per_seed.get(best, {})
    for name, values in per_seed.items():
        if name == best:
            continue
        seeds = sorted(set(values) & set(reference))
        pairs = [(values[s], reference[s]) for s in seeds
                 if math.isfinite(values[s]) and math.isfinite(reference[s])]
        if len(pairs) >= 2:
            differences = np.array([a - b for a, b in pairs])
            if np.all(differences == 0):
                tied.add(name)
            elif np.ptp(differences) == 0:
                continue  # the same non-zero gap on every seed: a real difference
            else:
                from scipy import stats
                p_value = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue
                if p_value >= alpha:
                    tied.add(name)
        elif intervals is not None and name in intervals and best in intervals:
            mine, theirs = intervals[name], intervals[best]
            if mine.method == theirs.method == "wilson" and mine.high >= theirs.low and theirs.high >= mine.low:
                tied.add(name)
    return tied
