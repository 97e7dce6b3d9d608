"""GSAM: SAM plus a descent step on the surrogate gap (Zhuang et al., 2022)."""

from __future__ import annotations

from typing import Any

import torch

from nbhelpers.optim._foreach_utils import batches, check_non_negative, host_scalar
from nbhelpers.optim.sam import SAM


class GSAM(SAM):
    r"""GSAM (Surrogate Gap guided Sharpness-Aware Minimization), wrapping a base optimizer.

    Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan, Liu (2022), "Surrogate Gap
    Minimization Improves Sharpness-Aware Training", ICLR 2022.

    With ``g`` the gradient at ``p`` and dot products and norms over all parameters together::

        e = rho_t * g / (||g|| + 1e-12)
        g_p = grad L(p + e)                                # the closure, run at p + e
        g_perp = g - (g . g_p / ||g_p||^2) * g_p           # part of g orthogonal to g_p
        p = base_step(p, g_p - alpha * g_perp)

    ``g_p`` descends the perturbed loss (as SAM); ``-alpha * g_perp`` additionally descends the
    surrogate gap L(p + e) - L(p) without changing the perturbed loss to first order.

    The rho schedule (the paper's ``rho_t`` proportional to the learning rate): with ``rho_min``
    set, each step uses, per parameter group,
    ``rho_t = rho_min + (rho - rho_min) * clip((lr - lr_min) / (lr_max - lr_min), 0, 1)``
    where ``lr`` is the group's current learning rate (as the LR scheduler left it),
    ``lr_max`` is the group's learning rate when GSAM was built (stored as
    ``group["rho_lr_max"]``) and ``lr_min`` is ``group["rho_lr_min"]`` (0 unless changed).
    Both are saved in ``state_dict``, so a resumed run continues the same schedule.
    ``rho_min=None`` keeps rho constant. ``self.rho_t`` lists the values of the last step.

    The calling convention, the ``before_base_step`` hook (which sees the combined gradient
    above in ``.grad``), ``state_dict`` and the shared ``param_groups`` are those of :class:`SAM`;
    ``isinstance(gsam, SAM)`` is true, which tells a trainer to pass a closure.

    Args:
        params: parameters or parameter groups.
        base_optimizer: an optimizer class (e.g. ``torch.optim.SGD``) or a registered name.
        rho: radius of the neighbourhood (the maximum of the schedule).
        alpha: weight of the surrogate-gap descent; 0 gives SAM.
        rho_min: the radius at ``lr_min``; ``None`` for a constant ``rho``.
        **base_kwargs: the base optimizer's arguments.
    """

    def __init__(self, params, base_optimizer, rho: float = 0.05, alpha: float = 0.4,
                 rho_min: float | None = None, **base_kwargs: Any):
        check_non_negative(alpha, "alpha")
        if rho_min is not None:
            check_non_negative(rho_min, "rho_min")
            if rho_min > rho:
                raise ValueError(f"Invalid rho_min value: {rho_min} (must be <= rho={rho})")
        self.alpha = alpha
        self._rho_min = rho_min
        super().__init__(params, base_optimizer, rho=rho, adaptive=False, **base_kwargs)
        self.rho_t: list[float] = [group["rho"] for group in self.param_groups]

    def _init_group(self, group: dict) -> None:
        group.setdefault("rho_min", self._rho_min)
        group.setdefault("rho_lr_max", float(group["lr"]))
        group.setdefault("rho_lr_min", 0.0)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "alpha": self.alpha, "_rho_min": self._rho_min,
                "rho_t": self.rho_t}

    @staticmethod
    def rho_for(group: dict) -> float:
        """The radius this group's next step uses (see the class docstring)."""
        rho, rho_min = group["rho"], group.get("rho_min")
        if rho_min is None:
            return rho
        lr_max, lr_min = group["rho_lr_max"], group["rho_lr_min"]
        if lr_max <= lr_min:
            return rho
        frac = (float(group["lr"]) - lr_min) / (lr_max - lr_min)
        return rho_min + (rho - rho_min) * min(max(frac, 0.0), 1.0)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError(
                "GSAM needs a closure: call step(closure) with the gradients at the current "
                "weights already in .grad; the closure must zero the gradients, recompute the "
                "loss, call backward() and return the loss")
        groups = self._with_grads()
        self.rho_t = [self.rho_for(group) for group, _, _ in groups]
        backups = self._ascend(groups, self.rho_t)
        loss = self._grad_at_perturbed(groups, closure)  # leaves the g lists untouched
        self._restore(groups, backups)
        del backups
        self._decompose(groups)
        self._base_step()
        return loss

    def _decompose(self, groups) -> None:
        """Replace .grad (= g_p) by g_p - alpha * (g - (g.g_p / ||g_p||^2) g_p), in place."""
        pairs = [(p.grad, g) for _, params, grads in groups for p, g in zip(params, grads)
                 if p.grad is not None]
        if not pairs or self.alpha == 0.0:
            return
        new, old = [a for a, _ in pairs], [b for _, b in pairs]
        device = new[0].device
        dot = torch.stack([_dot(a, b).to(device) for a, b in pairs]).sum()
        new_sq = torch.stack([_dot(a, a).to(device) for a in new]).sum()
        coef = torch.where(new_sq > 0, dot / new_sq, torch.zeros_like(dot))
        # g_p - alpha*(g - c*g_p) == (1 + alpha*c) * g_p - alpha * g: two passes, no temporary.
        scale = host_scalar(1.0 + self.alpha * coef)
        for (a, b), _ in batches([new, old]):
            factor = scale if isinstance(scale, float) else scale.to(a[0].device, a[0].dtype)
            torch._foreach_mul_(a, factor)
            torch._foreach_add_(a, b, alpha=-self.alpha)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Half-precision products are summed in float32; everything is compared in float32 or
    # better (float64 is not available on every accelerator, so it is not forced).
    if a.dtype in (torch.float16, torch.bfloat16):
        a, b = a.float(), b.float()
    return torch.dot(a.reshape(-1), b.reshape(-1)).to(torch.promote_types(a.dtype, torch.float32))
