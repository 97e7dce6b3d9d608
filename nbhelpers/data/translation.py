"""Machine-translation datasets: `toy_translation` (offline), `iwslt14_en_de`, `europarl_bilingual`.

Every builder returns a DataBundle of TextPairs (see nbhelpers/data/seq2seq_text.py for the
items, the byte-level BPE with one vocabulary for both languages, and the batches).

Dataset knobs (dataset_kwargs): max_source_len and max_target_len (BPE pieces, </s> included;
longer texts are cut), vocab_size (BPE pieces), and for the real sets `direction` ("en-de",
the default, or "de-en"). toy_translation has `difficulty` (1-3), `train_size`, `eval_size`.

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/iwslt14_en_de/train.en, train.de, valid.en, valid.de, test.en, test.de
        fairseq's prepare-iwslt14.sh output: aligned lines, Moses-tokenized and lowercased, with
        subword-nmt's "@@ " joins, which are undone here (our BPE replaces theirs); or
    <data_dir>/iwslt14_en_de/{train,validation,test}.{parquet,jsonl} or a save_to_disk folder
        the Hugging Face translation form: a `translation` column of {"de": ..., "en": ...}
        (e.g. IWSLT/iwslt2017, config iwslt2017-de-en, which downloading fetches);
    <data_dir>/europarl_bilingual/train.{parquet,jsonl}, the hub's train-*.parquet shards or
        a save_to_disk folder: Helsinki-NLP/europarl_bilingual-style `translation` dicts (de-en).
        It ships one split: fixed slices of it (SPLIT_SEED) are our validation and test sets,
        and pairs with an empty side (Europarl has many) are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from nbhelpers.data.base import SPLIT_SEED, DataBundle, default_data_dir, fixed_split
from nbhelpers.data.seq2seq_text import (SPLITS, TextPairs, download_hub, drop_empty, make_bundle,
                                         parse_options, read_local_split)
from nbhelpers.data.toy_language import DIFFICULTIES, lexicon_size, toy_pairs
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "machine_translation"
OFFLINE_ALTERNATIVE = "toy_translation"
DIRECTIONS = ("en-de", "de-en")
# A hypothesis may run to 1.5x its source plus 10 pieces (capped at max_target_len).
DECODE_MAX_LEN = (1.5, 10)
REAL_DEFAULTS = {"direction": "en-de", "max_source_len": 128, "max_target_len": 128, "vocab_size": 10_000}
# Europarl's held-out slices: fixed sizes, drawn with SPLIT_SEED from its one split.
EUROPARL_EVAL_PAIRS = 2000


# --------------------------------------------------------------------------------------------
# toy_translation
# --------------------------------------------------------------------------------------------

TOY_DEFAULTS = {"difficulty": 2, "train_size": 12_000, "eval_size": 500,
                "max_source_len": 64, "max_target_len": 64, "vocab_size": 1000}


@DATASETS.register(
    "toy_translation",
    description="a generated language pair (SOV English -> SVO made-up language with agreement); "
                "one right translation per sentence, so BLEU 100 is attainable (offline)",
    task=TASK, offline=True)
def build_toy_translation(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                          download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline translation pairs: train_size/eval_size/eval_size distinct sentences.

    `seed`, `data_dir` and `download` are unused: the languages and the sentences come from a
    fixed seed, so every run is scored on the same test sentences.
    """
    options = parse_options("toy_translation", dataset_kwargs, TOY_DEFAULTS)
    difficulty = options["difficulty"]
    if difficulty not in DIFFICULTIES:
        raise UserInputError(f"dataset 'toy_translation': difficulty must be 1, 2 or 3, got {difficulty!r}")
    n_train, n_eval = options["train_size"], options["eval_size"]
    sources, targets = toy_pairs(n_train + 2 * n_eval, difficulty)
    full = TextPairs(sources, targets)
    # Generation order is random already: consecutive slices are random splits, and pairs are
    # distinct, so no test sentence is seen in training.
    splits = {"train": full.select(range(n_train)),
              "validation": full.select(range(n_train, n_train + n_eval)),
              "test": full.select(range(n_train + n_eval, len(full)))}
    sizes = lexicon_size(difficulty)
    description = (
        f"toy_translation (difficulty {difficulty}): {len(full):,} distinct generated sentence pairs, "
        f"split {n_train}/{n_eval}/{n_eval}. The source is English words in subject-object-verb order "
        f"({sizes['nouns']} nouns, {sizes['verbs']} verbs, {sizes['adjectives']} adjectives, "
        f"{sizes['adverbs']} adverbs); the target a made-up subject-verb-object language where "
        "determiners and adjectives agree with the noun's gender and number, the verb with the "
        "subject in three tenses, adjectives follow the noun in mirror order, and compounds and some "
        "'very' + adjective pairs are one word. Each source has exactly one translation: BLEU 100 is "
        "attainable.")
    return make_bundle(splits=splits, max_samples=max_samples, options=options, kind="translation",
                       description=description, decode_max_len=DECODE_MAX_LEN,
                       extra_info={"source_lang": "toy-en", "target_lang": "toy-xx", "difficulty": difficulty,
                                   "best_bleu": 100.0, "target": 90.0})


# --------------------------------------------------------------------------------------------
# iwslt14_en_de
# --------------------------------------------------------------------------------------------

_SUBWORD_NMT_JOIN = re.compile(r"@@( |$)")


def undo_subword_nmt(line: str) -> str:
    """'ver@@ stehen .' -> 'verstehen .' (fairseq's prepared IWSLT14 files carry these joins)."""
    return _SUBWORD_NMT_JOIN.sub("", line.rstrip("\n"))


def _direction(name: str, options: dict[str, Any]) -> tuple[str, str]:
    direction = str(options["direction"]).lower().replace("_", "-").replace(">", "")
    if direction not in DIRECTIONS:
        raise UserInputError(f"dataset {name!r}: direction must be 'en-de' or 'de-en', got {options['direction']!r}")
    source, target = direction.split("-")
    return source, target


def _fairseq_files(folder: Path) -> dict[str, dict[str, Path]] | None:
    """{split: {lang: path}} when all six fairseq text files are in `folder`."""
    names = {"train": ("train",), "validation": ("valid", "validation", "dev"), "test": ("test",)}
    found: dict[str, dict[str, Path]] = {}
    for split, prefixes in names.items():
        for prefix in prefixes:
            paths = {lang: folder / f"{prefix}.{lang}" for lang in ("en", "de")}
            if all(p.is_file() for p in paths.values()):
                found[split] = paths
                break
        else:
            return None
    return found


def _read_aligned(paths: dict[str, Path], source: str, target: str) -> TextPairs:
    lines = {lang: path.read_text(encoding="utf-8").split("\n") for lang, path in paths.items()}
    for lang in lines:  # the final newline leaves one empty string
        if lines[lang] and lines[lang][-1] == "":
            lines[lang].pop()
    if len(lines["en"]) != len(lines["de"]):
        raise UserInputError(f"{paths['en']} has {len(lines['en'])} lines but {paths['de']} has "
                             f"{len(lines['de'])}; the two sides must be aligned line by line")
    return drop_empty(TextPairs([undo_subword_nmt(x) for x in lines[source]],
                                [undo_subword_nmt(x) for x in lines[target]]))


def translation_pairs(rows: Sequence[Any], source: str, target: str, where: str) -> TextPairs:
    """TextPairs from Hugging Face `translation` dicts ({"de": ..., "en": ...})."""
    sources, targets = [], []
    for row in rows:
        if not isinstance(row, dict) or source not in row or target not in row:
            raise UserInputError(f"{where}: every 'translation' must be a dict with {source!r} and "
                                 f"{target!r} keys, got {str(row)[:80]}")
        sources.append(row[source] or "")
        targets.append(row[target] or "")
    return drop_empty(TextPairs(sources, targets))


def _missing(name: str, folder: Path, looked_for: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r} is not in {folder} (looked for {looked_for}) and downloading is off; "
        f"put the files there, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")


def _iwslt_splits(folder: Path, data_dir: Path, download: bool, source: str, target: str) -> tuple[dict, str]:
    files = _fairseq_files(folder)
    if files is not None:
        splits = {split: _read_aligned(files[split], source, target) for split in SPLITS}
        return splits, "fairseq's prepared IWSLT14 files (Moses-tokenized, lowercased; subword-nmt joins undone)"
    local = {split: read_local_split(folder, split, ["translation"]) for split in SPLITS}
    if any(v is None for v in local.values()):
        if not download:
            raise _missing("iwslt14_en_de", folder, "train/valid/test .en and .de text files, or "
                           "train/validation/test .parquet or .jsonl with a 'translation' column")
        # The hub's IWSLT 2017 is a loading script, which datasets >= 4 no longer runs; its
        # parquet conversion branch holds the same splits as plain files.
        download_hub(name="iwslt14_en_de", hub_path="IWSLT/iwslt2017", config="iwslt2017-de-en",
                     revision="refs/convert/parquet", folder=folder, data_dir=data_dir, splits=SPLITS,
                     columns=["translation"], offline_alternative=OFFLINE_ALTERNATIVE)
        local = {split: read_local_split(folder, split, ["translation"]) for split in SPLITS}
    splits = {split: translation_pairs(local[split]["translation"], source, target, f"{folder} ({split})")
              for split in SPLITS}
    return splits, "Hugging Face translation pairs (IWSLT 2017 TED talks, de-en)"


@DATASETS.register("iwslt14_en_de", description="IWSLT14 TED talks English-German (fairseq files or "
                   "Hugging Face translation pairs), ~160k pairs", task=TASK, offline=False)
def build_iwslt14_en_de(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                        download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """IWSLT14 de-en in either direction (default en->de); `seed` is unused (splits are fixed)."""
    options = parse_options("iwslt14_en_de", dataset_kwargs, REAL_DEFAULTS)
    source, target = _direction("iwslt14_en_de", options)
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / "iwslt14_en_de"
    splits, origin = _iwslt_splits(folder, data_dir, download, source, target)
    description = (f"iwslt14_en_de, {source}->{target}, from {origin}: {len(splits['train']):,} training, "
                   f"{len(splits['validation']):,} validation and {len(splits['test']):,} test pairs "
                   "(pairs with an empty side dropped).")
    return make_bundle(splits=splits, max_samples=max_samples, options=options, kind="translation",
                       description=description, decode_max_len=DECODE_MAX_LEN,
                       tokenizer_cache=data_dir / "tokenizers",
                       extra_info={"source_lang": source, "target_lang": target})


# --------------------------------------------------------------------------------------------
# europarl_bilingual
# --------------------------------------------------------------------------------------------

@DATASETS.register("europarl_bilingual", description="Europarl proceedings German-English (Hugging Face "
                   "translation pairs, one split cut into fixed train/validation/test)",
                   task=TASK, offline=False)
def build_europarl_bilingual(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                             download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """Europarl de-en in either direction (default en->de), with fixed 2,000-pair validation
    and test slices of its one split; `seed` is unused (the slices are fixed)."""
    options = parse_options("europarl_bilingual", dataset_kwargs, REAL_DEFAULTS)
    source, target = _direction("europarl_bilingual", options)
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / "europarl_bilingual"
    local = read_local_split(folder, "train", ["translation"])
    if local is None:
        if not download:
            raise _missing("europarl_bilingual", folder,
                           "train.parquet, train-*.parquet, train.jsonl or a save_to_disk folder "
                           "with a 'translation' column")
        download_hub(name="europarl_bilingual", hub_path="Helsinki-NLP/europarl", config="de-en",
                     folder=folder, data_dir=data_dir, splits=("train",), columns=["translation"],
                     offline_alternative=OFFLINE_ALTERNATIVE)
        local = read_local_split(folder, "train", ["translation"])
    pairs = translation_pairs(local["translation"], source, target, f"{folder} (train)")
    n = len(pairs)
    n_eval = min(EUROPARL_EVAL_PAIRS, max(1, n // 10))
    if n < 3:
        raise UserInputError(f"dataset 'europarl_bilingual': {folder} has {n} usable pairs; at least 3 are needed")
    train, val, test = fixed_split(n, (1 - 2 * n_eval / n, n_eval / n, n_eval / n), seed=SPLIT_SEED)
    splits = {"train": pairs.select(train), "validation": pairs.select(val), "test": pairs.select(test)}
    description = (f"europarl_bilingual, {source}->{target}: {n:,} pairs with text on both sides; fixed "
                   f"slices of {len(val):,} validation and {len(test):,} test pairs (drawn with the split "
                   f"seed from its one split), {len(train):,} for training.")
    return make_bundle(splits=splits, max_samples=max_samples, options=options, kind="translation",
                       description=description, decode_max_len=DECODE_MAX_LEN,
                       tokenizer_cache=data_dir / "tokenizers",
                       extra_info={"source_lang": source, "target_lang": target})
