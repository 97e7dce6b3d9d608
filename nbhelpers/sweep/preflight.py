"""Checks that run before a sweep (or `run`) writes anything into its output folder.

A mistake found halfway through a sweep costs the runs before it and can leave stale
files that look like results; found here, it is one sentence and the folder is untouched:

- every run directory lies inside <output_dir>/runs (run ids are safe names; this also
  catches a symbolic link planted there);
- the device exists on this machine (`--device cuda` on a CPU machine);
- a finished run is not silently started again: without --resume it is refused, unless
  --overwrite says to start it again;
- a run that --resume would continue, or keep as finished, ran with the same settings (its
  last.pt records them), so results are never half one setting, half another, nor an
  old setting's results presented as this one's.

Names, numbers and the options of models, optimizers and schedules were already checked
when the plan was made (nbhelpers.config.validate_config).
"""

from __future__ import annotations

from nbhelpers.config import RunConfig, resolve_config
from nbhelpers.errors import UserInputError
from nbhelpers.sweep.expand import Plan
from nbhelpers.training.rundir import RunDir, load_checkpoint

# How many run ids a refusal names before "and N more".
_NAMED = 3


def preflight(plan: Plan, *, overwrite: bool = False, check_devices: bool = True) -> None:
    """Raise UserInputError if the plan cannot run as asked; writes nothing."""
    for cfg in plan.all_configs:
        cfg.run_dir  # noqa: B018  (raises if it resolves outside the output folder)
    if check_devices:
        from nbhelpers.training.experiment import resolve_device
        for device in sorted({cfg.device for cfg in plan.configs}):
            resolve_device(device)
    finished = [cfg.run_id for cfg in plan.all_configs
                if not cfg.resume and RunDir(cfg.run_dir).is_finished()]
    if finished and not overwrite:
        raise UserInputError(
            f"{_some(finished)} in {plan.output_dir / 'runs'} already finished; use --resume to keep "
            "finished runs (and continue unfinished ones) or another --output-dir, or --overwrite "
            "to run them again")
    for cfg in plan.all_configs:  # with an LR grid, phase 2's candidates too
        if cfg.resume:
            check_resume(cfg)


def check_resume(cfg: RunConfig) -> None:
    """A run that --resume continues or keeps must have run with these settings."""
    from nbhelpers.training.experiment import check_resumable
    run = RunDir(cfg.run_dir)
    if not run.last.exists():
        return
    state = load_checkpoint(run.last, map_location="cpu", mmap=True)
    check_resumable(run, state, resolve_config(cfg))


def _some(run_ids: list[str]) -> str:
    named = ", ".join(run_ids[:_NAMED])
    more = f" and {len(run_ids) - _NAMED} more" if len(run_ids) > _NAMED else ""
    return f"{len(run_ids)} run{'s' if len(run_ids) > 1 else ''} ({named}{more})"
