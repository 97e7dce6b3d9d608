"""What every dataset builder returns, and the small helpers they share.

A dataset builder is registered in nbhelpers.registry.DATASETS with `task=<task name>`
and `offline=True/False`, and is called as

    builder(data_dir=Path, max_samples=int | None, seed=int, download=bool, **dataset_kwargs)

It returns a DataBundle. Validation and test splits never carry augmentation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset, Subset

# The split of a dataset into train/val/test must not change with the run's seed:
# otherwise two optimizers with different seeds would be scored on different data.
SPLIT_SEED = 0


@dataclass
class DataBundle:
    """The three splits plus the facts a model needs to be built for them."""

    train: Dataset
    val: Dataset
    test: Dataset
    # Facts the model builder reads: num_classes, in_channels, image_size, vocab_size, pad_id, ...
    info: dict[str, Any] = field(default_factory=dict)
    # A person's account of the preprocessing and augmentation, for details.txt.
    description: str = ""
    # None means torch's default collate.
    collate_fn: Callable | None = None

    # Typed, read-only views of the facts a task needs. They read `info` at the moment they
    # are called, so a tokenizer that a model builder installs later is the one seen.
    @property
    def class_names(self) -> list[str] | None:
        names = self.info.get("class_names") or self.info.get("classes")
        return list(names) if names is not None else None

    @property
    def num_classes(self) -> int | None:
        value = self.info.get("num_classes")
        if value is None and self.class_names is not None:
            return len(self.class_names)
        return None if value is None else int(value)

    @property
    def ignore_index(self) -> int | None:
        value = self.info.get("ignore_index")
        return None if value is None else int(value)

    @property
    def tokenizer(self) -> Any:
        return self.info.get("tokenizer")

    @property
    def pad_id(self) -> int | None:
        value = self.info.get("pad_id")
        return None if value is None else int(value)

    @property
    def vocab_size(self) -> int | None:
        value = self.info.get("vocab_size")
        return None if value is None else int(value)


def default_data_dir() -> Path:
    """Where real datasets are cached: $NBHELPERS_DATA_DIR, else ~/.cache/nbhelpers."""
    env = os.environ.get("NBHELPERS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nbhelpers"


def cap(dataset: Dataset, max_samples: int | None, seed: int = SPLIT_SEED) -> Dataset:
    """A fixed random subset of at most `max_samples` items (the whole set when None)."""
    n = len(dataset)  # type: ignore[arg-type]
    if max_samples is None or max_samples >= n:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    keep = torch.randperm(n, generator=generator)[:max_samples].sort().values
    return Subset(dataset, keep.tolist())


def fixed_split(n: int, fractions: tuple[float, ...], seed: int = SPLIT_SEED) -> list[list[int]]:
    """Split range(n) into consecutive random parts of the given fractions (the last takes the rest)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    parts, start = [], 0
    for fraction in fractions[:-1]:
        stop = start + int(round(fraction * n))
        parts.append(sorted(order[start:stop]))
        start = stop
    parts.append(sorted(order[start:]))
    return parts
