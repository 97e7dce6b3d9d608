"""details.txt: a person's account of one run (preprocessing, training policy, outcome)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def details_text(exp: Any, summary: dict[str, Any]) -> str:
    """The text of details.txt for a finished Experiment."""
    cfg, choice, spec = exp.cfg, exp.choice, exp.task_spec
    metric = spec.primary_metric
    clip = f"global norm {cfg.max_grad_norm}" if cfg.max_grad_norm and cfg.max_grad_norm > 0 else "off"
    patience = cfg.early_stopping_patience if cfg.early_stopping_patience and cfg.early_stopping_patience > 0 else "off"
    base = f" (base optimizer {choice.base})" if choice and choice.base else ""
    schedule = getattr(getattr(exp, "trainer", None), "schedule", None)
    momentum_note = schedule.momentum_note() if schedule is not None else ""
    extra = ", ".join(f"{k}={v}" for k, v in (choice.kwargs.items() if choice else []))
    lines = [
        f"Run {cfg.run_id}",
        "",
        "Data",
        f"  task {cfg.task}, dataset {cfg.dataset}"
        + (f" (not available: trained on the stand-in {exp.data.info['stand_in']})"
           if exp.data.info.get("stand_in") else "")
        + (f", at most {cfg.max_samples} training samples" if cfg.max_samples else ""),
        f"  sizes: train {len(exp.data.train)}, validation {len(exp.data.val)}, test {len(exp.data.test)}",
        f"  preprocessing: {exp.data.description or 'none recorded'}",
        "",
        "Model",
        f"  {cfg.model} {dict(cfg.model_kwargs) or ''}".rstrip(),
        f"  parameters: {summary['params_total']:,} ({summary['params_trainable']:,} trainable)",
        "",
        "Training policy",
        f"  optimizer {cfg.optimizer}{base}: lr {_fmt(choice.lr)} ({cfg.lr_policy} policy), "
        f"weight decay {_fmt(choice.weight_decay)} ({choice.decay_style}, "
        f"{'all parameters' if choice.decay_all_parameters else 'tensors with ndim >= 2 only'})"
        + (f", {extra}" if extra else ""),
        f"  schedule {cfg.scheduler}" + (f" after {cfg.warmup_epochs} warm-up epochs" if cfg.warmup_epochs else "")
        + (f"; {momentum_note}" if momentum_note else ""),
        f"  epochs {cfg.epochs}, batch size {cfg.batch_size}, early-stopping patience {patience}",
        f"  gradient clipping {clip}, label smoothing {cfg.label_smoothing}, AMP {cfg.amp}"
        + (f", task knobs {dict(cfg.task_kwargs)}" if cfg.task_kwargs else ""),
        f"  seed {cfg.seed}, device {summary['device']}",
        "",
        "Outcome",
        f"  status {summary['status']}" + (f": {summary['error']}" if summary.get("error") else ""),
        f"  epochs run {summary['epochs_run']}, best epoch {_fmt(summary['best_epoch'])}, "
        f"best validation {metric} {_fmt(summary['best_val'])}",
    ]
    if summary.get("test"):
        lines.append("  test (best checkpoint): " + ", ".join(f"{k} {_fmt(v)}" for k, v in summary["test"].items()))
    lines += [
        f"  training time {summary['train_time_s']:.1f} s (evaluation excluded), "
        f"whole run {summary['total_time_s']:.1f} s",
        f"  target {metric} {_fmt(summary['target'])}: "
        + (f"reached in epoch {summary['epochs_to_target']} after {summary['time_to_target_s']:.1f} s"
           if summary.get("epochs_to_target") else "not reached"),
        f"  optimizer state {summary['optimizer_state_bytes']:,} bytes; memory peak "
        f"{_fmt(summary['mem_peak_mb'])} MB, steady {_fmt(summary['mem_steady_mb'])} MB",
    ]
    return "\n".join(lines) + "\n"
