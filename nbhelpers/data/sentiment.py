"""Sentiment-analysis datasets: `lexicon_sentiment` (offline), `sst2` and `imdb` (Hugging Face).

Every builder returns a DataBundle whose items are raw `(text: str, label: int)` pairs, label 0
negative and 1 positive. Texts are tokenized per batch by the bundle's collate_fn, a
`TextCollate`, so the model decides the tokenization:

- info["word_tokenizer"] is a `WordTokenizer` (lowercased word tokens, <pad>/<unk>) whose
  vocabulary is the most frequent words of the training split (after `max_samples`), at most
  `max_vocab` of them; it is what lstm_sentiment reads.
- A model builder installs its tokenizer with `use_tokenizer(info, tokenizer)`, which sets
  info["tokenizer"], info["vocab_size"] and info["pad_id"] and hands the tokenizer to the
  collate function (info["collate"], the same object as the bundle's collate_fn). distilbert_sentiment
  installs a WordPiece tokenizer this way; it trains one on info["train_texts"] when no
  pretrained tokenizer is at hand. Experiment builds the loaders after the model, so they
  tokenize with whatever the model installed.

Batches are dicts: input_ids (B x T, int64), attention_mask (B x T, 1 for real tokens) and
labels (B,), padded to the longest text of the batch and truncated to info["max_len"] (128).

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/sst2/train.parquet        the official splits, as published on the Hugging Face
    <data_dir>/sst2/validation.parquet   hub (stanfordnlp/sst2), columns `sentence` and `label`
    <data_dir>/imdb/train.parquet        stanfordnlp/imdb, columns `text` and `label`
    <data_dir>/imdb/test.parquet

(a `text` or `sentence` column is accepted in either; labels 0 negative, 1 positive). A
snapshot of the hub repository in that folder is read too (`huggingface-cli download
stanfordnlp/sst2 --repo-type dataset --local-dir <data_dir>/sst2` gives
`data/train-00000-of-00001.parquet`; imdb's is `plain_text/train-00000-of-00001.parquet`).
Then, still without a network, the Hugging Face caches: the hub cache ($HF_HUB_CACHE or
$HF_HOME/hub) and what `datasets` prepared in <data_dir>/huggingface or $HF_DATASETS_CACHE
(nbhelpers/data/hf_files.py says where exactly). Only when all of these are missing and
downloading is allowed does the builder download the dataset with
`datasets.load_dataset(..., cache_dir=<data_dir>/huggingface)` and write the files above, so
later runs need no network. SST-2's official test split has no labels: its validation split
(872 sentences) serves as our test split and a fixed 10% of its training split as validation.
IMDB's test split (25,000 reviews) is our test split and a fixed 10% of its training split our
validation. Splits and `max_samples` subsets depend on SPLIT_SEED only, never on the run's seed.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import Dataset

from nbhelpers.data import hf_files
from nbhelpers.data.base import SPLIT_SEED, DataBundle, cap, fixed_split
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "sentiment_analysis"
OFFLINE_ALTERNATIVE = "lexicon_sentiment"
CLASSES = ["negative", "positive"]
MAX_LEN = 128
MAX_VOCAB = 20_000
VAL_FRACTION = 0.1  # of the official training split, for sst2 and imdb
# A hub that does not answer within this many seconds counts as unreachable. datasets and
# transformers would otherwise retry for about half a minute before giving up.
HUB_PROBE_TIMEOUT_S = 3.0


# --------------------------------------------------------------------------------------------
# Items, tokenization, batches
# --------------------------------------------------------------------------------------------

class TextDataset(Dataset):
    """Texts and their labels, served as (text, label) pairs."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int]):
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        self.texts = list(texts)
        self.labels = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.texts[index], self.labels[index]

    def select(self, indices: Iterable[int]) -> "TextDataset":
        """A new TextDataset of the items at `indices`, in that order."""
        indices = list(indices)
        return TextDataset([self.texts[i] for i in indices], [self.labels[i] for i in indices])


def _capped(dataset: TextDataset, max_samples: int | None) -> TextDataset:
    """The fixed `max_samples` subset that base.cap() picks, as a TextDataset."""
    subset = cap(dataset, max_samples)
    return dataset if subset is dataset else dataset.select(subset.indices)


# Words (with inner apostrophes: "isn't", "'s") or single punctuation marks.
_WORD = re.compile(r"\w+(?:'\w+)*|'\w+|[^\w\s]")


class WordTokenizer:
    """Lowercased word tokens with <pad> (id 0) and <unk> (id 1); the LSTM path's tokenizer.

    Tokenization lowercases, turns IMDB's HTML line breaks into spaces and splits punctuation
    off the words, then splits on whitespace. Called like a Hugging Face tokenizer on a list of
    texts, it returns padded `input_ids` and `attention_mask` tensors, so TextCollate treats
    both kinds alike.
    """

    pad_token, unk_token = "<pad>", "<unk>"

    def __init__(self, vocabulary: Sequence[str]):
        self.itos = [self.pad_token, self.unk_token] + [w for w in vocabulary
                                                        if w not in (self.pad_token, self.unk_token)]
        self.stoi = {word: index for index, word in enumerate(self.itos)}

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int = MAX_VOCAB) -> "WordTokenizer":
        """The `max_vocab` most frequent words of `texts` (ties in alphabetical order)."""
        if max_vocab < 1:
            raise UserInputError(f"max_vocab must be at least 1, got {max_vocab}")
        counts = Counter(word for text in texts for word in cls.tokenize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[:max_vocab]])

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """The word tokens of `text`."""
        return _WORD.findall(text.lower().replace("<br />", " ").replace("<br/>", " "))

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def unk_token_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Token ids of `text`, truncated to `max_length`; an empty text becomes one <unk>."""
        ids = [self.stoi.get(word, 1) for word in self.tokenize(text)][:max_length] or [1]
        return ids

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def __call__(self, texts: Sequence[str], *, max_length: int, padding: str = "longest",
                 truncation: bool = True, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        """Pad to the longest text (truncated to max_length): input_ids and attention_mask."""
        if padding != "longest" or not truncation or return_tensors != "pt":
            raise ValueError("WordTokenizer pads to the longest text, truncates and returns tensors")
        encoded = [self.encode(text, max_length) for text in texts]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.zeros(len(encoded), width, dtype=torch.long)
        attention_mask = torch.zeros(len(encoded), width, dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class TextCollate:
    """Collate (text, label) items into a padded batch with `self.tokenizer`.

    A plain object rather than a closure so that DataLoader workers can pickle it, and so that
    a model builder can swap the tokenizer (see use_tokenizer) after the bundle is built.
    """

    def __init__(self, tokenizer: Any, max_len: int = MAX_LEN):
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __call__(self, items: Sequence[tuple[str, int]]) -> dict[str, torch.Tensor]:
        texts, labels = zip(*items)
        encoded = self.tokenizer(list(texts), padding="longest", truncation=True,
                                 max_length=self.max_len, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "labels": torch.tensor(labels, dtype=torch.long)}


def use_tokenizer(info: dict[str, Any], tokenizer: Any) -> None:
    """Make `tokenizer` the one the bundle's batches are built with (model builders call this).

    Sets info["tokenizer"], info["vocab_size"] (len(tokenizer)) and info["pad_id"], and hands
    the tokenizer to info["collate"], the bundle's collate function.
    """
    info["tokenizer"] = tokenizer
    info["vocab_size"] = len(tokenizer)
    info["pad_id"] = int(tokenizer.pad_token_id)
    if info.get("collate") is not None:
        info["collate"].tokenizer = tokenizer


def _bundle(train: TextDataset, val: TextDataset, test: TextDataset, max_samples: int | None,
            max_len: int, max_vocab: int, description: str) -> DataBundle:
    """Cap the splits, fit the word vocabulary on the (capped) training split, and bundle."""
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    if max_len < 1:
        raise UserInputError(f"max_len must be at least 1, got {max_len}")
    train, val, test = (_capped(split, max_samples) for split in (train, val, test))
    words = WordTokenizer.fit(train.texts, max_vocab)
    collate = TextCollate(words, max_len)
    info: dict[str, Any] = {"num_classes": 2, "classes": list(CLASSES), "max_len": max_len,
                            "word_tokenizer": words, "collate": collate,
                            "train_texts": train.texts}
    use_tokenizer(info, words)
    description += (
        f" Texts are truncated to {max_len} tokens and padded to the longest text of each batch."
        f" lstm_sentiment reads lowercased word tokens (punctuation split off, <br /> removed) with "
        f"a vocabulary of the {len(words) - 2:,} most frequent training words plus <pad> and <unk>;"
        " distilbert_sentiment reads WordPiece tokens (the pretrained uncased vocabulary, or one "
        "built from the training split when the pretrained files are not at hand).")
    return DataBundle(train=train, val=val, test=test, info=info, description=description,
                      collate_fn=collate)


def _check_options(name: str, dataset_kwargs: dict[str, Any]) -> tuple[int, int]:
    """max_len and max_vocab from the dataset options; anything else is a user error."""
    options = dict(dataset_kwargs)
    max_len = int(options.pop("max_len", MAX_LEN))
    max_vocab = int(options.pop("max_vocab", MAX_VOCAB))
    if options:
        raise UserInputError(f"dataset {name!r} does not accept {', '.join(sorted(options))} "
                             "(accepted options: max_len, max_vocab)")
    return max_len, max_vocab


# --------------------------------------------------------------------------------------------
# lexicon_sentiment: generated review sentences with negation and contrast (offline default)
# --------------------------------------------------------------------------------------------

POSITIVE = ("good", "great", "excellent", "wonderful", "brilliant", "charming", "moving",
            "delightful", "gripping", "funny", "clever", "beautiful", "superb", "enjoyable",
            "fresh", "touching", "solid", "engaging")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "tedious", "weak", "clumsy", "bland",
            "predictable", "messy", "lifeless", "forgettable", "painful", "poor", "silly", "flat",
            "disappointing")
# A negator flips every sentiment word after it in its clause ("not bad" is positive).
NEGATORS = ("not", "never", "hardly")
# "X but Y": Y decides. "although X , Y" and "Y , although X": Y (the main clause) decides.
CONTRAST = "but"
CONCESSIVES = ("although", "though", "while")

_SUBJECTS = ("movie", "film", "plot", "acting", "script", "soundtrack", "ending", "cast",
             "dialogue", "pacing", "story", "direction", "camera work", "lead actor", "sequel",
             "humour", "score", "villain")
_DETERMINERS = ("the", "the", "this", "that")
_MODIFIERS = ("long", "new", "second", "final", "short", "french", "original", "whole")
_VERBS = ("was", "is", "seemed", "felt", "looked", "remained", "proved")
_NEGATED_VERBS = ("was not", "is not", "was never", "is never", "was hardly", "did not seem",
                  "did not feel", "never seemed", "never felt", "does not look")
_INTENSIFIERS = ("very", "really", "quite", "rather", "pretty", "so", "truly", "fairly",
                 "somewhat", "genuinely")
_OPENERS = ("honestly", "frankly", "overall", "in my opinion", "i think", "to be honest",
            "admittedly", "for me")
_TRAILERS = ("at times", "in places", "for the most part", "from start to finish", "to me",
             "this time", "in the end", "as usual", "on the whole", "throughout")

LEXICON_SIZES = (6000, 1000, 1000)
LEXICON_SEED = 20240611  # fixed: the data never change with the run's seed
# Sentence shapes and how often each is drawn: one clause; "X but Y"; "although X , Y";
# "Y , although X". Contrast and concession always join clauses of opposite polarity.
_SHAPES = (("single", 0.40), ("but", 0.34), ("concessive_first", 0.13), ("concessive_last", 0.13))
NEGATION_RATE = 0.35


def _clause_score(tokens: Sequence[str]) -> int:
    """Sum of +1/-1 over sentiment words, each flipped when a negator precedes it in the clause."""
    score, negated = 0, False
    for token in tokens:
        if token in NEGATORS:
            negated = True
        elif token in POSITIVE or token in NEGATIVE:
            polarity = 1 if token in POSITIVE else -1
            score += -polarity if negated else polarity
    return score


def lexicon_label(sentence: str) -> int:
    """The label the lexicon rule gives a sentence: 1 positive, 0 negative.

    The sentence is cut into clauses at commas and at "but". A clause's score adds +1 for each
    positive and -1 for each negative word, flipped when "not", "never" or "hardly" comes before
    the word within the clause. If a clause follows "but", the last such clause alone decides;
    otherwise every clause without "although", "though" or "while" counts.
    Raises ValueError when the deciding clauses score 0 (the rule has no answer).
    """
    clauses: list[tuple[str, list[str]]] = []  # (role, tokens)
    role, current = "main", []
    for token in sentence.lower().split() + [","]:
        if token not in (",", CONTRAST):
            current.append(token)
            continue
        if current:
            # A clause with a concessive word is conceded, whatever opens it ("honestly although").
            conceded = any(word in CONCESSIVES for word in current)
            clauses.append(("concessive" if conceded else role, current))
            current, role = [], "main"
        if token == CONTRAST:  # "X , but Y": the comma closed X; "but" marks Y
            role = "contrast"
    contrasted = [tokens for role, tokens in clauses if role == "contrast"]
    deciding = contrasted[-1:] if contrasted else [t for role, t in clauses if role == "main"]
    score = sum(_clause_score(tokens) for tokens in deciding)
    if score == 0:
        raise ValueError(f"the lexicon rule gives no label to {sentence!r}")
    return int(score > 0)


def _clause(rng: random.Random, polarity: int) -> str:
    """One clause whose score is `polarity` (+1 or -1), with a random negation and fillers."""
    negated = rng.random() < NEGATION_RATE
    word_polarity = -polarity if negated else polarity
    adjective = rng.choice(POSITIVE if word_polarity > 0 else NEGATIVE)
    subject = " ".join([rng.choice(_DETERMINERS)]
                       + ([rng.choice(_MODIFIERS)] if rng.random() < 0.3 else [])
                       + [rng.choice(_SUBJECTS)])
    verb = rng.choice(_NEGATED_VERBS if negated else _VERBS)
    words = [subject, verb] + ([rng.choice(_INTENSIFIERS)] if rng.random() < 0.4 else []) + [adjective]
    if rng.random() < 0.25:
        words.append(rng.choice(_TRAILERS))
    return " ".join(words)


def _sentence(rng: random.Random) -> tuple[str, int]:
    """One generated review sentence and its label (1 positive, 0 negative)."""
    shape = rng.choices([s for s, _ in _SHAPES], weights=[w for _, w in _SHAPES])[0]
    polarity = rng.choice((-1, 1))  # of the deciding clause
    opener = [rng.choice(_OPENERS)] if rng.random() < 0.2 else []
    if shape == "single":
        parts = [_clause(rng, polarity)]
    elif shape == "but":
        comma = " ," if rng.random() < 0.5 else ""
        parts = [_clause(rng, -polarity) + comma, CONTRAST, _clause(rng, polarity)]
    elif shape == "concessive_first":
        parts = [rng.choice(CONCESSIVES), _clause(rng, -polarity), ",", _clause(rng, polarity)]
    else:
        parts = [_clause(rng, polarity), ",", rng.choice(CONCESSIVES), _clause(rng, -polarity)]
    return " ".join(opener + parts), int(polarity > 0)


def generate_lexicon_sentences(n: int, seed: int = LEXICON_SEED) -> tuple[list[str], list[int]]:
    """`n` distinct generated sentences and their labels; the same for the same n and seed."""
    rng = random.Random(seed)
    sentences: dict[str, int] = {}
    while len(sentences) < n:
        text, label = _sentence(rng)
        sentences.setdefault(text, label)
    return list(sentences), list(sentences.values())


@DATASETS.register(
    "lexicon_sentiment",
    description="generated review sentences labelled by a lexicon with negation and contrast, "
                "6k/1k/1k (offline)",
    task=TASK, offline=True)
def build_lexicon_sentiment(*, data_dir: Path | None = None, max_samples: int | None = None,
                            seed: int = 0, download: bool = True,
                            **dataset_kwargs: Any) -> DataBundle:
    """The offline sentiment dataset: 8,000 distinct generated sentences, split 6000/1000/1000.

    Labels follow lexicon_label(): negation flips a clause ("not bad" is positive), "but" hands
    the decision to the clause after it, and "although/though/while" to the other clause. A
    bag of words cannot get these right, a model that reads word order can. `data_dir`,
    `seed` and `download` are unused: the data are generated from a fixed seed.
    """
    max_len, max_vocab = _check_options("lexicon_sentiment", dataset_kwargs)
    texts, labels = generate_lexicon_sentences(sum(LEXICON_SIZES))
    full = TextDataset(texts, labels)
    n_train, n_val, _ = LEXICON_SIZES
    # Generation order is already random, so consecutive slices are random splits.
    train = full.select(range(n_train))
    val = full.select(range(n_train, n_train + n_val))
    test = full.select(range(n_train + n_val, len(full)))
    description = (
        f"lexicon_sentiment: {len(full):,} distinct generated review sentences (fixed seed "
        f"{LEXICON_SEED}), split {n_train}/{n_val}/{len(full) - n_train - n_val} into train/"
        "validation/test. Labels follow a lexicon of 18 positive and 18 negative words: "
        "'not', 'never' or 'hardly' flip the words after them in their clause, 'but' hands the "
        "decision to the clause after it, 'although'/'though'/'while' to the other clause; "
        "openers, intensifiers and trailing phrases are neutral filler.")
    return _bundle(train, val, test, max_samples, max_len, max_vocab, description)


# --------------------------------------------------------------------------------------------
# sst2 and imdb: local parquet files, else Hugging Face datasets
# --------------------------------------------------------------------------------------------

def hub_unreachable_reason(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the Hugging Face hub looks reachable, else a short reason why not (see hf_files)."""
    return hf_files.hub_unreachable_reason(timeout)


class _HubSource:
    """Where one real dataset comes from and which official splits it needs."""

    def __init__(self, name: str, hub_path: str, splits: tuple[str, ...], config: str | None = None,
                 repo_ids: tuple[str, ...] = ()):
        self.name, self.hub_path, self.splits, self.config = name, hub_path, splits, config
        self.repo_ids = (hub_path, *repo_ids)  # names the hub cache may know it by


_SOURCES = {
    "sst2": _HubSource("sst2", "stanfordnlp/sst2", ("train", "validation"), repo_ids=("glue",)),
    "imdb": _HubSource("imdb", "stanfordnlp/imdb", ("train", "test"), config="plain_text"),
}


def _read_parquet(path: Path | list[Path]) -> TextDataset:
    """A TextDataset from parquet file(s) with a `text` (or `sentence`) and a `label` column."""
    files = path if isinstance(path, list) else [path]
    path = files[0] if len(files) == 1 else files[0].parent
    table = hf_files.read_parquet(files)
    return _text_dataset(path, table.column_names, lambda c: table.column(c).to_pylist())


def _text_dataset(path: Any, columns: Sequence[str], column_values) -> TextDataset:
    """A TextDataset from a table-like source: `column_values(name)` gives a column's values."""
    table_columns = list(columns)
    column = next((c for c in ("text", "sentence") if c in table_columns), None)
    if column is None or "label" not in table_columns:
        raise UserInputError(f"{path} needs a 'text' (or 'sentence') and a 'label' column; "
                             f"it has {', '.join(table_columns)}")
    texts = [str(t) for t in column_values(column)]
    labels = column_values("label")
    bad = sorted({label for label in labels if label not in (0, 1)}, key=str)
    if bad:
        raise UserInputError(f"{path}: labels must be 0 (negative) or 1 (positive), found {bad[:5]}")
    return TextDataset(texts, labels)


def _write_parquet(path: Path, texts: Sequence[str], labels: Sequence[int]) -> None:
    """Write one split in the local layout, atomically (temporary file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.table({"text": list(texts), "label": [int(x) for x in labels]}), temporary)
    os.replace(temporary, path)


def _download(source: _HubSource, folder: Path, data_dir: Path) -> None:
    """Fetch the official splits with `datasets` and write them into `folder` as parquet."""
    reason = hub_unreachable_reason()
    instead = f"put the parquet files there, or use --dataset {OFFLINE_ALTERNATIVE} (offline)"
    if reason is not None:
        raise DatasetUnavailableError(
            f"dataset {source.name!r} is not in {folder} and could not be downloaded "
            f"({reason}); run once with network access, {instead}")
    try:
        import datasets
        loaded = datasets.load_dataset(source.hub_path, cache_dir=str(data_dir / "huggingface"))
    except ImportError:
        raise DatasetUnavailableError(
            f"dataset {source.name!r} is not in {folder} and downloading it needs the Hugging Face "
            f"'datasets' package (pip install datasets); {instead}") from None
    except Exception as error:  # network, hub and cache errors all mean the same to the user
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise DatasetUnavailableError(
            f"dataset {source.name!r} is not in {folder} and could not be downloaded "
            f"({reason}); run once with network access, {instead}") from None
    for split in source.splits:
        part = loaded[split]
        column = "text" if "text" in part.column_names else "sentence"
        _write_parquet(folder / f"{split}.parquet", part[column], part["label"])


def _official_splits(name: str, data_dir: Path | None, download: bool) -> dict[str, TextDataset]:
    """The official splits of sst2/imdb: local files, a snapshot, the caches, else a download."""
    from nbhelpers.data.base import default_data_dir

    source = _SOURCES[name]
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / name
    found = _find_without_network(source, folder, data_dir)
    if found is not None:
        return found
    if not download:
        looked = hf_files.describe_layouts(source.splits, source.config or "<config>")
        caches = ", ".join(str(p) for p in [hf_files.hub_cache_dir(), *hf_files.datasets_cache_dirs(data_dir)])
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {folder} (looked for {looked}) nor in the Hugging Face "
            f"caches {caches}, and downloading is off (download=False); run once with network "
            f"access and downloading on, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")
    _download(source, folder, data_dir)
    return {split: _read_parquet(folder / f"{split}.parquet") for split in source.splits}


def _find_without_network(source: _HubSource, folder: Path, data_dir: Path) -> dict[str, TextDataset] | None:
    """The splits from the local layout, a hub snapshot there, the hub cache or the datasets cache."""
    files = (hf_files.find_split_files(folder, source.splits, source.config)
             or hf_files.find_in_hub_cache(source.repo_ids, source.splits, source.config))
    if files is not None:
        return {split: _read_parquet(files[split]) for split in source.splits}
    cached = hf_files.load_cached(source.hub_path, source.config, hf_files.datasets_cache_dirs(data_dir))
    if cached is not None and all(split in cached for split in source.splits):
        return {split: _text_dataset(f"{source.hub_path} ({split}, Hugging Face cache)",
                                     cached[split].column_names, lambda c, part=cached[split]: part[c])
                for split in source.splits}
    return None


def _hold_out_validation(train: TextDataset) -> tuple[TextDataset, TextDataset]:
    """A fixed VAL_FRACTION of the official training split as validation (SPLIT_SEED)."""
    keep, held_out = fixed_split(len(train), (1 - VAL_FRACTION, VAL_FRACTION), seed=SPLIT_SEED)
    return train.select(keep), train.select(held_out)


@DATASETS.register(
    "sst2",
    description="SST-2 movie-review sentences (GLUE), 67k train / 872 labelled validation "
                "(Hugging Face)",
    task=TASK, offline=False)
def build_sst2(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
               download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """SST-2 from <data_dir>/sst2/{train,validation}.parquet, downloaded there when allowed.

    The official test split has no labels, so validation is a fixed 10% of the official training
    split and test is the official validation split. `seed` is unused (splits are fixed).
    """
    max_len, max_vocab = _check_options("sst2", dataset_kwargs)
    official = _official_splits("sst2", data_dir, download)
    train, val = _hold_out_validation(official["train"])
    description = (
        "SST-2 (Stanford Sentiment Treebank, binary, GLUE): sentences and phrases of movie "
        "reviews; validation is a fixed 10% of the official training split and test is the "
        "official validation split (the official test labels are not public).")
    return _bundle(train, val, official["validation"], max_samples, max_len, max_vocab,
                   description)


@DATASETS.register(
    "imdb",
    description="IMDB movie reviews, 25k train / 25k test, binary (Hugging Face)",
    task=TASK, offline=False)
def build_imdb(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
               download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """IMDB from <data_dir>/imdb/{train,test}.parquet, downloaded there when allowed.

    Validation is a fixed 10% of the official training split; test is the official test split.
    Reviews are long (about 230 words on average): the first max_len tokens are kept.
    `seed` is unused (splits are fixed).
    """
    max_len, max_vocab = _check_options("imdb", dataset_kwargs)
    official = _official_splits("imdb", data_dir, download)
    train, val = _hold_out_validation(official["train"])
    description = (
        "IMDB (Maas et al. 2011): full movie reviews labelled by their star rating; validation is "
        "a fixed 10% of the official training split and test is the official test split.")
    return _bundle(train, val, official["test"], max_samples, max_len, max_vocab,
                   description)


__all__ = ["TextCollate", "TextDataset", "WordTokenizer", "generate_lexicon_sentences",
           "hub_unreachable_reason", "lexicon_label", "use_tokenizer"]
