"""What does executing a run's notebook with papermill cost over running it in-process?

One 1-epoch mnist_tiny run on digits (issue 8: 10.9 s through `sweep` against 3.9 s
through `run`), three ways, taking turns so that drifts in machine load hit all alike:

- in-process: run_experiment() in this process (torch and nbhelpers already imported);
- `run`:      `python -m nbhelpers run ...` in a fresh process;
- `sweep`:    `python -m nbhelpers sweep ...` with one run: the sweep process, papermill,
              a kernel, the notebook's own cells (figures, the hand step), its saves.

Then where the sweep's extra time goes, each part measured on its own:
- importing papermill in a fresh process (the sweep process pays it once per worker);
- a bare kernel: start, kernel_info, shutdown (jupyter_client);
- the kernel's imports (torch, matplotlib, nbhelpers as the notebook imports them);
- papermill's notebook saves (one nbformat write of the executed notebook, times the
  saves papermill made);
- each cell of the executed notebook (papermill records every cell's duration).

The sweep process's own start (Python, torch and nbhelpers to check the plan, papermill)
is paid once per sweep process; the kernel's start, the notebook's extras and its saves
are paid by every run. So the per-run overhead is (sweep - run) - sweep process start.

With --baseline DIR (an older checkout, e.g. `git archive <commit> | tar -x -C DIR`),
`run` and `sweep` of that tree take turns with this one's, under the same load.

Medians over --repeats; wall-clock seconds, with the machine's load average before and
after (other jobs share the cores; CPU seconds of the child processes are given beside).

    python benchmarks/papermill_overhead.py --repeats 5 [--baseline /tmp/before]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_FLAGS = ["--task", "image_classification", "--dataset", "digits", "--model", "mnist_tiny",
             "--optimizers", "adamw", "--epochs", "1", "--no-progress"]
KERNEL_IMPORTS = ("import matplotlib.pyplot, torch; from IPython.display import Markdown, display; "
                  "from nbhelpers.config import RunConfig; from nbhelpers.optim.equations import update_rule; "
                  "from nbhelpers.report.plots import run_curves_figure; from nbhelpers.training import Experiment")


SWEEP_PROCESS_IMPORTS = ("import torch; from nbhelpers.sweep.expand import plan_from_args; "
                         "import nbhelpers.sweep.run, nbhelpers.sweep.preflight; "
                         "from nbhelpers.registry import load_all; load_all(); "
                         "import nbhelpers.sweep.notebooks as n; "
                         "getattr(n, 'import_jsonschema_quickly', lambda: None)(); import papermill")


def _env(root: Path = ROOT) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_command(args: list[str], root: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one command, which must succeed."""
    cpu, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(args, env=_env(root), cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:5])} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return wall, _children_cpu() - cpu


def in_process(folder: Path) -> float:
    from nbhelpers.config import RunConfig
    from nbhelpers.training import run_experiment
    cfg = RunConfig(task="image_classification", dataset="digits", model="mnist_tiny", optimizer="adamw",
                    epochs=1, output_dir=str(folder), progress=False)
    start = time.perf_counter()
    run_experiment(cfg)
    return time.perf_counter() - start


def bare_kernel() -> float:
    from jupyter_client.manager import start_new_kernel
    start = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    kc.kernel_info()
    kc.get_shell_msg(timeout=60)
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    return time.perf_counter() - start


def kernel_imports() -> float:
    """Seconds the notebook's imports take in a fresh interpreter (what the kernel pays)."""
    code = f"import time; t = time.perf_counter(); {KERNEL_IMPORTS}; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return float(result.stdout.strip().splitlines()[-1])


def notebook_profile(notebook: Path) -> dict:
    """Per-cell durations papermill recorded, and what one save of this notebook costs."""
    import nbformat
    from papermill.iorw import write_ipynb
    nb = nbformat.read(notebook, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            first = next((line for line in cell.source.splitlines() if line and not line.startswith("#")), "")
            cells.append((first[:60], cell.metadata.get("papermill", {}).get("duration") or 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for _ in range(5):
            write_ipynb(nb, str(Path(tmp) / "x.ipynb"))
        save_s = (time.perf_counter() - start) / 5
    return {"total_s": nb.metadata.get("papermill", {}).get("duration"), "cells": cells, "save_s": save_s,
            "cells_in_notebook": len(nb.cells)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=None, help="an older checkout to compare with, taking turns")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "papermill_overhead.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    trees = {"": ROOT}
    if args.baseline:
        trees["baseline "] = Path(args.baseline).resolve()
    names = ["in-process", "sweep process start", "papermill import", "bare kernel", "kernel imports"]
    for prefix in trees:
        names += [f"{prefix}run", f"{prefix}sweep"]
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names if k.endswith(("run", "sweep", "start"))}
    profile = None
    with tempfile.TemporaryDirectory() as tmp:
        in_process(Path(tmp) / "warm-up")  # first-use costs (data load, lazy imports) out of the numbers
        for repeat in range(args.repeats):
            times["in-process"].append(in_process(Path(tmp) / f"in-{repeat}"))
            for prefix, root in trees.items():
                for command in ("run", "sweep"):
                    folder = Path(tmp) / f"{prefix.strip() or 'new'}-{command}-{repeat}"
                    wall, seconds = timed_command([sys.executable, "-m", "nbhelpers", command, *RUN_FLAGS,
                                                   "--output-dir", str(folder)], root)
                    times[prefix + command].append(wall)
                    cpu[prefix + command].append(seconds)
            sweep_dir = Path(tmp) / f"new-sweep-{repeat}"
            wall, seconds = timed_command([sys.executable, "-c", SWEEP_PROCESS_IMPORTS])
            times["sweep process start"].append(wall)
            cpu["sweep process start"].append(seconds)
            times["papermill import"].append(timed_command(
                [sys.executable, "-c", "import nbhelpers.sweep.notebooks as n; n.import_jsonschema_quickly(); "
                                       "import papermill"])[0])
            times["bare kernel"].append(bare_kernel())
            times["kernel imports"].append(kernel_imports())
            profile = notebook_profile(next((sweep_dir / "notebooks").glob("*.ipynb")))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["sweep"] - med["run"]
    per_run = overhead - med["sweep process start"]
    lines = [
        "# Papermill overhead per run (`benchmarks/papermill_overhead.py`)",
        "",
        f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} cores shared with other "
        f"jobs: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
        f"Medians of {args.repeats} repetitions, taking turns; wall-clock seconds.",
        "",
        "| | median s | all |",
        "| --- | ---: | --- |",
        *[f"| {k} | {med[k]:.2f} | {', '.join(f'{x:.1f}' for x in v)} |" for k, v in times.items()],
        "",
        "CPU seconds (child processes, median): "
        + ", ".join(f"`{k}` {statistics.median(v):.1f}" for k, v in cpu.items()) + ".",
        "",
        f"**Sweep of one over `run`: {overhead:.2f} s** (ratio {med['sweep'] / med['run']:.2f}); "
        f"less the sweep process's start, paid once per sweep: **{per_run:.2f} s per run**.",
        *([f"Baseline tree: sweep of one over `run` {med['baseline sweep'] - med['baseline run']:.2f} s "
           f"(ratio {med['baseline sweep'] / med['baseline run']:.2f})."] if args.baseline else []),
        "",
        "In CPU seconds, which other jobs on the machine disturb less than wall-clock time: sweep of one "
        "over `run` " + ", ".join(
            f"{(prefix or 'this tree ').strip()} {statistics.median(cpu[prefix + 'sweep']) - statistics.median(cpu[prefix + 'run']):.1f} s"
            for prefix in trees) + "; this tree's, less the sweep process's start: "
        f"{statistics.median(cpu['sweep']) - statistics.median(cpu['run']) - statistics.median(cpu['sweep process start']):.1f} s per run.",
        "",
        f"The last sweep's notebook: papermill's total {profile['total_s']:.2f} s; one save of the executed "
        f"notebook {profile['save_s'] * 1000:.0f} ms ({profile['cells_in_notebook']} cells).",
        "",
        "| cell (first line) | s |",
        "| --- | ---: |",
        *[f"| `{name}` | {seconds:.2f} |" for name, seconds in profile["cells"]],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
