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
# # Question answering: one reader, one optimizer
#
# This notebook trains one extractive question-answering model with one optimizer and
# writes a run directory that the sweep report reads. The model reads a question and a
# passage and points at the answer: a span of the passage, given by its first and last
# token. Step by step: the questions and passages, how long passages become windows, the
# model, the optimizer, one training step by hand, training, the curves, the test scores
# (recomputed from the predictions file) and what the model looks at on a few questions.
# Papermill executes one copy of it per run (`python -m nbhelpers sweep
# params/question_answering/...`); opened in JupyterLab it runs as it is on the offline
# `toy_qa` passages in about eight CPU minutes (the offline params file's smaller model, in two).
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "question_answering"  # the task (this notebook is for extractive QA)
dataset: str = "toy_qa"  # toy_qa (offline, generated), squad_v1 or tweet_qa
model: str = "bilstm_attention_qa"  # bilstm_attention_qa or transformer_qa
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 3  # maximum number of epochs (the seed's real-data runs use 20)
batch_size: int = 64  # windows per training batch
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (plateau for QA), cosine, plateau, step, onecycle, ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (5); 0 or less: off
label_smoothing: float = None  # None: task default (0; span QA is trained without it)
max_samples: int = None  # cap on the number of questions per split
val_max_samples: int = None  # a further cap on the validation windows (decoding them takes time)
eval_every: int = 1  # epochs between decoded validations (loss-only validation in between)
dataset_kwargs: dict = {}  # e.g. {"max_context_len": 256, "doc_stride": 128, "max_answer_len": 30}
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {}  # model knobs, e.g. {"hidden": 64} or {"d_model": 128}
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text tasks
target: float = None  # validation F1 for 'time to target'; None: the dataset's (85 on toy_qa)
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's experiment number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.data.qa import window_starts
from nbhelpers.optim.equations import update_rule
from nbhelpers.squad_metric import squad_scores
from nbhelpers.tasks.qa_inspect import highlight_html, inspect_example
from nbhelpers.training import Experiment

pd.set_option("display.max_colwidth", 120)
cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The questions and passages
#
# Each example is a question, a passage (the *context*) and one or more gold answers. On
# SQuAD the answers are spans of the passage; on TweetQA they are written freely by
# annotators, so the model trains on the span of the tweet that best matches them (highest
# SQuAD token F1) and is scored against what the annotators wrote. The splits are fixed:
# every optimizer is scored on the same questions.

# %%
data = exp.load_data()
info = data.info
print(data.description)
examples = data.train.examples
display(pd.DataFrame({"question": [e.question for e in examples[:6]],
                      "answers": [" | ".join(e.answers) for e in examples[:6]],
                      "passage": [e.context[:160] + ("..." if len(e.context) > 160 else "") for e in examples[:6]]}))

# %% [markdown]
# ## Tokens, windows and the answer's position
#
# A WordPiece tokenizer, trained on the training split, cuts the text into tokens and
# remembers which characters each token came from. The question and the passage go to the
# model separately. A passage longer than `max_context_len` tokens is cut into windows that
# overlap by `doc_stride` tokens, so an answer near a cut is whole in at least one window.
# Every window begins with a `[NULL]` slot: a training window that does not contain the whole
# answer points its start and end there ("not in this window"). At test time the answer is
# the best span over all windows of the question, mapped back to the passage's characters.

# %%
tokenizer = info["tokenizer"]
longest = max(range(len(examples)), key=lambda i: len(data.train.contexts[i][0]))
example = examples[longest]
n_tokens = len(data.train.contexts[longest][0])
print(f"question: {example.question}\nanswer:   {example.answers[0]}")
print(f"question tokens: {tokenizer.tokenize(example.question)}")
print(f"the longest training passage has {n_tokens} tokens; windows of {info['max_context_len']} "
      f"overlapping by {info['doc_stride']} start at tokens "
      f"{window_starts(n_tokens, info['max_context_len'], info['doc_stride'])}")
rows = []
for w in data.train.windows_of(longest):
    _, first, stop, start, end = data.train.windows[w]
    rows.append({"window": w, "tokens": f"{first}..{stop - 1}",
                 "answer inside": bool(start), "start label": start, "end label": end})
display(pd.DataFrame(rows))
batch = data.collate_fn([data.train[i] for i in range(min(4, len(data.train)))])
print("a batch:", {key: tuple(value.shape) for key, value in batch.items()})

# %% [markdown]
# ## The model
#
# Both models score every position $i$ of a window twice, $s_i$ (the answer starts here)
# and $e_i$ (it ends here), and the loss of a window is the sum of two cross-entropies,
# $-\log \mathrm{softmax}(s)_{\text{start}} - \log \mathrm{softmax}(e)_{\text{end}}$.
#
# * `bilstm_attention_qa`: a bidirectional LSTM reads the passage and another the question;
#   each passage token also carries one bit, "this token occurs in the question" (DrQA's
#   exact-match feature), which makes the person asked about easy to find. Each passage position $i$ attends to the question, $a_{ij} = \mathrm{softmax}_j(c_i \cdot
#   q_j / \sqrt{d})$, and gets its own summary of the question $u_i = \sum_j a_{ij} q_j$: the
#   question words that matter for this position. A fusion layer maps
#   $[c_i, u_i, c_i \odot u_i]$ (the product is where position and question agree) to new
#   features, more BiLSTM layers let the fused positions read each other, and two linear heads
#   give $s_i$ and $e_i$.
# * `transformer_qa`: two Transformer encoders (passage, question); the question's encoding is
#   averaged into one vector $q$, and each passage position becomes
#   $W[c_i, q, c_i \odot q]$, read by one more Transformer layer and the two heads.

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model)
print(f"\n{exp.cfg.model}: {n_params:,} parameters, {model.embedding.weight.numel():,} of them in the embedding")

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (embeddings, LSTM and
# linear weights); biases and LayerNorm gains are not decayed.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step, by hand
#
# One batch of training windows: the forward pass, the task's loss (`task.train_step`), the
# backward pass, the optimizer's step, and what changed: the loss on the same batch before
# and after (dropout off for that comparison), and how far each weight tensor moved
# relative to its size. It runs on a copy of the model with its own optimizer, inside a
# forked random state, so the training below is exactly what `python -m nbhelpers run` does.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(exp.task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = exp.task.train_step(practice_model, batch)  # forward, start + end cross-entropy
    loss.backward()
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"batch of {batch['context_ids'].shape[0]} windows: loss {loss_before:.4f} before, {loss_after:.4f} after "
      "one step; the relative update of each tensor is |Δw| / |w|:")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch, and adds what a careful loop needs: it
# clips the gradient's global norm at 1.0 before the step, runs under autocast when AMP is
# on (with a gradient scaler for fp16), and makes SAM's and GSAM's second pass through the
# same closure.

# %% [markdown]
# ## Training
#
# After every epoch the Trainer decodes the validation questions (every `eval_every`
# epochs; loss only in between), keeps the weights of the epoch with the best validation F1,
# lowers the LR when the validation loss stops falling (ReduceLROnPlateau) and stops early
# after `patience` epochs without a better F1. Its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
best_val = f"{fit.best_val:.2f}" if fit.best_val is not None else "n/a"
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation F1 {best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Left: validation F1 and exact match after each epoch (the training split is not decoded).
# Right: the span loss (start + end cross-entropy) of the training split (running average
# over the epoch, dropout on) and of the validation split.

# %%
history = pd.DataFrame(fit.history)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
for column, label in (("val_f1", "F1"), ("val_exact_match", "exact match")):
    if column in history:
        left.plot(history["epoch"], history[column], "--", marker="o", label=f"validation {label}")
if exp.cfg.target is not None:
    left.axhline(exp.cfg.target, color="grey", linestyle=":", label=f"target F1 {exp.cfg.target:g}")
left.set(xlabel="epoch", ylabel="score (0-100)", title="validation scores")
right.plot(history["epoch"], history["train_loss"], "-", marker="o", label="train")
right.plot(history["epoch"], history["val_loss"], "--", marker="o", label="validation")
right.set(xlabel="epoch", ylabel="start + end cross-entropy", title="loss")
for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Test scores
#
# The test split is evaluated once, with the weights of the best validation epoch. The
# scores are SQuAD v1.1's: both texts are lowercased, stripped of punctuation, of the words
# *a*, *an*, *the* and of extra spaces; exact match asks for equal texts, F1 counts shared
# words; each question keeps its best score over its gold answers. The same scores,
# recomputed from `predictions_test.jsonl` alone, must agree with the summary.

# %%
summary = exp.finish()
test = summary["test"] or {}
print(f"status: {summary['status']}")
print(f"test: F1 {test.get('f1', float('nan')):.2f}, exact match {test.get('exact_match', float('nan')):.2f}, "
      f"loss {test.get('loss', float('nan')):.4f}")
records = [json.loads(line) for line in exp.run.predictions("test").read_text().splitlines()]
again = squad_scores([r["prediction"] for r in records], [r["answers"] for r in records])
print(f"recomputed from {len(records)} predictions: F1 {again['f1']:.2f}, exact match {again['exact_match']:.2f}")
print(f"epochs to validation F1 {summary['target']}: {summary['epochs_to_target']}")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## What the model points at
#
# Three test questions: the passage with the gold answer on green and the model's answer
# underlined in red, and the start and end probabilities the model gives each token of the
# window its answer came from (at most 50 tokens around the likeliest start; token 0 is the
# `[NULL]` slot). A confident model puts one sharp peak on the first and the last token of
# the answer.

# %%
model.eval()
shown = [r["id"] for r in records if r["f1"] < 100][:2]           # up to two misses,
shown += [r["id"] for r in records if r["id"] not in shown][:3 - len(shown)]   # the rest hits
for index in shown:
    view = inspect_example(model, data.test, index, data.collate_fn, device=exp.device,
                           max_answer_len=info["max_answer_len"])
    display(HTML(f"<p><b>Q:</b> {view.question}<br><b>gold:</b> {' | '.join(view.answers)} &nbsp; "
                 f"<b>predicted:</b> {view.prediction or '(none)'}</p>"))
    display(HTML(highlight_html(view.context, view.gold_span, view.predicted_span)))
    # At most 50 tokens, around the most likely start, so the labels stay readable.
    peak = max(range(len(view.tokens)), key=view.start_probabilities.__getitem__)
    lo = max(0, min(peak - 20, len(view.tokens) - 50))
    positions = range(lo, min(len(view.tokens), lo + 50))
    fig, ax = plt.subplots(figsize=(12, 2.8))
    ax.bar([p - 0.2 for p in positions], [view.start_probabilities[p] for p in positions], width=0.4, label="start")
    ax.bar([p + 0.2 for p in positions], [view.end_probabilities[p] for p in positions], width=0.4, label="end")
    ax.set_xticks(list(positions), [view.tokens[p] for p in positions], rotation=90, fontsize=7)
    ax.set(ylabel="probability", ylim=(0, 1),
           title=f"window {view.window + 1} of {view.windows}, tokens {positions[0]}..{positions[-1]}: "
                 "start and end probabilities")
    ax.legend()
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## Where the model goes wrong
#
# Test questions whose answer is not exactly right, worst first. On `toy_qa` they show
# which confusions are left: the wrong person, or a city from the wrong relation.

# %%
wrong = sorted((r for r in records if r["exact_match"] < 100), key=lambda r: r["f1"])
print(f"{len(wrong)} of {len(records)} test answers are not exactly right")
if wrong:
    display(pd.DataFrame([{"question": r["question"], "prediction": r["prediction"],
                           "gold": " | ".join(r["answers"]), "F1": round(r["f1"], 1)} for r in wrong[:10]]))
