# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Text generation: one language model, one optimizer
#
# This notebook trains one word-level language model with one optimizer and writes a
# run directory that the sweep report reads. Step by step: the text and its vocabulary,
# the model, the optimizer's update rule, training, the perplexity curves, the test
# metrics and a sample of text written by the trained model. Papermill executes one copy
# of it per run (`python -m nbhelpers sweep params/text_generation/...`); opened in
# JupyterLab it runs as it is on the offline `grammar_lm` corpus, a toy English whose
# best possible perplexity is known exactly, in a few CPU minutes.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the
# notebook and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "text_generation"  # the task (this notebook is for language modelling)
dataset: str = "grammar_lm"  # grammar_lm (offline, known best perplexity), wikitext2 or ptb_text_only
model: str = "gpt_small"  # gpt_small (causal Transformer), gru_lm or lstm_lm
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 6  # maximum number of epochs
batch_size: int = 32  # sequences of bptt tokens per batch
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (cosine for language models), cosine, plateau, step, ...
scheduler_kwargs: dict = {}  # e.g. {"milestones": [3, 5]} for multistep
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (3); 0 or less: off
label_smoothing: float = None  # None: task default (0: perplexity is defined on the plain loss)
max_samples: int = None  # cap on the number of chunks per split
val_max_samples: int = None  # a further cap on the validation split
eval_every: int = 1  # epochs between full validations (loss-only in between)
dataset_kwargs: dict = {}  # dataset knobs, e.g. {"bptt": 128} for language models
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes (chunks are in memory: 0 is fastest)
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {}  # model knobs, e.g. {"layers": 2} or {"d_model": 128}
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text
target: float = None  # validation perplexity for 'time to target'; None: task default (none)
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.data.text_generation import Vocabulary, sample_text
from nbhelpers.models.language_models import generate
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.training import Experiment

cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Words are split on whitespace and every sentence (line) ends with `<eos>`. The
# vocabulary comes from the training split; anything outside it reads `<unk>`. Each
# split is one long stream of word ids, cut into contiguous chunks: the model reads
# `bptt` words and, at every position, predicts the next one (the target is the input
# shifted by one word). The chunks never change with the seed, so every optimizer is
# scored on the same text.

# %%
data = exp.load_data()
info = data.info
vocab = Vocabulary(info["vocabulary"])
print(data.description)
print(f"\nvocabulary: {info['vocab_size']:,} words; chunks of {info['bptt']} tokens: "
      f"train {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,}")
print("\nthe start of the first training chunk:\n")
print(sample_text(data, "train", 0))

inputs, targets = data.train[0]
print(f"\ninput  ids {inputs[:8].tolist()} ...\ntarget ids {targets[:8].tolist()} ... (one word ahead)")

# %% [markdown]
# On `grammar_lm` the text comes from a known random process, so the lowest perplexity
# any model can reach is known too: it is exp of the process's entropy rate, computed
# exactly from its stationary distribution (with a small correction for the first word
# of each chunk, which is predicted without context). Perplexity is exp of the mean
# negative log-likelihood per token: a perplexity of 20 means the model is as unsure as
# if it picked among 20 equally likely words.

# %%
best = info.get("best_perplexity")
if best is not None:
    levels = pd.DataFrame({
        "perplexity": [info["unigram_perplexity"], info["bigram_perplexity"], best,
                       info["oracle_validation_perplexity"]],
    }, index=["best without context (word frequencies)", "best seeing only the previous word",
              "best possible (the true process)", "the true process on this validation sample"])
    display(levels.round(2))
else:
    print(f"{exp.cfg.dataset}: the best possible perplexity of real text is unknown; "
          f"a uniform guess over the vocabulary scores {info['vocab_size']:,}")

# %% [markdown]
# ## The model

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model)
print(f"\n{exp.cfg.model}: {n_params:,} parameters (the output layer shares the embedding matrix)")

if getattr(model, "max_len", None):
    explanation = (
        "**Causal attention.** Every position looks at all earlier positions at once, through "
        "self-attention whose mask hides the future: position *t* may attend to positions 0..*t* "
        "only, so the prediction of word *t+1* never sees it. All positions of a chunk are computed "
        "in parallel, and learned position embeddings tell the model where each word stands.")
else:
    explanation = (
        "**Recurrence.** The model reads the chunk one word at a time and carries what it has "
        "seen in a hidden state, updated by gates that decide what to keep and what to forget. "
        "The prediction at position *t* depends on words 0..*t* through that state; positions are "
        "computed one after another, and each chunk starts from a zero state.")
display(Markdown(explanation))

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (embeddings and the
# weights of linear layers); biases and LayerNorm gains are not decayed. Gradients are
# clipped to a global norm of 1.0, the usual guard for language models.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step by hand
#
# Before the Trainer takes over, here is the step it repeats for every batch: the forward
# pass and the task's loss, the backward pass, the optimizer's step, and what the step
# changed. It runs on a copy of the model with its own optimizer, so the run below is
# exactly what it would be without this cell.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(exp.task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = exp.task.train_step(practice_model, batch)  # forward pass and the task's loss
    loss.backward()  # gradients of the batch's mean loss
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"{exp.cfg.optimizer}: loss on this batch {loss_before:.4f} before the step, {loss_after:.4f} after")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch of every epoch, and adds what a real
# run needs: gradient clipping (`max_grad_norm`) between the backward pass and the step,
# mixed precision (`amp`; fp16 with a gradient scaler), the second forward/backward pass of
# SAM and GSAM at the perturbed weights (the closure `optimizer_step` passes above), the LR
# schedule, and a check that the loss stays finite.

# %% [markdown]
# ## Training
#
# The Trainer evaluates on the validation split after every epoch, keeps the weights of
# the best epoch (lowest validation perplexity), stops early when it has not improved for
# `patience` epochs, and writes `history.jsonl`, `best_model.pt` and `last.pt` as it goes.
# Its clock counts training only, not evaluation.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
best_val = f"{fit.best_val:.3f}" if fit.best_val is not None else "n/a"
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Perplexity of the training split (running average over the epoch, dropout on) and of
# the validation split (after the epoch), over epochs and over training seconds. The
# y-axis is logarithmic when the values span more than a factor of ten.
# On `grammar_lm` the dotted line is the best possible perplexity.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary, reference=best,
                        loss_label="token cross-entropy (nats)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is evaluated once, with the weights of the best validation epoch.

# %%
summary = exp.finish()
test = summary["test"] or {}
print(f"status: {summary['status']}")
print(f"test: loss {test.get('loss', math.nan):.4f} nats/token, perplexity {test.get('perplexity', math.nan):.3f}")
if best is not None and test:
    print(f"test perplexity / best possible = {test['perplexity'] / best:.3f}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Text written by the model
#
# Starting from `<eos>` (the start of a sentence), the trained model samples one word at
# a time from its predicted distribution (temperature 1, `<unk>` excluded).

# %%
generator = torch.Generator().manual_seed(exp.cfg.seed)
new_ids = generate(model, [info["eos_id"]], n=60, temperature=1.0, generator=generator,
                   banned_ids=[info["unk_id"]])
print(vocab.decode(new_ids))
