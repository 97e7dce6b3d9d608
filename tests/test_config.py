"""RunConfig, params files and the registry: names, numbers and their errors."""

from __future__ import annotations

import pytest

from nbhelpers.config import RunConfig, load_params, resolve_config, validate_config
from nbhelpers.errors import UserInputError
from nbhelpers.registry import Registry, UnknownNameError


def test_run_id_names_model_optimizer_grid_and_seed():
    cfg = RunConfig(model="lstm_lm", optimizer="momentum", grid={"layers": 2}, seed=3)
    assert cfg.run_id == "lstm_lm-sgd_momentum-layers2-s3"
    assert RunConfig(model="cnn_scratch", optimizer="adamw").run_id == "cnn_scratch-adamw-s0"


def test_resolve_fills_task_presets():
    cfg = resolve_config(RunConfig(dataset=None, optimizer="sam"))
    assert cfg.dataset == "digits"               # the task's offline default
    assert cfg.scheduler == "cosine"             # auto for images
    assert cfg.label_smoothing == 0.1
    assert cfg.early_stopping_patience == 10
    assert cfg.max_grad_norm is None             # no clipping for images
    assert cfg.sam_base == "sgd_momentum"        # SAM's base for images


@pytest.mark.parametrize("changes, fragment", [
    ({"task": "image_clasification"}, "did you mean 'image_classification'"),
    ({"dataset": "mnistt"}, "did you mean 'mnist'"),
    ({"model": "resnet19"}, "did you mean 'resnet18'"),
    ({"optimizer": "adamx"}, "did you mean 'adam"),
    ({"model": "gpt_small"}, "does not belong to task 'image_classification'"),
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"batch_size": 0}, "batch size must be a whole number >= 1"),
    ({"lr": -0.1}, "learning rate must be a number >= 0"),
    ({"lr_overrides": "sgd=fast"}, "not a number"),
    ({"lr_overrides": "sgd5e-4"}, "is not NAME=LR"),
    ({"lr_overrides": "sgx=1e-3"}, "unknown optimizer 'sgx'"),
    ({"scheduler": "cosinus"}, "unknown scheduler"),
    ({"device": "gpu"}, "unknown device"),
])
def test_bad_settings_are_one_clear_sentence(changes, fragment):
    with pytest.raises(UserInputError) as err:
        validate_config(RunConfig(**changes))
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_aliases_resolve_to_canonical_names():
    cfg = validate_config(RunConfig(optimizer="Momentum"))
    assert cfg.optimizer == "sgd_momentum"


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: image_classification\nepochs: [1, 2\nmodel: cnn_scratch\n")
    with pytest.raises(UserInputError) as err:
        load_params(path)
    assert str(path) in str(err.value) and "line 3" in str(err.value)


def test_params_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserInputError, match="must hold a mapping"):
        load_params(path)


def test_registry_suggests_and_refuses_duplicates():
    registry = Registry("widget")
    registry.add("alpha", object, description="first", aliases=("a",))
    assert registry.get("A").name == "alpha"
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        registry.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", object, description="clash")
