"""RunConfig: every knob of one run, its validation, and params-file loading.

One frozen dataclass with one commented line per knob (after nanoGPT's configs). The
names match the command-line flags of the seed guide (`--batch-size` is `batch_size`).
`resolve_config()` replaces every 'auto'/None with the task's preset so the run
directory records what actually ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from nbhelpers.errors import UserInputError
from nbhelpers.registry import DATASETS, MODELS, OPTIMIZERS, TASKS, load_all, tasks_of

SCHEDULERS = ("auto", "cosine", "plateau", "step", "multistep", "exponential", "onecycle",
              "warmup_cosine", "warmup_linear", "inverse_sqrt", "none")
LR_POLICIES = ("per_opt", "fixed")
AMP_MODES = ("off", "bf16", "fp16")
# Run ids become folder and file names: every other character turns into "_".
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._+=-]")
MAX_RUN_ID_LENGTH = 150  # file systems allow 255 bytes; leave room for ".ipynb", ".html", temp names


@dataclass(frozen=True)
class RunConfig:
    """One run: a task, a dataset, a model, an optimizer and how to train them."""

    task: str = "image_classification"     # one of the eight tasks
    dataset: str | None = None             # None: the task's offline default
    model: str | None = None               # None: the task's default model
    optimizer: str = "adamw"               # one of the 16 (aliases accepted)
    epochs: int | None = None              # maximum number of epochs; None: the task's default
    batch_size: int | None = None          # training batch size (evaluation too); None: task default
    lr: float | None = None                # None: decided by lr_policy
    lr_policy: str = "per_opt"             # per_opt: the optimizer's researched LR; fixed: one LR for all
    lr_overrides: str = ""                 # "sgd=5e-4,adam=3e-5": per-optimizer LRs that beat everything
    weight_decay: float | None = None      # None: the optimizer family's heuristic
    scheduler: str = "auto"                # auto: the task's preset (cosine for images)
    scheduler_kwargs: Mapping[str, Any] = field(default_factory=dict)  # e.g. milestones for multistep
    warmup_epochs: float = 0.0             # linear LR warm-up before any schedule
    max_grad_norm: float | None = None     # None: task default; <= 0: no clipping
    early_stopping_patience: int | None = None  # None: task default; <= 0: never stop early
    label_smoothing: float | None = None   # None: task default
    max_samples: int | None = None         # cap on the training split (and on val/test)
    val_max_samples: int | None = None     # a further cap on the validation split (decoding is slow)
    eval_every: int = 1                    # epochs between full (decoding) validations; loss-only between
    dataset_kwargs: Mapping[str, Any] = field(default_factory=dict)    # e.g. {"bptt": 128}
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)       # e.g. {"dice_weight": 0.3}
    num_workers: int = 0                   # DataLoader worker processes
    seed: int = 0                          # seeds torch, numpy and python's random
    device: str = "auto"                   # auto | cpu | cuda | cuda:N | mps
    amp: str = "off"                       # off | bf16 | fp16 (autocast; fp16 adds a GradScaler)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)      # e.g. {"layers": 2}
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"rho": 0.1} for SAM
    sam_base: str | None = None            # SAM/GSAM base: None = sgd_momentum (images) / adamw (text)
    target: float | None = None            # validation target for time-to-target; None: the dataset's or task's
    data_dir: str | None = None            # where real datasets are cached; None: ~/.cache/nbhelpers
    output_dir: str = "executed/adhoc"     # runs land in <output_dir>/runs/<run_id>/
    grid: Mapping[str, Any] = field(default_factory=dict)  # grid values that named this run
    experiment: int | None = None          # the run's experiment number in its params file (set by sweeps)
    resume: bool = False                   # continue from last.pt if the run directory has one
    progress: bool = True                  # tqdm progress bars

    @property
    def run_id(self) -> str:
        """<model>-<optimizer>[-<grid values>]-s<seed>."""
        import nbhelpers.optim  # noqa: F401  (registers the optimizer names and aliases)
        parts = [self.model, OPTIMIZERS.canonical(self.optimizer)]
        for key, value in self.grid.items():
            short = key.split(".")[-1]
            if short in ("model", "optimizer"):
                continue
            parts.append(f"{short}{value:g}" if isinstance(value, float) else f"{short}{value}")
        parts.append(f"s{self.seed}")
        return safe_name("-".join(str(p) for p in parts))

    @property
    def run_dir(self) -> Path:
        """<output_dir>/runs/<run_id>; refused (UserInputError) if it would resolve elsewhere."""
        root = Path(self.output_dir) / "runs"
        path = root / self.run_id
        if path.resolve().parent != root.resolve():
            raise UserInputError(f"the run directory of {self.run_id!r} resolves outside {root} "
                                 "(a symbolic link?); remove it or use another --output-dir")
        return path

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("dataset_kwargs", "task_kwargs", "model_kwargs", "optimizer_kwargs", "scheduler_kwargs", "grid"):
            data[key] = dict(data[key])
        return data


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))


def safe_name(text: str) -> str:
    """`text` as a file name: letters, digits and . _ + = - only; long ones shortened with a hash.

    Grid values come from params files: "/../x" or "<img ...>" must not become a path or
    markup. Two values that map to the same name are caught by the sweep's duplicate check.
    """
    name = _UNSAFE_IN_NAMES.sub("_", text).lstrip(".") or "_"
    if len(name) > MAX_RUN_ID_LENGTH:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        name = f"{name[:MAX_RUN_ID_LENGTH - 11]}-{digest}"
    return name


def config_from_dict(values: Mapping[str, Any], *, source: str = "config") -> RunConfig:
    """A RunConfig from a mapping, with a clear error for unknown keys."""
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise UserInputError(f"{source}: unknown setting(s) {', '.join(unknown)} "
                             f"(accepted: {', '.join(FIELD_NAMES)})")
    return RunConfig(**values)


def validate_config(cfg: RunConfig) -> RunConfig:
    """Check names and numbers; returns cfg with canonical names. Raises UserInputError."""
    load_all()
    task = TASKS.canonical(cfg.task)
    spec = TASKS.get(task).meta["spec"]
    dataset = DATASETS.canonical(cfg.dataset or spec.offline_dataset)
    if task not in tasks_of(DATASETS.get(dataset)):
        raise UserInputError(f"dataset {dataset!r} belongs to task "
                             f"{', '.join(tasks_of(DATASETS.get(dataset)))!r}, not {task!r} "
                             f"(datasets for {task}: {', '.join(datasets_for(task))})")
    model = MODELS.canonical(cfg.model or spec.defaults.get("model") or models_for(task)[0])
    if task not in tasks_of(MODELS.get(model)):
        raise UserInputError(f"model {model!r} does not belong to task {task!r} "
                             f"(models for {task}: {', '.join(models_for(task))})")
    optimizer = OPTIMIZERS.canonical(cfg.optimizer)
    if cfg.sam_base is not None:
        from nbhelpers.optim import get_spec  # late: optim imports torch
        base = get_spec(cfg.sam_base)
        if base.needs_closure:
            raise UserInputError(f"--sam-base {cfg.sam_base}: SAM and GSAM need a plain base optimizer, "
                                 "not themselves or each other (for example sgd_momentum or adamw)")
    epochs = spec.defaults.get("epochs", 20) if cfg.epochs is None else cfg.epochs
    batch_size = spec.defaults.get("batch_size", 128) if cfg.batch_size is None else cfg.batch_size
    _check_int("epochs", epochs, minimum=1)
    _check_int("batch size", batch_size, minimum=1)
    if cfg.max_samples is not None:
        _check_int("max samples", cfg.max_samples, minimum=1)
    _check_int("num workers", cfg.num_workers, minimum=0)
    _check_int("seed", cfg.seed, minimum=0)
    _check_int("eval every", cfg.eval_every, minimum=1)
    if cfg.val_max_samples is not None:
        _check_int("validation max samples", cfg.val_max_samples, minimum=1)
    if cfg.experiment is not None:
        _check_int("experiment number", cfg.experiment, minimum=1)
    for name, value in (("learning rate", cfg.lr), ("weight decay", cfg.weight_decay),
                        ("warmup epochs", cfg.warmup_epochs), ("label smoothing", cfg.label_smoothing)):
        if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
            raise UserInputError(f"the {name} must be a number >= 0, got {value!r}")
    if cfg.label_smoothing is not None and not cfg.label_smoothing < 1:
        raise UserInputError(f"the label smoothing must be at least 0 and below 1, got {cfg.label_smoothing!r}")
    if cfg.lr_policy not in LR_POLICIES:
        raise UserInputError(f"unknown LR policy {cfg.lr_policy!r} (accepted: {', '.join(LR_POLICIES)})")
    if cfg.scheduler not in SCHEDULERS:
        raise UserInputError(f"unknown scheduler {cfg.scheduler!r} (accepted: {', '.join(SCHEDULERS)})")
    if cfg.amp not in AMP_MODES:
        raise UserInputError(f"unknown AMP mode {cfg.amp!r} (accepted: {', '.join(AMP_MODES)})")
    _check_device(cfg.device)
    from nbhelpers.optim import parse_lr_overrides  # late: optim imports torch
    parse_lr_overrides(cfg.lr_overrides)
    scheduler = spec.scheduler if cfg.scheduler == "auto" else cfg.scheduler
    check_component_kwargs(cfg, model=model, optimizer=optimizer, scheduler=scheduler, family=spec.family)
    check_task_kwargs(cfg, task)
    return cfg.replace(task=task, dataset=dataset, model=model, optimizer=optimizer, epochs=epochs,
                       batch_size=batch_size)


def resolve_config(cfg: RunConfig) -> RunConfig:
    """Validate, then replace every task-dependent 'auto'/None with the task's preset."""
    cfg = validate_config(cfg)
    spec = TASKS.get(cfg.task).meta["spec"]
    from nbhelpers.optim import default_sam_base, get_spec
    opt = get_spec(cfg.optimizer)
    return cfg.replace(
        scheduler=spec.scheduler if cfg.scheduler == "auto" else cfg.scheduler,
        max_grad_norm=spec.max_grad_norm if cfg.max_grad_norm is None else cfg.max_grad_norm,
        early_stopping_patience=(spec.early_stopping_patience if cfg.early_stopping_patience is None
                                 else cfg.early_stopping_patience),
        label_smoothing=spec.label_smoothing if cfg.label_smoothing is None else cfg.label_smoothing,
        target=spec.target if cfg.target is None else cfg.target,
        sam_base=(cfg.sam_base or default_sam_base(spec.family)) if opt.needs_closure else cfg.sam_base,
    )


def check_component_kwargs(cfg: RunConfig, *, model: str, optimizer: str, scheduler: str, family: str) -> None:
    """model_kwargs, optimizer_kwargs and scheduler_kwargs against what receives them."""
    from nbhelpers.knobs import check_kwargs
    from nbhelpers.optim import default_sam_base, get_spec
    from nbhelpers.optim.build import BUILD_OPTIONS
    from nbhelpers.schedulers import SCHEDULER_OPTIONS

    model_class = model_class_of(model)
    if model_class is not None:
        # Knobs the builder names in its own signature (and consumes itself) are accepted too.
        from nbhelpers.knobs import accepted_parameters
        builder_knobs = accepted_parameters(MODELS.get(model).factory, skip=("info",))
        check_kwargs(f"model {model!r}", model_class, dict(cfg.model_kwargs), extra=builder_knobs)
    elif not isinstance(cfg.model_kwargs, Mapping):
        raise UserInputError(f"model_kwargs must be a mapping of names to values, got {cfg.model_kwargs!r}")
    spec = get_spec(optimizer)
    # lr and weight_decay have their own settings; passed here they would be silently overridden.
    skip = ("params", "lr", "weight_decay", "base_optimizer")
    accepted = dict(BUILD_OPTIONS)
    if spec.needs_closure:
        from nbhelpers.knobs import accepted_parameters
        base = get_spec(cfg.sam_base or default_sam_base(family))
        accepted.update(accepted_parameters(base.optimizer_class(), skip=skip))
    check_kwargs(f"optimizer {optimizer!r}", spec.optimizer_class(), dict(cfg.optimizer_kwargs),
                 skip=skip, extra=accepted)
    if scheduler in SCHEDULER_OPTIONS:
        check_kwargs(f"scheduler {scheduler!r}", None, dict(cfg.scheduler_kwargs),
                     extra=SCHEDULER_OPTIONS[scheduler])


def check_task_kwargs(cfg: RunConfig, task: str) -> None:
    """task_kwargs against the task's constructor (its loss knobs), less what RunConfig sets itself."""
    from nbhelpers.knobs import check_kwargs
    factory = TASKS.get(task).factory
    check_kwargs(f"task {task!r}", factory, dict(cfg.task_kwargs), skip=("data", "label_smoothing"))
    if cfg.task_kwargs:
        factory(**dict(cfg.task_kwargs))  # without data: the constructor checks the values' ranges


def model_class_of(model: str) -> type | None:
    """The nn.Module class a registered model builder constructs, when that can be told.

    A registration may name it (`MODELS.register(..., model_class=X)`); otherwise it is the one
    nn.Module class the builder's code refers to. None when neither works: the builder then
    checks alone. model_kwargs are checked against that class's constructor plus the keyword
    parameters of the builder itself, so a builder that consumes a knob must name it there.
    """
    import inspect

    from torch import nn
    entry = MODELS.get(model)
    if entry.meta.get("model_class") is not None:
        return entry.meta["model_class"]
    try:
        referenced = inspect.getclosurevars(entry.factory).globals.values()
    except (TypeError, ValueError):
        return None
    classes = [v for v in referenced if isinstance(v, type) and issubclass(v, nn.Module)]
    return classes[0] if len(classes) == 1 else None


def datasets_for(task: str) -> list[str]:
    return [e.name for e in DATASETS if task in tasks_of(e)]


def models_for(task: str) -> list[str]:
    return [e.name for e in MODELS if task in tasks_of(e)]


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"the {name} must be a whole number >= {minimum}, got {value!r}")


def _check_device(device: str) -> None:
    ok = device in ("auto", "cpu", "cuda", "mps") or (
        device.startswith("cuda:") and device[5:].isdigit())
    if not ok:
        raise UserInputError(f"unknown device {device!r} (accepted: auto, cpu, cuda, cuda:N, mps)")


def load_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; a malformed file is one clear error with its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserInputError(f"params file {path} does not exist") from None
    except OSError as err:
        raise UserInputError(f"params file {path} cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise UserInputError(f"params file {path} is malformed{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"params file {path} must hold a mapping of settings, not a {type(data).__name__}")
    return data
