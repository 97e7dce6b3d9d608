"""Yogi: Adam with an additive, sign-controlled second moment (Zaheer et al., 2018)."""

from __future__ import annotations

import math

import torch

from nbhelpers.optim._foreach_utils import (
    GroupwiseOptimizer,
    state_buffers,
    check_betas,
    check_lr,
    batches,
    check_non_negative,
    increment,
    step_counters,
    use_foreach,
)


class Yogi(GroupwiseOptimizer):
    r"""Yogi.

    Zaheer, Reddi, Sachan, Kale, Kumar (2018), "Adaptive Methods for Nonconvex Optimization",
    NeurIPS 2018.

    For each parameter ``p`` with gradient ``g`` (plus ``wd * p`` when weight_decay > 0, i.e.
    L2 decay) at step ``t``; ``m`` starts at 0 and ``v`` at ``initial_accumulator``::

        m = b1 * m + (1 - b1) * g
        v = v - (1 - b2) * sign(v - g^2) * g^2
        p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Unlike Adam's multiplicative ``v = b2 * v + (1 - b2) * g^2``, ``v`` moves by at most
    ``(1 - b2) * g^2`` per step, so a few large gradients cannot inflate it abruptly and the
    effective learning rate changes smoothly.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (the paper's default 1e-2).
        betas: decay rates of ``m`` and ``v``.
        eps: added to the denominator; the paper uses the large 1e-3, which bounds the step.
        initial_accumulator: starting value of ``v``.
        weight_decay: L2 penalty coefficient, added to the gradient.
        foreach: use the multi-tensor ``torch._foreach_*`` path; ``None`` picks it whenever all
            parameters are dense tensors on one device type (CPU included).

    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-3,
        initial_accumulator: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ):
        check_lr(lr)
        check_betas(betas)
        check_non_negative(eps, "epsilon")
        check_non_negative(initial_accumulator, "initial_accumulator")
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps,
                        initial_accumulator=initial_accumulator, weight_decay=weight_decay,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _update_group(self, group, params, grads):
        steps = step_counters(self.state, params)
        exp_avgs, exp_avg_sqs = state_buffers(self.state, params, "exp_avg", "exp_avg_sq",
                                              fill={"exp_avg_sq": group["initial_accumulator"]})
        fn = _yogi_foreach if use_foreach(group.get("foreach"), params) else _yogi_single
        beta1, beta2 = group["betas"]
        fn(params, grads, exp_avgs, exp_avg_sqs, increment(steps), lr=float(group["lr"]),
           beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"])


def _yogi_single(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                 weight_decay):
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if weight_decay != 0.0:
            g = g.add(p, alpha=weight_decay)  # out of place: .grad stays the raw gradient
        m.lerp_(g, 1.0 - beta1)
        g2 = g * g
        v.addcmul_(torch.sign(v - g2), g2, value=-(1.0 - beta2))
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
        denom = (v / bc2).sqrt_().add_(eps)
        p.addcdiv_(m, denom, value=-lr / bc1)


def _yogi_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                  weight_decay):
    # lr/bc1 * m / (sqrt(v/bc2) + eps) == lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps*sqrt(bc2)):
    # the bias corrections become per-tensor scalars, saving a pass over the denominator.
    root_bc2 = [math.sqrt(1.0 - beta2**k) for k in steps]
    denom_eps = [eps * r for r in root_bc2]
    step_size = [-lr * r / (1.0 - beta1**k) for r, k in zip(root_bc2, steps)]
    for (p, g, m, v), (d_eps, size) in batches([params, grads, exp_avgs, exp_avg_sqs],
                                               [denom_eps, step_size]):
        if weight_decay != 0.0:
            g = torch._foreach_add(g, p, alpha=weight_decay)  # .grad stays the raw gradient
            torch._foreach_lerp_(m, g, 1.0 - beta1)
            torch._foreach_mul_(g, g)  # the private copy becomes g^2
            g2 = g
        else:
            torch._foreach_lerp_(m, g, 1.0 - beta1)
            g2 = torch._foreach_mul(g, g)
        direction = torch._foreach_sub(v, g2)
        torch._foreach_sign_(direction)
        torch._foreach_addcmul_(v, direction, g2, value=-(1.0 - beta2))
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, d_eps)
        torch._foreach_addcdiv_(p, m, denom, size)
