"""Translation and summarization on the CPU: training speed, decoding speed, and convergence.

Two parts, each writing a JSON file next to the report; the report
(benchmarks/results/seq2seq.md) is rendered from whichever JSON files exist:

  --part throughput   training tokens per second of each model (at its toy params file's size)
                      on toy_translation batches of 64; decoding sentences per second, greedy
                      and beam 5, on the same batch of 64 test sentences. Untrained models
                      never emit </s>, so every hypothesis runs to its maximum length: the
                      ratio is the per-step cost of 5 beams against one. The trained model of
                      the convergence part (when present) gives the ratio with real stopping.
  --part convergence  the claims of issue 10: with its params file, adamw brings
                      transformer_seq2seq to test BLEU >= 90 on toy_translation and
                      tiny_transformer_seq2seq to test ROUGE-L >= 80 on toy_summaries, each
                      within 5 minutes of training; plain sgd visibly behind; beam search
                      scores at least greedy's on the test split.

Usage: python benchmarks/seq2seq_throughput.py --part throughput|convergence|report [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# OpenMP threads that finish early spin while they wait for the others (libgomp's default): on a
# shared machine whose cores are busy the spinning thread takes a core from the one doing the
# work, and the run's CPU time grows several-fold (unet: 139 instead of 25 CPU-ms per image at
# 2 threads and a load of 4). Passive waiting must be chosen before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbhelpers.config import load_params  # noqa: E402
from nbhelpers.registry import MODELS, TASKS  # noqa: E402
from nbhelpers.sweep.expand import plan_from_args  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TIME_GOAL_S = 300.0
GOALS = {"machine_translation": ("bleu", 90.0), "text_summarization": ("rougeL", 80.0)}
RUNS = (("machine_translation", "toy_translation", "transformer_seq2seq"),
        ("text_summarization", "toy_summaries", "tiny_transformer_seq2seq"))


def machine() -> dict:
    return {"date": dt.date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "load_before": os.getloadavg()[0],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def _params(task: str, dataset: str, model: str) -> dict:
    return load_params(ROOT / "params" / task / f"{dataset}-{model}.yaml")


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------

def _data(task: str, dataset: str, options: dict):
    from nbhelpers.registry import DATASETS
    return DATASETS.get(dataset).factory(data_dir=None, max_samples=None, seed=0, download=False, **options)


def training_speed(model_name: str, data, steps: int, batch_size: int) -> dict:
    """Tokens per second of forward + backward + AdamW step, after 3 warm-up steps."""
    task = TASKS.get("machine_translation").factory(data=data)
    kwargs = _params("machine_translation", "toy_translation", model_name).get("model_kwargs", {})
    torch.manual_seed(0)
    model = MODELS.get(model_name).factory(info=data.info, **kwargs).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [data.collate_fn([data.train[i] for i in range(k * batch_size, (k + 1) * batch_size)])
               for k in range(steps + 3)]
    source = target = 0
    for k, batch in enumerate(batches):
        if k == 3:
            start = time.perf_counter()
        loss, _ = task.train_step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if k >= 3:
            source += int(batch["source_mask"].sum())
            target += int((batch["target_ids"][:, 1:] != 0).sum())
    seconds = time.perf_counter() - start
    return {"model": model_name, "model_kwargs": kwargs, "params": sum(p.numel() for p in model.parameters()),
            "steps": steps, "seconds": seconds, "target_tokens_per_s": target / seconds,
            "all_tokens_per_s": (source + target) / seconds, "sentences_per_s": steps * batch_size / seconds}


class NeverStops(torch.nn.Module):
    """An untrained model that (almost) never picks </s>: greedy and beam both decode to the
    maximum length, so their times compare the cost of a step, not when they happen to stop."""

    def __init__(self, model, eos_id: int):
        super().__init__()
        self.model, self.eos_id = model, eos_id

    def encode(self, source_ids, source_mask):
        return self.model.encode(source_ids, source_mask)

    def step(self, tokens, state):
        logits, state = self.model.step(tokens, state)
        logits[:, self.eos_id] -= 1e4  # finite: the forced </s> at the maximum length still scores
        return logits, state

    def reorder_state(self, state, index, beams_only=False):
        return self.model.reorder_state(state, index, beams_only=beams_only)


@torch.no_grad()
def decoding_speed(model, task, batch, repeats: int = 5) -> dict:
    """Sentences per second, greedy and beam 5, on one batch (best of `repeats`, alternating).

    The ratio is taken on process CPU time: on a shared machine wall time also counts the
    moments another process held the core, which CPU time does not."""
    model.eval()
    out = {method: {"seconds": float("inf"), "cpu_seconds": float("inf")} for method in ("greedy", "beam")}
    for _ in range(repeats):
        for method in ("greedy", "beam"):
            start, cpu = time.perf_counter(), time.process_time()
            hypotheses = task.decode(model, batch, method)
            entry = out[method]
            entry["seconds"] = min(entry["seconds"], time.perf_counter() - start)
            entry["cpu_seconds"] = min(entry["cpu_seconds"], time.process_time() - cpu)
            entry["mean_words"] = sum(len(h.split()) for h in hypotheses) / len(hypotheses)
    for entry in out.values():
        entry["sentences_per_s"] = len(batch["source_ids"]) / entry["cpu_seconds"]
    out["beam_over_greedy_time"] = out["beam"]["cpu_seconds"] / out["greedy"]["cpu_seconds"]
    out["beam_over_greedy_wall"] = out["beam"]["seconds"] / out["greedy"]["seconds"]
    return out


def throughput(args) -> dict:
    facts = machine()
    data = _data("machine_translation", "toy_translation", {})
    task = TASKS.get("machine_translation").factory(data=data)
    batch = data.collate_fn([data.test[i] for i in range(64)])
    rows = []
    for name in ("transformer_seq2seq", "tiny_transformer_seq2seq", "lstm_seq2seq", "bart_small"):
        row = training_speed(name, data, args.steps, 64)
        kwargs = _params("machine_translation", "toy_translation", name).get("model_kwargs", {})
        torch.manual_seed(0)
        model = MODELS.get(name).factory(info=data.info, **kwargs)
        row["decoding_untrained"] = decoding_speed(NeverStops(model, int(data.info["eos_id"])), task, batch)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"machine": facts, "rows": rows, "load_after": os.getloadavg()[0]}


# --------------------------------------------------------------------------------------------
# Convergence
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def beam_against_greedy(exp) -> dict:
    """Sentence by sentence on the test split: where beam 5 and greedy differ, which one the
    model scores higher (log-probability / length ** length_penalty, the ranking beam search
    uses) and which one sentence-level metric prefers. Beam below greedy in model score is a
    search error (greedy's path fell off the beam); beam above greedy in model score but
    below it in the metric is the model preferring a worse text: no search can fix that."""
    from nbhelpers.models.decoding import (beam_search, greedy_decode, hypothesis_lengths, max_target_lengths,
                                           sequence_log_prob)
    from nbhelpers.training.trainer import DeviceLoader

    task, info, model = exp.task, exp.data.info, exp.model.eval()
    a, b = info.get("decode_max_len", (1.5, 10))
    ids = dict(bos_id=int(info["bos_id"]), eos_id=int(info["eos_id"]), pad_id=int(info["pad_id"]))
    alpha = task.length_penalty
    counts = {"sentences": 0, "differ": 0, "beam_scores_lower": 0, "beam_metric_lower": 0,
              "beam_metric_higher": 0, "examples": []}
    metric = GOALS[exp.cfg.task][0]
    for batch in DeviceLoader(exp.test_loader, exp.device):
        lengths = max_target_lengths(batch["source_mask"], a, b, cap=int(info["max_target_len"]) - 1)
        greedy = greedy_decode(model, batch["source_ids"], batch["source_mask"], max_lengths=lengths, **ids)
        beam, beam_scores = beam_search(model, batch["source_ids"], batch["source_mask"], beam_size=task.beam_size,
                                        length_penalty=alpha, max_lengths=lengths, **ids)
        greedy_scores = (sequence_log_prob(model, batch["source_ids"], batch["source_mask"], greedy,
                                           bos_id=ids["bos_id"], pad_id=ids["pad_id"])
                         / hypothesis_lengths(greedy, ids["pad_id"]).float() ** alpha)
        g_text, b_text = (task.data.tokenizer.decode_batch(h.tolist()) for h in (greedy, beam))
        for i, reference in enumerate(batch["target_text"]):
            counts["sentences"] += 1
            if g_text[i] == b_text[i]:
                continue
            counts["differ"] += 1
            g_metric = task.corpus_metrics([g_text[i]], [reference])[metric]
            b_metric = task.corpus_metrics([b_text[i]], [reference])[metric]
            lower = float(beam_scores[i]) < float(greedy_scores[i]) - 1e-5
            counts["beam_scores_lower"] += int(lower)
            counts["beam_metric_lower"] += int(b_metric < g_metric)
            counts["beam_metric_higher"] += int(b_metric > g_metric)
            if len(counts["examples"]) < 3 and b_metric < g_metric:
                counts["examples"].append({"reference": reference, "greedy": g_text[i], "beam": b_text[i],
                                           "greedy_score": float(greedy_scores[i]),
                                           "beam_score": float(beam_scores[i]),
                                           "greedy_metric": g_metric, "beam_metric": b_metric})
    return counts


def one_run(task: str, dataset: str, model: str, optimizer: str, runs_dir: Path) -> dict:
    """The params file's run with `optimizer`, on the CPU; test metrics with beam and greedy.

    cpu_s is the process's CPU time (every thread, user + system) from building the data to
    the end of the test decoding: the budget is 600 CPU-seconds, 5 minutes of 2 busy cores."""
    from nbhelpers.tasks.seq2seq_views import decode_split
    from nbhelpers.training import Experiment
    from nbhelpers.training.rundir import read_jsonl

    params = ROOT / "params" / task / f"{dataset}-{model}.yaml"
    cfg = plan_from_args(params, {"optimizers": optimizer, "device": "cpu", "output_dir": str(runs_dir),
                                  "progress": False}).configs[0]
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    exp = Experiment(cfg)
    exp.load_data()
    exp.build_model()
    exp.build_optimizer()
    exp.build_trainer()
    fit = exp.fit()
    summary = exp.finish()
    cpu_s = time.process_time() - cpu_before
    metric, _ = GOALS[task]
    records = read_jsonl(exp.run.predictions("test"))
    greedy = decode_split(exp, "test", "greedy")
    greedy_scores = exp.task.corpus_metrics(greedy, [r["reference"] for r in records])
    batch = next(iter(exp.test_loader))
    speed = decoding_speed(exp.model, exp.task, batch)
    return {"task": task, "dataset": dataset, "model": model, "optimizer": optimizer, "lr": exp.choice.lr,
            "status": summary["status"], "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
            "test": summary["test"], "test_greedy": greedy_scores, "metric": metric,
            "train_time_s": summary["train_time_s"], "total_time_s": summary["total_time_s"],
            "time_to_target_s": summary["time_to_target_s"], "target": summary["target"],
            "curve": [(r["epoch"], r["wall_s"], r.get(f"val_{metric}")) for r in fit.history],
            "decoding_trained": speed, "params": summary["params_total"], "cpu_s": cpu_s,
            "epochs": cfg.epochs, "load": [load_before, os.getloadavg()[0]],
            "beam_against_greedy": beam_against_greedy(exp)}


def convergence(args) -> dict:
    facts, rows = machine(), []
    with tempfile.TemporaryDirectory() as folder:
        for task, dataset, model in RUNS:
            if task not in args.tasks.split(","):
                continue
            for optimizer in args.optimizers.split(","):
                row = one_run(task, dataset, model, optimizer, Path(folder))
                rows.append(row)
                print(json.dumps(row), flush=True)
    return {"machine": facts, "rows": rows, "load_after": os.getloadavg()[0]}


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def _machine_line(m: dict, after: float) -> str:
    before = "not recorded" if m.get("load_before") is None else f"{m['load_before']:.1f}"
    policy = f" (OMP_WAIT_POLICY={m['omp_wait_policy']})" if m.get("omp_wait_policy") else ""
    return (f"Measured {m['date']}: torch {m['torch']}, {m['threads']} intra-op threads{policy}, {m['cpus']} CPU cores "
            f"({m['machine']}); 1-minute load average {before} before and {after:.1f} after"
            + (f" ({m['load_note']})" if m.get("load_note") else "") + ". "
            "The machine is shared: a load average above the core count means other processes competed "
            "for the cores, and every time below is then an upper bound.")


def render() -> str:
    lines = ["# Translation and summarization on the CPU", ""]
    path = RESULTS / "seq2seq_throughput.json"
    if path.exists():
        data = json.loads(path.read_text())
        lines += ["## Training and decoding speed", "", _machine_line(data["machine"], data["load_after"]), "",
                  "Training: forward, backward and an AdamW step on toy_translation batches of 64 sentence pairs, "
                  "each model at its toy params file's size. Decoding: the same 64 test sentences, greedy and "
                  "beam 5, untrained weights with </s> pushed down until the maximum length (1.5 x source + 10 "
                  "pieces), so both decode the same number of steps and the ratio is the cost of a beam step. "
                  "Sentences per second and the ratio are on process CPU time, best of 5 alternating runs.", "",
                  "| model | size | parameters | target tokens/s | all tokens/s | greedy sent./s | beam 5 sent./s "
                  "| beam time / greedy time |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in data["rows"]:
            d = r["decoding_untrained"]
            lines.append(f"| {r['model']} | {json.dumps(r['model_kwargs'])} | {r['params']:,} | "
                         f"{r['target_tokens_per_s']:,.0f} | {r['all_tokens_per_s']:,.0f} | "
                         f"{d['greedy']['sentences_per_s']:.1f} | {d['beam']['sentences_per_s']:.1f} | "
                         f"{d['beam_over_greedy_time']:.2f} |")
        lines.append("")
    for path in sorted(RESULTS.glob("seq2seq_convergence*.json")):
        data = json.loads(path.read_text())
        lines += ["## Convergence on the offline sets", "", _machine_line(data["machine"], data["load_after"]), "",
                  "Each run is its params file as it is (`python -m nbhelpers run "
                  "params/<task>/<file>.yaml --optimizers <name> --device cpu`); the test split is decoded "
                  "with beam 5 (the summary's number) and, for comparison, greedily.", "",
                  "| task | model | optimizer | lr | epochs | training wall time (s) | process CPU (s) "
                  "| load (start, end) | test (beam 5) | test (greedy) "
                  "| goal reached at (val, wall) | beam 5 / greedy time on 64 test sentences |",
                  "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|"]
        for r in data["rows"]:
            metric = r["metric"]
            reached = (f"{r['time_to_target_s']:.0f} s" if r["time_to_target_s"] is not None else "not reached")
            cpu = f"{r['cpu_s']:.0f}" if r.get("cpu_s") is not None else "n/a"
            load = f"{r['load'][0]:.1f}, {r['load'][1]:.1f}" if r.get("load") else "n/a"
            lines.append(f"| {r['task']} | {r['model']} | {r['optimizer']} | {r['lr']:g} | {r['epochs_run']} | "
                         f"{r['train_time_s']:.0f} | {cpu} | {load} | {metric} {r['test'][metric]:.2f} | "
                         f"{r['test_greedy'][metric]:.2f} | {reached} | "
                         f"{r['decoding_trained']['beam_over_greedy_time']:.2f} |")
        compared = [r for r in data["rows"] if r.get("beam_against_greedy")]
        if compared:
            lines += ["", "Beam 5 against greedy, sentence by sentence on the test split (model score: "
                      "log-probability / length, the ranking beam search uses; metric: the sentence's own "
                      "BLEU or ROUGE-L):", "",
                      "| model | optimizer | sentences | hypotheses differ | beam's model score lower "
                      "(search error) | beam's metric lower | beam's metric higher |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            for r in compared:
                c = r["beam_against_greedy"]
                lines.append(f"| {r['model']} | {r['optimizer']} | {c['sentences']} | {c['differ']} | "
                             f"{c['beam_scores_lower']} | {c['beam_metric_lower']} | {c['beam_metric_higher']} |")
        lines += ["", "Validation curves (metric after each epoch, cumulative training seconds in brackets):", ""]
        for r in data["rows"]:
            points = ", ".join(f"{v:.1f} ({s:.0f} s)" for _, s, v in r["curve"] if v is not None)
            lines.append(f"- {r['model']} / {r['optimizer']} ({r['metric']}): {points}")
        lines += ["", "Verdict:", ""] + [f"- {line}" for line in verdict(data["rows"])] + [""]
    notes = RESULTS / "seq2seq_notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """The claims, checked on the rows of one convergence file."""
    lines = []
    by_optimizer = {r["optimizer"]: r for r in rows}
    adamw, sgd = by_optimizer.get("adamw"), by_optimizer.get("sgd")
    if adamw:
        metric, goal = GOALS[adamw["task"]]
        value = adamw["test"][metric]
        cpu = adamw.get("cpu_s")
        budget = ("" if cpu is None else
                  f" and {cpu:.0f} s of process CPU time ({'within' if cpu <= 2 * TIME_GOAL_S else 'OVER'} the "
                  "600 CPU-seconds that 5 minutes on 2 cores give; the criterion, as wall time on this shared "
                  "machine depends on the other processes)")
        lines.append(f"{adamw['task']}: adamw test {metric} {value:.2f} (goal {goal:g}: "
                     f"{'reached' if value >= goal else 'NOT reached'}) after {adamw['train_time_s']:.0f} s of "
                     f"training wall time{budget}.")
        if sgd:
            lines.append(f"sgd: test {metric} {sgd['test'][metric]:.2f}, {value - sgd['test'][metric]:.2f} below adamw.")
    for r in rows:
        metric = r["metric"]
        beam, greedy = r["test"][metric], r["test_greedy"][metric]
        lines.append(f"{r['optimizer']}: beam 5 {beam:.4f} vs greedy {greedy:.4f} "
                     f"({'beam >= greedy' if beam >= greedy else 'beam BELOW greedy'}).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("throughput", "convergence", "report"), required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--optimizers", default="adamw,sgd")
    parser.add_argument("--tasks", default="machine_translation,text_summarization",
                        help="convergence: which of the two tasks to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part != "report":
        result = throughput(args) if args.part == "throughput" else convergence(args)
        name = args.part if args.part == "throughput" else f"convergence-{args.tasks.replace(',', '-')}"
        path = RESULTS / f"seq2seq_{name}.json"
        if args.part == "convergence" and path.exists():
            # Rows of optimizers not rerun stay (one optimizer can be rerun alone).
            rerun = set(args.optimizers.split(","))
            kept = [r for r in json.loads(path.read_text())["rows"] if r["optimizer"] not in rerun]
            result["rows"] += kept
        path.write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "seq2seq.md").write_text(render())
    print(f"wrote {RESULTS / 'seq2seq.md'}")


if __name__ == "__main__":
    main()
