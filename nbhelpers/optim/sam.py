"""SAM: sharpness-aware minimization around any base optimizer (Foret et al., 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from nbhelpers.optim._foreach_utils import (
    batches,
    check_non_negative,
    host_scalar,
    params_with_grad,
)

# Keeps rho / ||g|| finite when the gradient vanishes (the value of the reference code).
PERTURB_EPS = 1e-12

_NEEDS_CLOSURE = (
    "{name} needs a closure: call step(closure) with the gradients at the current weights "
    "already in .grad; the closure must zero the gradients, recompute the loss, call backward() "
    "and return the loss (it is run a second time at the perturbed weights)"
)


class SAM(Optimizer):
    r"""SAM (Sharpness-Aware Minimization), wrapping a base optimizer.

    Foret, Kleiner, Mobahi, Neyshabur (2021), "Sharpness-Aware Minimization for Efficiently
    Improving Generalization", ICLR 2021. ``adaptive=True`` is ASAM: Kwon, Kim, Park, Choi
    (2021), "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep
    Neural Networks", ICML 2021.

    With ``g`` the gradient at ``p`` (norms over all parameters together)::

        e = rho * g / (||g|| + 1e-12)        # adaptive: e = rho * p^2 * g / (||p * g|| + 1e-12)
        g_sam = grad L(p + e)                              # the closure, run at p + e
        p = base_step(p, g_sam)                            # e.g. SGD or AdamW with g_sam

    i.e. the base optimizer descends the worst-case loss within an L2 ball of radius ``rho``.

    Calling convention: ``loss.backward()`` at ``p`` first, then ``step(closure)``. The closure
    zeroes the gradients, recomputes the loss, calls ``backward()`` and returns the loss; it is
    run under ``torch.enable_grad()``. ``step`` returns that loss (the loss at ``p + e``).
    The weights are restored by copying a saved copy back (``p -= e`` without rounding drift).

    Hook: ``before_base_step`` (``Callable[[], bool] | None``) runs after ``p`` is restored and
    the gradient the base optimizer will use is in ``.grad``, just before ``base_optimizer.step()``;
    if it returns a false value (other than ``None``) the base step is skipped. Trainers use it
    to clip that gradient and to skip non-finite fp16 steps.

    ``param_groups`` and ``state`` are the base optimizer's own objects, so LR schedulers and
    ``zero_grad`` act on the base; ``state_dict()``/``load_state_dict()`` round-trip the base's.

    Args:
        params: parameters or parameter groups.
        base_optimizer: an optimizer class (e.g. ``torch.optim.SGD``) or a registered name
            (e.g. ``"sgd_momentum"``), built over the same parameter groups.
        rho: radius of the neighbourhood (per parameter group).
        adaptive: ASAM's element-wise rescaling by ``p^2``, making ``rho`` scale invariant
            (use a larger rho, e.g. 0.5 to 2).
        **base_kwargs: the base optimizer's arguments (``lr``, ``momentum``, ...); for a
            registered name they override the registry's defaults.
    """

    def __init__(self, params, base_optimizer, rho: float = 0.05, adaptive: bool = False,
                 **base_kwargs: Any):
        check_non_negative(rho, "rho")
        base_cls, base_kwargs = _resolve_base(base_optimizer, base_kwargs)
        self._own_defaults = dict(rho=rho, adaptive=adaptive)
        super().__init__(params, dict(self._own_defaults))
        # The base adopts our group dicts as its own; sharing them (and the state) means that
        # an LR scheduler setting group["lr"] on this object drives the base optimizer.
        self.base_optimizer: Optimizer = base_cls(self.param_groups, **base_kwargs)
        self._bind_base()
        self.defaults = {**self.base_optimizer.defaults, **self._own_defaults}
        self.before_base_step: Callable[[], bool] | None = None
        for group in self.param_groups:
            self._init_group(group)

    # -- plumbing shared with GSAM ------------------------------------------------------

    def _bind_base(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def _init_group(self, group: dict) -> None:
        """Per-group setup after the base optimizer has filled in its defaults."""

    def add_param_group(self, param_group: dict) -> None:
        base = self.__dict__.get("base_optimizer")
        if base is None:  # still inside Optimizer.__init__
            super().add_param_group(param_group)
            return
        for key, value in self._own_defaults.items():
            param_group.setdefault(key, value)
        base.add_param_group(param_group)
        self._init_group(self.param_groups[-1])

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        # torch's load_state_dict replaces the group list and the state dict: re-share them.
        self._bind_base()

    def __getstate__(self) -> dict[str, Any]:
        # Optimizer pickles only defaults/state/param_groups; the base and hook must come along.
        return {**super().__getstate__(), "base_optimizer": self.base_optimizer,
                "before_base_step": self.before_base_step, "_own_defaults": self._own_defaults}

    def _with_grads(self) -> list[tuple[dict, list[torch.Tensor], list[torch.Tensor]]]:
        name = type(self).__name__
        return [(group, *params_with_grad(group, name)) for group in self.param_groups]

    def _ascend(self, groups, rhos: list[float]) -> list[list[torch.Tensor]]:
        """Move every parameter to p + e; return copies of the weights for the restore."""
        norms: list[torch.Tensor] = []  # of pieces: the global norm needs no per-tensor sums
        for group, params, grads in groups:
            for (p, g), _ in batches([params, grads]) if params else ():
                norms.extend(_norms(torch._foreach_mul(p, g) if group["adaptive"] else g))
        norm = _combine(norms)
        backups = []
        for (group, params, grads), rho in zip(groups, rhos):
            backups.append([p.detach().clone() for p in params])
            if not params:
                continue
            scale = host_scalar(rho / (norm + PERTURB_EPS))
            for (p, g), _ in batches([params, grads]):
                if group["adaptive"]:  # e = scale * p^2 * g
                    e = torch._foreach_mul(p, g)
                    torch._foreach_mul_(e, p)
                else:
                    e = g
                if isinstance(scale, float):
                    torch._foreach_add_(p, e, alpha=scale)
                else:
                    e = torch._foreach_mul(e, scale.to(p[0].device, p[0].dtype))
                    torch._foreach_add_(p, e)
        return backups

    def _grad_at_perturbed(self, groups, closure):
        # Detach the old gradients first: a closure that zeroes with set_to_none=False (or
        # forgets to zero) then cannot mix g into the new gradient, and GSAM keeps g as is.
        for _, params, _ in groups:
            for p in params:
                p.grad = None
        with torch.enable_grad():
            return closure()

    @staticmethod
    def _restore(groups, backups) -> None:
        for (_, params, _), saved in zip(groups, backups):
            if params:
                for (p, s), _ in batches([params, saved]):
                    torch._foreach_copy_(p, s)

    def _base_step(self) -> bool:
        hook = self.before_base_step
        if hook is not None:
            go = hook()
            if go is not None and not go:
                return False
        self.base_optimizer.step()
        return True

    # -- the update ------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError(_NEEDS_CLOSURE.format(name=type(self).__name__))
        groups = self._with_grads()
        backups = self._ascend(groups, [group["rho"] for group, _, _ in groups])
        loss = self._grad_at_perturbed(groups, closure)
        self._restore(groups, backups)
        del backups
        self._base_step()
        return loss


def _norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    # Half-precision values are reduced in float32, so that their squares cannot overflow.
    half = tensors[0].dtype in (torch.float16, torch.bfloat16)
    return list(torch._foreach_norm(tensors, 2, dtype=torch.float32 if half else None))


def _combine(norms: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of per-tensor norms, on the first one's device, in float32 or better."""
    if not norms:
        return torch.tensor(0.0)
    device = norms[0].device
    acc = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
    return torch.linalg.vector_norm(torch.stack([n.to(device=device, dtype=acc) for n in norms]))


def _resolve_base(base_optimizer, base_kwargs: dict) -> tuple[Callable[..., Optimizer], dict]:
    if isinstance(base_optimizer, str):
        try:  # imported lazily: the registry imports this module
            from nbhelpers.optim import resolve_optimizer_class
        except ImportError as exc:
            raise ValueError(
                f"base_optimizer={base_optimizer!r} is a name, but the optimizer registry "
                "(nbhelpers.optim.resolve_optimizer_class) is not available; pass an optimizer "
                "class such as torch.optim.SGD instead") from exc
        cls, defaults = resolve_optimizer_class(base_optimizer)
        base_kwargs = {**defaults, **base_kwargs}
        base_optimizer = cls
    if isinstance(base_optimizer, type) and issubclass(base_optimizer, SAM):
        raise ValueError("the base optimizer of SAM/GSAM cannot itself be SAM or GSAM")
    if isinstance(base_optimizer, Optimizer) or not callable(base_optimizer):
        raise TypeError(
            "base_optimizer must be an optimizer class (e.g. torch.optim.SGD) or a registered "
            f"name, not {base_optimizer!r}")
    return base_optimizer, base_kwargs
