"""What machine translation and summarization share: pairs of texts, BPE, batches, local files.

Items are `(example_id, source_text, target_text)`; the dataset keeps raw text and the bundle's
collate function (`Seq2SeqCollate`) turns a list of items into a batch with the bundle's
tokenizer:

    source_ids   (B, S) int64   source subwords then </s>, padded with <pad>, cut at max_source_len
    source_mask  (B, S) bool    True on real tokens
    target_ids   (B, T) int64   <s> target subwords </s>, padded, cut at max_target_len
    example_id   (B,)   int64   the item's index in its split
    source_text, target_text    the raw strings (lists), so records and metrics see real text

Tasks train with teacher forcing on target_ids[:, :-1] -> target_ids[:, 1:].

Tokenization is byte-level BPE (`tokenizers`), trained on the training split only: one
vocabulary for source and target (a shared vocabulary for translation, as fairseq's joint BPE).
Byte-level pieces cover every byte, so there is no <unk> in practice and `decode(encode(text))`
gives `text` back exactly (spaces, newlines and accents included): metrics score the real text.

DataBundle.info holds: tokenizer, vocab_size, pad_id, bos_id, eos_id, max_source_len,
max_target_len, collate (the collate function, so a model can install another tokenizer with
`use_tokenizer`), decode_max_len (a, b: a hypothesis may have at most a * source tokens + b
tokens, and never more than max_target_len), kind ("translation" or "summarization").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch.utils.data import Dataset

from nbhelpers.data.base import DataBundle, cap
from nbhelpers.errors import DatasetUnavailableError, UserInputError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
# Bumped when the tokenizer recipe changes, so cached tokenizers of the old recipe are not reused.
TOKENIZER_RECIPE = "bytelevel-bpe-v1"
SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------------
# Pairs of texts
# --------------------------------------------------------------------------------------------

class TextPairs(Dataset):
    """Source and target texts, served as (example_id, source, target)."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str]):
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        self.sources = [str(s) for s in sources]
        self.targets = [str(t) for t in targets]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, str, str]:
        return index, self.sources[index], self.targets[index]

    def select(self, indices: Iterable[int]) -> "TextPairs":
        """A new TextPairs of the items at `indices`, in that order (ids restart at 0)."""
        indices = list(indices)
        return TextPairs([self.sources[i] for i in indices], [self.targets[i] for i in indices])


def capped(pairs: TextPairs, max_samples: int | None) -> TextPairs:
    """The fixed `max_samples` subset that base.cap() picks, as TextPairs."""
    subset = cap(pairs, max_samples)
    return pairs if subset is pairs else pairs.select(subset.indices)


def drop_empty(pairs: TextPairs) -> TextPairs:
    """Pairs where both sides have some non-blank text (Europarl has one-sided lines)."""
    keep = [i for i, (s, t) in enumerate(zip(pairs.sources, pairs.targets)) if s.strip() and t.strip()]
    return pairs if len(keep) == len(pairs) else pairs.select(keep)


# --------------------------------------------------------------------------------------------
# Byte-level BPE
# --------------------------------------------------------------------------------------------

class BPETokenizer:
    """Byte-level BPE from `tokenizers`, with <pad>=0, <s>=1, </s>=2, <unk>=3.

    `encode` gives subword ids without special tokens, `decode` skips special tokens and
    inverts `encode` exactly. Called like a Hugging Face tokenizer where the notebooks need it
    (`convert_ids_to_tokens`, `len()`, `pad_token_id`...).
    """

    def __init__(self, tokenizer: Any):
        self.backend = tokenizer
        ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
        if ids != [0, 1, 2, 3]:
            raise ValueError(f"a BPETokenizer needs {SPECIAL_TOKENS} at ids 0-3, got {ids}")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> "BPETokenizer":
        """Learn merges on `texts` up to `vocab_size` tokens (256 bytes and 4 specials included)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 300:
            raise UserInputError(f"vocab_size must be at least 300 (256 bytes, the specials and a few "
                                 f"merges), got {vocab_size}")
        tokenizer = Tokenizer(models.BPE())
        # No normalizer: the text goes through untouched, which is what makes decoding exact.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def from_str(cls, text: str) -> "BPETokenizer":
        from tokenizers import Tokenizer
        return cls(Tokenizer.from_str(text))

    def to_str(self) -> str:
        return self.backend.to_str()

    # Hugging Face-like facts
    pad_token_id, bos_token_id, eos_token_id, unk_token_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Subword ids of `text` (no special tokens)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`, special tokens skipped."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)

    def decode_batch(self, rows: Iterable[Iterable[int]]) -> list[str]:
        return self.backend.decode_batch([[int(i) for i in row] for row in rows], skip_special_tokens=True)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def tokens(self, text: str) -> list[str]:
        """The subword pieces of `text`, readable: a leading space shows as '▁', a newline as '⏎'."""
        return self.pieces(self.encode(text))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The readable piece of each id (see tokens())."""
        return readable_pieces(self.convert_ids_to_tokens(ids), self.backend.decoder)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and self.to_str() == other.to_str()

    __hash__ = object.__hash__


class HFTokenizerAdapter:
    """A pretrained Hugging Face tokenizer (e.g. BART's) behind BPETokenizer's interface."""

    def __init__(self, tokenizer: Any):
        self.hf = tokenizer
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.bos_token_id = int(tokenizer.bos_token_id)
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.unk_token_id = int(tokenizer.unk_token_id)

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.hf(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Iterable[int]) -> str:
        # No "clean up": it would remove spaces before punctuation and break exactness.
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True,
                              clean_up_tokenization_spaces=False)

    def decode_batch(self, rows: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(row) for row in rows]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return self.hf.convert_ids_to_tokens([int(i) for i in ids])

    def tokens(self, text: str) -> list[str]:
        return self.pieces(self.encode(text))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        from tokenizers import decoders  # BART's pieces are byte-level BPE too
        return readable_pieces(self.convert_ids_to_tokens(ids), decoders.ByteLevel())


def readable_pieces(pieces: Sequence[str], decoder: Any) -> list[str]:
    """Byte-level pieces as text: a space shows as '▁', a newline as '⏎' (a piece that ends
    inside a multi-byte character shows as '�')."""
    return [decoder.decode([p]).replace(" ", "▁").replace("\n", "⏎") for p in pieces]


def train_tokenizer(texts: Sequence[str], vocab_size: int, cache_dir: Path | None = None) -> BPETokenizer:
    """A BPE tokenizer for `texts`, read from `cache_dir` when the same texts were seen before.

    Training BPE on 50,000 news articles takes a while; every run of a sweep needs the same
    tokenizer, so it is kept as JSON keyed by a hash of the texts and the vocabulary size.
    """
    path = None
    if cache_dir is not None:
        digest = hashlib.sha1(f"{TOKENIZER_RECIPE}|{vocab_size}|{len(texts)}".encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        path = Path(cache_dir) / f"bpe-{vocab_size}-{digest.hexdigest()[:16]}.json"
        if path.is_file():
            try:
                return BPETokenizer.from_str(path.read_text(encoding="utf-8"))
            except Exception:  # a damaged cache file: train again and overwrite it
                pass
    tokenizer = BPETokenizer.train(texts, vocab_size)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(tokenizer.to_str(), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:  # a read-only data folder only costs the next run a retraining
            pass
    return tokenizer


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------

class Seq2SeqCollate:
    """Collate (id, source, target) items into the batch described in the module docstring.

    A plain object (picklable for DataLoader workers) whose tokenizer a model builder may
    swap with `use_tokenizer` after the bundle is built.
    """

    def __init__(self, tokenizer: Any, *, max_source_len: int, max_target_len: int):
        self.tokenizer = tokenizer
        self.max_source_len = max_source_len
        self.max_target_len = max_target_len

    def __call__(self, items: Sequence[tuple[int, str, str]]) -> dict[str, Any]:
        ids, sources, targets = zip(*items)
        tok = self.tokenizer
        pad, bos, eos = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
        # Truncation keeps the closing </s>, so a model always learns where a text stops.
        source_rows = [row[:self.max_source_len - 1] + [eos] for row in tok.encode_batch(sources)]
        target_rows = [[bos] + row[:self.max_target_len - 2] + [eos] for row in tok.encode_batch(targets)]
        source_ids = _pad(source_rows, pad)
        return {"source_ids": source_ids, "source_mask": source_ids != pad,
                "target_ids": _pad(target_rows, pad),
                "example_id": torch.tensor(ids, dtype=torch.long),
                "source_text": list(sources), "target_text": list(targets)}


def _pad(rows: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def use_tokenizer(info: dict[str, Any], tokenizer: Any) -> None:
    """Make `tokenizer` the one batches are built with (bart_small's pretrained one, say).

    Sets info["tokenizer"], ["vocab_size"], ["pad_id"], ["bos_id"], ["eos_id"] and hands the
    tokenizer to info["collate"].
    """
    info["tokenizer"] = tokenizer
    info["vocab_size"] = len(tokenizer)
    info["pad_id"] = int(tokenizer.pad_token_id)
    info["bos_id"] = int(tokenizer.bos_token_id)
    info["eos_id"] = int(tokenizer.eos_token_id)
    if info.get("collate") is not None:
        info["collate"].tokenizer = tokenizer


# --------------------------------------------------------------------------------------------
# Options and the bundle
# --------------------------------------------------------------------------------------------

def parse_options(name: str, dataset_kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Dataset knobs over `defaults`; an unknown knob or a bad whole number is a UserInputError."""
    unknown = sorted(set(dataset_kwargs) - set(defaults))
    if unknown:
        raise UserInputError(f"dataset {name!r} does not accept {', '.join(unknown)} "
                             f"(accepted options: {', '.join(defaults)})")
    options = {**defaults, **dataset_kwargs}
    for key in ("max_source_len", "max_target_len", "vocab_size", "train_size", "eval_size"):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (3 if "len" in key else 1):
                raise UserInputError(f"dataset {name!r}: {key} must be a whole number >= "
                                     f"{3 if 'len' in key else 1}, got {value!r}")
    return options


def make_bundle(*, splits: Mapping[str, TextPairs], max_samples: int | None, options: Mapping[str, Any],
                kind: str, description: str, decode_max_len: tuple[float, int],
                tokenizer_cache: Path | None = None, extra_info: Mapping[str, Any] | None = None) -> DataBundle:
    """Cap the splits, train BPE on the (capped) training split and bundle everything."""
    if max_samples is not None and (isinstance(max_samples, bool) or max_samples < 1):
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    train, val, test = (capped(splits[s], max_samples) for s in SPLITS)
    for split, pairs in (("train", train), ("validation", val), ("test", test)):
        if len(pairs) == 0:
            raise UserInputError(f"the {split} split has no pairs of texts")
    # One vocabulary for both sides: the pieces of the source and of the target.
    tokenizer = train_tokenizer(train.sources + train.targets, int(options["vocab_size"]), tokenizer_cache)
    collate = Seq2SeqCollate(tokenizer, max_source_len=int(options["max_source_len"]),
                             max_target_len=int(options["max_target_len"]))
    info: dict[str, Any] = {"kind": kind, "collate": collate,
                            "max_source_len": int(options["max_source_len"]),
                            "max_target_len": int(options["max_target_len"]),
                            "decode_max_len": tuple(decode_max_len), **(extra_info or {})}
    use_tokenizer(info, tokenizer)
    description += (
        f" Byte-level BPE ({len(tokenizer):,} pieces, trained on the training split, one vocabulary "
        f"for source and target; decoding gives the text back exactly); sources are cut at "
        f"{info['max_source_len']} and targets at {info['max_target_len']} pieces, </s> included.")
    return DataBundle(train=train, val=val, test=test, info=info, description=description,
                      collate_fn=collate)


# --------------------------------------------------------------------------------------------
# Local copies of Hugging Face datasets
# --------------------------------------------------------------------------------------------

SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
# Where a split's parquet files may be: our own layout, the hub's shards (train-00000-of-00003),
# the same one config folder down (3.0.0/, de-en/), and the parquet converter's
# <config>/<split>/0000.parquet.
_PARQUET_PATTERNS = ("{split}.parquet", "{split}-*.parquet", "*/{split}-*.parquet", "*/{split}.parquet",
                     "{split}/*.parquet", "*/{split}/*.parquet")


def read_local_split(folder: Path, split: str, columns: Sequence[str]) -> dict[str, list] | None:
    """Columns of one split from `folder`, or None when no file of the split is there.

    Accepted, in this order: a `save_to_disk` folder (dataset_dict.json); `<split>.parquet`;
    the hub's shards `<split>-*.parquet` or `<split>/0000.parquet` (also one config folder
    down, e.g. 3.0.0/); `<split>.jsonl` (one JSON object per line, as `Dataset.to_json` writes).
    """
    if (folder / "dataset_dict.json").is_file():
        from datasets import load_from_disk
        saved = load_from_disk(str(folder))
        name = next((n for n in SPLIT_ALIASES[split] if n in saved), None)
        if name is None:
            return None
        return _columns(saved[name].column_names, lambda c: list(saved[name][c]), columns, folder / name)
    for alias in SPLIT_ALIASES[split]:
        shards = next((found for pattern in _PARQUET_PATTERNS
                       if (found := sorted(folder.glob(pattern.format(split=alias))))), [])
        if shards:
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.concat_tables([pq.read_table(path) for path in shards])
            return _columns(table.column_names, lambda c: table.column(c).to_pylist(), columns, shards[0])
        path = folder / f"{alias}.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            names = list(rows[0]) if rows else list(columns)
            return _columns(names, lambda c: [row.get(c) for row in rows], columns, path)
    return None


def _columns(names: Sequence[str], read, columns: Sequence[str], where: Path) -> dict[str, list]:
    missing = [c for c in columns if c not in names]
    if missing:
        raise UserInputError(f"{where} has no {', '.join(map(repr, missing))} column "
                             f"(it has {', '.join(names)})")
    return {c: read(c) for c in columns}


def write_local_split(folder: Path, split: str, columns: Mapping[str, list]) -> None:
    """Write one split as `<split>.parquet`, atomically (temporary file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.parquet"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.table(dict(columns)), temporary)
    os.replace(temporary, path)


def download_hub(*, name: str, hub_path: str, config: str | None, folder: Path, data_dir: Path,
                 splits: Sequence[str], columns: Sequence[str], offline_alternative: str,
                 revision: str | None = None) -> None:
    """Fetch a dataset with `datasets` and write its splits into `folder` as parquet files."""
    from nbhelpers.data.sentiment import hub_unreachable_reason

    instead = f"put the files there, or use --dataset {offline_alternative} (offline)"
    reason = hub_unreachable_reason()
    if reason is not None:
        raise DatasetUnavailableError(f"dataset {name!r} is not in {folder} and could not be downloaded "
                                      f"({reason}); run once with network access, {instead}")
    try:
        import datasets
        loaded = datasets.load_dataset(hub_path, config, revision=revision, cache_dir=str(data_dir / "huggingface"))
    except ImportError:
        raise DatasetUnavailableError(f"dataset {name!r} is not in {folder} and downloading it needs the "
                                      f"Hugging Face 'datasets' package; {instead}") from None
    except Exception as error:  # network, hub and cache errors all mean the same to the user
        first = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise DatasetUnavailableError(f"dataset {name!r} is not in {folder} and could not be downloaded "
                                      f"({first}); run once with network access, {instead}") from None
    for split in splits:
        part = loaded[split]
        write_local_split(folder, split, {c: part[c] for c in columns})


__all__: Sequence[str] = ("BOS", "EOS", "PAD", "UNK", "BPETokenizer", "HFTokenizerAdapter", "Seq2SeqCollate",
                          "TextPairs", "make_bundle", "parse_options", "read_local_split", "train_tokenizer",
                          "use_tokenizer", "write_local_split")
