"""AdaBelief: Adam with the variance of the gradient around its mean (Zhuang et al., 2020)."""

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


class AdaBelief(GroupwiseOptimizer):
    r"""AdaBelief, with decoupled weight decay.

    Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris, Duncan (2020), "AdaBelief Optimizer:
    Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020.

    For each parameter ``p`` with gradient ``g`` at step ``t``::

        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m)^2 + eps
        p = p - lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)

    ``s`` tracks how far the gradient strays from its prediction ``m`` (the "belief"): steps are
    large where the gradient is predictable and small where it is noisy.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: decay rates of ``m`` and ``s``.
        eps: added to ``s`` at every step and to the denominator (the paper's default 1e-16;
            the official code uses 1e-8 for some tasks).
        weight_decay: decoupled (AdamW-style) weight decay, scaled by ``lr``.
        foreach: use the multi-tensor ``torch._foreach_*`` path; ``None`` picks it whenever all
            parameters are dense tensors on one device type (CPU included).

    State: ``step``, ``exp_avg`` (m), ``exp_avg_var`` (s).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ):
        check_lr(lr)
        check_betas(betas)
        check_non_negative(eps, "epsilon")
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _update_group(self, group, params, grads):
        steps = step_counters(self.state, params)
        exp_avgs, exp_avg_vars = state_buffers(self.state, params, "exp_avg", "exp_avg_var")
        foreach = use_foreach(group.get("foreach"), params)
        fn = _adabelief_foreach if foreach else _adabelief_single
        beta1, beta2 = group["betas"]
        fn(params, grads, exp_avgs, exp_avg_vars, increment(steps), lr=float(group["lr"]),
           beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"])


def _adabelief_single(params, grads, exp_avgs, exp_avg_vars, steps, *, lr, beta1, beta2, eps,
                      weight_decay):
    for p, g, m, s, t in zip(params, grads, exp_avgs, exp_avg_vars, steps):
        if weight_decay != 0.0:
            p.mul_(1.0 - lr * weight_decay)
        m.lerp_(g, 1.0 - beta1)
        diff = g - m
        s.mul_(beta2).addcmul_(diff, diff, value=1.0 - beta2).add_(eps)
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
        denom = (s / bc2).sqrt_().add_(eps)
        p.addcdiv_(m, denom, value=-lr / bc1)


def _adabelief_foreach(params, grads, exp_avgs, exp_avg_vars, steps, *, lr, beta1, beta2, eps,
                       weight_decay):
    # lr/bc1 * m / (sqrt(s/bc2) + eps) == lr*sqrt(bc2)/bc1 * m / (sqrt(s) + eps*sqrt(bc2)):
    # the bias corrections become per-tensor scalars, saving a pass over the denominator.
    root_bc2 = [math.sqrt(1.0 - beta2**k) for k in steps]
    denom_eps = [eps * r for r in root_bc2]
    step_size = [-lr * r / (1.0 - beta1**k) for r, k in zip(root_bc2, steps)]
    for (p, g, m, s), (d_eps, size) in batches([params, grads, exp_avgs, exp_avg_vars],
                                               [denom_eps, step_size]):
        if weight_decay != 0.0:
            torch._foreach_mul_(p, 1.0 - lr * weight_decay)
        # g - m_new == b1 * (g - m_old): take the residual before m moves, fold b1^2 into its
        # coefficient, and let m's update reuse it (m += (1 - b1) * (g - m_old)).
        diff = torch._foreach_sub(g, m)
        torch._foreach_add_(m, diff, alpha=1.0 - beta1)
        torch._foreach_mul_(s, beta2)
        torch._foreach_addcmul_(s, diff, diff, value=(1.0 - beta2) * beta1 * beta1)
        torch._foreach_add_(s, eps)
        denom = torch._foreach_sqrt(s)
        torch._foreach_add_(denom, d_eps)
        torch._foreach_addcdiv_(p, m, denom, size)
