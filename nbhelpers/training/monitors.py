"""Training-time and memory measurements, the same way on every device.

Wall-clock time counts training only: evaluation runs outside the timer. On CUDA the
timer synchronizes before reading the clock, otherwise queued kernels would be billed to
whatever comes next.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import torch

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux: /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class TrainTimer:
    """Accumulates training seconds across epochs (and across a resume)."""

    def __init__(self, device: torch.device, elapsed: float = 0.0):
        self.device = device
        self.elapsed = elapsed
        self._start: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._sync()
        self._start = time.perf_counter()

    def stop(self) -> float:
        """Stop, add the interval to the total, and return the interval."""
        self._sync()
        interval = time.perf_counter() - (self._start or time.perf_counter())
        self.elapsed += interval
        self._start = None
        return interval


class MemoryMonitor:
    """Peak and steady-state memory of one epoch.

    CUDA: peak = torch.cuda.max_memory_allocated; steady = mean of memory_allocated sampled
    after the first 10% of the epoch's steps (allocator warm-up excluded). CPU: the process's
    peak RSS and the mean RSS sampled over the epoch.
    """

    SAMPLE_EVERY = 10

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"

    def start_epoch(self, steps: int) -> None:
        self._samples: list[float] = []
        self._skip = max(1, steps // 10) if self.cuda else 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def sample(self, step: int) -> None:
        if step < self._skip or step % self.SAMPLE_EVERY:
            return
        if self.cuda:
            self._samples.append(torch.cuda.memory_allocated(self.device) / 2**20)
        else:
            self._samples.append(_rss_mb())

    def current_mb(self) -> float:
        """Memory in use now: allocated to tensors (CUDA) or the resident set (CPU)."""
        if self.cuda:
            return torch.cuda.memory_allocated(self.device) / 2**20
        return _rss_mb()

    def end_epoch(self) -> tuple[float, float]:
        """(peak MB, steady MB) for the epoch."""
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            current = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            peak, current = _peak_rss_mb(), _rss_mb()
        steady = sum(self._samples) / len(self._samples) if self._samples else current
        return peak, steady
