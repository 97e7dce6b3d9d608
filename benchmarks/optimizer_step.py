"""Time one optimizer step of each optimizer in nbhelpers.optim, relative to torch's AdamW.

A ~10M-parameter transformer-like stack (nn.Linear weights and biases, LayerNorm gains: 2-D
and 1-D tensors) on the CPU. Every optimizer steps the same parameters, with the same fixed
random gradients copied into .grad before each step (outside the timed region), in a
round-robin over optimizers repeated --repeats times after --warmup untimed rounds; the
median time of each is reported as a ratio to the median of torch.optim.AdamW(foreach=True).
pytorch_optimizer's implementation of each rule, where it has one, runs in the same rounds.

SAM and GSAM take a second forward/backward inside step(closure), so they are timed
separately on a small batch: the time of step(closure) over the time of "AdamW step + one
forward/backward". pytorch_optimizer's GSAM computes the gradient at p inside its step too,
so the forward/backward timed in the same round is subtracted from its step time (marked).

Usage: python benchmarks/optimizer_step.py [--repeats 30] [--threads 2,1] [--no-sam] [--no-po]
Writes the markdown table to benchmarks/results/optimizer_step.md (see --output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbhelpers.optim.adabelief import AdaBelief  # noqa: E402
from nbhelpers.optim.gsam import GSAM  # noqa: E402
from nbhelpers.optim.lamb import LAMB  # noqa: E402
from nbhelpers.optim.lars import LARS  # noqa: E402
from nbhelpers.optim.lion import Lion  # noqa: E402
from nbhelpers.optim.sam import SAM  # noqa: E402
from nbhelpers.optim.yogi import Yogi  # noqa: E402

TARGET = 1.3  # the goal: each element-wise rule at most 1.3x AdamW


class Block(nn.Module):
    def __init__(self, *, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv, self.out = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.up, self.down = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        att = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.down(nn.functional.gelu(self.up(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, *, vocab: int, d_model: int, layers: int, heads: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList(Block(d_model=d_model, heads=heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))


def element_wise_optimizers(params, with_po: bool) -> dict[str, tuple[str, Callable]]:
    """name -> (group, factory). Decay is on everywhere, so every rule runs its decay ops."""
    opts = {
        "torch AdamW": ("torch", lambda: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01,
                                                           foreach=True)),
        "torch Adam": ("torch", lambda: torch.optim.Adam(params, lr=1e-4, foreach=True)),
        "torch SGD-momentum": ("torch", lambda: torch.optim.SGD(params, lr=1e-4, momentum=0.9,
                                                                 foreach=True)),
        "Lion": ("ours", lambda: Lion(params, lr=1e-5, weight_decay=0.1)),
        "LARS": ("ours", lambda: LARS(params, lr=1e-2, weight_decay=1e-4)),
        "LAMB": ("ours", lambda: LAMB(params, lr=1e-4, weight_decay=0.01)),
        "AdaBelief": ("ours", lambda: AdaBelief(params, lr=1e-4, weight_decay=0.01)),
        "Yogi": ("ours", lambda: Yogi(params, lr=1e-4, weight_decay=0.01)),
    }
    for name in ("Lion", "LARS", "LAMB", "AdaBelief", "Yogi"):
        opts[f"{name} (per-tensor)"] = ("per_tensor", _per_tensor(opts[name][1]))
    if with_po:
        import pytorch_optimizer as po

        opts.update({
            "po Lion": ("po", lambda: po.Lion(params, lr=1e-5, weight_decay=0.1)),
            "po LARS": ("po", lambda: po.LARS(params, lr=1e-2, weight_decay=1e-4)),
            "po Lamb": ("po", lambda: po.Lamb(params, lr=1e-4, weight_decay=0.01)),
            "po AdaBelief": ("po", lambda: po.AdaBelief(params, lr=1e-4, weight_decay=0.01)),
            "po Yogi": ("po", lambda: po.Yogi(params, lr=1e-4, weight_decay=0.01,
                                              weight_decouple=False)),
        })
    return opts


def _per_tensor(factory):
    def build():
        opt = factory()
        for group in opt.param_groups:
            group["foreach"] = False
        return opt
    return build


def time_element_wise(model, repeats: int, warmup: int, with_po: bool):
    params = [p for p in model.parameters()]
    gen = torch.Generator().manual_seed(0)
    fixed = [torch.randn(p.shape, generator=gen) * 1e-3 for p in params]
    opts = {name: (group, factory()) for name, (group, factory)
            in element_wise_optimizers(params, with_po).items()}
    times: dict[str, list[float]] = {name: [] for name in opts}
    for p, g in zip(params, fixed):
        p.grad = g.clone()
    names = list(opts)
    for rnd in range(warmup + repeats):
        # Rotate the order so that no optimizer always follows the same neighbour.
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            opt = opts[name][1]
            # Some implementations write into .grad (decay, trust ratio): restore it untimed.
            torch._foreach_copy_([p.grad for p in params], fixed)
            start = time.perf_counter()
            opt.step()
            elapsed = time.perf_counter() - start
            if rnd >= warmup:
                times[name].append(elapsed)
    sizes = {name: state_bytes(opt) for name, (_, opt) in opts.items()}
    groups = {name: group for name, (group, _) in opts.items()}
    return times, sizes, groups


def time_sam_family(model, repeats: int, warmup: int, with_po: bool, batch: int, seq: int,
                    vocab: int):
    params = [p for p in model.parameters()]
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab, (batch, seq), generator=gen)
    targets = torch.randint(0, vocab, (batch, seq), generator=gen)

    def forward_backward():
        for p in params:
            p.grad = None
        loss = nn.functional.cross_entropy(model(tokens).flatten(0, 1), targets.flatten())
        loss.backward()
        return loss

    entries: dict[str, tuple[str, Callable[[], float]]] = {}

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def fb_only():
        return timed(forward_backward)

    adamw = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01, foreach=True)

    def adamw_iteration():
        return timed(lambda: (forward_backward(), adamw.step()))

    entries["forward/backward"] = ("ref", fb_only)
    entries["AdamW step + forward/backward"] = ("ref", adamw_iteration)

    def sam_like(opt):
        def run():
            forward_backward()  # the gradient at p, untimed: step() starts from it
            return timed(lambda: opt.step(forward_backward))
        return run

    adamw_kwargs = dict(lr=1e-5, weight_decay=0.01, foreach=True)
    entries["SAM (AdamW base)"] = ("ours", sam_like(SAM(params, torch.optim.AdamW, rho=0.05,
                                                        **adamw_kwargs)))
    entries["GSAM (AdamW base)"] = ("ours", sam_like(GSAM(params, torch.optim.AdamW, rho=0.05,
                                                          alpha=0.3, **adamw_kwargs)))
    if with_po:
        import pytorch_optimizer as po

        entries["po SAM (AdamW base)"] = ("po", sam_like(po.SAM(
            params, torch.optim.AdamW, rho=0.05, foreach=True, **{
                k: v for k, v in adamw_kwargs.items() if k != "foreach"})))

        class ConstantRho:
            def step(self):
                return 0.05

        base = torch.optim.AdamW(params, **adamw_kwargs)
        po_gsam = po.GSAM(params, base, model=model, rho_scheduler=ConstantRho(), alpha=0.3,
                          foreach=True)

        def po_closure():  # its step calls this under no_grad, at p and at p + e
            with torch.enable_grad():
                return None, forward_backward().detach()

        def po_gsam_step():
            return timed(lambda: po_gsam.step(po_closure))

        entries["po GSAM (AdamW base) *"] = ("po", po_gsam_step)

    times: dict[str, list[float]] = {name: [] for name in entries}
    names = list(entries)
    for rnd in range(warmup + repeats):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            elapsed = entries[name][1]()
            if rnd >= warmup:
                times[name].append(elapsed)
    # Its step also runs the first forward/backward: take off the one timed in the same round.
    for name in times:
        if name.startswith("po GSAM"):
            times[name] = [t - f for t, f in zip(times[name], times["forward/backward"])]
    return times


def ratios(times: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over rounds of (time / the base's time in the same round).

    Other processes slow whole stretches of rounds; a ratio within a round cancels that
    better than a ratio of medians.
    """
    return {name: statistics.median(t / b for t, b in zip(ts, times[base]))
            for name, ts in times.items()}


PO_NAME = {"Lion": "po Lion", "LARS": "po LARS", "LAMB": "po Lamb", "AdaBelief": "po AdaBelief",
           "Yogi": "po Yogi"}


def element_wise_table(times, ratio, sizes, groups, n_params) -> list[str]:
    rows = ["| optimizer | implementation | median step (ms) | ratio to AdamW "
            "| pytorch_optimizer's ratio | state (MB) | state / params |",
            "|---|---|---:|---:|---:|---:|---:|"]
    label = {"torch": "torch (foreach)", "ours": "nbhelpers (foreach)",
             "per_tensor": "nbhelpers (per-tensor)", "po": "pytorch_optimizer (foreach)"}
    for name, ts in times.items():
        other = PO_NAME.get(name)
        po_ratio = f"{ratio[other]:.2f}" if other in ratio else ""
        rows.append(f"| {name} | {label[groups[name]]} | {statistics.median(ts) * 1e3:.1f} "
                    f"| {ratio[name]:.2f} | {po_ratio} | {sizes[name] / 2**20:.1f} "
                    f"| {sizes[name] / (4 * n_params):.2f} |")
    return rows


def sam_table(times, ratio) -> list[str]:
    rows = ["| step | median (ms) | ratio to AdamW step + one forward/backward |",
            "|---|---:|---:|"]
    for name, ts in times.items():
        rows.append(f"| {name} | {statistics.median(ts) * 1e3:.1f} | {ratio[name]:.2f} |")
    return rows


def verdicts(ratio: dict[str, float]) -> list[str]:
    lines = []
    for name, other in PO_NAME.items():
        ok = ratio[name] <= TARGET and (other not in ratio or ratio[name] <= ratio[other])
        vs = f", pytorch_optimizer {ratio[other]:.2f}x" if other in ratio else ""
        lines.append(f"- {name}: {ratio[name]:.2f}x AdamW{vs}: "
                     f"{'meets' if ok else 'MISSES'} the goal")
    return lines


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    ap.add_argument("--sam-repeats", type=int, default=15, help="timed SAM rounds (default 15)")
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=4, help="SAM timing batch (default 4)")
    ap.add_argument("--seq", type=int, default=32, help="SAM timing sequence length")
    default_threads = sorted({torch.get_num_threads(), 1}, reverse=True)
    ap.add_argument("--threads", default=",".join(map(str, default_threads)),
                    help="torch intra-op thread counts to time, comma-separated (default: "
                         "torch's, one per core, then 1, which other processes on the machine "
                         "disturb less); SAM/GSAM use the first")
    ap.add_argument("--no-sam", action="store_true", help="skip the SAM/GSAM timings")
    ap.add_argument("--no-po", action="store_true", help="skip pytorch_optimizer")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/optimizer_step.md")
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]

    with_po = not args.no_po
    if with_po:
        try:
            import pytorch_optimizer  # noqa: F401
        except ImportError:
            print("pytorch_optimizer is not installed: its columns are left out")
            with_po = False

    torch.manual_seed(0)
    model = TinyLM(vocab=args.vocab, d_model=args.d_model, layers=args.layers, heads=8)
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    n_vectors = sum(p.ndim <= 1 for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters in {n_tensors} tensors "
          f"({n_vectors} of them 1-D)")

    began = time.perf_counter()
    load_before = load_average()
    sections: list[str] = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"timing the element-wise rules with {threads} thread(s) ...")
        times, sizes, groups = time_element_wise(model, args.repeats, args.warmup, with_po)
        ratio = ratios(times, "torch AdamW")
        sections += [f"## Element-wise rules, {threads} torch thread(s)", "",
                     *element_wise_table(times, ratio, sizes, groups, n_params), "",
                     f"Goal: each of Lion, LARS, LAMB, AdaBelief, Yogi at most {TARGET}x AdamW "
                     "and not slower than pytorch_optimizer's:", "", *verdicts(ratio), ""]
    if not args.no_sam:
        torch.set_num_threads(thread_counts[0])
        print(f"timing SAM/GSAM with {thread_counts[0]} thread(s) ...")
        sam_times = time_sam_family(model, args.sam_repeats, 2, with_po, args.batch, args.seq,
                                    args.vocab)
        sections += [
            f"## SAM and GSAM, {thread_counts[0]} torch thread(s)",
            "",
            "SAM's step(closure) runs the closure (a forward/backward at the perturbed weights) "
            "inside it, so it is compared with what it replaces in a training loop: one AdamW "
            f"step plus one forward/backward (batch {args.batch} x {args.seq} tokens). The "
            "gradient at p is computed before step() and not timed, as the trainer computes it "
            "anyway. A ratio of 1.0 would mean that perturbing and restoring the weights were "
            "free; what is above 1 is that cost (a few passes over the weights, and for GSAM "
            "the gradient decomposition). The state size of SAM/GSAM is the base optimizer's: "
            "the perturbation buffers (a copy of the weights; GSAM also keeps g) exist only "
            "during step().",
            "",
            *sam_table(sam_times, ratios(sam_times, "AdamW step + forward/backward")),
            "",
            "\\* pytorch_optimizer's GSAM computes the gradient at p inside its step: the "
            "forward/backward timed in the same round is subtracted from its time.",
            "",
        ]
    took = time.perf_counter() - began

    command = "python benchmarks/optimizer_step.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    import importlib.metadata as md

    try:
        po_version = md.version("pytorch_optimizer")
    except md.PackageNotFoundError:
        po_version = "not installed"
    report = [
        "# Optimizer step time on the CPU",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- command: `{command}`",
        f"- torch {torch.__version__}, pytorch_optimizer {po_version}, "
        f"Python {platform.python_version()}",
        f"- machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; "
        f"load average (1/5/15 min) {load_before} before, {load_average()} after",
        f"- model: transformer-like stack, {n_params / 1e6:.2f}M float32 parameters in "
        f"{n_tensors} tensors ({n_vectors} 1-D: biases and LayerNorm gains)",
        f"- {args.repeats} timed rounds after {args.warmup} warm-up rounds, round-robin over all "
        "optimizers on the same parameters with fixed random gradients; the ratio is the "
        "median over rounds of (time / AdamW's time in the same round)",
        f"- took {took:.0f} s",
        "",
        "Weight decay is on for every optimizer (so its decay ops are timed): AdamW 0.01, "
        "Lion 0.1, "
        "LARS 1e-4, LAMB 0.01, AdaBelief 0.01 (decoupled), Yogi 0.01 (L2); torch Adam and SGD "
        "none. pytorch_optimizer runs with its defaults plus the same decay (its Yogi with "
        "weight_decouple=False, the L2 form); its variants differ in detail "
        "(tests/test_optim_rules.py). 'state' counts the tensors in optimizer.state (params are "
        "4 bytes each, so state/params = 2 means two buffers of the parameters' size).",
        "",
        "Other processes on the machine disturb these timings (see the load average; a load near "
        "the core count means another job was running). Timing in rounds and taking per-round "
        "ratios cancels most of it, but repeated runs under load moved single ratios by up to "
        "about 0.2; the 1-thread section is the less disturbed one.",
        "",
        *sections,
    ]
    text = "\n".join(report).rstrip() + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
