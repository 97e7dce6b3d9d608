"""LAMB: Adam moments with a layer-wise trust ratio (You et al., 2020)."""

from __future__ import annotations

import math

import torch

from nbhelpers.optim._foreach_utils import (
    GroupwiseOptimizer,
    state_buffers,
    check_betas,
    check_lr,
    add_scaled_,
    batches,
    check_non_negative,
    increment,
    step_counters,
    trust_ratios,
    use_foreach,
    Workspace,
    workspace_of,
)


class LAMB(GroupwiseOptimizer):
    r"""LAMB (Layer-wise Adaptive Moments for Batch training), with bias correction.

    You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer, Hsieh (2020),
    "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.

    For each parameter ``p`` with gradient ``g`` at step ``t``::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g^2
        r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p
        if p.ndim >= 2 and ||p|| > 0 and ||r|| > 0:
            r = r * ||p|| / ||r||                # the trust ratio, per tensor
        p = p - lr * r

    Tensors with ``ndim <= 1`` (biases, norm gains) get no decay and a ratio of 1, i.e. a plain
    Adam step. There is no gradient clipping inside the optimizer (some LAMB variants clip;
    here clipping is the trainer's job, so it never happens twice).

    Args:
        params: parameters or parameter groups.
        lr: learning rate; for weight matrices the step is ``lr * ||p||`` in norm.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: decay added to the Adam direction before the trust ratio (so it is
            scaled by the ratio too), applied to ``ndim >= 2`` tensors only.
        foreach: use the multi-tensor ``torch._foreach_*`` path; ``None`` picks it whenever all
            parameters are dense tensors on one device type (CPU included).

    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
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
        exp_avgs, exp_avg_sqs = state_buffers(self.state, params, "exp_avg", "exp_avg_sq")
        fn = _lamb_foreach if use_foreach(group.get("foreach"), params) else _lamb_single
        beta1, beta2 = group["betas"]
        kwargs = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"])
        if fn is _lamb_foreach:
            kwargs["ws"] = workspace_of(self)
        fn(params, grads, exp_avgs, exp_avg_sqs, increment(steps), **kwargs)


def _lamb_single(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                 weight_decay):
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
        r = (v / bc2).sqrt_().add_(eps)
        r = torch.div(m, r).div_(bc1)
        if p.ndim >= 2:
            if weight_decay != 0.0:
                r.add_(p, alpha=weight_decay)
            p_norm, r_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(r)
            r.mul_(torch.where((p_norm > 0) & (r_norm > 0), p_norm / r_norm, 1.0))
        p.add_(r, alpha=-lr)


def _lamb_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                  weight_decay, ws: Workspace):
    # With c = sqrt(bc2) / bc1 and u = m / (sqrt(v) + eps * sqrt(bc2)):
    #   m_hat / (sqrt(v_hat) + eps) == c * u,
    # so the bias corrections become per-tensor scalars, sparing a pass. For weight matrices
    # the trust ratio cancels any positive factor: r / c = u + (wd / c) * p takes r's step.
    root_bc2 = [math.sqrt(1.0 - beta2**k) for k in steps]
    c = [r / (1.0 - beta1**k) for r, k in zip(root_bc2, steps)]
    shift = [eps * r for r in root_bc2]

    def moments(g, m, v):
        torch._foreach_lerp_(m, g, 1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1.0 - beta2)

    def denominator(v, e):
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, e)
        return denom

    def pick(index, lists):
        return [[lst[i] for i in index] for lst in lists]

    vecs = [i for i, x in enumerate(params) if x.ndim < 2]
    mats = [i for i, x in enumerate(params) if x.ndim >= 2]
    if vecs:  # biases and gains: ratio 1 and no decay, i.e. a plain Adam step
        for (p, g, m, v), (e, ci) in batches(pick(vecs, (params, grads, exp_avgs, exp_avg_sqs)),
                                             pick(vecs, (shift, c))):
            moments(g, m, v)
            torch._foreach_addcdiv_(p, m, denominator(v, e), [-lr * x for x in ci])
    # Whole tensors (the ratio needs each one's norm), in cache-sized blocks.
    for (p, g, m, v), (e, ci) in batches(pick(mats, (params, grads, exp_avgs, exp_avg_sqs)),
                                         pick(mats, (shift, c)), split=False):
        moments(g, m, v)
        denom = ws.sqrt(v, slot=0)
        torch._foreach_add_(denom, e)
        u = ws.div(m, denom, slot=1)
        if weight_decay != 0.0:
            if all(x == ci[0] for x in ci):  # the usual case: one step count for the block
                torch._foreach_add_(u, p, alpha=weight_decay / ci[0])
            else:
                torch._foreach_add_(u, torch._foreach_mul(p, [weight_decay / x for x in ci]))
        # Where a norm is 0 the ratio is 1 for r = c * u (the rule), i.e. c for u.
        ratios = trust_ratios(torch._foreach_norm(p), torch._foreach_norm(u), 1.0, fallback=ci)
        add_scaled_(p, u, [-lr * r for r in ratios])
