"""The command line: listings, a run, and bad input as one sentence with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nbhelpers.cli import main


def _cli(*args, cwd=None):
    """Run `python -m nbhelpers ...` in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", "nbhelpers", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("what, expected", [
    ("tasks", "image_classification"),
    ("datasets", "digits"),
    ("models", "mnist_tiny"),
    ("optimizers", "gsam"),
])
def test_list_prints_each_name_with_a_description(what, expected, capsys):
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith(expected))
    assert len(line.split()) > 2
    if what == "optimizers":
        assert len(lines) == 16 and "lr" in line and "wd" in line


def test_run_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--task", "image_classification", "--dataset", "digits", "--model", "mnist_tiny",
                 "--optimizers", "adam,sgd", "--epochs", "1", "--batch-size", "64", "--max-samples", "128",
                 "--output-dir", str(out), "--no-progress"])
    assert code == 0
    for run_id in ("mnist_tiny-adam-s0", "mnist_tiny-sgd-s0"):
        summary = json.loads((out / "runs" / run_id / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["params_total"] == 18662
    assert "mnist_tiny-adam-s0: completed" in capsys.readouterr().out


BASE = ["run", "--dataset", "digits", "--model", "cnn_scratch", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("args, fragment", [
    (["run", "--task", "image_clasification"], "did you mean 'image_classification'"),
    (["run", "--dataset", "cifar100"], "did you mean 'cifar10'"),
    (["run", "--model", "resnet50"], "did you mean 'resnet18'"),
    (["run", "--optimizers", "adamx"], "did you mean 'adam"),
    (["run", "--model", "gpt_small"], "does not belong to task"),
    (["run", "--epochs", "0"], "must be at least 1"),
    (["run", "--batch-size", "0"], "must be at least 1"),
    (["run", "--lr", "-0.1"], "learning rate must be a number >= 0"),
    (["run", "--lr-overrides", "sgd=5e-4,adam"], "is not NAME=LR"),
    (["run", "--epochs", "many"], "is not a whole number"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        code = main([*args, "--output-dir", str(tmp_path / "out")] if args[0] == "run" else args)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    params = tmp_path / "broken.yaml"
    params.write_text("task: image_classification\nmodel: [cnn_scratch\nepochs: 2\n")
    result = _cli("sweep", str(params), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert str(params) in result.stderr and "line" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_output_folder_is_refused_and_nothing_is_lost(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code = main([*BASE, "--output-dir", str(blocker / "sub")])
    assert code == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert blocker.read_text() == "keep me"


def test_uncached_real_dataset_is_one_sentence_naming_the_offline_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("earlier results")
    env_dir = tmp_path / "cache"
    result = _cli("run", "--dataset", "mnist", "--model", "cnn_scratch", "--epochs", "1",
                  "--data-dir", str(env_dir), "--output-dir", str(out), "--no-progress")
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "mnist" in err[0] and "digits" in err[0] and str(env_dir) in err[0]
    assert (out / "notes.txt").read_text() == "earlier results"
