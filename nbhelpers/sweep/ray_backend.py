"""The Ray backend: the same runs as Ray tasks, one GPU each where the cluster has GPUs.

`ray.init()` joins the cluster named by RAY_ADDRESS, or starts a local one. On a cluster
of several machines the sweep's output folder must be on a filesystem every node sees,
since each run writes its run directory and notebook there.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

from nbhelpers.config import RunConfig
from nbhelpers.errors import UserInputError


def run_on_ray(todo: Iterable[RunConfig], one_run: Callable, *, threads: int) -> Iterator[tuple[str, str, str | None]]:
    """Submit every run as a Ray task and yield (run_id, status, error) as they finish."""
    try:
        import ray
    except ImportError:
        raise UserInputError("the ray backend needs Ray installed: pip install 'ray[default]' "
                             "(or use --backend local)") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True,
                 log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_gpus=gpus, num_cpus=threads)(one_run)
    pending = [remote.remote(cfg, threads) for cfg in todo]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
