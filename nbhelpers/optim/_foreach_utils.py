"""Helpers shared by the optimizers in this package.

Argument checks with torch-style messages, collecting the parameters of a group that have
gradients, the foreach-or-per-tensor decision, and :func:`batches`, which cuts the tensor lists
into the pieces that each sequence of ``torch._foreach_*`` calls runs on.

Why batches: on an accelerator one foreach call over a whole (device, dtype) group is one
multi-tensor kernel, the fastest form. On the CPU a foreach call is a loop over the tensors, so a
sequence of eight calls over a 40 MB model streams 40 MB from memory eight times, and every
out-of-place call allocates (and page-faults) fresh memory. Cut into flat pieces of about
1 MiB, the same sequence runs on data that stays in cache, and temporaries are small blocks that
the allocator reuses. On the 10M-parameter model of benchmarks/optimizer_step.py (2 cores) this
made AdaBelief's and Yogi's steps about five times faster than one call per op over the whole
list. Element-wise results are identical either way.
"""

from __future__ import annotations

import abc

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import torch

# Tensor subclasses (DTensor, tensor wrappers) may not implement the foreach kernels.
_FOREACH_TYPES = (torch.Tensor, torch.nn.Parameter)


def check_lr(lr: Any) -> None:
    if not 0.0 <= float(lr):
        raise ValueError(f"Invalid learning rate: {lr}")


def check_betas(betas: Sequence[float]) -> None:
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas} (expected two values)")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def check_non_negative(value: float, name: str) -> None:
    if not 0.0 <= value:
        raise ValueError(f"Invalid {name} value: {value}")


def params_with_grad(group: dict, owner: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The parameters of ``group`` that have a gradient, and those gradients."""
    params, grads = [], []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"{owner} does not support sparse gradients")
        params.append(p)
        grads.append(p.grad)
    return params, grads


def use_foreach(foreach: bool | None, params: Iterable[torch.Tensor]) -> bool:
    """Resolve ``foreach=None``: on when every tensor is a plain dense tensor on one device type.

    Unlike torch, which turns foreach on by default only on CUDA-like devices, this also picks it
    on the CPU, where the foreach path runs in cache-sized pieces (:func:`batches`): in
    benchmarks/optimizer_step.py it beat one foreach call per op over the whole list and, for
    most rules, the plain per-tensor path.
    """
    if foreach is not None:
        return bool(foreach)
    if torch.jit.is_scripting():
        return False
    device_types = set()
    for p in params:
        if type(p) not in _FOREACH_TYPES or p.layout != torch.strided:
            return False
        device_types.add(p.device.type)
    return len(device_types) <= 1


# About 1 MiB of each tensor per batch: the several tensors a step touches (p, g, moments,
# temporaries) then fit in the L2 cache of a typical CPU core.
CPU_BATCH_BYTES = 1 << 20
# Whole tensors, for rules that need a tensor's norm before updating it (LARS, LAMB): a block
# is one large tensor, or small ones up to about 1 MiB together, so that the passes after the
# norm find the block in cache.
CPU_BLOCK_BYTES = 1 << 20
# The largest temporary one Workspace slot holds (bigger ones are allocated normally): it
# bounds the memory a workspace keeps between steps to two tensors of this size.
WORKSPACE_LIMIT_BYTES = 16 << 20


def batches(tensor_lists: Sequence[list[torch.Tensor]], value_lists: Sequence[list] = (),
            *, split: bool = True):
    """Yield ``(tensor_lists, value_lists)`` pieces to run one sequence of foreach ops on.

    ``tensor_lists`` are parallel lists of same-shaped tensors (e.g. params, grads, exp_avgs);
    ``value_lists`` are parallel per-tensor values (python floats, 0-dim tensors) that follow
    their tensor into every piece. Tensors are grouped by the first list's (device, dtype).
    Off the CPU each group is one piece. On the CPU, pieces hold about ``CPU_BATCH_BYTES`` of
    the first list, contiguous tensors larger than that being cut into flat views (in-place ops
    on the views update the tensors themselves); with ``split=False`` tensors stay whole and
    pieces hold about ``CPU_BLOCK_BYTES``.
    """
    # Read at call time, so that tests can shrink them.
    batch_bytes = CPU_BATCH_BYTES if split else CPU_BLOCK_BYTES
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, t in enumerate(tensor_lists[0]):
        groups[(t.device, t.dtype)].append(i)
    for (device, dtype), index in groups.items():
        if device.type != "cpu" or batch_bytes <= 0:
            yield ([[lst[i] for i in index] for lst in tensor_lists],
                   [[lst[i] for i in index] for lst in value_lists])
            continue
        limit = max(1, batch_bytes // torch.empty((), dtype=dtype).element_size())
        out_t: list[list] = [[] for _ in tensor_lists]
        out_v: list[list] = [[] for _ in value_lists]
        size = 0
        for i in index:
            row = [lst[i] for lst in tensor_lists]
            if split and row[0].numel() > limit and all(t.is_contiguous() for t in row):
                pieces = [t.view(-1).split(limit) for t in row]
            else:
                pieces = [(t,) for t in row]
            for k in range(len(pieces[0])):
                numel = pieces[0][k].numel()
                if size and size + numel > limit:
                    yield out_t, out_v
                    out_t, out_v, size = [[] for _ in tensor_lists], [[] for _ in value_lists], 0
                for out, piece in zip(out_t, pieces):
                    out.append(piece[k])
                for out, lst in zip(out_v, value_lists):
                    out.append(lst[i])
                size += numel
        if size or out_t[0]:
            yield out_t, out_v


def trust_ratios(num: list[torch.Tensor], den: list[torch.Tensor], coef: float,
                 fallback: list[float] | None = None) -> list:
    """``coef * num / den`` per tensor, and ``fallback`` (default 1) where either norm is 0.

    Accelerator results stay 0-dim device tensors (no host sync); CPU results become python
    floats, which the foreach ops take as a cheaper scalar list.
    """
    fallback = fallback if fallback is not None else [1.0] * len(num)
    if all(n.device.type == "cpu" for n in num):
        # One stack and one tolist instead of a chain of tiny tensor ops.
        values = torch.stack([*num, *(d.to(num[0].dtype) for d in den)]).tolist()
        return [coef * a / b if a > 0 and b > 0 else f
                for a, b, f in zip(values[:len(num)], values[len(num):], fallback)]
    return trust_ratios_on_device(num, den, coef, fallback)


def trust_ratios_on_device(num, den, coef: float, fallback: list[float]) -> list[torch.Tensor]:
    """:func:`trust_ratios` as 0-dim tensors on each norm's device, computed there."""
    out: list = [None] * len(num)
    by_device: dict[torch.device, list[int]] = defaultdict(list)
    for i, n in enumerate(num):
        by_device[n.device].append(i)
    for device, index in by_device.items():
        a = torch.stack([num[i] for i in index])
        b = torch.stack([den[i].to(a.dtype) for i in index])
        f = torch.tensor([fallback[i] for i in index], dtype=a.dtype).to(device, non_blocking=True)
        ratio = torch.where((a > 0) & (b > 0), coef * a / b, f)
        for i, v in zip(index, ratio.unbind()):
            out[i] = v
    return out


def add_scaled_(dst: list[torch.Tensor], src: list[torch.Tensor], scalars: list) -> None:
    """``dst[i] += scalars[i] * src[i]`` in place; ``src`` is left as it was.

    With python floats (the CPU) this is one pass per tensor; with 0-dim device tensors it is
    a multiply into a temporary and a foreach add, with no host sync.
    """
    if all(isinstance(s, float) for s in scalars):
        for d, s, a in zip(dst, src, scalars):
            d.add_(s, alpha=a)
    else:
        torch._foreach_add_(dst, torch._foreach_mul(src, scalars))


def host_scalar(value: torch.Tensor) -> float | torch.Tensor:
    """A python float for a CPU tensor (cheapest for foreach ops); else the tensor itself, so
    that reading it never waits for an accelerator."""
    return value.item() if value.device.type == "cpu" else value


class Workspace:
    """Scratch memory for a step's temporaries on the CPU, reused from block to block and
    from step to step.

    Fresh multi-megabyte temporaries cost page faults on every step (the C allocator returns
    big blocks to the OS), and with two threads more than the arithmetic. Requests larger than
    ``WORKSPACE_LIMIT_BYTES`` are allocated normally, which bounds what the workspace keeps;
    off the CPU everything is allocated normally (the caching allocator reuses it).
    The methods mirror the out-of-place ``torch._foreach_*`` ops.
    """

    def __init__(self):
        self._flat: dict[tuple[torch.dtype, int], torch.Tensor] = {}

    def empty_like(self, tensors: list[torch.Tensor], slot: int = 0) -> list[torch.Tensor] | None:
        """Views into scratch buffer ``slot`` shaped like ``tensors``; None if not served."""
        first = tensors[0]
        total = sum(t.numel() for t in tensors)
        if first.device.type != "cpu" or total * first.element_size() > WORKSPACE_LIMIT_BYTES:
            return None
        key = (first.dtype, slot)
        flat = self._flat.get(key)
        if flat is None or flat.numel() < total:
            flat = self._flat[key] = torch.empty(total, dtype=first.dtype)
        views, offset = [], 0
        for t in tensors:
            views.append(flat[offset:offset + t.numel()].view(t.shape))
            offset += t.numel()
        return views

    def add(self, a, b, *, alpha: float = 1.0, slot: int = 0) -> list[torch.Tensor]:
        out = self.empty_like(a, slot)
        if out is None:
            return list(torch._foreach_add(a, b, alpha=alpha))
        for x, y, z in zip(a, b, out):
            torch.add(x, y, alpha=alpha, out=z)
        return out

    def div(self, a, b, *, slot: int = 0) -> list[torch.Tensor]:
        out = self.empty_like(a, slot)
        if out is None:
            return list(torch._foreach_div(a, b))
        for x, y, z in zip(a, b, out):
            torch.div(x, y, out=z)
        return out

    def sqrt(self, a, *, slot: int = 0) -> list[torch.Tensor]:
        out = self.empty_like(a, slot)
        if out is None:
            return list(torch._foreach_sqrt(a))
        for x, z in zip(a, out):
            torch.sqrt(x, out=z)
        return out


def workspace_of(optimizer) -> Workspace:
    """The optimizer's workspace, made on first use (never pickled or in state_dict)."""
    ws = optimizer.__dict__.get("_workspace")
    if ws is None:
        ws = optimizer.__dict__["_workspace"] = Workspace()
    return ws


def step_counters(state: dict, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-parameter step counters (0-dim float32 CPU tensors, as torch's Adam keeps them)."""
    steps = []
    for p in params:
        st = state[p]
        if "step" not in st:
            st["step"] = torch.tensor(0.0, dtype=torch.float32)
        steps.append(st["step"])
    return steps


def increment(steps: list[torch.Tensor]) -> list[float]:
    """Add one to each counter and return the new values as python floats.

    Counters live on the CPU, so reading them never synchronizes an accelerator.
    """
    values = []
    for s in steps:
        s += 1
        values.append(s.item())
    return values


def state_buffers(state: dict, params: list[torch.Tensor], *names: str,
                  fill: dict[str, float] | None = None) -> list[list[torch.Tensor]]:
    """Per-parameter state tensors `names`, created on first use (zeros, or `fill[name]`).

    Returns one list per name, in the order of `params`, ready for the foreach kernels.
    """
    fill = fill or {}
    lists: list[list[torch.Tensor]] = [[] for _ in names]
    for p in params:
        per_param = state[p]
        for name, out in zip(names, lists):
            if name not in per_param:
                per_param[name] = torch.full_like(p, fill.get(name, 0.0), memory_format=torch.preserve_format)
            out.append(per_param[name])
    return lists


class GroupwiseOptimizer(torch.optim.Optimizer, abc.ABC):
    """The step() every element-wise rule here shares: run the closure, then update each
    parameter group's tensors that have gradients. Subclasses implement _update_group()."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = params_with_grad(group, type(self).__name__)
            if params:
                self._update_group(group, params, grads)
        return loss

    @abc.abstractmethod
    def _update_group(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Apply the rule to one group's tensors that have gradients."""
