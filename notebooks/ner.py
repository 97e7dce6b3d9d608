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
# # Named-entity recognition: one optimizer, one run
#
# This notebook trains one BiLSTM-CRF tagger to find the names of people (PER),
# organisations (ORG), places (LOC) and other names (MISC) in sentences, with one optimizer,
# and writes a run directory that the sweep report reads. It walks through the data and its
# IOB2 tags, the model and its CRF, the optimizer's update rule, one training step by hand,
# training, the curves, the test scores per entity type, the sentences the model tags, and
# the transition scores the CRF learned. Papermill executes one copy per optimizer
# (`python -m nbhelpers sweep params/ner/...`); in JupyterLab it runs as it is on the
# offline `gazetteer_ner` data in a few minutes on a CPU.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "ner"  # the task (this notebook is for named-entity recognition)
dataset: str = "gazetteer_ner"  # gazetteer_ner (offline, generated), conll2003 or wikiann_en
model: str = "bilstm_crf_charcnn_ner"  # bilstm_crf_charcnn_ner (alias lstm_crf_charcnn_ner) or lstm_crf_ner
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 5  # maximum number of epochs (20 in the seed guide's runs on the real datasets)
batch_size: int = 32  # training batch size (sentences)
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "auto"  # auto (plateau for NER), cosine, plateau, step, onecycle, ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.0  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (5); 0 or less: off
label_smoothing: float = None  # None: task default (0: a CRF's likelihood is not smoothed)
max_samples: int = None  # cap on each split (train, validation, test), in sentences
val_max_samples: int = None  # a further cap on the validation split
eval_every: int = 1  # epochs between full (Viterbi) validations; loss-only in between
dataset_kwargs: dict = {}  # dataset knobs, e.g. {"min_freq": 2} or {"train_size": 3000} (gazetteer_ner)
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision (the CRF itself always runs in float32)
model_kwargs: dict = {}  # model knobs, e.g. {"hidden": 100, "word_dropout": 0.1, "constrain_transitions": False}
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text tasks
target: float = None  # validation F1 for 'time to target'; None: 0.90
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
from collections import Counter

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.data.ner import entity_spans, tag_sentence
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.tasks.ner import seqeval_scores
from nbhelpers.tasks.ner_display import per_type_f1_figure, per_type_table, sentences_html, transition_figure
from nbhelpers.training import Experiment
from nbhelpers.training.rundir import read_jsonl

pd.set_option("display.max_colwidth", 120)
cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Each item is a sentence (a list of words) and one tag per word in the **IOB2** scheme:
# `B-X` begins an entity of type X, `I-X` continues it, `O` is outside every entity. So
# "*Anna Kowalsen visited New Tarburg*" is tagged `B-PER I-PER O B-LOC I-LOC`. The splits
# are fixed (they do not move with the seed), so every optimizer is scored on the same
# validation and test sentences.

# %%
data = exp.load_data()
tag_names = data.info["tag_names"]
print(data.description)
print(f"\ntags: {', '.join(tag_names)}")
rows = []
for split, dataset_split in (("train", data.train), ("validation", data.val), ("test", data.test)):
    kinds = Counter(kind for i in range(len(dataset_split))
                    for _, _, kind in entity_spans([tag_names[t] for t in dataset_split[i][1]]))
    rows.append({"split": split, "sentences": len(dataset_split), **kinds})
display(pd.DataFrame(rows).set_index("split").fillna(0).astype(int))
for i in range(min(6, len(data.train))):
    words, tags = data.train[i]
    print(tag_sentence(words, [tag_names[t] for t in tags]))

# %% [markdown]
# ### Names the model has never seen
#
# On `gazetteer_ner` the validation and test names are built from stems that never occur in
# training, so a model that only memorised the training names sees unknown words there. Two
# things still give the type away: the **context** ("shares of ... rose", "the mayor of
# ...") and the **name itself**: surnames end in *-son, -ski, -ez*, towns in *-burg,
# -ville, -stad*, companies in *-tex, -corp* or carry a word like *Bank*, events carry *Cup*
# or *Open*. Some sentences give no context cue at all ("... was in the news again"); there
# only the spelling helps, which is what the character CNN reads.

# %%
train_names = {" ".join(w[s:e]) for w, t in (data.train[i] for i in range(len(data.train)))
               for s, e, _ in entity_spans([tag_names[x] for x in t])}
test_names = [" ".join(w[s:e]) for w, t in (data.test[i] for i in range(len(data.test)))
              for s, e, _ in entity_spans([tag_names[x] for x in t])]
unseen = sum(name not in train_names for name in test_names) / max(len(test_names), 1)
print(f"{unseen:.0%} of the {len(test_names):,} test entities never occur as an entity in training")

# %% [markdown]
# ## The model and its CRF
#
# Each word becomes a vector: a learned word embedding (`<unk>` for words outside the
# training vocabulary), and, for `bilstm_crf_charcnn_ner`, a **character CNN** feature:
# 30-dimensional character embeddings, 100 filters of width 3 slid over the word's letters,
# and the maximum of each filter over the word (Ma & Hovy 2016). During training, **word
# dropout** replaces a few word ids by `<unk>` so that the model learns what to do with an
# unknown name. A **bidirectional LSTM** reads the sentence both ways and a linear layer
# turns its state at word $t$ into **emission scores** $e_t(y)$, one per tag.
#
# A **conditional random field** scores a whole tag sequence $y_1 \dots y_n$ at once:
#
# $$\mathrm{score}(y) = s_{\mathrm{start}}(y_1) + \sum_{t=1}^{n} e_t(y_t) + \sum_{t=2}^{n} A_{y_{t-1}, y_t} + s_{\mathrm{end}}(y_n),
# \qquad p(y \mid x) = \frac{\exp \mathrm{score}(y)}{\sum_{y'} \exp \mathrm{score}(y')}.$$
#
# The learned transition scores $A$ let it prefer `B-PER I-PER` over `B-PER I-LOC`. The
# loss is $-\log p(\text{gold tags})$, with the sum over all $K^n$ sequences computed by
# the **forward algorithm** in $O(nK^2)$; prediction takes the best sequence by **Viterbi**.
# Transitions IOB2 forbids (an `I-X` first, after `O`, or after another type) are pinned to
# $-10^4$ unless `constrain_transitions=False`.

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model)
print(f"{exp.cfg.model}: {n_params:,} parameters "
      f"({model.embedding.weight.numel():,} in the word embedding, {len(data.info['words']):,} words)")
print(f"CRF constrained to IOB2: {model.crf.constrained}")
batch = data.collate_fn([data.train[i] for i in range(min(4, len(data.train)))])
print("a batch:", {key: tuple(value.shape) if hasattr(value, "shape") else f"{len(value)} lists of words"
                   for key, value in batch.items()})

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (embedding, LSTM, CNN and
# linear weights, the transition matrix); biases and the start/end scores are not decayed.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step by hand
#
# Before the Trainer takes over, here is the step it repeats for every batch: the forward
# pass (emissions, then the CRF's negative log-likelihood per token), the backward pass, the
# optimizer's step, and what the step changed. It runs on a copy of the model with its own
# optimizer, so the run below is exactly what it would be without this cell.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(exp.task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = exp.task.train_step(practice_model, batch)  # emissions, CRF NLL per token
    loss.backward()  # gradients of the batch's loss
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"{exp.cfg.optimizer}: CRF loss on this batch {loss_before:.4f} nats/token before the step, "
      f"{loss_after:.4f} after")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch of every epoch, and adds what a real
# run needs: gradient clipping (`max_grad_norm`, 1.0 here) between the backward pass and the
# step, mixed precision (`amp`; fp16 with a gradient scaler), the second forward/backward
# pass of SAM and GSAM at the perturbed weights (the closure `optimizer_step` passes above),
# the LR schedule, and a check that the loss stays finite.

# %% [markdown]
# ## Training
#
# After each epoch the validation sentences are Viterbi-decoded and scored with seqeval's
# strict entity-level F1 (an entity counts only when its type and both its ends are right).
# The Trainer halves the LR when the validation loss stops falling (ReduceLROnPlateau),
# keeps the weights of the best validation F1 and stops after `patience` epochs without a
# better one. Its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Solid lines are the training split (running over the epoch, dropout on, each batch
# decoded as it is trained), dashed lines the validation split after the epoch.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="CRF negative log-likelihood (nats/token)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test scores
#
# The test split is decoded once, with the weights of the best validation epoch.
# `predictions_test.jsonl` holds every sentence's words, gold tags and predicted tags; the
# scores below are recomputed from that file with seqeval and match the summary.

# %%
summary = exp.finish()
print(f"status: {summary['status']}")
specs = exp.task_spec.metrics
print("test: " + ", ".join(f"{specs[k].label} {specs[k].format(v)}" for k, v in summary["test"].items()
                           if k in specs and v is not None))
print(f"epochs to validation F1 {summary['target']}: {summary['epochs_to_target']}")
records = read_jsonl(exp.run.predictions("test"))
recomputed = seqeval_scores([r["reference"] for r in records], [r["prediction"] for r in records])
print(f"seqeval on predictions_test.jsonl: F1 {recomputed['f1']:.4f} (summary: {summary['test']['f1']:.4f})")
table = per_type_table(records)
display(table.style.format({"precision": "{:.3f}", "recall": "{:.3f}", "f1-score": "{:.3f}"}))

fig = per_type_f1_figure(table, f"Test F1 per entity type ({exp.cfg.optimizer})")
plt.show()
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Tagged sentences: gold and predicted
#
# Each test sentence twice: the gold entities above, the predicted ones below, one colour
# per type. Sentences with mistakes come first.

# %%
wrong = [r for r in records if set(entity_spans(r["reference"])) != set(entity_spans(r["prediction"]))]
right = [r for r in records if r not in wrong]
print(f"{len(wrong)} of {len(records)} test sentences have at least one wrong or missed entity")
display(HTML(sentences_html(wrong[:8] + right[:4], types=data.info["entity_types"])))

# %% [markdown]
# ## What the CRF learned about tag order
#
# The transition score from each tag (row) to the next (column); the first row is the
# score of starting a sentence with a tag, the last column of ending one. Positive scores
# (red) make a move more likely. `B-X` to `I-X` should stand out, and on real text `O` to
# `O` too; with the IOB2 constraint on, the forbidden moves are hatched.

# %%
fig = transition_figure(model.crf, tag_names, title=f"CRF transition scores after training ({exp.cfg.optimizer})")
plt.show()
