"""benchmarks/gpu_throughput.py runs on the CPU, small, so that the GPU benchmark cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not a package
from benchmarks.gpu_throughput import main, markdown_row  # noqa: E402


def test_the_benchmark_runs_small_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "results.json"
    results = main(["--device", "cpu", "--quick", "--json", str(out)])
    resnet, gpt = results["resnet18"], results["gpt_small"]
    assert resnet["images_per_s"] > 0 and resnet["trainer"]["images_per_s"] > 0
    assert gpt["tokens_per_s"] > 0 and gpt["seq_len"] == 32
    assert 5_000_000 < gpt["params"] < 7_000_000         # gpt_small at a 10,000-word vocabulary
    assert resnet["peak_mb"] > 0 and gpt["peak_mb"] > 0
    assert (results["amp"], results["channels_last"], results["compile"]) == ("bf16", True, False)
    assert json.loads(out.read_text())["resnet18"]["batch"] == 4
    row = capsys.readouterr().out.strip()
    assert row == markdown_row(results) and row.startswith("| ") and row.count("|") == 9


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_asking_for_cuda_without_it_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--device", "cuda"])
    assert caught.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_the_compiled_path_runs_on_the_cpu():
    results = main(["--device", "cpu", "--quick", "--compile", "--amp", "off"])
    assert results["compile"] and results["resnet18"]["images_per_s"] > 0
