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
# # Sentiment analysis: one optimizer, one run
#
# This notebook trains one sentiment classifier (negative or positive) with one optimizer
# and writes a run directory that the sweep report reads. It walks through the data, the
# tokenization, the model, the optimizer's update rule, training, the curves, the test
# metrics and a few mistakes. Papermill executes one copy of it per optimizer
# (`python -m nbhelpers sweep params/sentiment_analysis/...`); in JupyterLab it runs as it is
# on the offline `lexicon_sentiment` data in a minute or two on a CPU.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "sentiment_analysis"  # the task (this notebook is for sentiment analysis)
dataset: str = "lexicon_sentiment"  # lexicon_sentiment (offline, generated), sst2 or imdb
model: str = "lstm_sentiment"  # lstm_sentiment or distilbert_sentiment
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 20  # maximum number of epochs (early stopping usually ends sooner)
batch_size: int = 64  # training batch size
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format (DistilBERT fine-tuning)
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (plateau for sentiment), cosine, plateau, step, onecycle, ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (3); 0 or less: off
label_smoothing: float = None  # None: task default (0.05)
max_samples: int = None  # cap on the training split (and on validation/test)
val_max_samples: int = None  # a further cap on the validation split
eval_every: int = 1  # epochs between full validations (loss-only in between)
dataset_kwargs: dict = {}  # dataset knobs, e.g. {"bptt": 128} for language models
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {}  # model knobs, e.g. {"hidden": 256, "layers": 2} or {"pretrained": False}
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text tasks
target: float = None  # validation accuracy for 'time to target'; None: 0.85
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.data.sentiment import lexicon_label
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.training import Experiment

pd.set_option("display.max_colwidth", 120)
cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Each item is a raw text and a label (0 negative, 1 positive). The splits are fixed (they
# do not move with the seed), so every optimizer is scored on the same validation and
# test texts.

# %%
data = exp.load_data()
classes = data.info["classes"]
print(data.description)
print(f"\ntrain {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,} texts")
samples = [data.train[i] for i in range(min(8, len(data.train)))]
display(pd.DataFrame({"text": [text[:300] for text, _ in samples],
                      "label": [classes[label] for _, label in samples]}))

# %% [markdown]
# ### How `lexicon_sentiment` is labelled
#
# The offline data are generated review sentences whose label follows a rule over a small
# lexicon of 18 positive and 18 negative words:
#
# * **negation**: *not*, *never* or *hardly* flips every sentiment word after it in its
#   clause, so "not bad" and "never felt boring" are positive and "hardly funny" negative;
# * **contrast**: in "X but Y" the clause after *but* decides ("good but boring" is negative);
# * **concession**: in "although X , Y" and "Y , although X" the main clause Y decides;
# * openers ("honestly"), intensifiers ("rather") and trailing phrases ("at times") are
#   neutral filler.
#
# Because contrast and concession always join clauses of opposite polarity and negation
# flips a clause, a bag of words (which ignores order) scores little better than chance;
# a model that reads the words in order can reach 100%.

# %%
examples = ["the movie was good", "the movie was not bad", "the plot never felt boring",
            "the acting was good but the plot was boring",
            "the acting was not great but the ending was superb",
            "although the script was dull , the cast was charming",
            "the cast was charming , although the script was dull"]
display(pd.DataFrame({"sentence": examples,
                      "rule": [classes[lexicon_label(s)] for s in examples]}))

# %% [markdown]
# ## The model and its tokenizer
#
# The dataset keeps raw texts; the model decides how they become token ids. Building the
# model installs its tokenizer in the data's collate function:
#
# * `lstm_sentiment` reads lowercased word tokens, with a vocabulary of the most frequent
#   training words plus `<pad>` and `<unk>`. A **bidirectional LSTM** reads the embedded
#   words left to right and right to left; at each word $t$ a cell updates its memory
#   $c_t = f_t \odot c_{t-1} + i_t \odot \tanh(W_c [h_{t-1}, x_t])$ through forget and input
#   gates $f_t, i_t$ and emits $h_t = o_t \odot \tanh(c_t)$, so a state after *not* or *but*
#   can carry that word's effect to the words that follow. The two directions' states are
#   max-pooled over the real (unpadded) words and a linear layer after dropout 0.5 gives the
#   logits.
# * `distilbert_sentiment` reads WordPiece tokens with `[CLS]` and `[SEP]`. Each of its 6
#   transformer layers lets every token attend to every other,
#   $\mathrm{softmax}(QK^\top/\sqrt{d})V$ over 12 heads, so the *not* can change the meaning of
#   *bad* wherever it stands; the `[CLS]` token's final state feeds the classifier. With the
#   pretrained `distilbert-base-uncased` weights this is fine-tuning; without them (offline,
#   not cached) it trains from random weights with a vocabulary built from the training
#   split, and warns.

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model if n_params < 5_000_000 else type(model).__name__)
print(f"{exp.cfg.model}: {n_params:,} parameters")

tokenizer = data.info["tokenizer"]
text, label = data.val[0]
ids = data.collate_fn([(text, label)])["input_ids"][0].tolist()
print(f"\ntokenizer: {type(tokenizer).__name__}, vocabulary {len(tokenizer):,}, "
      f"texts cut at {data.info['max_len']} tokens")
print(f"text:   {text[:200]}")
print(f"tokens: {tokenizer.convert_ids_to_tokens(ids)[:40]}")
print(f"ids:    {ids[:40]}")
batch = data.collate_fn([data.train[i] for i in range(min(4, len(data.train)))])
print("a batch:", {key: tuple(value.shape) for key, value in batch.items()})

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (embedding, LSTM and
# linear weights); biases and LayerNorm scales are not decayed.

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
# The Trainer clips the global gradient norm at 1.0, halves the LR when the validation
# loss stops falling (ReduceLROnPlateau), keeps the weights of the best validation epoch
# and stops early after `patience` epochs without a better validation accuracy. It writes
# `history.jsonl`, `best_model.pt` and `last.pt` as it goes; its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Solid lines are the training split (running average over the epoch, dropout on), dashed
# lines the validation split after the epoch.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="cross-entropy (smoothed labels)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is evaluated once, with the weights of the best validation epoch.

# %%
summary = exp.finish()
print(f"status: {summary['status']}")
print(f"test: {summary['test']}")
print(f"epochs to {summary['target']:.0%} validation accuracy: {summary['epochs_to_target']}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Where the model goes wrong
#
# Validation texts the best checkpoint gets wrong, most confident mistakes first. On
# `lexicon_sentiment` they show which part of the rule (negation, contrast, concession)
# the model has not learned yet.

# %%
model.eval()
probabilities = []
with torch.no_grad():
    for batch in exp.val_loader:  # not shuffled: rows follow data.val
        logits = model(batch["input_ids"].to(exp.device), batch["attention_mask"].to(exp.device))
        probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
probabilities = torch.cat(probabilities)
predicted = probabilities.argmax(dim=1)
rows = [(data.val[i][0][:300], classes[data.val[i][1]], classes[int(predicted[i])],
         float(probabilities[i, predicted[i]]))
        for i in range(len(data.val)) if int(predicted[i]) != data.val[i][1]]
rows.sort(key=lambda row: -row[3])
print(f"{len(rows)} of {len(data.val)} validation texts misclassified")
if rows:
    display(pd.DataFrame(rows[:10], columns=["text", "label", "predicted", "confidence"]))
