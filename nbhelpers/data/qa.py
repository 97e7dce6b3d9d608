"""Extractive question answering: `toy_qa` (offline), `squad_v1` and `tweet_qa` (Hugging Face).

An example is a question, a context and its gold answers (strings). Models point at the answer
in the context: they score every context token as the answer's start and its end
(nbhelpers/models/qa.py), and the task decodes the best span (nbhelpers/tasks/qa_decoding.py).

Tokenization. Every builder trains a WordPiece tokenizer (Hugging Face `tokenizers`: BERT's
lowercasing normaliser and pre-tokenizer) on the questions and contexts of its training split,
so no pretrained vocabulary is needed. It returns, for each token, the characters of the
*original* text it came from, and those offsets carry predictions back to the context's text.

Windows. Question and context go to separate encoders, so a window holds context tokens only.
A context longer than `max_context_len` tokens is cut into windows of that length which overlap
by `doc_stride` tokens (Hugging Face run_qa.py's meaning of --doc_stride): window k starts at
token k * (max_context_len - doc_stride). Every window starts with a [NULL] slot at position 0.
A training window that does not contain the whole answer points both its start and its end at
that slot, as run_qa.py does with [CLS]; decoding never picks it and looks for the best span over
all of an example's windows. Questions are cut at `max_question_len` tokens.

The training span. A model learns from one character span of the context:

* squad_v1: the first gold answer whose `answer_start` points at its text; else the occurrence of
  that text nearest to the given `answer_start`; else the best-F1 span (below).
* tweet_qa: answers are free-form, written by annotators, and often not a substring of the tweet
  ("Zaire" for "#Zaire", "she was arrested" for "arrested"). The training span is the contiguous
  run of words (BERT pre-tokenizer words: punctuation split off) with the highest SQuAD token F1
  against any gold answer, ties going to the shorter, then the earlier span; at most
  `max_answer_len` words. A span's best F1 only grows when a boundary word that shares no token
  with the answer is dropped, so only words that share a token are tried as boundaries. A
  question whose answer shares no token with its tweet has no span: it is left out of training
  (counted in the description) but kept, and scored, in validation and test.
* toy_qa: the generator knows where each answer stands.

Evaluation always scores the decoded text against *all* gold strings with the SQuAD v1.1
normalisation, so TweetQA's free-form answers are what the predictions are judged by.

Batches are dicts of tensors: question_ids/question_mask (B, Tq), context_ids/context_mask
(B, Tc; the mask covers the [NULL] slot and the window's tokens), offsets (B, Tc, 2: the
[start, end) characters of each position in its example's context, -1 for [NULL] and padding),
start_positions/end_positions (B,) and example_index (B,): which example of the split the window
belongs to. Val and test splits keep their examples (`split.examples`) for the records.

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/squad_v1/train.parquet, validation.parquet   Hugging Face rajpurkar/squad (id,
        title, context, question, answers{text, answer_start}); or a datasets.save_to_disk folder
        (dataset_dict.json); or the original train-v1.1.json and dev-v1.1.json
    <data_dir>/tweet_qa/train.parquet, validation.parquet   Hugging Face ucsbnlp/tweet_qa
        (Question, Answer: a list of strings, Tweet, qid); or a save_to_disk folder; or the
        original TweetQA train.json and dev.json

When they are missing and downloading is allowed, `datasets.load_dataset` fetches them into
<data_dir>/huggingface and the builder writes the parquet files above. Neither dataset publishes
test answers: the official validation (dev) split is our test split, and a fixed 10% of the
training split is our validation split (for SQuAD 10% of the *articles*, so no passage is shared
between training and validation). Splits and `max_samples` subsets (counted in questions)
depend on SPLIT_SEED only, never on the run's seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nbhelpers.data.base import SPLIT_SEED, DataBundle, cap, default_data_dir, fixed_split
from nbhelpers.data.qa_toy import DISTRACTORS, FACTS, PEOPLE, generate_toy_qa
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS
from nbhelpers.squad_metric import answer_tokens, token_f1

TASK = "question_answering"
OFFLINE_ALTERNATIVE = "toy_qa"
PAD, UNK, NULL = "[PAD]", "[UNK]", "[NULL]"
SPECIAL_TOKENS = (PAD, UNK, NULL)          # ids 0, 1, 2
VAL_FRACTION = 0.1
# Hugging Face run_qa.py uses 384 tokens (question and context together) with a stride of 128;
# our windows hold the context alone.
OPTIONS = {"max_context_len": 256, "doc_stride": 128, "max_question_len": 64,
           "max_answer_len": 30, "max_vocab": 30_000}


# --------------------------------------------------------------------------------------------
# Examples and training spans
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QAExample:
    """One question on one context, with its gold answers and the span a model trains on."""

    qid: str                       # the dataset's own id
    question: str
    context: str
    answers: tuple[str, ...]       # every gold answer: predictions are scored against all of them
    span: tuple[int, int] | None   # [start, end) characters of the training span, None if none
    title: str = ""


def _words(text: str) -> list[tuple[str, tuple[int, int]]]:
    """BERT pre-tokenizer words of `text` (whitespace split, punctuation apart) with offsets."""
    from tokenizers.pre_tokenizers import BertPreTokenizer
    return BertPreTokenizer().pre_tokenize_str(text)


def best_f1_span(context: str, answers: Sequence[str], max_words: int = OPTIONS["max_answer_len"]
                 ) -> tuple[tuple[int, int] | None, float]:
    """The run of context words with the highest token F1 against any answer, and that F1 (0-1).

    Ties go to the shorter, then the earlier span. (None, 0.0) when no word shares a token with
    any answer. See the module docstring for why only sharing words are tried as boundaries.
    """
    words = _words(context)
    word_tokens = [answer_tokens(word) for word, _ in words]
    gold = [answer_tokens(answer) for answer in answers]
    gold_tokens = set().union(*gold) if gold else set()
    anchors = [i for i, tokens in enumerate(word_tokens) if gold_tokens.intersection(tokens)]
    best, best_key = None, None
    for a, i in enumerate(anchors):
        span_tokens: list[str] = []
        next_word = i
        for j in anchors[a:]:
            if j - i + 1 > max_words:
                break
            for k in range(next_word, j + 1):
                span_tokens.extend(word_tokens[k])
            next_word = j + 1
            f1 = max(token_f1(span_tokens, reference) for reference in gold)
            key = (f1, -(j - i), -i)
            if best_key is None or key > best_key:
                best, best_key = (words[i][1][0], words[j][1][1]), key
    return (best, best_key[0]) if best is not None else (None, 0.0)


def squad_span(context: str, texts: Sequence[str], starts: Sequence[int]) -> tuple[tuple[int, int] | None, str]:
    """The training span of a SQuAD-style example, and how it was found.

    "given": an answer's answer_start points at its text; "moved": the first answer's text occurs
    elsewhere (the nearest occurrence is taken); "best_f1": the best-F1 word span; "none".
    """
    for text, start in zip(texts, starts):
        if text and start is not None and 0 <= start and context[start:start + len(text)] == text:
            return (start, start + len(text)), "given"
    if texts and texts[0]:
        found = [i for i in _occurrences(context, texts[0])]
        if found:
            target = starts[0] if starts and starts[0] is not None else 0
            start = min(found, key=lambda i: (abs(i - target), i))
            return (start, start + len(texts[0])), "moved"
    span, f1 = best_f1_span(context, texts)
    return (span, "best_f1") if span is not None else (None, "none")


def _occurrences(text: str, sub: str) -> Iterable[int]:
    index = text.find(sub)
    while index != -1:
        yield index
        index = text.find(sub, index + 1)


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

class QATokenizer:
    """A WordPiece tokenizer trained on a training split, with [PAD]=0, [UNK]=1, [NULL]=2.

    Wraps a `tokenizers.Tokenizer` (BertNormalizer with lowercasing, BertPreTokenizer); encode()
    returns token ids and, for each token, its [start, end) characters in the original text.
    """

    def __init__(self, tokenizer: Any):
        self.backend = tokenizer
        for index, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != index:
                raise ValueError(f"the tokenizer must have {token} at id {index}")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> "QATokenizer":
        """Train WordPiece on `texts` (words seen at least twice, plus every character)."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
        if vocab_size < len(SPECIAL_TOKENS) + 1:
            raise UserInputError(f"max_vocab must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2,
                                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    pad_token_id, unk_token_id, null_token_id = 0, 1, 2

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: token ids (int32, n) and character offsets (int32, n x 2)."""
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [(np.asarray(e.ids, dtype=np.int32),
                 np.asarray(e.offsets, dtype=np.int32).reshape(-1, 2)) for e in encodings]

    def tokenize(self, text: str) -> list[str]:
        return self.backend.encode(text, add_special_tokens=False).tokens

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.backend.id_to_token(int(i)) or UNK for i in ids]


# --------------------------------------------------------------------------------------------
# Windows and batches
# --------------------------------------------------------------------------------------------

def window_starts(n_tokens: int, max_context_len: int, doc_stride: int) -> list[int]:
    """First token of each window: consecutive windows overlap by `doc_stride` tokens and the
    last one reaches the end of the context (one window for a short or empty context)."""
    if not 0 <= doc_stride < max_context_len:
        raise UserInputError(f"doc_stride must be at least 0 and less than max_context_len "
                             f"({max_context_len}), got {doc_stride}")
    starts = [0]
    while starts[-1] + max_context_len < n_tokens:
        starts.append(starts[-1] + max_context_len - doc_stride)
    return starts


def char_span_to_tokens(offsets: np.ndarray, span: tuple[int, int]) -> tuple[int, int] | None:
    """First and last token that overlap the [start, end) characters, or None if none does."""
    start, end = span
    overlapping = np.flatnonzero((offsets[:, 1] > start) & (offsets[:, 0] < end))
    if overlapping.size == 0:
        return None
    return int(overlapping[0]), int(overlapping[-1])


class QASplit(Dataset):
    """The windows of one split; items are windows, `examples` the questions they come from."""

    def __init__(self, examples: Sequence[QAExample], tokenizer: QATokenizer, *, max_context_len: int,
                 doc_stride: int, max_question_len: int):
        self.examples = list(examples)
        self.tokenizer = tokenizer
        contexts = sorted({e.context for e in self.examples})
        encoded = dict(zip(contexts, tokenizer.encode(contexts)))
        questions = tokenizer.encode([e.question for e in self.examples])
        # Per example: question ids, context ids and offsets (shared between the example's windows).
        self.questions = [ids[:max_question_len] if len(ids) else np.array([tokenizer.unk_token_id], np.int32)
                          for ids, _ in questions]
        self.contexts = [encoded[e.context] for e in self.examples]
        # Per window: (example, first token, stop token, start label, end label).
        self.windows: list[tuple[int, int, int, int, int]] = []
        self.answer_in_some_window = 0
        for index, example in enumerate(self.examples):
            ids, offsets = self.contexts[index]
            tokens = char_span_to_tokens(offsets, example.span) if example.span else None
            inside = False
            for first in window_starts(len(ids), max_context_len, doc_stride):
                stop = min(first + max_context_len, len(ids))
                start_label = end_label = 0                       # the [NULL] slot
                if tokens is not None and first <= tokens[0] and tokens[1] < stop:
                    start_label, end_label = tokens[0] - first + 1, tokens[1] - first + 1
                    inside = True
                self.windows.append((index, first, stop, start_label, end_label))
            self.answer_in_some_window += inside

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example, first, stop, start, end = self.windows[index]
        ids, offsets = self.contexts[example]
        return {"example": example, "question": self.questions[example], "context": ids[first:stop],
                "offsets": offsets[first:stop], "start": start, "end": end}

    def windows_of(self, example: int) -> list[int]:
        """Indices of the windows of one example."""
        return [i for i, window in enumerate(self.windows) if window[0] == example]


class QACollate:
    """Pad a list of windows into a batch (see the module docstring for its keys)."""

    def __init__(self, pad_id: int = 0, null_id: int = 2):
        self.pad_id, self.null_id = pad_id, null_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = len(items)
        q_len = max(len(item["question"]) for item in items)
        c_len = 1 + max(len(item["context"]) for item in items)
        question_ids = torch.full((batch, q_len), self.pad_id, dtype=torch.long)
        question_mask = torch.zeros(batch, q_len, dtype=torch.bool)
        context_ids = torch.full((batch, c_len), self.pad_id, dtype=torch.long)
        context_mask = torch.zeros(batch, c_len, dtype=torch.bool)
        offsets = torch.full((batch, c_len, 2), -1, dtype=torch.long)
        for row, item in enumerate(items):
            q, c = item["question"], item["context"]
            question_ids[row, :len(q)] = torch.from_numpy(q.astype(np.int64))
            question_mask[row, :len(q)] = True
            context_ids[row, 0] = self.null_id
            context_ids[row, 1:1 + len(c)] = torch.from_numpy(c.astype(np.int64))
            context_mask[row, :1 + len(c)] = True
            offsets[row, 1:1 + len(c)] = torch.from_numpy(item["offsets"].astype(np.int64))
        return {"question_ids": question_ids, "question_mask": question_mask,
                "context_ids": context_ids, "context_mask": context_mask, "offsets": offsets,
                "start_positions": torch.tensor([item["start"] for item in items], dtype=torch.long),
                "end_positions": torch.tensor([item["end"] for item in items], dtype=torch.long),
                "example_index": torch.tensor([item["example"] for item in items], dtype=torch.long)}


# --------------------------------------------------------------------------------------------
# Bundling
# --------------------------------------------------------------------------------------------

def _options(name: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, int]:
    """The dataset options with defaults filled in; unknown names and bad values are user errors."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise UserInputError(f"dataset {name!r} does not accept {', '.join(unknown)} "
                             f"(accepted options: {', '.join(defaults)})")
    options = {**defaults, **given}
    for key, value in options.items():
        minimum = 0 if key == "doc_stride" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserInputError(f"dataset {name!r}: {key} must be a whole number >= {minimum}, got {value!r}")
    window_starts(0, options["max_context_len"], options["doc_stride"])  # checks the stride
    return options


def _capped(examples: list[QAExample], max_samples: int | None) -> list[QAExample]:
    """The fixed `max_samples` subset that base.cap() picks, in the original order."""
    subset = cap(examples, max_samples)  # type: ignore[arg-type]
    return examples if subset is examples else [examples[i] for i in subset.indices]


def make_bundle(name: str, splits: dict[str, list[QAExample]], *, max_samples: int | None,
                options: dict[str, int], description: str) -> DataBundle:
    """Cap the splits, train the tokenizer on the training split, cut windows, and bundle."""
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    capped = {split: _capped(examples, max_samples) for split, examples in splits.items()}
    no_span = sum(e.span is None for e in capped["train"])
    train_examples = [e for e in capped["train"] if e.span is not None]
    if not train_examples:
        raise UserInputError(f"dataset {name!r}: no training question has an answer span in its context")
    texts = sorted({e.context for e in train_examples}) + [e.question for e in train_examples]
    tokenizer = QATokenizer.train(texts, options["max_vocab"])
    windows = {key: options[key] for key in ("max_context_len", "doc_stride", "max_question_len")}
    train = QASplit(train_examples, tokenizer, **windows)
    val = QASplit(capped["validation"], tokenizer, **windows)
    test = QASplit(capped["test"], tokenizer, **windows)
    collate = QACollate(tokenizer.pad_token_id, tokenizer.null_token_id)
    info: dict[str, Any] = {
        **options, "tokenizer": tokenizer, "vocab_size": len(tokenizer), "pad_id": tokenizer.pad_token_id,
        "null_id": tokenizer.null_token_id, "collate": collate,
        "examples": {"train": len(train.examples), "validation": len(val.examples), "test": len(test.examples)},
    }
    lost = len(train_examples) - train.answer_in_some_window
    description += (
        f" {len(train.examples):,}/{len(val.examples):,}/{len(test.examples):,} questions in "
        f"train/validation/test ({len(train):,}/{len(val):,}/{len(test):,} windows). Tokens: "
        f"WordPiece trained on the training questions and contexts ({len(tokenizer):,} tokens, "
        f"lowercased, accents stripped). Contexts are cut into windows of {options['max_context_len']} "
        f"tokens overlapping by {options['doc_stride']}, each with a [NULL] slot that training "
        f"windows without the answer point at; questions are cut at {options['max_question_len']} "
        f"tokens; answers are decoded as the best span of at most {options['max_answer_len']} "
        f"tokens over all windows and scored with SQuAD v1.1 exact match and F1 against every "
        f"gold answer.")
    if no_span:
        description += (f" {no_span:,} training questions whose answer shares no word with the "
                        "context were left out of training.")
    if lost:
        description += (f" {lost:,} training answers fit in no window (longer than a window) and "
                        "teach only the [NULL] slot.")
    return DataBundle(train=train, val=val, test=test, info=info, description=description,
                      collate_fn=collate)


# --------------------------------------------------------------------------------------------
# toy_qa
# --------------------------------------------------------------------------------------------

TOY_PASSAGES = {"train": 2000, "validation": 300, "test": 300}
TOY_SEEDS = {"train": 20_250_101, "validation": 20_250_102, "test": 20_250_103}
TOY_TARGET_F1 = 85.0
TOY_OPTIONS = {**OPTIONS, "max_context_len": 128, "doc_stride": 48, "max_question_len": 24,
               "max_vocab": 4000, "train_passages": TOY_PASSAGES["train"],
               "eval_passages": TOY_PASSAGES["validation"], "questions_per_passage": 3}


@lru_cache(maxsize=8)
def toy_examples(split: str, n_passages: int, questions_per_passage: int) -> tuple[QAExample, ...]:
    """The toy_qa questions of one split (fixed seed per split; cached)."""
    examples = []
    for p, passage in enumerate(generate_toy_qa(n_passages, TOY_SEEDS[split], questions_per_passage)):
        for q, item in enumerate(passage.questions):
            span = (item.answer_start, item.answer_start + len(item.answer))
            examples.append(QAExample(f"{split}-{p}-{q}", item.question, passage.context,
                                      (item.answer,), span, title=item.relation))
    return tuple(examples)


@DATASETS.register(
    "toy_qa", task=TASK, offline=True,
    description="generated passages of facts about people with distractors; 6k/900/900 questions (offline)")
def build_toy_qa(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                 download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline QA data (see nbhelpers/data/qa_toy.py). Options: the window options of the
    module docstring plus train_passages, eval_passages, questions_per_passage. `seed`,
    `data_dir` and `download` are unused: the data come from fixed seeds."""
    options = _options("toy_qa", dataset_kwargs, TOY_OPTIONS)
    per = options.pop("questions_per_passage")
    counts = {"train": options.pop("train_passages"), "validation": options.pop("eval_passages")}
    counts["test"] = counts["validation"]
    splits = {split: list(toy_examples(split, n, per)) for split, n in counts.items()}
    description = (
        f"toy_qa: generated passages (fixed seeds, {counts['train']:,}/{counts['validation']:,}/"
        f"{counts['test']:,} for train/validation/test) of {PEOPLE[0]} to {PEOPLE[1]} people with "
        f"{FACTS[0]} to {FACTS[1]} facts each (birthplace, home, birth year, job, employer, "
        f"instrument, pet), shuffled together with {DISTRACTORS[0]} to {DISTRACTORS[1]} distractor "
        "sentences (a city only visited, a neighbour's pet, where two people met, a job offer "
        f"declined); {per} questions per passage, paraphrased, asking for a fact or for the person; "
        "every answer occurs once in its passage.")
    bundle = make_bundle("toy_qa", splits, max_samples=max_samples, options=options, description=description)
    # Time to target: validation F1 85, the level the offline benchmark holds adamw to
    # (benchmarks/results/qa.md).
    bundle.info["target"] = TOY_TARGET_F1
    return bundle


# --------------------------------------------------------------------------------------------
# squad_v1 and tweet_qa: readers
# --------------------------------------------------------------------------------------------

def read_squad_json(path: Path) -> list[QAExample]:
    """Examples from an original SQuAD v1.1 file ({"data": [{"title", "paragraphs": [...]}]})."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = document["data"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserInputError(f"{path} is not a SQuAD v1.1 JSON file ({type(error).__name__}: {error})") from None
    examples = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                texts = [a["text"] for a in qa.get("answers", [])]
                starts = [int(a["answer_start"]) for a in qa.get("answers", [])]
                examples.append(_squad_example(qa["id"], qa["question"], context, texts, starts,
                                               article.get("title", "")))
    return examples


def squad_rows_to_examples(rows: Iterable[dict[str, Any]]) -> list[QAExample]:
    """Examples from rows of the Hugging Face schema (answers: {text: [...], answer_start: [...]})."""
    examples = []
    for row in rows:
        answers = row.get("answers") or {}
        texts = list(answers.get("text") or [])
        starts = [int(s) for s in (answers.get("answer_start") or [])]
        examples.append(_squad_example(str(row["id"]), row["question"], row["context"], texts, starts,
                                       row.get("title") or ""))
    return examples


def _squad_example(qid: str, question: str, context: str, texts: list[str], starts: list[int],
                   title: str) -> QAExample:
    span, _ = squad_span(context, texts, starts)
    # Questions with stray whitespace in front (a SQuAD quirk that run_qa.py strips too).
    return QAExample(qid, question.strip(), context, tuple(texts), span, title)


def tweet_rows_to_examples(rows: Iterable[dict[str, Any]], max_answer_len: int) -> list[QAExample]:
    """Examples from TweetQA rows (Question, Answer: list of strings, Tweet, qid)."""
    examples = []
    for row in rows:
        answers = row.get("Answer") or []
        answers = [answers] if isinstance(answers, str) else [str(a) for a in answers if str(a).strip()]
        tweet = row.get("Tweet") or ""
        span, _ = best_f1_span(tweet, answers, max_answer_len) if answers else (None, 0.0)
        examples.append(QAExample(str(row["qid"]), str(row["Question"]).strip(), tweet,
                                  tuple(answers), span))
    return examples


@dataclass(frozen=True)
class RealSource:
    """Where a real QA dataset lives: our name, the hub's name and the original file names."""

    name: str
    hub_path: str
    json_files: dict[str, str]          # split -> original file name
    title: str


SQUAD = RealSource("squad_v1", "rajpurkar/squad",
                   {"train": "train-v1.1.json", "validation": "dev-v1.1.json"}, "SQuAD v1.1")
TWEET_QA = RealSource("tweet_qa", "ucsbnlp/tweet_qa",
                      {"train": "train.json", "validation": "dev.json"}, "TweetQA")


def _read_rows(source: RealSource, folder: Path) -> dict[str, list[dict[str, Any]]] | None:
    """The train and validation rows from a local copy (parquet, save_to_disk or JSON), or None."""
    if all((folder / f"{split}.parquet").is_file() for split in ("train", "validation")):
        import pyarrow.parquet as pq
        return {split: pq.read_table(folder / f"{split}.parquet").to_pylist() for split in ("train", "validation")}
    if (folder / "dataset_dict.json").is_file():
        from datasets import load_from_disk
        saved = load_from_disk(str(folder))
        missing = [split for split in ("train", "validation") if split not in saved]
        if missing:
            raise UserInputError(f"the saved dataset in {folder} has no {' or '.join(missing)} split")
        return {split: saved[split].to_list() for split in ("train", "validation")}
    files = {split: folder / name for split, name in source.json_files.items()}
    if all(path.is_file() for path in files.values()):
        if source is SQUAD:
            return None  # read_squad_json() reads these directly (nested format)
        rows = {}
        for split, path in files.items():
            try:
                rows[split] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise UserInputError(f"{path} is not a TweetQA JSON file (a list of objects): {error}") from None
        return rows
    return None


def _looked_for(source: RealSource, folder: Path) -> str:
    originals = " and ".join(source.json_files.values())
    return (f"not in {folder} (looked for train.parquet and validation.parquet, a save_to_disk folder, "
            f"or the original {originals})")


def _download(source: RealSource, folder: Path, data_dir: Path) -> None:
    """Fetch the train and validation splits with `datasets` and write them as parquet files."""
    from nbhelpers.data.sentiment import hub_unreachable_reason
    instead = f"put the files there, or use --dataset {OFFLINE_ALTERNATIVE} (offline)"
    reason = hub_unreachable_reason()
    if reason is not None:
        raise DatasetUnavailableError(f"dataset {source.name!r} is {_looked_for(source, folder)} and could "
                                      f"not be downloaded ({reason}); {instead}")
    try:
        import datasets
        loaded = datasets.load_dataset(source.hub_path, cache_dir=str(data_dir / "huggingface"))
    except ImportError:
        raise DatasetUnavailableError(f"dataset {source.name!r} is {_looked_for(source, folder)} and "
                                      f"downloading it needs the 'datasets' package; {instead}") from None
    except Exception as error:  # network, hub and cache errors all mean the same to the user
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise DatasetUnavailableError(f"dataset {source.name!r} is {_looked_for(source, folder)} and could "
                                      f"not be downloaded ({reason}); {instead}") from None
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        temporary = folder / f".{split}.parquet.{os.getpid()}.tmp"
        loaded[split].to_parquet(str(temporary))
        os.replace(temporary, folder / f"{split}.parquet")


def load_official(source: RealSource, data_dir: Path | None, download: bool,
                  max_answer_len: int) -> dict[str, list[QAExample]]:
    """The official train and validation examples, from local files or downloaded there."""
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / source.name
    rows = _read_rows(source, folder)
    if rows is None and source is SQUAD and all((folder / n).is_file() for n in source.json_files.values()):
        return {split: read_squad_json(folder / name) for split, name in source.json_files.items()}
    if rows is None:
        if not download:
            raise DatasetUnavailableError(
                f"dataset {source.name!r} is {_looked_for(source, folder)} and downloading is off; "
                f"run once with network access and downloading on, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")
        _download(source, folder, data_dir)
        rows = _read_rows(source, folder)
    if source is SQUAD:
        return {split: squad_rows_to_examples(split_rows) for split, split_rows in rows.items()}
    return {split: tweet_rows_to_examples(split_rows, max_answer_len) for split, split_rows in rows.items()}


def hold_out_by_group(examples: list[QAExample], key) -> tuple[list[QAExample], list[QAExample]]:
    """A fixed VAL_FRACTION of the groups (articles, tweets) as validation, the rest as training."""
    groups = list(dict.fromkeys(key(e) for e in examples))
    keep, held = fixed_split(len(groups), (1 - VAL_FRACTION, VAL_FRACTION), seed=SPLIT_SEED)
    held_out = {groups[i] for i in held}
    return [e for e in examples if key(e) not in held_out], [e for e in examples if key(e) in held_out]


def _span_summary(examples: Sequence[QAExample]) -> str:
    with_span = sum(e.span is not None for e in examples)
    exact = sum(e.span is not None and any(e.context[e.span[0]:e.span[1]] == a for a in e.answers)
                for e in examples)
    return (f"{exact:,} of {len(examples):,} training answers occur verbatim as the training span, "
            f"{with_span - exact:,} are matched by best token F1, {len(examples) - with_span:,} have no span")


@DATASETS.register(
    "squad_v1", task=TASK, offline=False,
    description="SQuAD v1.1 Wikipedia paragraphs, 88k train / 10.6k dev questions (Hugging Face)")
def build_squad_v1(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                   download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """SQuAD v1.1 (see the module docstring for the files). Validation: 10% of the training
    articles; test: the official dev set, scored against all of its (up to 3+) answers per question.
    `seed` is unused (splits are fixed)."""
    options = _options("squad_v1", dataset_kwargs, OPTIONS)
    official = load_official(SQUAD, data_dir, download, options["max_answer_len"])
    train, val = hold_out_by_group(official["train"], key=lambda e: e.title or e.context)
    description = (
        f"SQuAD v1.1 (Rajpurkar et al. 2016): crowd-sourced questions on Wikipedia paragraphs, "
        f"answers are spans. Validation is a fixed 10% of the training articles, test the official "
        f"dev set; {_span_summary(train)}.")
    return make_bundle("squad_v1", {"train": train, "validation": val, "test": official["validation"]},
                       max_samples=max_samples, options=options, description=description)


@DATASETS.register(
    "tweet_qa", task=TASK, offline=False,
    description="TweetQA: questions on news tweets with free-form answers, 10.7k train / 1.1k dev (Hugging Face)")
def build_tweet_qa(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                   download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """TweetQA (see the module docstring for the files and for how free-form answers become
    training spans). Validation: 10% of the training tweets; test: the official dev set (the
    official test answers are not public). `seed` is unused (splits are fixed)."""
    options = _options("tweet_qa", dataset_kwargs, {**OPTIONS, "max_context_len": 128, "doc_stride": 64,
                                                      "max_vocab": 20_000})
    official = load_official(TWEET_QA, data_dir, download, options["max_answer_len"])
    train, val = hold_out_by_group(official["train"], key=lambda e: e.context)
    test = [e for e in official["validation"] if e.answers]
    description = (
        f"TweetQA (Xiong et al. 2019): questions written on tweets quoted by news articles, with "
        f"free-form (not always extractive) answers. Validation is a fixed 10% of the training "
        f"tweets, test the official dev set; training spans are the word spans with the best "
        f"SQuAD token F1 against the gold answers: {_span_summary(train)}.")
    return make_bundle("tweet_qa", {"train": train, "validation": val, "test": test},
                       max_samples=max_samples, options=options, description=description)


__all__ = ["QACollate", "QAExample", "QASplit", "QATokenizer", "best_f1_span", "build_squad_v1",
           "build_toy_qa", "build_tweet_qa", "char_span_to_tokens", "make_bundle", "read_squad_json",
           "squad_rows_to_examples", "squad_span", "tweet_rows_to_examples", "window_starts"]
