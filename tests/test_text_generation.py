"""Language modelling: grammar_lm and its exact entropy, the Hugging Face loaders on files
written here, the models, the task, one run, the notebook and the PTB grid.

No test reaches the network: the real loaders read local files or are told not to download,
and the one "download" test is told that the hub cannot be reached.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nbhelpers.config import RunConfig, resolve_config
from nbhelpers.data import text_generation as tg
from nbhelpers.data.lm_grammar import FiniteStateSource, toy_english
from nbhelpers.data.text_generation import (
    LMChunks,
    Vocabulary,
    build_grammar_lm,
    build_ptb_text_only,
    build_vocabulary,
    build_wikitext2,
    grammar_best_perplexity,
    grammar_entropies,
)
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.models.language_models import build_gpt_small, build_gru_lm, build_lstm_lm, generate
from nbhelpers.registry import DATASETS, MODELS, TASKS
from nbhelpers.tasks.text_generation import TextGeneration

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "params" / "grids" / "ptb-lstm-gpt.yaml"
TINY_GPT = {"d_model": 32, "heads": 2, "ff": 64, "layers": 1}


def _binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


# ---------------------------------------------------------------------------------------------
# The finite-state source: exact entropy on chains small enough to check by hand
# ---------------------------------------------------------------------------------------------

def _source(table: dict[int, dict[int, tuple[float, int]]], start: int = 0, order: int = 1,
            last_token=None) -> FiniteStateSource:
    """A source from {state: {token: (probability, next state)}}."""
    states = sorted(table)
    return FiniteStateSource(
        tokens=[np.array(list(table[s])) for s in states],
        probs=[np.array([p for p, _ in table[s].values()]) for s in states],
        next_state=[np.array([n for _, n in table[s].values()]) for s in states],
        last_token=np.array(last_token if last_token is not None else states), start=start, order=order)


def test_entropy_of_an_iid_source_is_the_entropy_of_its_law():
    source = _source({0: {0: (0.25, 0), 1: (0.75, 0)}})
    assert source.entropy_rate() == pytest.approx(_binary_entropy(0.25), abs=1e-12)


def test_entropy_of_a_two_state_markov_chain():
    # State = last token. From 0: stay with 0.9; from 1: fair coin. pi = (5/6, 1/6).
    source = _source({0: {0: (0.9, 0), 1: (0.1, 1)}, 1: {0: (0.5, 0), 1: (0.5, 1)}})
    assert source.stationary() == pytest.approx([5 / 6, 1 / 6], abs=1e-12)
    expected = 5 / 6 * _binary_entropy(0.1) + 1 / 6 * math.log(2)
    assert source.entropy_rate() == pytest.approx(expected, abs=1e-12)
    assert source.chunked_entropy(64) == pytest.approx(expected, abs=1e-12)  # order 1: no penalty


def test_a_deterministic_cycle_has_entropy_zero_and_perplexity_one():
    source = _source({0: {0: (1.0, 1)}, 1: {1: (1.0, 2)}, 2: {2: (1.0, 0)}}, last_token=[2, 0, 1])
    assert source.stationary() == pytest.approx([1 / 3] * 3)
    assert source.entropy_rate() == pytest.approx(0.0, abs=1e-12)


def test_second_order_chain_and_the_first_token_of_a_chunk():
    # x_t copies x_{t-2} with probability 0.9. The entropy rate is h(0.9); the previous token
    # alone says nothing about x_t (even and odd positions are independent chains), so the
    # first target of a chunk costs log 2.
    table, last = {}, []
    for two_back in (0, 1):
        for one_back in (0, 1):
            state = 2 * two_back + one_back
            table[state] = {two_back: (0.9, 2 * one_back + two_back),
                            1 - two_back: (0.1, 2 * one_back + 1 - two_back)}
            last.append(one_back)
    source = _source(table, order=2, last_token=last)
    h = _binary_entropy(0.9)
    assert source.entropy_rate() == pytest.approx(h, abs=1e-12)
    assert source.entropy_given_last_token() == pytest.approx(math.log(2), abs=1e-12)
    assert source.chunked_entropy(8) == pytest.approx((math.log(2) + 7 * h) / 8, abs=1e-12)


def test_invalid_sources_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        _source({0: {0: (0.5, 0), 1: (0.4, 0)}})


# ---------------------------------------------------------------------------------------------
# grammar_lm
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grammar():
    return build_grammar_lm(max_samples=None, seed=0)


def test_grammar_entropy_rate_matches_the_loss_of_the_true_process_on_a_long_sample():
    source = toy_english().source
    sample = source.sample(200_000, np.random.default_rng(7))
    empirical = -source.log_probs(sample).mean()
    assert empirical == pytest.approx(grammar_entropies()["entropy_rate"], abs=0.03)


def test_grammar_stationary_distribution_matches_the_state_chain_run_forward():
    source = toy_english().source
    pi = source.stationary()
    matrix = source.transition_matrix()
    walk = np.zeros(source.n_states)
    walk[source.start] = 1.0
    for _ in range(400):  # sentences are ~9 words: the chain forgets its start quickly
        walk = matrix.T @ walk
    assert np.abs(walk - pi).max() < 1e-9
    assert np.abs(matrix.T @ pi - pi).max() < 1e-12


def test_grammar_is_deterministic_and_ignores_the_run_seed(grammar):
    again = build_grammar_lm(max_samples=None, seed=123)
    for first, second in ((grammar.train, again.train), (grammar.test, again.test)):
        assert torch.equal(first.stream, second.stream)
    assert not torch.equal(grammar.val.stream[:1000], grammar.test.stream[:1000])  # independent samples


def test_grammar_info_and_best_perplexity(grammar):
    info = grammar.info
    assert info["vocab_size"] == len(info["vocabulary"]) == len(toy_english().vocabulary)
    assert 300 <= info["vocab_size"] <= 700  # a few hundred words
    assert info["vocabulary"][:2] == ["<unk>", "<eos>"] and (info["unk_id"], info["eos_id"]) == (0, 1)
    assert info["pad_id"] is None and info["bptt"] == 64
    best = info["best_perplexity"]
    assert best == pytest.approx(grammar_best_perplexity(64))
    # The chunk's first word costs a little: best sits just above exp(entropy rate).
    assert info["entropy_rate_perplexity"] < best < 1.01 * info["entropy_rate_perplexity"]
    # The sample's oracle perplexity is the entropy rate up to sampling noise.
    assert info["oracle_test_perplexity"] == pytest.approx(info["entropy_rate_perplexity"], rel=0.03)
    # Design: the previous word alone cannot reach 1.25x the best; a model must use two.
    assert best < 1.25 * best < info["bigram_perplexity"] < info["unigram_perplexity"]
    assert "best possible perplexity" in grammar.description.lower()
    assert str(round(best, 3)) in grammar.description


def test_grammar_text_has_sentences_and_agreement(grammar):
    vocab = Vocabulary(grammar.info["vocabulary"])
    words = [vocab.words[i] for i in grammar.train.stream[:20_000].tolist()]
    assert words.count("<eos>") > 1000
    # "a/this/that/one <noun>": a singular subject noun, followed by a singular verb or adverb.
    lexicon = toy_english().lexicon
    tag = dict(zip(lexicon.words, lexicon.tags))
    for i, word in enumerate(words[:-2]):
        if tag.get(word) == "SDET_S":
            assert tag[words[i + 1]] == "NOUN_S"
            assert tag[words[i + 2]] in ("VERB_TS", "VERB_IS", "ADV")


def test_chunks_are_targets_shifted_by_one():
    chunks = LMChunks(torch.arange(10), bptt=3)
    assert len(chunks) == 3
    x, y = chunks[0]
    assert x.tolist() == [0, 1, 2] and y.tolist() == [1, 2, 3]
    x, y = chunks[2]
    assert x.tolist() == [6, 7, 8] and y.tolist() == [7, 8, 9]
    with pytest.raises(IndexError):
        chunks[3]


def test_grammar_chunk_shapes_and_continuity(grammar):
    x0, y0 = grammar.train[0]
    x1, _ = grammar.train[1]
    assert x0.shape == y0.shape == (64,) and x0.dtype == torch.int64
    assert torch.equal(x0[1:], y0[:-1])
    assert y0[-1] == x1[0]  # chunks are contiguous pieces of one stream
    assert len(grammar.train) == (grammar.info["train_tokens"] - 1) // 64


def test_grammar_options_and_caps():
    small = build_grammar_lm(max_samples=10, seed=0, bptt=16, train_tokens=5_000, eval_tokens=1_000)
    assert (len(small.train), len(small.val), len(small.test)) == (10, 10, 10)
    assert small.train[0][0].shape == (16,) and small.info["bptt"] == 16
    assert small.info["best_perplexity"] > build_grammar_lm(bptt=64).info["best_perplexity"]
    with pytest.raises(UserInputError, match="bptt"):
        build_grammar_lm(bptt=0)
    with pytest.raises(UserInputError, match="window"):
        build_grammar_lm(window=3)


# ---------------------------------------------------------------------------------------------
# wikitext2 and ptb_text_only, from files written here
# ---------------------------------------------------------------------------------------------

WIKI_LINES = {
    "train": ["", " = Valkyria Chronicles = ", "", " the game is a tactical role playing game . ",
              " the game was released in japan . "],
    "validation": ["", " the game was praised . "],
    "test": [" a new game was released . ", ""],
}
PTB_LINES = {
    "train": ["the <unk> company said it will sell its stake", "the company said N shares were sold"],
    "validation": ["the company sold shares"],
    "test": ["its stake was sold"],
}


def _write_parquet(folder: Path, column: str, splits: dict[str, list[str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True)
    for split, lines in splits.items():
        pq.write_table(pa.table({column: lines}), folder / f"{split}.parquet")


def test_wikitext2_reads_local_parquet_files(tmp_path):
    _write_parquet(tmp_path / "wikitext2", "text", WIKI_LINES)
    bundle = build_wikitext2(data_dir=tmp_path, max_samples=None, seed=0, download=False, bptt=4)
    vocab = Vocabulary(bundle.info["vocabulary"])
    # Most frequent training words first; blank lines give no <eos>.
    assert vocab.words[:6] == ("<unk>", "<eos>", "game", ".", "=", "the")  # ties: alphabetical
    assert bundle.info["train_tokens"] == 4 + 1 + 9 + 1 + 7 + 1  # three non-blank lines, each + <eos>
    train_text = vocab.decode(bundle.train.stream.tolist())
    assert train_text.splitlines()[0] == "= Valkyria Chronicles = <eos>"
    assert vocab.decode(bundle.test.stream.tolist()) == "a <unk> game was released . <eos>"  # 'new' is unseen
    x, y = bundle.train[0]
    assert x.shape == (4,) and torch.equal(x[1:], y[:-1])
    assert "WikiText-2" in bundle.description and "<eos>" in bundle.description


def test_ptb_reads_the_sentence_column_and_keeps_its_unk(tmp_path):
    _write_parquet(tmp_path / "ptb_text_only", "sentence", PTB_LINES)
    bundle = build_ptb_text_only(data_dir=tmp_path, max_samples=None, seed=0, download=False, bptt=3)
    vocab = Vocabulary(bundle.info["vocabulary"])
    assert vocab.words.count("<unk>") == 1  # PTB's own <unk> is our <unk>
    stream = bundle.train.stream.tolist()
    assert stream[1] == 0 and stream.count(1) == 2  # '<unk>' in line 1; two <eos>
    assert bundle.info["vocab_size"] == 2 + len({w for line in PTB_LINES["train"] for w in line.split()} - {"<unk>"})


def test_ptb_max_vocab_maps_rare_words_to_unk(tmp_path):
    _write_parquet(tmp_path / "ptb_text_only", "sentence", PTB_LINES)
    bundle = build_ptb_text_only(data_dir=tmp_path, download=False, bptt=3, max_vocab=4)
    assert bundle.info["vocabulary"] == ["<unk>", "<eos>", "company", "said"]
    assert "of training tokens are <unk>" in bundle.description


def test_text_files_and_save_to_disk_folders_are_read_too(tmp_path):
    folder = tmp_path / "txt" / "ptb_text_only"
    folder.mkdir(parents=True)
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        (folder / f"{name}.txt").write_text("\n".join(PTB_LINES[split]) + "\n", encoding="utf-8")
    from_txt = build_ptb_text_only(data_dir=tmp_path / "txt", download=False, bptt=3)

    from datasets import Dataset, DatasetDict
    DatasetDict({split: Dataset.from_dict({"text": lines}) for split, lines in WIKI_LINES.items()}) \
        .save_to_disk(str(tmp_path / "disk" / "wikitext2"))
    _write_parquet(tmp_path / "pq" / "wikitext2", "text", WIKI_LINES)
    from_disk = build_wikitext2(data_dir=tmp_path / "disk", download=False, bptt=3)
    from_parquet = build_wikitext2(data_dir=tmp_path / "pq", download=False, bptt=3)
    assert torch.equal(from_disk.train.stream, from_parquet.train.stream)
    assert from_txt.info["validation_tokens"] == 4 + 1


def test_the_hugging_face_cache_is_read_offline(tmp_path):
    """A cache laid out as load_dataset(..., cache_dir=<data_dir>/huggingface) leaves it, read without network."""
    from datasets.packaged_modules.parquet.parquet import Parquet
    _write_parquet(tmp_path / "source", "sentence", PTB_LINES)
    files = {split: str(tmp_path / "source" / f"{split}.parquet") for split in PTB_LINES}
    builder = Parquet(cache_dir=str(tmp_path / "data" / "huggingface"), dataset_name="ptb_text_only",
                      data_files=files, hash="0123abcd")
    builder.download_and_prepare()
    # A hub download names its folder after the hub's config; a local builder after a hash.
    prepared = Path(builder.cache_dir)
    hub_like = prepared.parents[2] / "penn_treebank" / prepared.parent.name / prepared.name
    hub_like.parent.mkdir(parents=True)
    prepared.rename(hub_like)
    info = json.loads((hub_like / "dataset_info.json").read_text())
    (hub_like / "dataset_info.json").write_text(json.dumps({**info, "config_name": "penn_treebank"}))

    bundle = build_ptb_text_only(data_dir=tmp_path / "data", download=False, bptt=3)
    assert bundle.info["train_tokens"] == sum(len(line.split()) + 1 for line in PTB_LINES["train"])


@pytest.mark.parametrize("builder, name", [(build_wikitext2, "wikitext2"), (build_ptb_text_only, "ptb_text_only")])
def test_missing_dataset_without_download_is_one_sentence(tmp_path, builder, name):
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as caught:
        builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    message = str(caught.value)
    assert name in message and str(tmp_path / name) in message and "grammar_lm" in message
    assert "\n" not in message
    assert time.perf_counter() - started < 10  # the cache lookup must not wait on a network


def test_unreachable_hub_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(tg, "hub_reachable", lambda timeout=5.0: False)
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="cannot be reached.*grammar_lm"):
        build_ptb_text_only(data_dir=tmp_path, download=True)
    assert time.perf_counter() - started < 10


def test_registry_facts():
    for name, offline in (("grammar_lm", True), ("wikitext2", False), ("ptb_text_only", False)):
        entry = DATASETS.get(name)
        assert entry.meta["task"] == "text_generation" and entry.meta["offline"] is offline
    for name in ("gpt_small", "gru_lm", "lstm_lm"):
        assert MODELS.get(name).meta["task"] == "text_generation"
    assert build_vocabulary(["b a b", "c"], 3).words == ("<unk>", "<eos>", "b")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

PTB_INFO = {"vocab_size": 10_000, "bptt": 64}


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_at_a_ptb_vocabulary():
    assert 5_000_000 <= _count(build_gpt_small(info=PTB_INFO)) <= 10_000_000
    assert 3_000_000 <= _count(build_gru_lm(info=PTB_INFO)) <= 6_000_000
    assert 2_000_000 <= _count(build_lstm_lm(info=PTB_INFO)) <= 6_000_000


@pytest.mark.parametrize("builder", [build_gpt_small, build_gru_lm, build_lstm_lm])
def test_output_layer_is_tied_to_the_embedding(builder):
    model = builder(info={"vocab_size": 50, "bptt": 8}, d_model=16)
    embedding = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding))
    assert model.head.weight is embedding.weight
    assert _count(model) == sum(p.numel() for p in set(model.parameters()))  # counted once


@pytest.mark.parametrize("builder, kwargs", [(build_gpt_small, TINY_GPT), (build_gru_lm, {"d_model": 16}),
                                             (build_lstm_lm, {"d_model": 16})])
def test_changing_a_future_token_leaves_earlier_logits_alone(builder, kwargs):
    torch.manual_seed(0)
    model = builder(info={"vocab_size": 30, "bptt": 12}, **kwargs).eval()
    ids = torch.randint(0, 30, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 30
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert before.shape == (2, 12, 30)
    assert torch.allclose(before[:, :7], after[:, :7], atol=1e-6)
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_layers_knob():
    info = {"vocab_size": 40, "bptt": 8}
    assert len(build_gpt_small(info=info, **{**TINY_GPT, "layers": 3}).blocks.layers) == 3
    assert build_gru_lm(info=info, d_model=8, layers=1).rnn.num_layers == 1
    assert build_lstm_lm(info=info, d_model=8, layers=4).rnn.num_layers == 4
    one, two = (_count(build_lstm_lm(info=info, d_model=8, layers=n)) for n in (1, 2))
    assert two - one == 4 * (8 * 8 * 2 + 2 * 8)  # one more LSTM layer: four gates


def test_bad_knobs_are_user_errors():
    with pytest.raises(UserInputError, match="accepted model_kwargs: d_model, layers, dropout"):
        build_gru_lm(info=PTB_INFO, heads=2)
    with pytest.raises(UserInputError, match="multiple of heads"):
        build_gpt_small(info=PTB_INFO, d_model=30, heads=4)
    with pytest.raises(UserInputError, match="max_len"):
        build_gpt_small(info={"vocab_size": 10, "bptt": 200}, max_len=100)
    with pytest.raises(UserInputError, match="vocab_size"):
        build_lstm_lm(info={"num_classes": 10})


def test_generate_samples_continuations():
    torch.manual_seed(0)
    model = build_gpt_small(info={"vocab_size": 20, "bptt": 8}, **TINY_GPT, max_len=8)
    first = generate(model, [1], n=20, temperature=1.0, generator=torch.Generator().manual_seed(3), banned_ids=[0])
    again = generate(model, [1], n=20, temperature=1.0, generator=torch.Generator().manual_seed(3), banned_ids=[0])
    assert first == again and len(first) == 20 and 0 not in first
    assert all(0 <= t < 20 for t in first)
    greedy = generate(model, torch.tensor([1, 2]), n=5, temperature=0)
    with torch.no_grad():
        expected = int(model(torch.tensor([[1, 2]]))[0, -1].argmax())
    assert greedy[0] == expected and model.training  # the mode is restored
    rnn = build_gru_lm(info={"vocab_size": 20}, d_model=8)
    assert len(generate(rnn, [1], n=3, top_k=2)) == 3


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

def test_task_spec_and_offline_default():
    spec = TASKS.get("text_generation").meta["spec"]
    assert (spec.primary_metric, spec.higher_is_better, list(spec.metrics)) == ("perplexity", False, ["perplexity"])
    assert spec.family == "text" and spec.primary.unit == "ppl" and spec.primary.scale == 1
    assert (spec.offline_dataset, spec.scheduler, spec.max_grad_norm) == ("grammar_lm", "cosine", 1.0)
    assert spec.early_stopping_patience == 3 and spec.label_smoothing == 0
    cfg = resolve_config(RunConfig(task="text_generation", model="gpt_small"))
    assert cfg.dataset == "grammar_lm" and cfg.scheduler == "cosine" and cfg.max_grad_norm == 1.0


def test_summarize_is_exp_of_the_mean_token_nll():
    task = TextGeneration()
    result = task.summarize({"nll_sum": torch.tensor(3 * 100 * math.log(10)), "tokens": torch.tensor(300)})
    assert result == pytest.approx({"loss": math.log(10), "perplexity": 10.0})
    assert task.summarize({"nll_sum": torch.tensor(1e6), "tokens": torch.tensor(1)})["perplexity"] == math.inf


def test_forward_counts_tokens_and_a_uniform_model_scores_the_vocabulary_size():
    class Uniform(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 25)

    task = TextGeneration()
    batch = (torch.randint(0, 25, (3, 7)), torch.randint(0, 25, (3, 7)))
    loss, stats = task.train_step(Uniform(), batch)
    assert int(stats["tokens"]) == 21 and task.batch_size(batch) == 3
    assert float(loss) == pytest.approx(math.log(25))
    assert task.summarize(stats)["perplexity"] == pytest.approx(25.0)
    eval_stats, records = task.eval_step(Uniform(), batch)  # one record per chunk: its NLL and tokens
    assert [r["tokens"] for r in records] == [7, 7, 7]
    assert sum(r["nll_sum"] for r in records) == pytest.approx(float(stats["nll_sum"]), rel=1e-6)
    smoothed = TextGeneration(label_smoothing=0.1)
    torch.manual_seed(0)
    model = build_gru_lm(info={"vocab_size": 25}, d_model=8).eval()
    loss_s, stats_s = smoothed.train_step(model, batch)
    _, stats_plain = task.train_step(model, batch)
    assert float(stats_s["nll_sum"]) == pytest.approx(float(stats_plain["nll_sum"]))  # reported: plain NLL
    assert float(loss_s.detach()) != pytest.approx(float(stats_plain["nll_sum"]) / 21)


# ---------------------------------------------------------------------------------------------
# One run, the notebook, the grid
# ---------------------------------------------------------------------------------------------

def _tiny_config(tmp_path: Path, **changes) -> RunConfig:
    values = dict(task="text_generation", dataset="grammar_lm", model="gpt_small", optimizer="adamw",
                  epochs=1, batch_size=8, max_samples=16, model_kwargs=TINY_GPT, device="cpu",
                  output_dir=str(tmp_path / "out"), progress=False)
    return RunConfig(**{**values, **changes})


def test_run_experiment_on_grammar_lm_writes_a_run_directory(tmp_path):
    from nbhelpers.training import run_experiment
    result = run_experiment(_tiny_config(tmp_path))
    summary = result.summary
    assert summary["status"] == "completed" and summary["primary_metric"] == "perplexity"
    assert summary["higher_is_better"] is False
    assert 1 < summary["test"]["perplexity"] < 2 * len(toy_english().vocabulary)  # two steps: near uniform
    assert summary["test"]["loss"] == pytest.approx(math.log(summary["test"]["perplexity"]))
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert {"train_perplexity", "val_perplexity", "train_loss", "val_loss"} <= set(history[0])
    details = (result.run_dir / "details.txt").read_text()
    assert "Best possible perplexity" in details and "sizes: train 16" in details


def test_notebook_runs_under_papermill(tmp_path):
    import nbformat
    import papermill

    from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, read_notebook

    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        read_notebook(NOTEBOOK_DIR / "text_generation.py"), str(out),
        parameters={"epochs": 2, "batch_size": 8, "max_samples": 16, "model_kwargs": TINY_GPT,
                    "device": "cpu", "output_dir": str(tmp_path / "sweep"), "progress": False},
        kernel_name="python3", progress_bar=False, start_timeout=120)
    run_dir = tmp_path / "sweep" / "runs" / "gpt_small-adamw-s0"
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "history.jsonl", "summary.json",
                                                     "details.txt", "best_model.pt", "last.pt"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "grammar_lm" and summary["epochs_run"] == 2
    assert summary["test"]["perplexity"] > 1
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) for c in executed.cells for o in c.get("outputs", []))
    assert "test perplexity / best possible" in text and "Causal attention" in str(executed)
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 1  # the learning curves


def _check_report(sweep: Path, expected_runs: int) -> pd.DataFrame:
    report = sweep / "report"
    table = pd.read_csv(report / "results.csv")
    assert len(table) == expected_runs
    order = table[["model", "layers", "optimizer"]].astype(str).values.tolist()
    assert order == sorted(order, key=lambda r: (r[0], float(r[1]), r[2]))
    for name in ("curves_epochs.png", "curves_wallclock.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "index.html").is_file()
    return table


def test_grid_subset_sweeps_through_papermill_and_reports(tmp_path):
    from nbhelpers.report import build_report
    from nbhelpers.sweep.expand import plan_from_args
    from nbhelpers.sweep.run import run_sweep

    plan = plan_from_args(GRID, {"dataset": "grammar_lm", "optimizers": "adam", "epochs": 1, "batch_size": 8,
                                 "max_samples": 16, "model_kwargs": {"d_model": 16}, "device": "cpu",
                                 "output_dir": str(tmp_path / "grid"), "progress": False})
    assert [c.run_id for c in plan.configs] == ["lstm_lm-adam-layers1-s0", "gpt_small-adam-layers1-s0"]
    outcome = run_sweep(plan, workers=2)
    assert outcome.failed == 0, outcome.describe()
    build_report(plan.output_dir, execute_notebook=False)
    table = _check_report(plan.output_dir, 2)
    assert list(table["model"]) == ["gpt_small", "lstm_lm"]


def test_grid_lists_the_twelve_experiments_of_the_report():
    from nbhelpers.sweep.expand import plan_from_args
    plan = plan_from_args(GRID, {"dataset": "grammar_lm"})
    ids = [c.run_id for c in plan.configs]
    assert len(ids) == len(set(ids)) == 12
    assert ids[:4] == ["lstm_lm-adam-layers1-s0", "lstm_lm-adamw-layers1-s0", "lstm_lm-sgd-layers1-s0",
                       "lstm_lm-sgd_momentum-layers1-s0"]
    assert ids[-1] == "gpt_small-adamw-layers4-s0"
    assert {(c.batch_size, c.epochs, c.dataset) for c in plan.configs} == {(16, 10, "grammar_lm")}
    assert plan_from_args(GRID, {}).configs[0].dataset == "ptb_text_only"


@pytest.mark.slow  # twelve papermill runs; the default run keeps the two-run subset above
def test_whole_grid_sweeps_on_grammar_lm_and_reports(tmp_path):
    out = tmp_path / "grid"
    result = subprocess.run(
        [sys.executable, "-m", "nbhelpers", "sweep", str(GRID), "--dataset", "grammar_lm", "--epochs", "1",
         "--batch-size", "8", "--max-samples", "16", "--model-kwargs", "d_model=16", "--device", "cpu",
         "--output-dir", str(out), "--workers", "2", "--no-progress", "--report"],
        capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    table = _check_report(out, 12)
    assert set(zip(table["model"], table["layers"].astype(int))) == {
        ("lstm_lm", 1), ("lstm_lm", 2), ("lstm_lm", 4), ("gpt_small", 1), ("gpt_small", 2), ("gpt_small", 4)}
