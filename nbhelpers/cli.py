"""`python -m nbhelpers ...`: list, run, sweep, report, leaderboard, export, demo.

A mistake in what the user typed is one sentence on stderr and exit status 2; nothing
in the output folder is touched before the input has been checked. `run` and `sweep`
exit 0 when every run ended (completed, stopped early or diverged) and 1 when a run
failed; a file that cannot be written (a full disk) is one sentence and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from nbhelpers.errors import StorageError, UserInputError

DEMO_PARAMS = "params/image_classification/digits-cnn_scratch.yaml"
# `demo --seeds K` (K > 1) trains this many epochs instead of the params file's 15, unless
# --epochs says otherwise: 48 runs of 15 epochs took 13.5 minutes on 2 cores, 8 epochs keep
# the three-seed demo near 10 (README, "The demo with seeds").
SEEDED_DEMO_EPOCHS = 8


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one sentence (not the whole usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _key_values(text: str) -> dict[str, Any]:
    """--model-kwargs "layers=2,dropout=0.1" -> {"layers": 2, "dropout": 0.1} (YAML scalars)."""
    import yaml
    result: dict[str, Any] = {}
    for chunk in filter(None, (c.strip() for c in text.split(","))):
        key, sep, value = chunk.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"{chunk!r} is not KEY=VALUE")
        result[key.strip()] = yaml.safe_load(value.strip())
    return result


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The seed guide's flags, with their names; unset flags leave the params file's value."""
    S = argparse.SUPPRESS
    parser.add_argument("params", nargs="?", help="params YAML file (params/<task>/<dataset>-<model>.yaml)")
    parser.add_argument("--task", default=S)
    parser.add_argument("--dataset", default=S)
    parser.add_argument("--model", default=S)
    parser.add_argument("--optimizers", default=S, help="comma-separated names, or 'all' for the 16")
    parser.add_argument("--epochs", type=_positive_int, default=S)
    parser.add_argument("--batch-size", type=_positive_int, default=S)
    parser.add_argument("--max-samples", type=_positive_int, default=S)
    parser.add_argument("--val-max-samples", type=_positive_int, default=S,
                        help="cap on the validation split (decoding tasks)")
    parser.add_argument("--eval-every", type=_positive_int, default=S,
                        help="epochs between full (decoding) validations; loss-only in between")
    parser.add_argument("--num-workers", type=int, default=S, help="DataLoader worker processes")
    parser.add_argument("--lr-policy", choices=("per_opt", "fixed"), default=S)
    parser.add_argument("--scheduler", default=S)
    parser.add_argument("--warmup-epochs", type=_number, default=S)
    parser.add_argument("--early-stopping-patience", type=int, default=S, help="<= 0 disables")
    parser.add_argument("--max-grad-norm", type=_number, default=S, help="<= 0 disables clipping")
    parser.add_argument("--label-smoothing", type=_number, default=S)
    parser.add_argument("--lr-overrides", default=S, help='e.g. "sgd=5e-4,adam=3e-5"')
    parser.add_argument("--lr", type=_number, default=S)
    parser.add_argument("--weight-decay", type=_number, default=S)
    parser.add_argument("--sam-base", default=S, help="base optimizer of sam/gsam")
    parser.add_argument("--model-kwargs", type=_key_values, default=S, help='e.g. "layers=2"')
    parser.add_argument("--dataset-kwargs", type=_key_values, default=S, help='e.g. "bptt=128"')
    parser.add_argument("--task-kwargs", type=_key_values, default=S,
                        help='the task\'s loss knobs, e.g. "dice_weight=0.3" (semantic_segmentation)')
    parser.add_argument("--seed", type=int, default=S)
    parser.add_argument("--seeds", type=_positive_int, default=S, help="run seeds 0..N-1 (beats --seed)")
    parser.add_argument("--lr-grid", default=S,
                        help="LR protocol: multipliers of each optimizer's LR (x0.1,x0.3,x1,x3,x10) or LRs "
                             "(1e-4,3e-4); every LR on the first seed, the best on validation for the other seeds")
    parser.add_argument("--device", default=S, help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default=S)
    parser.add_argument("--data-dir", default=S, help="cache of real datasets (default ~/.cache/nbhelpers)")
    parser.add_argument("--output-dir", default=S)
    parser.add_argument("--resume", action="store_true", default=S,
                        help="skip finished runs, continue interrupted ones from last.pt")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="run again runs that already finished in --output-dir (without --resume)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=S)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m nbhelpers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="list tasks, datasets, models or optimizers")
    listing.add_argument("what", choices=("tasks", "datasets", "models", "optimizers"))

    run = sub.add_parser("run", help="run experiments in this process")
    _add_run_options(run)

    sweep = sub.add_parser("sweep", help="execute the task notebook once per run with papermill")
    _add_run_options(sweep)
    sweep.add_argument("--workers", type=_positive_int, default=1, help="runs at a time")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local")
    sweep.add_argument("--ray-address", default=None,
                       help="Ray cluster to run on (default: RAY_ADDRESS, else a new local one)")
    sweep.add_argument("--gpus-per-run", type=_number, default=None,
                       help="GPUs each run's Ray task asks for; fractions below 1 share a GPU "
                            "(default: 1 where the cluster has GPUs)")
    sweep.add_argument("--report", action="store_true", help="write the report when the sweep ends")

    report = sub.add_parser("report", help="turn a sweep folder into tables, figures and HTML")
    report.add_argument("sweep_dir")
    report.add_argument("--no-notebook", action="store_true", help="skip executing the report notebook")

    board = sub.add_parser("leaderboard", help="rank optimizers across sweeps: ranks, time to target, profiles")
    board.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR", help="sweep folders (each holds runs/)")
    board.add_argument("--output-dir", default="executed/leaderboard")
    board.add_argument("--no-notebook", action="store_true", help="skip executing the leaderboard notebook")

    export = sub.add_parser("export", help="one notebook as HTML: remove-cell tags honoured, maths without a CDN")
    export.add_argument("notebook", help="an executed .ipynb (or a notebooks/*.py source)")
    export.add_argument("--output", default=None, help="the HTML file (default: beside the notebook)")

    demo = sub.add_parser("demo", help="sweep all 16 optimizers on digits/cnn_scratch, then report")
    demo.add_argument("--output-dir", default="executed/demo")
    demo.add_argument("--workers", type=_positive_int, default=2)
    demo.add_argument("--epochs", type=_positive_int, default=None)
    demo.add_argument("--seeds", type=_positive_int, default=None,
                      help=f"seeds per optimizer (intervals and ties need at least 2); with more than one, "
                           f"{SEEDED_DEMO_EPOCHS} epochs a run unless --epochs is given")
    demo.add_argument("--lr-grid", default=None, help="LR protocol, e.g. x0.1,x1,x10 (see sweep --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StorageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run again with --resume to continue", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        from nbhelpers.listing import listing_lines
        print("\n".join(listing_lines(args.what)))
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        folder = _report(Path(args.sweep_dir), execute_notebook=not args.no_notebook)
        print(f"report written to {folder / 'index.html'}")
        return 0
    if args.command == "leaderboard":
        from nbhelpers.report.leaderboard_build import build_leaderboard
        folder = build_leaderboard(args.sweep_dirs, args.output_dir, execute_notebook_too=not args.no_notebook)
        print(f"leaderboard written to {folder / 'index.html'}")
        return 0
    if args.command == "export":
        from nbhelpers.report.export import export_notebook
        print(f"written {export_notebook(args.notebook, args.output)}")
        return 0
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(args.command)


def _plan(args: argparse.Namespace):
    from nbhelpers.sweep.expand import plan_from_args
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "params", "workers", "backend", "report", "overwrite",
                              "ray_address", "gpus_per_run")}
    return plan_from_args(args.params, overrides)


def _run(args: argparse.Namespace) -> int:
    from nbhelpers.sweep.lock import FolderLock
    from nbhelpers.sweep.preflight import preflight
    from nbhelpers.training import run_experiment
    from nbhelpers.training.experiment import ensure_writable
    from nbhelpers.training.rundir import clean_temporary
    plan = _plan(args)
    ensure_writable(plan.output_dir)
    failed = 0
    with FolderLock(plan.output_dir):
        preflight(plan, overwrite=args.overwrite)
        clean_temporary(plan.output_dir)  # what a killed sweep or run left

        def execute(configs) -> None:
            nonlocal failed
            for cfg in configs:
                try:
                    result = run_experiment(cfg)
                except (UserInputError, StorageError):
                    raise
                except Exception as err:  # recorded in the run directory; go on with the next run
                    print(f"{cfg.run_id}: failed: {type(err).__name__}: {err}", file=sys.stderr)
                    failed += 1
                    continue
                s = result.summary
                print(f"{cfg.run_id}: {s['status']}, best val {s['primary_metric']} {s['best_val']}, "
                      f"test {s.get('test')}, run dir {result.run_dir}")

        from nbhelpers.sweep.lr_grid import forget_selection, run_in_phases
        forget_selection(plan.output_dir)
        if plan.lr_grid is None:
            execute(plan.configs)
        else:
            run_in_phases(plan.configs, plan.later, plan.lr_grid, plan.output_dir, execute)
    return 1 if failed else 0


def _sweep(args: argparse.Namespace) -> int:
    from nbhelpers.sweep.run import check_backend, run_sweep
    ray_options = {"ray_address": args.ray_address, "gpus_per_run": args.gpus_per_run}
    check_backend(args.backend, **ray_options)  # before the params file is even read: nothing may be touched
    plan = _plan(args)
    outcome = run_sweep(plan, workers=args.workers, backend=args.backend, overwrite=args.overwrite,
                        **ray_options)
    print(outcome.describe())
    if args.report:
        folder = _report(plan.output_dir, execute_notebook=True)
        print(f"report written to {folder / 'index.html'}")
    return outcome.exit_status


def _report(sweep_dir: Path, *, execute_notebook: bool) -> Path:
    """build_report, with an unwritable folder or a full disk as one sentence."""
    from nbhelpers.report import build_report
    from nbhelpers.training.experiment import ensure_writable
    from nbhelpers.training.rundir import clean_temporary
    report_dir = sweep_dir / "report"
    if not sweep_dir.is_dir():
        raise UserInputError(f"there is no sweep folder {sweep_dir}")
    ensure_writable(report_dir)
    clean_temporary(report_dir)  # what an interrupted report left
    for leftover in report_dir.glob(".report.*.ipynb"):  # build.py's notebook being executed
        leftover.unlink(missing_ok=True)
    try:
        return build_report(sweep_dir, execute_notebook=execute_notebook)
    except OSError as err:
        where = getattr(err, "filename", None) or report_dir
        raise StorageError(err.errno or 0, f"cannot write the report into {report_dir}: "
                           f"{err.strerror or err} ({where})") from None


def _demo(args: argparse.Namespace) -> int:
    params = Path(__file__).resolve().parent.parent / DEMO_PARAMS
    # The demo always shows a fresh sweep: a second `demo` runs it again rather than refusing.
    argv = ["sweep", str(params), "--optimizers", "all", "--output-dir", args.output_dir,
            "--workers", str(args.workers), "--no-progress", "--report", "--overwrite"]
    epochs = args.epochs or (SEEDED_DEMO_EPOCHS if args.seeds and args.seeds > 1 else None)
    if epochs:
        argv += ["--epochs", str(epochs)]
    if args.seeds:
        argv += ["--seeds", str(args.seeds)]
    if args.lr_grid:
        argv += ["--lr-grid", args.lr_grid]
    return main(argv)
