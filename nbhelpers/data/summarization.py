"""Summarization datasets: `toy_summaries` (offline), `cnn_dailymail` (3.0.0) and `aeslc`.

Every builder returns a DataBundle of TextPairs (document, summary); see
nbhelpers/data/seq2seq_text.py for the items, the byte-level BPE (one vocabulary for documents
and summaries) and the batches. Summaries keep their newlines between sentences: ROUGE-Lsum
splits sentences on them.

Dataset knobs (dataset_kwargs): max_source_len and max_target_len (BPE pieces, </s> included:
longer documents and summaries are cut for training; the references that metrics see stay
whole) and vocab_size. toy_summaries also has `difficulty` (1-3), `train_size`, `eval_size`.

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/cnn_dailymail/{train,validation,test}.parquet   columns `article`, `highlights`
        (the hub's abisee/cnn_dailymail 3.0.0 shards, 3.0.0/train-00000-of-00003.parquet and so
        on, are read as they are; so are .jsonl files and save_to_disk folders);
    <data_dir>/aeslc/{train,validation,test}.parquet            columns `email_body`, `subject_line`
        (Yale-LILY/aeslc).

When they are missing and downloading is allowed, the builder fetches them with
`datasets.load_dataset(..., cache_dir=<data_dir>/huggingface)` and writes the files above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbhelpers.data.base import DataBundle, default_data_dir
from nbhelpers.data.seq2seq_text import (SPLITS, TextPairs, download_hub, drop_empty, make_bundle,
                                         parse_options, read_local_split)
from nbhelpers.data.toy_documents import DIFFICULTIES, toy_documents
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "text_summarization"
OFFLINE_ALTERNATIVE = "toy_summaries"
# A summary may run to the length of its document plus 10 pieces (capped at max_target_len).
DECODE_MAX_LEN = (1.0, 10)


# --------------------------------------------------------------------------------------------
# toy_summaries
# --------------------------------------------------------------------------------------------

TOY_DEFAULTS = {"difficulty": 1, "train_size": 3000, "eval_size": 300,
                "max_source_len": 256, "max_target_len": 96, "vocab_size": 1000}


@DATASETS.register(
    "toy_summaries",
    description="generated news-like documents; the summary is the main person's sentences, shortened, "
                "so ROUGE 100 is attainable (offline)",
    task=TASK, offline=True)
def build_toy_summaries(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                        download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline summarization pairs: train_size/eval_size/eval_size distinct documents.

    `seed`, `data_dir` and `download` are unused: the documents come from a fixed seed.
    """
    options = parse_options("toy_summaries", dataset_kwargs, TOY_DEFAULTS)
    difficulty = options["difficulty"]
    if difficulty not in DIFFICULTIES:
        raise UserInputError(f"dataset 'toy_summaries': difficulty must be 1, 2 or 3, got {difficulty!r}")
    n_train, n_eval = options["train_size"], options["eval_size"]
    documents, summaries = toy_documents(n_train + 2 * n_eval, difficulty)
    full = TextPairs(documents, summaries)
    splits = {"train": full.select(range(n_train)),
              "validation": full.select(range(n_train, n_train + n_eval)),
              "test": full.select(range(n_train + n_eval, len(full)))}
    lead = ("the first sentence is always about that person" if difficulty < 3
            else "the first sentence need not be about that person")
    description = (
        f"toy_summaries (difficulty {difficulty}): {len(full):,} distinct generated news-like documents, "
        f"split {n_train}/{n_eval}/{n_eval}. Each tells what a few people did; the reference summary is "
        f"every sentence about the person mentioned most ({lead}), in document order, without its time "
        "opener and trailing attribution, one sentence per line. The summary follows from the document "
        "alone: ROUGE 100 is attainable.")
    return make_bundle(splits=splits, max_samples=max_samples, options=options, kind="summarization",
                       description=description, decode_max_len=DECODE_MAX_LEN,
                       extra_info={"difficulty": difficulty, "best_rouge": 100.0, "target": 80.0})


# --------------------------------------------------------------------------------------------
# cnn_dailymail and aeslc
# --------------------------------------------------------------------------------------------

REAL = {
    "cnn_dailymail": {"hub_path": "abisee/cnn_dailymail", "config": "3.0.0", "source": "article",
                      "target": "highlights", "defaults": {"max_source_len": 512, "max_target_len": 128,
                                                           "vocab_size": 16_000},
                      "title": "CNN/DailyMail 3.0.0 news articles and their highlights"},
    "aeslc": {"hub_path": "Yale-LILY/aeslc", "config": None, "source": "email_body",
              "target": "subject_line", "defaults": {"max_source_len": 256, "max_target_len": 32,
                                                     "vocab_size": 16_000},
              "title": "AESLC emails (Enron) and their subject lines"},
}


def _build_real(name: str, *, data_dir: Path | None, max_samples: int | None, download: bool,
                dataset_kwargs: dict[str, Any]) -> DataBundle:
    spec = REAL[name]
    options = parse_options(name, dataset_kwargs, spec["defaults"])
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / name
    columns = [spec["source"], spec["target"]]
    local = {split: read_local_split(folder, split, columns) for split in SPLITS}
    if any(v is None for v in local.values()):
        if not download:
            missing = [split for split, v in local.items() if v is None]
            raise DatasetUnavailableError(
                f"dataset {name!r} is not in {folder} (looked for {', '.join(missing)} as .parquet, "
                f"hub shards, .jsonl or a save_to_disk folder with columns {' and '.join(columns)}) and "
                f"downloading is off; put the files there, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")
        download_hub(name=name, hub_path=spec["hub_path"], config=spec["config"], folder=folder,
                     data_dir=data_dir, splits=SPLITS, columns=columns, offline_alternative=OFFLINE_ALTERNATIVE)
        local = {split: read_local_split(folder, split, columns) for split in SPLITS}
    splits = {split: drop_empty(TextPairs([x or "" for x in local[split][spec["source"]]],
                                          [x or "" for x in local[split][spec["target"]]]))
              for split in SPLITS}
    description = (f"{name}: {spec['title']}; {len(splits['train']):,} training, {len(splits['validation']):,} "
                   f"validation and {len(splits['test']):,} test pairs (official splits; pairs with an empty "
                   f"side dropped). Source column {spec['source']!r}, summary column {spec['target']!r}.")
    return make_bundle(splits=splits, max_samples=max_samples, options=options, kind="summarization",
                       description=description, decode_max_len=DECODE_MAX_LEN,
                       tokenizer_cache=data_dir / "tokenizers")


@DATASETS.register("cnn_dailymail", description="CNN/DailyMail 3.0.0 news articles -> highlights "
                   "(Hugging Face), 287k training pairs", task=TASK, offline=False)
def build_cnn_dailymail(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                        download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """CNN/DailyMail 3.0.0 (article -> highlights); `seed` is unused (official splits)."""
    return _build_real("cnn_dailymail", data_dir=data_dir, max_samples=max_samples, download=download,
                       dataset_kwargs=dataset_kwargs)


@DATASETS.register("aeslc", description="AESLC email bodies -> subject lines (Hugging Face), 14k training "
                   "pairs", task=TASK, offline=False)
def build_aeslc(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """AESLC (email_body -> subject_line); `seed` is unused (official splits)."""
    return _build_real("aeslc", data_dir=data_dir, max_samples=max_samples, download=download,
                       dataset_kwargs=dataset_kwargs)
