"""Lion: sign of an interpolated momentum (Chen et al., 2023)."""

from __future__ import annotations

import torch

from nbhelpers.optim._foreach_utils import (
    GroupwiseOptimizer,
    state_buffers,
    check_betas,
    check_lr,
    batches,
    check_non_negative,
    use_foreach,
)


class Lion(GroupwiseOptimizer):
    r"""Lion (EvoLved Sign Momentum).

    Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le (2023),
    "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.

    For each parameter ``p`` with gradient ``g`` and momentum ``m`` (initially 0)::

        c = b1 * m + (1 - b1) * g
        p = p - lr * (sign(c) + wd * p)
        m = b2 * m + (1 - b2) * g

    Every coordinate moves by exactly ``lr`` (plus decay), so Lion needs a learning rate
    3-10x smaller than AdamW's and a correspondingly larger decoupled weight decay.

    Args:
        params: parameters or parameter groups.
        lr: step size of each coordinate.
        betas: ``(b1, b2)``; b1 mixes the gradient into the update direction, b2 is the
            (slower) decay of the momentum that is carried to the next step.
        weight_decay: decoupled weight decay, scaled by ``lr`` (AdamW style).
        foreach: use the multi-tensor ``torch._foreach_*`` path; ``None`` picks it whenever all
            parameters are dense tensors on one device type (CPU included).

    State: ``exp_avg`` (the momentum ``m``), one tensor of the parameter's shape.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ):
        check_lr(lr)
        check_betas(betas)
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    def _update_group(self, group, params, grads):
        (exp_avgs,) = state_buffers(self.state, params, "exp_avg")
        fn = _lion_foreach if use_foreach(group.get("foreach"), params) else _lion_single
        beta1, beta2 = group["betas"]
        fn(params, grads, exp_avgs, lr=float(group["lr"]), beta1=beta1, beta2=beta2,
           weight_decay=group["weight_decay"])


def _lion_single(params, grads, exp_avgs, *, lr, beta1, beta2, weight_decay):
    for p, g, m in zip(params, grads, exp_avgs):
        update = torch.lerp(m, g, 1.0 - beta1).sign_()
        if weight_decay != 0.0:
            p.mul_(1.0 - lr * weight_decay)
        p.add_(update, alpha=-lr)
        m.lerp_(g, 1.0 - beta2)


def _lion_foreach(params, grads, exp_avgs, *, lr, beta1, beta2, weight_decay):
    for (p, g, m), _ in batches([params, grads, exp_avgs]):
        update = torch._foreach_lerp(m, g, 1.0 - beta1)
        torch._foreach_sign_(update)
        # p - lr*(sign(c) + wd*p) == p*(1 - lr*wd) - lr*sign(c): the decay is one scaling pass.
        if weight_decay != 0.0:
            torch._foreach_mul_(p, 1.0 - lr * weight_decay)
        torch._foreach_add_(p, update, alpha=-lr)
        torch._foreach_lerp_(m, g, 1.0 - beta2)
