"""Named-entity datasets: `gazetteer_ner` (offline), `conll2003` and `wikiann_en`.

Every builder returns a DataBundle whose items are `(tokens, tag ids)`: a sentence as a list of
word strings and its IOB2 tags as ids into `info["tag_names"]` (for conll2003 and gazetteer_ner
O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC, B-MISC, I-MISC, the Hugging Face order; wikiann_en
has no MISC). The bundle's collate function, an `NERCollate`, pads a batch into a dict:

    word_ids  (B, T) int64   word ids; 0 is <pad>, 1 is <unk>
    char_ids  (B, T, C) int64  character ids of each word (0 pads), C <= max_word_len
    tags      (B, T) int64   tag ids; padding holds 0 and is masked out
    mask      (B, T) bool    True for real tokens (every sentence has at least one)
    tokens    list of lists of str: the words themselves, for records and notebooks

Words keep their case (capitals are a strong cue for names); the vocabulary is the training
split's words seen at least `min_freq` times, at most `max_vocab` of them; the character
vocabulary is the training split's characters. Unknown words and characters map to <unk>.
Word dropout (replacing training words by <unk> so the model learns what to do with unknown
names) is a model knob, `word_dropout`, applied in training mode only.

info: tag_names, class_names (the same list), num_tags, num_classes, words (id -> word),
vocab_size, pad_id, unk_id, chars (id -> character), char_vocab_size, char_pad_id, char_unk_id,
max_word_len, collate.

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/conll2003/   either Hugging Face files with columns tokens, pos_tags, chunk_tags,
                            ner_tags (ClassLabel names in the file's schema): train/validation/
                            test as .parquet or .arrow (also shards such as train-00000-of-00001
                            .parquet, train/0000.parquet, or a save_to_disk folder); or the
                            original CoNLL-2003 text files eng.train, eng.testa, eng.testb (or
                            train.txt, valid.txt / dev.txt, test.txt): "-DOCSTART-" lines, a blank
                            line after each sentence, four columns (word, POS, chunk, NER tag),
                            IOB1 tags that are converted to IOB2.
    <data_dir>/wikiann_en/  the same kinds of Hugging Face files with columns tokens, ner_tags,
                            langs, spans (WikiANN's English part, unimelb-nlp/wikiann "en").

When they are missing and downloading is allowed, `datasets.load_dataset` fetches them and the
splits are written there as parquet (features kept), so later runs need no network. Every tag
sequence is normalised to IOB2: an I-X that does not continue an X entity starts one (B-X).
`max_samples` caps each split at a fixed random subset (SPLIT_SEED, never the run's seed).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import Dataset

from nbhelpers.data.base import DataBundle, cap, default_data_dir
from nbhelpers.data.ner_gazetteer import TAGS as CONLL_TAGS
from nbhelpers.data.ner_gazetteer import generate_split
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "ner"
OFFLINE_ALTERNATIVE = "gazetteer_ner"
SPLITS = ("train", "validation", "test")
WIKIANN_TAGS = CONLL_TAGS[:7]
PAD, UNK = "<pad>", "<unk>"
MAX_VOCAB = 20_000
MAX_WORD_LEN = 20
# gazetteer_ner's sizes: enough for a BiLSTM-CRF to learn the context cues and the name
# morphology in a few CPU minutes (5 epochs; benchmarks/results/ner.md); 1000 test sentences
# hold about 1,300 entities, which pins an F1 to about a point.
GAZETTEER_SIZES = {"train": 4000, "validation": 1000, "test": 1000}


# --------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------

def to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB2 tags from IOB1 (or already IOB2) tags: an I-X not preceded by B-X/I-X becomes B-X.

    In IOB1 (the original CoNLL-2003 files) an entity starts with I-X and B-X appears only
    between two adjacent entities of the same type; IOB2 starts every entity with B-X. IOB2
    input comes back unchanged, so this also repairs stray I-X tags in any dataset.
    """
    out: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def entity_types(tag_names: Sequence[str]) -> list[str]:
    """The entity types of a tag list, in order of first appearance (PER, ORG, LOC, MISC)."""
    return list(dict.fromkeys(name[2:] for name in tag_names if name != "O"))


# --------------------------------------------------------------------------------------------
# Items, vocabularies, batches
# --------------------------------------------------------------------------------------------

class TaggedSentences(Dataset):
    """Sentences (lists of words) and their tag ids, served as (tokens, tag ids) pairs."""

    def __init__(self, tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[int]]):
        if len(tokens) != len(tags):
            raise ValueError(f"{len(tokens)} sentences but {len(tags)} tag sequences")
        for words, ids in zip(tokens, tags):
            if len(words) != len(ids):
                raise ValueError(f"a sentence of {len(words)} words has {len(ids)} tags")
        self.tokens = [list(words) for words in tokens]
        self.tags = [list(ids) for ids in tags]

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> tuple[list[str], list[int]]:
        return self.tokens[index], self.tags[index]

    def select(self, indices: Iterable[int]) -> "TaggedSentences":
        indices = list(indices)
        return TaggedSentences([self.tokens[i] for i in indices], [self.tags[i] for i in indices])


class Vocabulary:
    """Symbols <-> ids with <pad> (id 0) and <unk> (id 1)."""

    def __init__(self, symbols: Iterable[str]):
        self.itos = [PAD, UNK] + [s for s in symbols if s not in (PAD, UNK)]
        self.stoi = {symbol: index for index, symbol in enumerate(self.itos)}

    @classmethod
    def fit(cls, counts: Counter, max_size: int | None = None, min_freq: int = 1) -> "Vocabulary":
        """The most frequent symbols (ties alphabetical) seen at least `min_freq` times."""
        ranked = sorted((item for item in counts.items() if item[1] >= min_freq),
                        key=lambda item: (-item[1], item[0]))
        return cls([symbol for symbol, _ in ranked[:max_size]])

    def __len__(self) -> int:
        return len(self.itos)

    def id(self, symbol: str) -> int:
        return self.stoi.get(symbol, 1)


class NERCollate:
    """Pad a list of (tokens, tag ids) items into the batch dict described in the module docstring.

    A plain object (not a closure) so DataLoader workers can pickle it.
    """

    def __init__(self, words: Vocabulary, chars: Vocabulary, max_word_len: int = MAX_WORD_LEN):
        self.words, self.chars, self.max_word_len = words, chars, max_word_len

    def __call__(self, items: Sequence[tuple[Sequence[str], Sequence[int]]]) -> dict[str, Any]:
        tokens = [list(words) for words, _ in items]
        width = max(len(words) for words in tokens)
        if min(len(words) for words in tokens) < 1:
            raise ValueError("every sentence needs at least one token")
        char_width = min(self.max_word_len, max(len(w) for words in tokens for w in words))
        word_ids = torch.zeros(len(items), width, dtype=torch.long)
        char_ids = torch.zeros(len(items), width, max(char_width, 1), dtype=torch.long)
        tags = torch.zeros(len(items), width, dtype=torch.long)
        mask = torch.zeros(len(items), width, dtype=torch.bool)
        for row, (words, ids) in enumerate(items):
            n = len(words)
            word_ids[row, :n] = torch.tensor([self.words.id(w) for w in words])
            tags[row, :n] = torch.tensor(list(ids))
            mask[row, :n] = True
            for col, word in enumerate(words):
                piece = word[:char_width]
                char_ids[row, col, :len(piece)] = torch.tensor([self.chars.id(c) for c in piece])
        return {"word_ids": word_ids, "char_ids": char_ids, "tags": tags, "mask": mask, "tokens": tokens}


# --------------------------------------------------------------------------------------------
# Options and bundling
# --------------------------------------------------------------------------------------------

def _options(name: str, given: dict[str, Any], accepted: dict[str, Any]) -> dict[str, Any]:
    """The dataset's options: `accepted` defaults updated with `given`; unknown names are an error."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise UserInputError(f"dataset {name!r} does not take {', '.join(map(repr, unknown))} "
                             f"(its options: {', '.join(accepted)})")
    options = {**accepted, **given}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"dataset {name!r}: {key} must be a whole number >= 1, got {value!r}")
    return options


def _bundle(splits: dict[str, TaggedSentences], tag_names: Sequence[str], max_samples: int | None,
            options: dict[str, Any], description: str) -> DataBundle:
    """Cap the splits, fit word and character vocabularies on the training split, and bundle."""
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    capped = {}
    for split, dataset in splits.items():
        subset = cap(dataset, max_samples)
        capped[split] = dataset if subset is dataset else dataset.select(subset.indices)
    train = capped["train"]
    words = Vocabulary.fit(Counter(w for s in train.tokens for w in s), options["max_vocab"], options["min_freq"])
    chars = Vocabulary.fit(Counter(c for s in train.tokens for w in s for c in w))
    collate = NERCollate(words, chars, options["max_word_len"])
    tag_names = list(tag_names)
    info: dict[str, Any] = {
        "tag_names": tag_names, "class_names": tag_names, "num_tags": len(tag_names),
        "num_classes": len(tag_names), "entity_types": entity_types(tag_names),
        "words": list(words.itos), "vocab_size": len(words), "pad_id": 0, "unk_id": 1,
        "chars": list(chars.itos), "char_vocab_size": len(chars), "char_pad_id": 0, "char_unk_id": 1,
        "max_word_len": options["max_word_len"], "collate": collate}
    unknown = {split: _unknown_share(data, words) for split, data in capped.items()}
    description += (
        f" {len(train):,}/{len(capped['validation']):,}/{len(capped['test']):,} sentences for "
        f"train/validation/test; IOB2 tags {', '.join(tag_names)}. Words keep their case; the "
        f"vocabulary is the {len(words) - 2:,} training words seen at least {options['min_freq']} "
        f"time(s) (at most {options['max_vocab']:,}) plus <pad> and <unk> (unknown words: "
        f"{unknown['validation']:.1%} of validation and {unknown['test']:.1%} of test tokens); "
        f"characters: the {len(chars) - 2} seen in training, words cut to "
        f"{options['max_word_len']} characters for the character features.")
    return DataBundle(train=train, val=capped["validation"], test=capped["test"], info=info,
                      description=description, collate_fn=collate)


def _unknown_share(data: TaggedSentences, words: Vocabulary) -> float:
    total = sum(len(s) for s in data.tokens)
    return sum(w not in words.stoi for s in data.tokens for w in s) / max(total, 1)


_VOCAB_OPTIONS = {"max_vocab": MAX_VOCAB, "min_freq": 1, "max_word_len": MAX_WORD_LEN}


# --------------------------------------------------------------------------------------------
# gazetteer_ner: the offline default
# --------------------------------------------------------------------------------------------

@DATASETS.register(
    "gazetteer_ner",
    description="generated news sentences with PER/ORG/LOC/MISC names; validation/test names "
                "never seen in training, 4k/1k/1k (offline)",
    task=TASK, offline=True)
def build_gazetteer_ner(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                        download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline NER dataset (nbhelpers/data/ner_gazetteer.py); options: train_size, val_size,
    test_size, max_vocab, min_freq, max_word_len.

    Names are built from syllable stems with type-specific endings and designator words;
    templates give context cues, except neutral ones where only the name shows its type;
    ambiguous bare stems serve as PER, LOC and ORG in typed contexts. Validation and test use
    name stems that training never sees. `seed`, `data_dir` and `download` are unused: the
    sentences come from fixed seeds, so every run scores on the same data.
    """
    options = _options("gazetteer_ner", dataset_kwargs, {
        "train_size": GAZETTEER_SIZES["train"], "val_size": GAZETTEER_SIZES["validation"],
        "test_size": GAZETTEER_SIZES["test"], **_VOCAB_OPTIONS})
    sizes = {"train": options["train_size"], "validation": options["val_size"], "test": options["test_size"]}
    index = {tag: i for i, tag in enumerate(CONLL_TAGS)}
    splits = {}
    for split, n in sizes.items():
        tokens, tags = generate_split(split, n)
        splits[split] = TaggedSentences(tokens, [[index[t] for t in s] for s in tags])
    description = (
        "gazetteer_ner: generated news-like sentences from templates with PER/ORG/LOC/MISC slots, "
        "filled with made-up names whose endings and designator words mark their type ('-son', "
        "'-burg', '-tex', 'Bank', 'Cup' ...); about 30% of sentences give no context cue, and "
        "ambiguous bare names serve as person, place and company, told apart by context only. "
        "Validation and test names are built from stems never seen in training.")
    return _bundle(splits, CONLL_TAGS, max_samples, options, description)


# --------------------------------------------------------------------------------------------
# Real datasets: local files (Hugging Face parquet/arrow, CoNLL text), else a download
# --------------------------------------------------------------------------------------------

_SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
_CONLL_TEXT_NAMES = {"train": ("eng.train", "train.txt"),
                     "validation": ("eng.testa", "valid.txt", "validation.txt", "dev.txt"),
                     "test": ("eng.testb", "test.txt")}


def read_conll_text(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences and IOB2 tags from a CoNLL-2003 text file (word POS chunk NER per line).

    "-DOCSTART-" lines mark documents and are skipped; a blank line ends a sentence; the NER
    tag is the last column, converted from IOB1 to IOB2.
    """
    sentences: list[list[str]] = []
    tag_lists: list[list[str]] = []
    words: list[str] = []
    tags: list[str] = []

    def close() -> None:
        if words:
            sentences.append(list(words))
            tag_lists.append(to_iob2(tags))
            words.clear()
            tags.clear()

    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                close()
                continue
            if fields[0] == "-DOCSTART-":
                close()
                continue
            if len(fields) < 2:
                raise UserInputError(f"{path}, line {number}: expected 'word ... NER-tag' columns, got {line.strip()!r}")
            words.append(fields[0])
            tags.append(fields[-1])
    close()
    return sentences, tag_lists


def _hf_tag_names(schema_metadata: dict | None, folder_info: Path | None) -> list[str] | None:
    """The ClassLabel names of `ner_tags` from a file's Hugging Face metadata, if it has them."""
    features = None
    if schema_metadata and b"huggingface" in schema_metadata:
        features = json.loads(schema_metadata[b"huggingface"]).get("info", {}).get("features")
    if features is None and folder_info is not None and folder_info.is_file():
        features = json.loads(folder_info.read_text()).get("features")
    column = (features or {}).get("ner_tags")
    # datasets writes a list feature as {"feature": {...}, "_type": "Sequence"} (or "List").
    label = column.get("feature", column) if isinstance(column, dict) else None
    names = label.get("names") if isinstance(label, dict) else None
    return list(names) if names else None


def _read_table(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        return pq.read_table(path)
    try:  # datasets writes .arrow files in the IPC stream format
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()


def read_hf_files(paths: Sequence[Path], default_tags: Sequence[str]) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Sentences, IOB2 tag strings and the tag list from Hugging Face parquet/arrow files.

    The tag names come from the files' ClassLabel metadata (or a save_to_disk folder's
    dataset_info.json), else `default_tags`; string tags are taken as they are.
    """
    import pyarrow as pa

    tables = [_read_table(path) for path in paths]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    missing = [c for c in ("tokens", "ner_tags") if c not in table.column_names]
    if missing:
        raise UserInputError(f"{paths[0]} needs the columns tokens and ner_tags; it has "
                             f"{', '.join(table.column_names)}")
    names = _hf_tag_names(tables[0].schema.metadata, paths[0].parent / "dataset_info.json") or list(default_tags)
    tokens = [[str(w) for w in words] for words in table.column("tokens").to_pylist()]
    tags = []
    for row, ids in enumerate(table.column("ner_tags").to_pylist()):
        try:
            tags.append(to_iob2([t if isinstance(t, str) else names[int(t)] for t in ids]))
        except IndexError:
            raise UserInputError(f"{paths[0]}: sentence {row} has a tag id outside the {len(names)} "
                                 f"tag names {names}") from None
    return tokens, tags, names


def _find_hf_files(folder: Path, split: str) -> list[Path]:
    for suffix in (".parquet", ".arrow"):
        for name in _SPLIT_NAMES[split]:
            for pattern in (f"{name}{suffix}", f"{name}-*{suffix}", f"*-{name}{suffix}",
                            f"{name}/*{suffix}", f"*/{name}-*{suffix}", f"*/{name}/*{suffix}"):
                found = sorted(folder.glob(pattern))
                if found:
                    return found
    return []


def _read_local(folder: Path, default_tags: Sequence[str], conll_text: bool):
    """{split: (tokens, tags)} and the tag list from `folder`, or None if a split is missing."""
    if not folder.is_dir():
        return None
    files = {split: _find_hf_files(folder, split) for split in SPLITS}
    if all(files.values()):
        out, names = {}, None
        for split in SPLITS:
            tokens, tags, names = read_hf_files(files[split], default_tags)
            out[split] = (tokens, tags)
        return out, names
    if conll_text:
        text = {split: next((folder / n for n in _CONLL_TEXT_NAMES[split] if (folder / n).is_file()), None)
                for split in SPLITS}
        if all(text.values()):
            return {split: read_conll_text(path) for split, path in text.items()}, list(default_tags)
    return None


def _download(name: str, sources: Sequence[tuple[str, dict]], folder: Path, data_dir: Path) -> None:
    """Fetch the splits with `datasets` (first source that works) and write them as parquet."""
    from nbhelpers.data.sentiment import hub_unreachable_reason

    instead = f"or use --dataset {OFFLINE_ALTERNATIVE} (offline)"
    reason = hub_unreachable_reason()
    if reason is not None:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {folder} and could not be downloaded ({reason}); "
            f"run once with network access, put the files there, {instead}")
    try:
        import datasets
    except ImportError:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {folder} and downloading it needs the Hugging Face "
            f"'datasets' package (pip install datasets); put the files there, {instead}") from None
    errors = []
    for path, kwargs in sources:
        try:
            loaded = datasets.load_dataset(path, cache_dir=str(data_dir / "huggingface"), **kwargs)
            break
        except Exception as error:  # network, hub, script and cache errors all mean "try the next"
            errors.append(f"{path}: {str(error).strip().splitlines()[0][:100] if str(error).strip() else type(error).__name__}")
    else:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {folder} and could not be downloaded ({'; '.join(errors)}); "
            f"run once with network access, put the files there, {instead}")
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        found = [n for n in _SPLIT_NAMES[split] if n in loaded]
        if not found:
            raise DatasetUnavailableError(
                f"dataset {name!r}: the download has no {split} split (it has {', '.join(loaded)}); {instead}")
        part = loaded[found[0]]
        temporary = folder / f".{split}.{os.getpid()}.parquet.tmp"
        part.to_parquet(str(temporary))  # keeps the ClassLabel names in the file's metadata
        os.replace(temporary, folder / f"{split}.parquet")


def _load_real(name: str, *, data_dir: Path | None, download: bool, default_tags: Sequence[str],
               sources: Sequence[tuple[str, dict]], conll_text: bool):
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / name
    local = _read_local(folder, default_tags, conll_text)
    if local is None:
        looked_for = "train/validation/test .parquet or .arrow files"
        if conll_text:
            looked_for += " or the CoNLL text files eng.train, eng.testa, eng.testb"
        if not download:
            raise DatasetUnavailableError(
                f"dataset {name!r} is not in {folder} (looked for {looked_for}) and downloading "
                f"is off; run once with network access, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")
        _download(name, sources, folder, data_dir)
        local = _read_local(folder, default_tags, conll_text)
        if local is None:  # cannot happen unless the folder changed under us
            raise DatasetUnavailableError(f"dataset {name!r}: the downloaded files in {folder} could not be read")
    splits, names = local
    all_tags = {t for _, tags in splits.values() for s in tags for t in s}
    names = list(names) + sorted(all_tags - set(names))  # a tag outside the list is kept, not dropped
    index = {tag: i for i, tag in enumerate(names)}
    return {split: TaggedSentences(tokens, [[index[t] for t in s] for s in tags])
            for split, (tokens, tags) in splits.items()}, names


@DATASETS.register(
    "conll2003",
    description="CoNLL-2003 English news (Reuters), PER/ORG/LOC/MISC, 14k/3.3k/3.5k sentences "
                "(Hugging Face or the original text files)",
    task=TASK, offline=False)
def build_conll2003(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                    download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """CoNLL-2003 from <data_dir>/conll2003/ (see the module docstring); options: max_vocab,
    min_freq, max_word_len. The official splits: train, validation (testa), test (testb)."""
    options = _options("conll2003", dataset_kwargs, dict(_VOCAB_OPTIONS))
    splits, names = _load_real(
        "conll2003", data_dir=data_dir, download=download, default_tags=CONLL_TAGS, conll_text=True,
        sources=(("lhoestq/conll2003", {}), ("eriktks/conll2003", {"revision": "refs/convert/parquet"})))
    description = ("CoNLL-2003 English (Tjong Kim Sang & De Meulder 2003): Reuters news with "
                   "person, organisation, location and miscellaneous names; official splits "
                   "(train, testa as validation, testb as test), document markers dropped.")
    return _bundle(splits, names, max_samples, options, description)


@DATASETS.register(
    "wikiann_en",
    description="WikiANN English (Wikipedia, silver-standard), PER/ORG/LOC, 20k/10k/10k sentences "
                "(Hugging Face)",
    task=TASK, offline=False)
def build_wikiann_en(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                     download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """WikiANN's English part from <data_dir>/wikiann_en/ (Hugging Face unimelb-nlp/wikiann, "en");
    options: max_vocab, min_freq, max_word_len."""
    options = _options("wikiann_en", dataset_kwargs, dict(_VOCAB_OPTIONS))
    splits, names = _load_real(
        "wikiann_en", data_dir=data_dir, download=download, default_tags=WIKIANN_TAGS, conll_text=False,
        sources=(("unimelb-nlp/wikiann", {"name": "en"}),))
    description = ("WikiANN English (Pan et al. 2017; the balanced splits of Rahimi et al. 2019): "
                   "Wikipedia sentences whose PER/ORG/LOC tags come from anchor links, a silver "
                   "standard; official train/validation/test splits.")
    return _bundle(splits, names, max_samples, options, description)


def entity_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each entity in an IOB2 tag sequence, end exclusive.

    Strict IOB2, as seqeval's strict mode reads it: an entity is a B-X followed by any I-X;
    an I-X that does not continue an X entity starts none.
    """
    found, start, kind = [], None, None
    for position, tag in enumerate(list(tags) + ["O"]):
        continues = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not continues:
            found.append((start, position, kind))
            start, kind = None, None
        if tag.startswith("B-"):
            start, kind = position, tag[2:]
    return found


def tag_sentence(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """A sentence with its entities in brackets, "[PER Anna Kowalsen] visited [LOC Tarburg]" (for print)."""
    out, cursor = [], 0
    for start, end, kind in entity_spans(tags):
        out.extend(tokens[cursor:start])
        out.append(f"[{kind} {' '.join(tokens[start:end])}]")
        cursor = end
    out.extend(tokens[cursor:])
    return " ".join(out)


__all__ = ["NERCollate", "TaggedSentences", "Vocabulary", "entity_spans", "entity_types", "read_conll_text",
           "read_hf_files", "tag_sentence", "to_iob2"]
