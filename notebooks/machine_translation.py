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
# # Machine translation: one optimizer, one run
#
# This notebook trains one encoder-decoder translation model with one optimizer and writes
# a run directory that the sweep report reads. It walks through the sentence pairs, the
# subword tokenization, the model, the optimizer's update rule, one training step by hand,
# training, the curves, the test BLEU of beam search, greedy and beam outputs side by side,
# BLEU by sentence length and (for `lstm_seq2seq`) where the model attends. Papermill
# executes one copy per optimizer (`python -m nbhelpers sweep params/machine_translation/...`);
# in JupyterLab it runs as it is on the offline `toy_translation` pairs in a few minutes on
# a CPU.
#
# Every step calls the same `nbhelpers` code as `python -m nbhelpers run`, so the notebook
# and the command line give the same numbers for the same settings.

# %% tags=["parameters"]
task: str = "machine_translation"  # the task (this notebook is for machine translation)
dataset: str = "toy_translation"  # toy_translation (offline, generated), iwslt14_en_de or europarl_bilingual
model: str = "transformer_seq2seq"  # transformer_seq2seq, lstm_seq2seq, tiny_transformer_seq2seq or bart_small
optimizer: str = "adamw"  # any of the 16: python -m nbhelpers list optimizers
epochs: int = 3  # maximum number of epochs (early stopping may end sooner)
batch_size: int = 64  # training batch size (sentence pairs)
lr: float = None  # learning rate; None: decided by lr_policy
lr_policy: str = "per_opt"  # per_opt: the optimizer's researched default; fixed: one LR for all
lr_overrides: str = ""  # per-optimizer LRs in the --lr-overrides format
weight_decay: float = None  # None: the optimizer family's heuristic
scheduler: str = "inverse_sqrt"  # inverse_sqrt (Transformers' warm-up then 1/sqrt(step)), auto (plateau), ...
scheduler_kwargs: dict = {}  # e.g. {"factor": 0.5, "patience": 1} for plateau
warmup_epochs: float = 0.3  # linear LR warm-up before the schedule
max_grad_norm: float = None  # None: task default (1.0); 0 or less: off
early_stopping_patience: int = None  # None: task default (5); 0 or less: off
label_smoothing: float = None  # None: task default (0.1)
max_samples: int = None  # cap on the training split (and on validation/test)
val_max_samples: int = 200  # a further cap on the validation split (it is decoded every eval_every epochs)
eval_every: int = 1  # epochs between decoded validations (teacher-forced loss only in between)
dataset_kwargs: dict = {}  # dataset knobs: difficulty (1-3), direction ("en-de"), max_source_len, vocab_size
task_kwargs: dict = {}  # task knobs (semantic_segmentation has its loss knobs here)
num_workers: int = 0  # DataLoader worker processes
seed: int = 0  # random seed (weights, shuffling, dropout)
device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
amp: str = "off"  # off, bf16 or fp16 mixed precision
model_kwargs: dict = {"size": "tiny", "dropout": 0.1}  # model knobs: size tiny/small/base, d_model, layers, ...
optimizer_kwargs: dict = {}  # optimizer knobs, e.g. {"rho": 0.1} for sam
sam_base: str = None  # base optimizer of sam/gsam; None: adamw for text tasks
target: float = None  # validation BLEU for 'time to target'; None: the dataset's (90 on toy_translation)
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
from nbhelpers.tasks.machine_translation import bleu_and_chrf
from nbhelpers.tasks.seq2seq_views import (attention_figure, attention_map, decode_split, score_by_length,
                                           side_by_side)
from nbhelpers.training import Experiment
from nbhelpers.training.rundir import read_jsonl

pd.set_option("display.max_colwidth", 160)
cfg = RunConfig(**{name: value for name, value in globals().items() if name in RunConfig.__dataclass_fields__})
exp = Experiment(cfg)
print(f"run {exp.cfg.run_id} on {exp.device}; run directory: {exp.run.path}")

# %% [markdown]
# ## The data
#
# Each item is a source sentence and its reference translation, as raw text. The splits are
# fixed (they do not move with the seed), so every optimizer is scored on the same test
# sentences.

# %%
data = exp.load_data()
print(data.description)
print(f"\ntrain {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,} sentence pairs")
display(pd.DataFrame({"source": data.train.sources[:8], "reference": data.train.targets[:8]}))

# %% [markdown]
# ### How `toy_translation` is made
#
# The offline pairs come from two made-up languages with one right translation per
# sentence, so a perfect model scores BLEU 100 and the gap to 100 is the model's (and the
# optimizer's) alone. The source is English words in subject-object-verb order
# ("the girl the red apples did eat"); the target is a made-up subject-verb-object language:
#
# * **a lexicon**: each English word has one target stem;
# * **reordering**: the verb moves after the subject, adjectives after their noun (in mirror
#   order), adverbs and postpositional phrases to the end;
# * **agreement**: every noun has a gender only the target shows, and determiners and
#   adjectives agree with the noun's gender and number (-o/-i, -a/-e); the verb agrees with
#   the subject's person and number in three tenses;
# * **many-to-one words**: "ice cream", "you all" and some "very" + adjective pairs are one
#   target word.
#
# `dataset_kwargs={"difficulty": 1}` (or 3) makes the language smaller (or larger, with
# postpositional phrases and longer noun phrases).

# %% [markdown]
# ## Subword tokenization
#
# Sentences become byte-level BPE pieces, learned on the training split only, with one
# vocabulary for both languages (as fairseq's joint BPE). Frequent words are one piece;
# rarer ones, and inflected forms, split into a stem and an ending, which lets the model
# share what it learns about endings across words. Decoding the pieces gives the text back
# exactly, so BLEU is computed on real text. `▁` marks a space before the piece.

# %%
tokenizer = data.tokenizer
print(f"{type(tokenizer).__name__}: {len(tokenizer):,} pieces; <pad>={data.info['pad_id']}, "
      f"<s>={data.info['bos_id']}, </s>={data.info['eos_id']}")
for text in (data.train.sources[0], data.train.targets[0], data.test.targets[1]):
    ids = tokenizer.encode(text)
    print(f"\ntext:   {text}\npieces: {tokenizer.tokens(text)}\nids:    {ids}")
    assert tokenizer.decode(ids) == text  # exact round trip
batch = data.collate_fn([data.train[i] for i in range(4)])
print("\na batch:", {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")})
print("target_ids[0] (<s> ... </s>, then <pad>):", batch["target_ids"][0].tolist())

# %% [markdown]
# ## The model
#
# All four models read the source with an **encoder** and write the translation piece by
# piece with a **decoder** that sees the source through attention:
#
# * `transformer_seq2seq` / `tiny_transformer_seq2seq`: stacks of multi-head attention
#   $\mathrm{softmax}(QK^\top/\sqrt{d})V$ and feed-forward layers; the decoder's
#   self-attention is causal (a position sees only earlier ones) and its cross-attention
#   reads the encoder's output. The first normalises after each residual addition (post-LN,
#   as in Vaswani et al. 2017), the second before each sublayer (pre-LN).
# * `lstm_seq2seq`: a bidirectional LSTM encoder and an LSTM decoder with Luong attention:
#   the decoder state $h_t$ scores each encoder state $m_s$ as $h_t^\top W_a m_s$, and the
#   softmax of those scores mixes the encoder states into a context for the next word.
# * `bart_small`: Hugging Face's BART architecture at a small size.
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
# pass with teacher forcing and the task's loss (cross-entropy over the reference's pieces,
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
    loss.backward()  # gradients of the mean loss over the batch's target pieces
    optimizer_step(practice_optimizer, lambda: exp.task.train_step(practice_model, batch)[0])
    loss_after = batch_loss(exp.task, practice_model, batch)
print(f"{exp.cfg.optimizer}: loss on this batch {loss_before:.4f} before the step, {loss_after:.4f} after "
      f"({int(stats['tokens'])} target pieces)")
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
# After every `eval_every` epochs the Trainer **decodes** the validation sentences greedily
# (batched, the encoder run once, the decoder reusing its cached keys and values) and scores
# them with sacrebleu; between those epochs it measures only the teacher-forced loss. It
# keeps the weights of the best validation BLEU and stops early after `patience` decoded
# validations without a better one. Its clock counts training only.

# %%
trainer = exp.build_trainer()
fit = exp.fit()
print(f"{fit.status} after {len(fit.history)} epochs, {fit.train_time_s:.1f} s of training; "
      f"best validation {exp.task_spec.primary.label} {fit.best_val} in epoch {fit.best_epoch}")

# %% [markdown]
# ## Learning curves
#
# Validation BLEU after each decoded epoch (dashed; there is no training BLEU: decoding the
# training split would cost more than training on it) and the teacher-forced loss on both
# splits.

# %%
fig = run_curves_figure(fit.history, exp.task_spec.primary_metric, spec=exp.task_spec.primary,
                        loss_label="cross-entropy per piece (smoothed labels)",
                        title=f"{exp.cfg.model} with {exp.cfg.optimizer} on {exp.cfg.dataset}")
plt.show()

# %% [markdown]
# ## Test metrics
#
# The test split is decoded once, with the weights of the best validation epoch and beam
# search: 5 hypotheses per sentence, ranked by log-probability / length (length penalty 1),
# at most 1.5 x the source length + 10 pieces. BLEU (sacrebleu, 13a tokenization) and chrF
# are computed on the detokenized text; `predictions_test.jsonl` holds every source,
# reference and hypothesis, and recomputing sacrebleu on it gives the same numbers.

# %%
summary = exp.finish()
print(f"status: {summary['status']}")
print(f"test: {summary['test']}")
print(f"epochs to validation BLEU {summary['target']}: {summary['epochs_to_target']}")
print(f"optimizer state: {summary['optimizer_state_bytes']:,} bytes")
print((exp.run.path / "details.txt").read_text())

# %% [markdown]
# ## Greedy and beam search side by side
#
# Greedy decoding takes the most likely piece at every step; beam search keeps the 5 best
# partial translations and can recover from a first piece that looked best but leads
# nowhere. Both from the same best checkpoint, on the test split.

# %%
records = read_jsonl(exp.run.predictions("test"))
greedy = decode_split(exp, "test", "greedy")
greedy_scores = bleu_and_chrf(greedy, [r["reference"] for r in records])
print(f"test BLEU: greedy {greedy_scores['bleu']:.2f}, beam 5 {summary['test']['bleu']:.2f}; "
      f"chrF: greedy {greedy_scores['chrf']:.2f}, beam 5 {summary['test']['chrf']:.2f}")
different = [i for i, (r, g) in enumerate(zip(records, greedy)) if r["hypothesis"] != g]
print(f"beam search changed {len(different)} of {len(records)} test translations")
display(side_by_side(records, greedy))

# %% [markdown]
# ## BLEU by sentence length
#
# Test sentences grouped by source length (quartiles of the word count); longer sentences
# have more to reorder and more agreements to get right.

# %%
by_length = score_by_length(records, bleu_and_chrf, "bleu")
display(by_length)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.bar(by_length["source words"], by_length["bleu"], color="tab:blue")
ax.set(xlabel="source length (words)", ylabel="BLEU (beam 5)", title="test BLEU by source length", ylim=(0, 100))
plt.show()

# %% [markdown]
# ## Where the model looks
#
# For `lstm_seq2seq`, the attention weights of one test sentence: each row is a piece the
# model wrote (its own greedy translation), each column a source piece. On
# `toy_translation` the verb's row points at the end of the source (where the SOV source
# keeps its verb) and the adjectives' rows run backwards: the reordering, learned. The
# Transformers spread attention over several heads and layers; run this notebook with
# `model="lstm_seq2seq"` to see the heatmap.

# %%
if exp.cfg.model == "lstm_seq2seq":
    weights, source_pieces, target_pieces = attention_map(exp, index=0)
    attention_figure(weights, source_pieces, target_pieces,
                     title=f"lstm_seq2seq attention on test sentence 0 ({exp.cfg.optimizer})")
    plt.show()
else:
    print(f"{exp.cfg.model}: no single attention map to show (set model='lstm_seq2seq' for the heatmap)")
