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
# # Text summarization: one optimizer, one run
#
# This notebook trains one encoder-decoder summarization model with one optimizer and
# writes a run directory that the sweep report reads. It walks through the documents and
# their summaries, the subword tokenization, the model, the optimizer's update rule, one
# training step by hand, training, the curves, the test ROUGE of beam search, greedy and
# beam summaries side by side, ROUGE by document length and (for `lstm_seq2seq`) where the
# model attends. Papermill executes one copy per optimizer
# (`python -m nbhelpers sweep params/text_summarization/...`); in JupyterLab it runs as it
# is on the offline `toy_summaries` documents in a few minutes on a CPU.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "text_summarization"  # the task (this notebook is for summarization)
dataset: str = "toy_summaries"  # toy_summaries (offline, generated), cnn_dailymail or aeslc
model: str = "tiny_transformer_seq2seq"  # tiny_transformer_seq2seq, bart_small, transformer_seq2seq or lstm_seq2seq
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 4  # maximum number of epochs (early stopping may end sooner)
batch_size: int = 16  # training batch size (documents)
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "inverse_sqrt"  # inverse_sqrt (Transformers' warm-up then 1/sqrt(step)), auto (plateau), ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.5  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (5); 0 or less: off
label_smoothing: float = None  # None: task default (0.1)
max_samples: int = None  # cap on the training split (and on validation/test)
val_max_samples: int = 100  # a further cap on the validation split (it is decoded every eval_every epochs)
eval_every: int = 1  # epochs between decoded validations (teacher-forced loss only in between)
dataset_kwargs: dict = {"train_size": 3000, "difficulty": 1}  # dataset knobs: difficulty (1-3), max_source_len, max_target_len, ...
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {"d_model": 128, "ff": 512, "layers": 2, "dropout": 0.0}  # model knobs: d_model, heads, ff, layers, dropout
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text tasks
target: float = None  # validation ROUGE-L for 'time to target'; None: the dataset's (80 on toy_summaries)
data_dir: str = None  # cache of real datasets; None: ~/.cache/nbhelpers
output_dir: str = "executed/notebook"  # the run directory goes to <output_dir>/runs/<run_id>/
grid: dict = {}  # grid values that name this run (set by sweeps)
experiment: int = None  # the run's number in its params file (set by sweeps)
resume: bool = False  # continue from last.pt when the run directory has one
progress: bool = True  # show progress bars

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from nbhelpers.config import RunConfig
from nbhelpers.optim.equations import update_rule
from nbhelpers.report.plots import run_curves_figure
from nbhelpers.tasks.seq2seq_views import (attention_figure, attention_map, decode_split, score_by_length,
                                           side_by_side)
from nbhelpers.tasks.text_summarization import rouge
from nbhelpers.training import Experiment
from nbhelpers.training.rundir import read_jsonl

pd.set_option("display.max_colwidth", 200)
cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Each item is a document and its reference summary, as raw text; summary sentences are
# separated by newlines (as CNN/DailyMail's highlights are), which ROUGE-Lsum uses. The
# splits are fixed (they do not move with the seed), so every optimizer is scored on the
# same test documents.

# %%
data = exp.load_data()
print(data.description)
print(f"\ntrain {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,} documents")
for document, summary in zip(data.train.sources[:2], data.train.targets[:2]):
    print(f"\nDOCUMENT\n{document[:1200]}\nSUMMARY\n{summary}")

# %% [markdown]
# ### How `toy_summaries` is made
#
# Each generated document tells what a few people did, one sentence each ("On Monday,
# Maria repaired a red bicycle near the harbour, witnesses said."), with an occasional
# sentence about no one. One person, the main entity, is mentioned more often than anyone
# else. The reference summary is every sentence about that person, in document order, cut
# to its core: without the time opener and without the trailing attribution ("Maria
# repaired a red bicycle near the harbour."). The summary follows from the document alone,
# so ROUGE 100 is attainable. A model must find the main entity, select its sentences, and
# copy them while dropping the padding: selection, copying and compression, the three
# skills of extractive-abstractive summarization. The dataset's default, difficulty 1 (also
# this notebook's), has two people per document and no filler, so a CPU run stays short;
# `dataset_kwargs={"difficulty": 2}` adds a third person and filler sentences, and
# difficulty 3 puts the main entity anywhere (not first), so the model must count.

# %% [markdown]
# ## Subword tokenization
#
# Texts become byte-level BPE pieces learned on the training split only, one vocabulary for
# documents and summaries. Decoding the pieces gives the text back exactly, newlines
# included (`⏎`), so ROUGE is computed on real text. `▁` marks a space before the piece.

# %%
tokenizer = data.tokenizer
print(f"{type(tokenizer).__name__}: {len(tokenizer):,} pieces; <pad>={data.info['pad_id']}, "
      f"<s>={data.info['bos_id']}, </s>={data.info['eos_id']}")
for text in (data.train.sources[0][:160], data.train.targets[0]):
    ids = tokenizer.encode(text)
    print(f"\ntext:   {text!r}\npieces: {tokenizer.tokens(text)}\nids:    {ids}")
    assert tokenizer.decode(ids) == text  # exact round trip
lengths = pd.Series([len(ids) for ids in tokenizer.encode_batch(data.train.sources[:2000])])
print(f"\ndocument length in pieces: median {lengths.median():.0f}, max {lengths.max()}; "
      f"cut at {data.info['max_source_len']} (summaries at {data.info['max_target_len']})")
batch = data.collate_fn([data.train[i] for i in range(4)])
print("a batch:", {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")})

# %% [markdown]
# ## The model
#
# All four models read the document with an **encoder** and write the summary piece by
# piece with a **decoder** that sees the document through attention:
#
# * `tiny_transformer_seq2seq` / `transformer_seq2seq`: stacks of multi-head attention
#   $\mathrm{softmax}(QK^\top/\sqrt{d})V$ and feed-forward layers; the decoder's
#   self-attention is causal and its cross-attention reads the encoder's output, which is
#   how it copies a sentence from the document. The tiny one normalises before each
#   sublayer (pre-LN) and ties its output layer to its target embedding.
# * `bart_small`: Hugging Face's BART architecture at a small size (pretrained weights when
#   they are cached, else from its config).
# * `lstm_seq2seq`: a bidirectional LSTM encoder and an LSTM decoder with Luong attention.
#
# During training the decoder is **teacher forced**: it reads the reference shifted right
# (`<s>` + reference) and learns to predict the reference followed by `</s>`.

# %%
model = exp.build_model()
n_params = sum(p.numel() for p in model.parameters())
print(model if n_params < 2_000_000 else type(model).__name__)
print(f"{exp.cfg.model}: {n_params:,} parameters")

# %% [markdown]
# ## The optimizer and its update rule
#
# Weight decay applies only to tensors with two or more dimensions (embeddings and weight
# matrices); biases and LayerNorm scales are not decayed.

# %%
optimizer = exp.build_optimizer()
display(Markdown(update_rule(exp.cfg.optimizer)))
print(f"lr {exp.choice.lr:g}, weight decay {exp.choice.weight_decay:g} ({exp.choice.decay_style}), "
      f"other settings {exp.choice.kwargs}" + (f", base {exp.choice.base}" if exp.choice.base else ""))

# %% [markdown]
# ## One training step by hand
#
# Before the Trainer takes over, here is the step it repeats for every batch: the forward
# pass with teacher forcing and the task's loss (cross-entropy over the summary's pieces,
# `<pad>` ignored, labels smoothed by 0.1), the backward pass, the optimizer's step, and what
# the step changed. It runs on a copy of the model with its own optimizer, so the run below
# is exactly what it would be without this cell.

# %%
from nbhelpers.training.walkthrough import (batch_loss, isolated_rng, optimizer_step, practice_copy, snapshot,
                                            update_sizes)

with isolated_rng():  # the dropout drawn here must not move the run's random numbers
    practice_model, practice_optimizer, batch = practice_copy(exp)
    before, loss_before = snapshot(practice_model), batch_loss(exp.task, practice_model, batch)
    practice_optimizer.zero_grad(set_to_none=True)
    loss, stats = exp.task.train_step(practice_model, batch)  # teacher-forced forward pass and the loss
    loss.backward()  # gradients of the mean loss over the batch's summary pieces
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"{exp.cfg.optimizer}: loss on this batch {loss_before:.4f} before the step, {loss_after:.4f} after "
      f"({int(stats['tokens'])} summary pieces)")
display(update_sizes(before, practice_model))

# %% [markdown]
# The Trainer repeats exactly this for every batch of every epoch, and adds what a real
# run needs: gradient clipping (`max_grad_norm`, 1.0 here) between the backward pass and the
# step, mixed precision (`amp`), the second forward/backward pass of SAM and GSAM at the
# perturbed weights (the closure `optimizer_step` passes above), the LR schedule, and a
# check that the loss stays finite.

# %% [markdown]
# ## Training
#
# After every `eval_every` epochs the Trainer **decodes** summaries of the validation
# documents greedily (batched, the encoder run once, the decoder reusing its cached keys and
# values) and scores them with rouge-score; between those epochs it measures only the
# teacher-forced loss. It keeps the weights of the best validation ROUGE-L and stops early
# after `patience` decoded validations without a better one. Its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Validation ROUGE-L after each decoded epoch (dashed; decoding the training split would
# cost more than training on it) and the teacher-forced loss on both splits.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="cross-entropy per piece (smoothed labels)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is decoded once, with the weights of the best validation epoch and beam
# search: 5 hypotheses per document, ranked by log-probability / length (length penalty
# 1). ROUGE-1, ROUGE-2 and ROUGE-Lsum (F-measure, Porter stemming, sentences split on
# newlines; shown as ROUGE-L) come from rouge-score on the detokenized text;
# `predictions_test.jsonl` holds every document, reference and summary, and rescoring it
# with rouge-score gives the same numbers.

# %%
summary = exp.finish()
print(f"status: {summary['status']}")
print(f"test: {summary['test']}")
print(f"epochs to validation ROUGE-L {summary['target']}: {summary['epochs_to_target']}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Greedy and beam search side by side
#
# Greedy decoding takes the most likely piece at every step; beam search keeps the 5 best
# partial summaries. Both from the same best checkpoint, on the test split.

# %%
records = read_jsonl(exp.run.predictions("test"))
greedy = decode_split(exp, "test", "greedy")
greedy_scores = rouge(greedy, [r["reference"] for r in records])
print("test " + ", ".join(f"{exp.task_spec.metrics[m].label}: greedy {greedy_scores[m]:.2f}, "
                          f"beam 5 {summary['test'][m]:.2f}" for m in ("rouge1", "rouge2", "rougeL")))
different = [i for i, (r, g) in enumerate(zip(records, greedy)) if r["hypothesis"] != g]
print(f"beam search changed {len(different)} of {len(records)} test summaries")
display(side_by_side(records, greedy, rows=5, width=400))

# %% [markdown]
# ## ROUGE by document length
#
# Test documents grouped by length (quartiles of the word count); longer documents have
# more people to tell apart and more sentences to select from.

# %%
by_length = score_by_length(records, rouge, "rougeL")
display(by_length)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.bar(by_length["source words"], by_length["rougeL"], color="tab:green")
ax.set(xlabel="document length (words)", ylabel="ROUGE-L (beam 5)", title="test ROUGE-L by document length",
       ylim=(0, 100))
plt.show()

# %% [markdown]
# ## Where the model looks
#
# For `lstm_seq2seq`, the attention weights on one test document: each row is a piece of
# the model's own (greedy) summary, each column a document piece. Copying shows as a
# diagonal band that jumps over the sentences about other people. Run this notebook with
# `model="lstm_seq2seq"` to see the heatmap.

# %%
if exp.cfg.model == "lstm_seq2seq":
    weights, source_pieces, target_pieces = attention_map(exp, index=0)
    attention_figure(weights, source_pieces, target_pieces,
                     title=f"lstm_seq2seq attention on test document 0 ({exp.cfg.optimizer})")
    plt.show()
else:
    print(f"{exp.cfg.model}: no single attention map to show (set model='lstm_seq2seq' for the heatmap)")
