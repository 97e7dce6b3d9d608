"""LARS: SGD with momentum and a layer-wise trust ratio (You et al., 2017)."""

from __future__ import annotations

import torch

from nbhelpers.optim._foreach_utils import (
    GroupwiseOptimizer,
    check_lr,
    add_scaled_,
    batches,
    check_non_negative,
    trust_ratios,
    use_foreach,
    Workspace,
    workspace_of,
)


class LARS(GroupwiseOptimizer):
    r"""LARS (Layer-wise Adaptive Rate Scaling).

    You, Gitman, Ginsburg (2017), "Large Batch Training of Convolutional Networks",
    arXiv:1708.03888.

    For each parameter ``p`` with gradient ``g``::

        d = g + wd * p
        if p.ndim >= 2 and ||p|| > 0 and ||d|| > 0:
            d = d * eta * ||p|| / ||d||          # the trust ratio, per tensor
        buf = mu * buf + d                       # buf = d at the first step
        p = p - lr * buf

    Tensors with ``ndim <= 1`` (biases, norm gains) get neither the decay nor the trust ratio:
    their norms say nothing about a layer's scale, and decaying them hurts (the usual
    exclusion in LARS/LAMB practice).

    Args:
        params: parameters or parameter groups.
        lr: global learning rate; the effective step of a weight matrix is
            ``lr * eta * ||p||``, i.e. relative to the weights' norm.
        momentum: heavy-ball momentum ``mu`` (0 disables the buffer).
        weight_decay: L2 decay added to the gradient before the trust ratio.
        trust_coefficient: ``eta``, how far a step may move relative to ``||p||``.
        foreach: use the multi-tensor ``torch._foreach_*`` path; ``None`` picks it whenever all
            parameters are dense tensors on one device type (CPU included).

    State: ``momentum_buffer`` (the buffer ``buf``), when ``momentum > 0``.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        foreach: bool | None = None,
    ):
        check_lr(lr)
        check_non_negative(momentum, "momentum")
        check_non_negative(weight_decay, "weight_decay")
        check_non_negative(trust_coefficient, "trust_coefficient")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, foreach=foreach)
        super().__init__(params, defaults)

    def _update_group(self, group, params, grads):
        momentum = group["momentum"]
        bufs = []
        if momentum != 0.0:
            for p in params:
                state = self.state[p]
                # A zero buffer makes the first step buf = mu*0 + d = d, as the rule asks.
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
        fn = _lars_foreach if use_foreach(group.get("foreach"), params) else _lars_single
        kwargs = dict(lr=float(group["lr"]), momentum=momentum,
                      weight_decay=group["weight_decay"], eta=group["trust_coefficient"])
        if fn is _lars_foreach:
            kwargs["ws"] = workspace_of(self)
        fn(params, grads, bufs, **kwargs)


def _lars_single(params, grads, bufs, *, lr, momentum, weight_decay, eta):
    for i, (p, g) in enumerate(zip(params, grads)):
        d = g
        if p.ndim >= 2:
            d = g.add(p, alpha=weight_decay) if weight_decay != 0.0 else g.clone()
            p_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
            d.mul_(torch.where((p_norm > 0) & (d_norm > 0), eta * p_norm / d_norm, 1.0))
        if momentum != 0.0:
            d = bufs[i].mul_(momentum).add_(d)
        p.add_(d, alpha=-lr)


def _lars_foreach(params, grads, bufs, *, lr, momentum, weight_decay, eta, ws: Workspace):
    mats = [i for i, p in enumerate(params) if p.ndim >= 2]
    vecs = [i for i, p in enumerate(params) if p.ndim < 2]
    if vecs:  # biases and gains: plain momentum SGD
        tensors = [[params[i] for i in vecs], [grads[i] for i in vecs]]
        if momentum != 0.0:
            tensors.append([bufs[i] for i in vecs])
        for pieces, _ in batches(tensors):
            _momentum_step(pieces, pieces[1], lr=lr, momentum=momentum)
    if not mats:
        return
    tensors = [[params[i] for i in mats], [grads[i] for i in mats]]
    if momentum != 0.0:
        tensors.append([bufs[i] for i in mats])
    # Whole tensors (the ratio needs each one's norm), in cache-sized blocks.
    for pieces, _ in batches(tensors, split=False):
        p, g = pieces[0], pieces[1]
        # d goes to scratch memory: .grad must stay the raw gradient (trainers log its norm;
        # SAM-style wrappers read it). Without decay d is g itself, only read.
        d = ws.add(g, p, alpha=weight_decay) if weight_decay != 0.0 else g
        ratios = trust_ratios(torch._foreach_norm(p), torch._foreach_norm(d), eta)
        if momentum == 0.0:
            add_scaled_(p, d, [-lr * r for r in ratios])
            continue
        buf = pieces[2]
        torch._foreach_mul_(buf, momentum)
        add_scaled_(buf, d, ratios)  # the ratio rides on this pass instead of one of its own
        torch._foreach_add_(p, buf, alpha=-lr)


def _momentum_step(pieces, d, *, lr, momentum):
    """buf = mu * buf + d; p -= lr * buf (or p -= lr * d without momentum)."""
    p = pieces[0]
    if momentum == 0.0:
        torch._foreach_add_(p, d, alpha=-lr)
        return
    buf = pieces[2]
    torch._foreach_mul_(buf, momentum)
    torch._foreach_add_(buf, d)
    torch._foreach_add_(p, buf, alpha=-lr)
