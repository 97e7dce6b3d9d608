"""Language-modelling datasets: `grammar_lm` (offline), `wikitext2` and `ptb_text_only`.

Every builder returns a DataBundle whose items are `(input ids, target ids)`, two int64
tensors of length `bptt` (a dataset option, default 64): contiguous pieces of the token
stream of a split, the target shifted one token ahead of the input. Words are split on
whitespace and every line (sentence) ends with `<eos>`; the vocabulary comes from the
training split alone, `<unk>` (id 0) standing for everything outside it and `<eos>` being id 1.
All chunks have the same length, so there is no padding (`info["pad_id"]` is None).

info: vocab_size, pad_id, unk_id, eos_id, bptt, vocabulary (id -> word, for decoding) and the
token count of each split; grammar_lm adds its best possible perplexity (see below).

Real datasets (Hugging Face `datasets`), looked for in this order:

1. a local copy in `<data_dir>/<name>/` (name: wikitext2 or ptb_text_only), one of
   - `train.parquet`, `validation.parquet`, `test.parquet` with the text column
     (`text` for wikitext2, `sentence` for ptb_text_only),
   - `train.txt`, `validation.txt` (or `valid.txt`), `test.txt`: one line of text per line,
   - the files as their authors publish them: Mikolov's `ptb.train.txt`, `ptb.valid.txt`,
     `ptb.test.txt` (also in `simple-examples/data/`), WikiText's `wiki.train.raw`,
     `wiki.valid.raw`, `wiki.test.raw` (also in `wikitext-2-raw/`),
   - a snapshot of the hub repository (`data/train-00000-of-00001.parquet`,
     `wikitext-2-raw-v1/train-00000-of-00001.parquet`, `penn_treebank/train/0000.parquet`),
   - a folder written by `DatasetDict.save_to_disk` (it holds `dataset_dict.json`);
2. the Hugging Face caches, read offline: the hub cache ($HF_HUB_CACHE or $HF_HOME/hub),
   then what `datasets` prepared in `<data_dir>/huggingface/` or $HF_DATASETS_CACHE
   (nbhelpers/data/hf_files.py);
3. a download from the Hugging Face hub into `<data_dir>/huggingface/`, when `download` is
   true and the hub answers within a few seconds.
Otherwise one DatasetUnavailableError sentence names the dataset, the folder, the files looked
for and grammar_lm.

`grammar_lm` samples a toy English from a fixed second-order word process (see
nbhelpers/data/lm_grammar.py): train, validation and test are drawn independently with fixed
seeds, so they never change with the run's seed. Its entropy rate is computed exactly from
the stationary distribution of the process, which gives `info["best_perplexity"]`: the lowest
perplexity any model can reach on these chunks, counting `<eos>` like any other token.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nbhelpers.data import hf_files
from nbhelpers.data.base import DataBundle, cap
from nbhelpers.data.lm_grammar import EOS, UNK, toy_english
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "text_generation"
OFFLINE_ALTERNATIVE = "grammar_lm"
SPLITS = ("train", "validation", "test")
DEFAULT_BPTT = 64
# The Penn Treebank convention (Mikolov et al.): 10,000 words including <unk> and <eos>.
# PTB has exactly that many; WikiText-2 is cut to its most frequent words, which keeps the
# models' embedding tables (and parameter counts) the same on both.
DEFAULT_MAX_VOCAB = 10_000
# How long the hub may take to accept a TCP connection before we call it unreachable:
# `datasets` itself retries for about 25 s on a machine without network.
HUB_CONNECT_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------------------------
# Vocabulary and chunks (shared by every dataset here)
# --------------------------------------------------------------------------------------------

class Vocabulary:
    """Words <-> ids; id 0 is <unk> and id 1 is <eos>."""

    def __init__(self, words: Sequence[str]):
        self.words = tuple(words)
        self._ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        return self._ids.get(word, 0)

    def encode_lines(self, lines: Iterable[str]) -> torch.Tensor:
        """One stream of ids: the words of each non-blank line, then <eos>."""
        ids: list[int] = []
        eos = self.id(EOS)
        for line in lines:
            words = line.split()
            if words:
                ids.extend(self._ids.get(w, 0) for w in words)
                ids.append(eos)
        return torch.tensor(ids, dtype=torch.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """Words separated by spaces, a line break after each <eos>."""
        words = [self.words[int(i)] if 0 <= int(i) < len(self.words) else UNK for i in ids]
        return " ".join(words).replace(f" {EOS} ", f" {EOS}\n").strip()


def build_vocabulary(lines: Iterable[str], max_size: int = DEFAULT_MAX_VOCAB) -> Vocabulary:
    """<unk>, <eos>, then the most frequent words of `lines` (ties broken alphabetically)."""
    if max_size < 3:
        raise UserInputError(f"the vocabulary needs room for <unk>, <eos> and a word; max_vocab={max_size}")
    counts = Counter(w for line in lines for w in line.split())
    for special in (UNK, EOS):
        counts.pop(special, None)  # PTB writes rare words as a literal <unk>
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max_size - 2]
    return Vocabulary((UNK, EOS, *(w for w, _ in ranked)))


class LMChunks(Dataset):
    """Non-overlapping next-token pieces of a token stream: item i is (x, y) with y = x shifted by one.

    Item i covers stream[i*bptt : (i+1)*bptt + 1]; the tail that does not fill a whole
    chunk is dropped. Apart from that tail, every token except the first is a target exactly once.
    """

    def __init__(self, stream: torch.Tensor, bptt: int):
        if bptt < 1:
            raise UserInputError(f"bptt must be at least 1, got {bptt}")
        self.stream = stream
        self.bptt = bptt

    def __len__(self) -> int:
        return max(0, (len(self.stream) - 1) // self.bptt)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.bptt
        piece = self.stream[start:start + self.bptt + 1]
        return piece[:-1], piece[1:]


def _options(name: str, given: dict[str, Any], accepted: dict[str, Any]) -> dict[str, Any]:
    """The dataset's options: `accepted` defaults updated with `given`; unknown names are an error."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise UserInputError(f"dataset {name!r} does not take {', '.join(map(repr, unknown))} "
                             f"(its options: {', '.join(accepted)})")
    options = {**accepted, **given}
    for key in ("bptt", "max_vocab", "train_tokens", "eval_tokens"):
        value = options.get(key)
        if key in options and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserInputError(f"dataset {name!r}: {key} must be a whole number >= 1, got {value!r}")
    return options


def _bundle(name: str, streams: dict[str, torch.Tensor], vocab: Vocabulary, bptt: int,
            max_samples: int | None, description: str, extra_info: dict[str, Any] | None = None) -> DataBundle:
    """Chunk the three streams, cap each at `max_samples` chunks and fill in the info."""
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    chunks = {split: LMChunks(stream, bptt) for split, stream in streams.items()}
    for split, dataset in chunks.items():
        if len(dataset) == 0:
            raise UserInputError(f"dataset {name!r}: the {split} split has fewer than {bptt + 1} tokens "
                                 f"(bptt={bptt}); use a smaller bptt")
    info = {"vocab_size": len(vocab), "pad_id": None, "unk_id": vocab.id(UNK), "eos_id": vocab.id(EOS),
            "bptt": bptt, "vocabulary": list(vocab.words),
            **{f"{split}_tokens": int(len(stream)) for split, stream in streams.items()},
            **(extra_info or {})}
    return DataBundle(train=cap(chunks["train"], max_samples), val=cap(chunks["validation"], max_samples),
                      test=cap(chunks["test"], max_samples), info=info, description=description)


# --------------------------------------------------------------------------------------------
# grammar_lm: the offline default
# --------------------------------------------------------------------------------------------

# 125k training tokens: six epochs of the task's default budget (batch 32) take gpt_small
# about 2-4 CPU minutes, enough for adamw to come within 1.1x of the best possible perplexity
# (benchmarks/results/lm_convergence.md). 25k validation/test tokens pin a perplexity to ~1%.
GRAMMAR_TRAIN_TOKENS = 125_000
GRAMMAR_EVAL_TOKENS = 25_000
# Fixed, and different per split: the three splits are independent samples of the process.
GRAMMAR_SPLIT_SEEDS = {"train": 20_240_611, "validation": 20_240_612, "test": 20_240_613}


@lru_cache(maxsize=8)
def _grammar_stream(split: str, n_tokens: int) -> np.ndarray:
    """`n_tokens` of the toy English for one split, from the start of a sentence (cached)."""
    return toy_english().source.sample(n_tokens, np.random.default_rng(GRAMMAR_SPLIT_SEEDS[split]))


@lru_cache(maxsize=1)
def grammar_entropies() -> dict[str, float]:
    """Exact entropies (nats per token) of the toy English, from its stationary distribution.

    entropy_rate: with the whole history; bigram: with only the previous token;
    unigram: with no context.
    """
    source = toy_english().source
    pi = source.stationary()
    return {"entropy_rate": source.entropy_rate(pi),
            "bigram": source.entropy_given_last_token(pi),
            "unigram": source.unigram_entropy(pi)}


def grammar_best_perplexity(bptt: int = DEFAULT_BPTT) -> float:
    """The lowest perplexity any model can reach on grammar_lm chunks of `bptt` targets.

    exp of the exact mean loss of the true process on a chunk read from scratch: the first
    target of a chunk sees one word of context (bigram entropy), every later one sees enough
    to know the state (entropy rate). For bptt -> infinity this tends to exp(entropy rate).
    """
    if bptt < 1:
        raise UserInputError(f"bptt must be at least 1, got {bptt}")
    h = grammar_entropies()
    return math.exp((h["bigram"] + (bptt - 1) * h["entropy_rate"]) / bptt)


@DATASETS.register(
    "grammar_lm",
    description="toy English from a second-order word process with a known best perplexity (offline)",
    task=TASK, offline=True)
def build_grammar_lm(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                     download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline language-modelling corpus (options: bptt, train_tokens, eval_tokens).

    `seed` is unused on purpose: the corpus is fixed, so every run scores on the same text.
    `data_dir` and `download` are accepted for the common builder signature.
    """
    options = _options("grammar_lm", dataset_kwargs, {
        "bptt": DEFAULT_BPTT, "train_tokens": GRAMMAR_TRAIN_TOKENS, "eval_tokens": GRAMMAR_EVAL_TOKENS})
    grammar = toy_english()
    vocab = Vocabulary(grammar.vocabulary)
    sizes = {"train": options["train_tokens"], "validation": options["eval_tokens"], "test": options["eval_tokens"]}
    arrays = {split: _grammar_stream(split, n) for split, n in sizes.items()}
    streams = {split: torch.from_numpy(array.copy()) for split, array in arrays.items()}
    bptt = options["bptt"]
    h = grammar_entropies()
    best = grammar_best_perplexity(bptt)
    oracle = {f"oracle_{split}_perplexity": math.exp(-grammar.source.log_probs(arrays[split]).mean())
              for split in ("validation", "test")}
    # The task's "time to target" for this corpus: within 1.25x of the best possible perplexity.
    extra = {"best_perplexity": best, "target": 1.25 * best, "entropy_rate": h["entropy_rate"],
             "entropy_rate_perplexity": math.exp(h["entropy_rate"]),
             "bigram_perplexity": math.exp(h["bigram"]), "unigram_perplexity": math.exp(h["unigram"]),
             **oracle}
    description = (
        f"grammar_lm: a toy English of {len(vocab) - 2} words sampled from a fixed second-order word "
        f"process (tag grammar with agreement and semantic fields; <eos> ends each sentence); "
        f"{sizes['train']:,} training and {sizes['validation']:,} validation/test tokens, drawn "
        f"independently with fixed seeds, cut into contiguous chunks of {bptt} next-token targets. "
        f"Best possible perplexity on these chunks {best:.3f} (exact entropy rate "
        f"{h['entropy_rate']:.4f} nats/token); a model that sees only the previous word cannot "
        f"beat {math.exp(h['bigram']):.2f}, one that sees no context {math.exp(h['unigram']):.1f}.")
    return _bundle("grammar_lm", streams, vocab, bptt, max_samples, description, extra)


# --------------------------------------------------------------------------------------------
# Real datasets through Hugging Face `datasets`
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HubDataset:
    """Where a real corpus lives on the hub and which column holds its text."""

    name: str          # our name, also the local folder name
    path: str          # hub dataset name
    config: str | None
    column: str
    title: str
    original: str = ""                      # the authors' file names, "{split}" for train/valid/test
    original_folders: tuple[str, ...] = ()  # where their archive puts those files
    repo_ids: tuple[str, ...] = ()          # other names the hub cache may hold the repository under
    snapshot_config: str | None = None      # the config folder of the hub's parquet files

    @property
    def cache_repos(self) -> tuple[str, ...]:
        return (self.path, *self.repo_ids)


WIKITEXT2 = HubDataset("wikitext2", "wikitext", "wikitext-2-raw-v1", "text", "WikiText-2 (raw)",
                       original="wiki.{split}.raw", original_folders=("wikitext-2-raw",),
                       repo_ids=("Salesforce/wikitext",), snapshot_config="wikitext-2-raw-v1")
PTB = HubDataset("ptb_text_only", "ptb_text_only", None, "sentence", "Penn Treebank (text only)",
                 original="ptb.{split}.txt", original_folders=("simple-examples/data", "data"),
                 repo_ids=("ptb-text-only/ptb_text_only",), snapshot_config="penn_treebank")
# The authors' names for the splits (Mikolov's and WikiText's archives say "valid").
ORIGINAL_SPLIT_NAMES = {"train": "train", "validation": "valid", "test": "test"}


def _read_local(folder: Path, column: str, spec: HubDataset | None = None) -> dict[str, list[str]] | None:
    """The three splits from a local copy in `folder` (see the module docstring), or None."""
    if (folder / "dataset_dict.json").is_file():
        from datasets import load_from_disk
        splits = load_from_disk(str(folder))
        return {split: list(splits[_split_name(splits, split, folder)][column]) for split in SPLITS}
    for suffix in (".parquet", ".txt"):
        files = {split: _split_file(folder, split, suffix) for split in SPLITS}
        if all(path is not None for path in files.values()):
            return {split: _read_lines(path, column) for split, path in files.items()}
    if spec is not None and spec.original:
        for where in (folder, *(folder / sub for sub in spec.original_folders)):
            files = {split: where / spec.original.format(split=ORIGINAL_SPLIT_NAMES[split]) for split in SPLITS}
            if all(path.is_file() for path in files.values()):
                return {split: path.read_text(encoding="utf-8").splitlines() for split, path in files.items()}
    snapshot = hf_files.find_split_files(folder, SPLITS, spec.snapshot_config if spec else None)
    if snapshot is not None:
        return {split: _column_lines(hf_files.read_parquet(snapshot[split]), column, folder)
                for split in SPLITS}
    return None


def _split_name(splits: Any, split: str, folder: Path) -> str:
    for name in (split, "valid") if split == "validation" else (split,):
        if name in splits:
            return name
    raise UserInputError(f"the saved dataset in {folder} has no {split!r} split (it has {', '.join(splits)})")


def _split_file(folder: Path, split: str, suffix: str) -> Path | None:
    for name in (split, "valid") if split == "validation" else (split,):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _read_lines(path: Path, column: str) -> list[str]:
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8").splitlines()
    return _column_lines(hf_files.read_parquet([path]), column, path)


def _column_lines(table: Any, column: str, where: Path) -> list[str]:
    if column not in table.column_names:
        raise UserInputError(f"{where} has no {column!r} column (it has {', '.join(table.column_names)})")
    return [text or "" for text in table.column(column).to_pylist()]


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub accepts a TCP connection within `timeout` seconds (offline mode: no)."""
    return hf_files.hub_unreachable_reason(timeout) is None


def _load_hub(spec: HubDataset, cache: Path, *, online: bool) -> dict[str, list[str]] | None:
    """The three splits through datasets.load_dataset into `cache`; None if that fails."""
    import datasets
    datasets.logging.set_verbosity_error()  # its "using the latest cached version" warnings
    guard = contextlib.nullcontext() if online else hf_files.offline()
    try:
        with guard:
            splits = datasets.load_dataset(spec.path, spec.config, cache_dir=str(cache))
    except Exception:  # not cached, no network, a half-written cache: all mean "not available"
        return None
    return {split: list(splits[_split_name(splits, split, cache)][spec.column]) for split in SPLITS}


def _from_caches(spec: HubDataset, root: Path) -> dict[str, list[str]] | None:
    """The splits from the hub cache's snapshots or a cache `datasets` prepared, offline."""
    files = hf_files.find_in_hub_cache(spec.cache_repos, SPLITS, spec.snapshot_config)
    if files is not None:
        return {split: _column_lines(hf_files.read_parquet(files[split]), spec.column, files[split][0].parent)
                for split in SPLITS}
    for cache in hf_files.datasets_cache_dirs(root):
        if cache.is_dir():
            cached = _load_hub(spec, cache, online=False)
            if cached is not None:
                return cached
    return None


def load_text_splits(spec: HubDataset, data_dir: Path, download: bool) -> dict[str, list[str]]:
    """The lines of train/validation/test, from a local copy, the caches or the hub, in that order."""
    root = Path(data_dir).expanduser()
    folder, cache = root / spec.name, root / "huggingface"
    local = _read_local(folder, spec.column, spec)
    if local is not None:
        return local
    cached = _from_caches(spec, root)
    if cached is not None:
        return cached
    instead = f"or use --dataset {OFFLINE_ALTERNATIVE} (offline)"
    original = ", ".join(spec.original.format(split=ORIGINAL_SPLIT_NAMES[s]) for s in SPLITS) if spec.original else ""
    looked = (f"{hf_files.describe_layouts(SPLITS, spec.snapshot_config)}, train/validation/test .txt"
              f"{', ' + original if original else ''}, or a save_to_disk folder")
    caches = ", ".join(str(p) for p in [hf_files.hub_cache_dir(), *hf_files.datasets_cache_dirs(root)])
    where = f"not in {folder} (looked for {looked}) nor in the Hugging Face caches {caches}"
    if not download:
        raise DatasetUnavailableError(
            f"dataset {spec.name!r} is {where}, and downloading is off; put a copy there, {instead}")
    if not hub_reachable():
        raise DatasetUnavailableError(
            f"dataset {spec.name!r} is {where}, and the Hugging Face hub cannot be reached; "
            f"run once with network access, {instead}")
    loaded = _load_hub(spec, cache, online=True)
    if loaded is None:
        raise DatasetUnavailableError(
            f"dataset {spec.name!r} is {where}, and downloading {spec.path!r} from the Hugging Face hub "
            f"failed; run once with network access, {instead}")
    return loaded


def _build_real(spec: HubDataset, *, data_dir: Path | None, max_samples: int | None, download: bool,
                dataset_kwargs: dict[str, Any]) -> DataBundle:
    from nbhelpers.data.base import default_data_dir
    options = _options(spec.name, dataset_kwargs, {"bptt": DEFAULT_BPTT, "max_vocab": DEFAULT_MAX_VOCAB})
    lines = load_text_splits(spec, data_dir if data_dir is not None else default_data_dir(), download)
    vocab = build_vocabulary(lines["train"], options["max_vocab"])
    streams = {split: vocab.encode_lines(lines[split]) for split in SPLITS}
    unk_share = float((streams["train"] == vocab.id(UNK)).float().mean()) if len(streams["train"]) else 0.0
    bptt = options["bptt"]
    description = (
        f"{spec.title} from Hugging Face datasets ({spec.path}{'/' + spec.config if spec.config else ''}, "
        f"column {spec.column!r}): words split on whitespace, blank lines dropped, <eos> after every "
        f"line; vocabulary: the {len(vocab) - 2:,} most frequent training words plus <unk> and <eos> "
        f"({unk_share:.1%} of training tokens are <unk>); {len(streams['train']):,} training tokens, cut "
        f"into contiguous chunks of {bptt} next-token targets (no padding).")
    return _bundle(spec.name, streams, vocab, bptt, max_samples, description)


@DATASETS.register("wikitext2", description="WikiText-2 raw (Hugging Face), word level, 10k vocabulary",
                   task=TASK, offline=False)
def build_wikitext2(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                    download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """WikiText-2 (wikitext-2-raw-v1); options: bptt, max_vocab. `seed` is unused."""
    return _build_real(WIKITEXT2, data_dir=data_dir, max_samples=max_samples, download=download,
                       dataset_kwargs=dataset_kwargs)


@DATASETS.register("ptb_text_only", description="Penn Treebank text (Hugging Face), word level, 10k vocabulary",
                   aliases=("ptb_text_only_hf",),  # the name seed 001's commands use
                   task=TASK, offline=False)
def build_ptb_text_only(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                        download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """Penn Treebank, text only (ptb_text_only); options: bptt, max_vocab. `seed` is unused."""
    return _build_real(PTB, data_dir=data_dir, max_samples=max_samples, download=download,
                       dataset_kwargs=dataset_kwargs)


def sample_text(bundle: DataBundle, split: str = "train", index: int = 0, words: int | None = None) -> str:
    """The input text of one chunk of a split, decoded (for notebooks)."""
    dataset = {"train": bundle.train, "validation": bundle.val, "test": bundle.test}[split]
    inputs, _ = dataset[index]
    ids = inputs.tolist()[:words] if words else inputs.tolist()
    return Vocabulary(tuple(bundle.info["vocabulary"])).decode(ids)


__all__: Sequence[str] = ("LMChunks", "Vocabulary", "build_vocabulary", "grammar_best_perplexity",
                          "grammar_entropies", "hub_reachable", "load_text_splits", "sample_text")
