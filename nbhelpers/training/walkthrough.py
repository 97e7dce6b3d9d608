"""What a task notebook needs to run one training step by hand before `exp.fit()`.

The notebook writes the step itself (forward and the task's loss, backward, the
optimizer's step), so a reader sees the loop the Trainer repeats. These helpers keep
that step from touching the run: it works on a copy of the model with its own optimizer,
on a batch drawn without the training loader's random generator, inside `isolated_rng()`,
so the run's numbers are the same with or without the walkthrough.
"""

from __future__ import annotations

import contextlib
import copy
import random
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from nbhelpers.optim import build_optimizer
from nbhelpers.training.trainer import to_device


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Restore torch's, numpy's and Python's random state on exit (dropout draws leave no trace)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def practice_copy(exp: Any) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    """A copy of the run's model (train mode), an optimizer of the run's settings for it, and
    the first training batch (unshuffled, no augmentation order drawn) on the run's device."""
    model = copy.deepcopy(exp.model).to(exp.device).train()
    optimizer, _ = build_optimizer(exp.cfg, model)
    loader = DataLoader(exp.data.train, batch_size=exp.cfg.batch_size, shuffle=False,
                        collate_fn=exp.data.collate_fn)
    return model, optimizer, to_device(next(iter(loader)), exp.device)


def optimizer_step(optimizer: torch.optim.Optimizer, recompute_loss: Callable[[], torch.Tensor]) -> None:
    """optimizer.step(), with the closure SAM and GSAM need for their second forward/backward."""
    if hasattr(optimizer, "base_optimizer"):  # sharpness-aware: step() calls back for the second pass
        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = recompute_loss()
            loss.backward()
            return loss.detach()
        optimizer.step(closure)
    else:
        optimizer.step()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable tensor, to measure the update against."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def update_sizes(before: dict[str, torch.Tensor], model: nn.Module, *, top: int | None = 12) -> pd.DataFrame:
    """Per tensor: its size, its norm, the norm of the step just taken, and their ratio.

    The ratio |Δw| / |w| is what an optimizer really changes per step; layer-wise methods
    (LARS, LAMB) aim it at the learning rate, Adam-like methods make it roughly uniform.
    """
    rows = []
    for name, p in model.named_parameters():
        if name not in before:
            continue
        delta = (p.detach() - before[name]).norm().item()
        weight = before[name].norm().item()
        rows.append({"tensor": name, "shape": tuple(p.shape), "|w|": weight, "|Δw|": delta,
                     "|Δw| / |w|": delta / weight if weight > 0 else float("nan")})
    table = pd.DataFrame(rows)
    return table.head(top) if top is not None else table


def batch_loss(task: Any, model: nn.Module, batch: Any) -> float:
    """The task's loss on one batch in eval mode (no dropout), without gradients."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss, _ = task.train_step(model, batch)
    model.train(was_training)
    return float(loss)
