"""Shared fixtures: small, fast configurations on the offline data."""

from __future__ import annotations

import os

import pytest
import torch

# No test may reach the network: real loaders use only what a test wrote itself.
os.environ["NBHELPERS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

# One thread per process: tests run beside papermill kernels and other processes on two
# cores, and an oversubscribed core makes a training step up to 100x slower. Kernels that
# the tests start inherit OMP_NUM_THREADS.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg(tmp_path):
    """A RunConfig for a run of a few seconds on digits."""
    from nbhelpers.config import RunConfig
    return RunConfig(task="image_classification", dataset="digits", model="cnn_scratch",
                     optimizer="adamw", epochs=2, batch_size=32, max_samples=160,
                     model_kwargs={"hidden": 32}, output_dir=str(tmp_path / "out"), progress=False)
