"""2-D test functions and the paths optimizers take on them (for notebooks/optimizers.py).

Each landscape is a function of a 2-vector with a start point and, where it has one, a
minimum. `trace_path` runs any of the 16 registered optimizers from the start and returns
the visited points; `best_lr` picks, from a small grid, the LR that ends lowest, so every
optimizer is drawn at its own best setting rather than at one LR that suits only some.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from nbhelpers.optim.build import make_optimizer
from nbhelpers.optim.table import get_spec


@dataclass(frozen=True)
class Landscape:
    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float] | None
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    description: str

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.f(xy[0], xy[1])


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def _beale(x, y):
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2)


def _saddle(x, y):
    # x^2 - y^2 is a saddle at the origin; the quartic term bounds it below, giving two
    # minima at y = +-1/sqrt(2 * 0.25) so that escaping the saddle has somewhere to go.
    return x ** 2 - y ** 2 + 0.25 * y ** 4


LANDSCAPES = {
    "rosenbrock": Landscape("rosenbrock", _rosenbrock, (-1.5, 2.0), (1.0, 1.0), (-2.0, 2.0), (-1.0, 3.0),
                            "a long, curved, flat-bottomed valley (minimum 0 at (1, 1))"),
    "beale": Landscape("beale", _beale, (1.0, 1.4), (3.0, 0.5), (-0.5, 4.0), (-1.5, 2.0),
                       "plateaus and steep walls (minimum 0 at (3, 0.5))"),
    "saddle": Landscape("saddle", _saddle, (1.5, 1e-3), (0.0, math.sqrt(2.0)), (-2.0, 2.0), (-2.0, 2.0),
                        "a saddle at the origin: the gradient along y starts at almost zero"),
}

LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def trace_path(optimizer: str, landscape: str | Landscape, lr: float, steps: int = 200) -> torch.Tensor:
    """The points (steps + 1, 2) an optimizer visits from the landscape's start (no weight decay)."""
    land = LANDSCAPES[landscape] if isinstance(landscape, str) else landscape
    xy = torch.nn.Parameter(torch.tensor(land.start, dtype=torch.float64))
    opt, _ = make_optimizer(optimizer, [xy], lr=lr, weight_decay=0.0)
    needs_closure = get_spec(optimizer).needs_closure

    def closure():
        opt.zero_grad()
        loss = land(xy)
        loss.backward()
        return loss

    points = [xy.detach().clone()]
    for _ in range(steps):
        closure()
        opt.step(closure) if needs_closure else opt.step()
        if not torch.isfinite(xy).all():
            break
        points.append(xy.detach().clone())
    return torch.stack(points)


def final_value(optimizer: str, landscape: str, lr: float, steps: int = 200) -> float:
    path = trace_path(optimizer, landscape, lr, steps)
    if len(path) < steps + 1:
        return math.inf
    return float(LANDSCAPES[landscape](path[-1]))


def best_lr(optimizer: str, landscape: str, steps: int = 200, grid: Sequence[float] = LR_GRID) -> float:
    """The LR from `grid` with the lowest final value (ties: the smaller LR)."""
    values = [(final_value(optimizer, landscape, lr, steps), lr) for lr in grid]
    return min(values)[1]
