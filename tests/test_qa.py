"""Question answering: the SQuAD metric, span decoding, windows and offsets, the loaders on files
in the real formats, the toy generator, both models and the task.

No test reaches the network: conftest sets the offline variables, and the SQuAD and TweetQA
loaders read JSON, parquet and save_to_disk copies written here, quirks included.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from nbhelpers.data.qa import (
    QAExample, QASplit, QATokenizer, best_f1_span, build_squad_v1, build_toy_qa, build_tweet_qa,
    char_span_to_tokens, window_starts)
from nbhelpers.data.qa_toy import generate_toy_qa
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.models.qa import MaskedBiLSTM, build_bilstm_attention_qa, build_transformer_qa, exact_match_feature
from nbhelpers.registry import DATASETS, MODELS, TASKS
from nbhelpers.squad_metric import (
    answer_tokens, best_over_answers, exact_match, normalize_answer, squad_scores, token_f1)
from nbhelpers.tasks.qa_decoding import (
    SpanCandidate, best_per_example, best_spans, brute_force_best_span, window_candidates)
from nbhelpers.tasks.question_answering import QuestionAnswering, span_logits

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


# ---------------------------------------------------------------------------------------------
# The SQuAD v1.1 metric, on cases worked out by hand
# ---------------------------------------------------------------------------------------------

def test_normalization_follows_the_official_script():
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("the-end") == "theend"          # punctuation goes first, then articles
    assert normalize_answer("(the) Denver   Broncos.") == "denver broncos"
    assert normalize_answer("theatre") == "theatre"          # articles only as whole words
    assert normalize_answer("Café «Noir»") == "café «noir»"  # only ASCII punctuation is removed
    assert answer_tokens(" A  cat, a hat ") == ["cat", "hat"]


def test_f1_and_exact_match_by_hand():
    # Same tokens after normalisation: a perfect match.
    assert token_f1("the cat sat on the mat", "a cat sat on a mat") == 1.0
    assert exact_match("The cat sat on the mat.", "cat sat on mat") == 1.0
    # 2 shared tokens; precision 2/2, recall 2/4: F1 = 2 * 1 * 0.5 / 1.5 = 2/3.
    assert token_f1("cat sat", "cat sat on mat") == pytest.approx(2 / 3)
    # Counted with multiplicity: "cat cat" against "cat" shares one token, P 1/2, R 1: F1 2/3.
    assert token_f1("cat cat", "cat") == pytest.approx(2 / 3)
    # "in 1987" against "1987": P 1/2, R 1/1.
    assert token_f1("in 1987", "1987") == pytest.approx(2 / 3)
    assert token_f1("", "cat") == 0.0 and token_f1("the", "a") == 0.0   # empty after normalisation
    assert exact_match("Broncos", "Denver Broncos") == 0.0


def test_scores_take_the_best_gold_answer_and_average_on_0_to_100():
    assert best_over_answers("Denver Broncos", ["Broncos", "Denver Broncos", "the Broncos"]) == (1.0, 1.0)
    em, f1 = best_over_answers("Broncos", ["Denver Broncos", "Carolina Panthers"])
    assert em == 0.0 and f1 == pytest.approx(2 / 3)
    assert best_over_answers("anything", []) == (0.0, 0.0)
    # Question 1: exact. Question 2: F1 2/3, not exact. Question 3: nothing shared.
    scores = squad_scores(["Santa Clara", "cat sat", "dog"],
                          [["Santa Clara, California", "Santa Clara"], ["cat sat on mat"], ["cat"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError):
        squad_scores(["a"], [])


# ---------------------------------------------------------------------------------------------
# Span decoding
# ---------------------------------------------------------------------------------------------

def test_best_span_on_hand_made_logits():
    #              null  t1   t2   t3   t4   pad
    start = torch.tensor([[50.0, 1.0, 5.0, 2.0, 0.0, 99.0]])
    end = torch.tensor([[50.0, 3.0, 1.0, 4.0, 9.0, 99.0]])
    context = torch.tensor([[False, True, True, True, True, False]])
    # Unlimited length: start 2 (5) + end 4 (9) = 14; the null slot and padding never count.
    s, e, score = best_spans(start, end, context, max_answer_len=30)
    assert (int(s), int(e), float(score)) == (2, 4, 14.0)
    # At most 2 tokens: (2, 3) = 9 beats (3, 4) = 11? No: (3, 4) = 2 + 9 = 11 is best.
    s, e, score = best_spans(start, end, context, max_answer_len=2)
    assert (int(s), int(e), float(score)) == (3, 4, 11.0)
    # One token: the best i == j is (4, 4) = 9 against (2, 2) = 6 and (3, 3) = 6.
    s, e, _ = best_spans(start, end, context, max_answer_len=1)
    assert (int(s), int(e)) == (4, 4)
    # An end before the start is never taken, however large: end logit 100 at t1, start at t4.
    s, e, score = best_spans(torch.tensor([[0.0, 0.0, 0.0, 0.0, 100.0]]), torch.tensor([[0.0, 100.0, 0.0, 0.0, 0.0]]),
                             torch.tensor([[False, True, True, True, True]]))
    assert float(score) == 100.0 and (int(s), int(e)) in {(1, 1), (4, 4)}
    # A window without context tokens has no candidate.
    _, _, score = best_spans(start, end, torch.zeros_like(context))
    assert score.item() == float("-inf")


def test_best_span_matches_brute_force_on_random_logits():
    generator = torch.Generator().manual_seed(0)
    for length, max_len in ((1, 30), (7, 3), (25, 30), (40, 5)):
        start = torch.randn(6, length, generator=generator)
        end = torch.randn(6, length, generator=generator)
        mask = torch.rand(6, length, generator=generator) > 0.2
        s, e, score = best_spans(start, end, mask, max_answer_len=max_len)
        for row in range(6):
            expected = brute_force_best_span(start[row].tolist(), end[row].tolist(), mask[row].tolist(), max_len)
            if expected is None:
                assert score[row].item() == float("-inf")
            else:
                assert (int(s[row]), int(e[row])) == expected[:2]
                assert float(score[row]) == pytest.approx(expected[2], abs=1e-5)


def test_candidates_map_to_characters_and_the_best_window_wins():
    offsets = torch.tensor([[[-1, -1], [0, 4], [5, 9], [10, 15]],
                            [[-1, -1], [10, 15], [16, 20], [-1, -1]]])
    found = window_candidates(torch.tensor([7, 7]), torch.tensor([1, 1]), torch.tensor([2, 2]),
                              torch.tensor([3.0, 5.0]), offsets)
    assert found == [SpanCandidate(7, 0, 9, 3.0), SpanCandidate(7, 10, 20, 5.0)]
    best = best_per_example(found + [SpanCandidate(8, 1, 2, -1.0)])
    assert best[7].char_start == 10 and best[8].score == -1.0


# ---------------------------------------------------------------------------------------------
# Windows, offsets and labels
# ---------------------------------------------------------------------------------------------

def test_window_starts_overlap_by_the_stride_and_cover_the_context():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(4, 4, 2) == [0] and window_starts(0, 4, 0) == [0]
    assert window_starts(9, 4, 0) == [0, 4, 8]
    for n, size, stride in ((100, 16, 5), (17, 16, 15), (33, 8, 3)):
        starts = window_starts(n, size, stride)
        assert starts[-1] + size >= n and all(b - a == size - stride for a, b in zip(starts, starts[1:]))
    with pytest.raises(UserInputError, match="doc_stride"):
        window_starts(10, 4, 4)


def test_char_spans_become_token_spans():
    offsets = np.array([[0, 3], [4, 9], [9, 10], [11, 14]])
    assert char_span_to_tokens(offsets, (4, 9)) == (1, 1)
    assert char_span_to_tokens(offsets, (5, 12)) == (1, 3)   # partial words widen to whole tokens
    assert char_span_to_tokens(offsets, (3, 4)) is None      # only whitespace


def _long_context_examples():
    words = [f"w{i}" for i in range(60)]
    context = " ".join(words)
    examples = []
    for k, target in enumerate((2, 29, 58)):                 # near the start, the middle, the end
        answer = f"{words[target]} {words[target + 1]}"
        start = len(" ".join(words[:target])) + 1
        assert context[start:start + len(answer)] == answer
        examples.append(QAExample(f"q{k}", f"what follows {words[target - 1]}", context, (answer,),
                                  (start, start + len(answer))))
    return examples


class GoldModel(nn.Module):
    """Scores each window's gold start and end highest: decoding must give back the answers."""

    def forward(self, question_ids, question_mask, context_ids, context_mask):
        logits = torch.zeros(context_ids.shape)
        rows = torch.arange(len(logits))
        start, end = logits.clone(), logits.clone()
        start[rows, self.batch["start_positions"]] = 10.0
        end[rows, self.batch["end_positions"]] = 10.0
        return start, end


class GoldLoader:
    """Batches of a split that also tell the GoldModel their labels (the labels stay in the batch)."""

    def __init__(self, split, model, batch_size=5):
        from nbhelpers.data.qa import QACollate
        self.dataset, self.model = split, model
        self.batches = [QACollate()([split[i] for i in range(j, min(j + batch_size, len(split)))])
                        for j in range(0, len(split), batch_size)]

    def __iter__(self):
        for batch in self.batches:
            self.model.batch = batch
            yield batch


def test_windows_label_the_answer_only_where_it_fits_and_gold_logits_decode_to_the_answer():
    examples = _long_context_examples()
    tokenizer = QATokenizer.train([e.context for e in examples] * 2 + [e.question for e in examples] * 2, 500)
    split = QASplit(examples, tokenizer, max_context_len=16, doc_stride=6, max_question_len=8)
    for index, example in enumerate(examples):
        windows = [split.windows[i] for i in split.windows_of(index)]
        assert [w[1] for w in windows] == window_starts(60, 16, 6)       # one token per word here
        labelled = [w for w in windows if w[3] > 0]
        assert labelled, "the answer fits in at least one window"
        for _, first, stop, start, end in windows:
            if start:  # labelled: both tokens inside the window
                assert first <= first + start - 1 <= first + end - 1 < stop
            else:      # not labelled: the answer is not wholly inside
                tokens = char_span_to_tokens(split.contexts[index][1], example.span)
                assert not (first <= tokens[0] and tokens[1] < stop)
    model = GoldModel()
    task = QuestionAnswering(data=None)
    evaluation = task.evaluate(model, GoldLoader(split, model), "val")
    assert [r["prediction"] for r in evaluation.records] == [e.answers[0] for e in examples]
    assert evaluation.metrics["f1"] == 100.0 and evaluation.metrics["exact_match"] == 100.0
    assert [r["id"] for r in evaluation.records] == [0, 1, 2] and evaluation.records[1]["qid"] == "q1"


def test_offsets_point_into_the_original_text_despite_normalisation():
    context = "  Zoë   visited  SÃO Paulo, twice!"
    tokenizer = QATokenizer.train([context, context], 200)
    (ids, offsets), = tokenizer.encode([context])
    pieces = [context[s:e] for s, e in offsets]
    assert pieces[0] == "Zoë" and "Paulo" in "".join(pieces) and pieces[-1] == "!"
    assert all(context[s:e].strip() == context[s:e] and e > s for s, e in offsets)


# ---------------------------------------------------------------------------------------------
# toy_qa
# ---------------------------------------------------------------------------------------------

def test_toy_generator_is_seeded_and_answers_are_unique_spans():
    first, again = generate_toy_qa(150, seed=5), generate_toy_qa(150, seed=5)
    assert first == again and generate_toy_qa(150, seed=6) != first
    relations, reverse = set(), 0
    for passage in first:
        for q in passage.questions:
            assert passage.context[q.answer_start:q.answer_start + len(q.answer)] == q.answer
            assert q.answer not in q.question
            if q.reverse:
                reverse += 1
                assert len(q.answer.split()) == 2             # a full name
            else:
                assert passage.context.count(q.answer) == 1   # values occur once
            relations.add(q.relation)
    assert len(relations) == 7 and reverse > 20


def test_toy_qa_bundle_windows_and_options():
    data = build_toy_qa(max_samples=200, train_passages=200, eval_passages=40)
    assert (len(data.train.examples), len(data.val.examples), len(data.test.examples)) == (200, 120, 120)
    assert len(data.train) > 200                               # long passages give two windows
    assert data.info["target"] == 85.0 and data.vocab_size == len(data.tokenizer) < 4000
    assert data.pad_id == 0 and data.info["null_id"] == 2
    assert not {e.context for e in data.train.examples} & {e.context for e in data.test.examples}
    batch = data.collate_fn([data.train[i] for i in range(8)])
    assert batch["context_ids"][:, 0].eq(2).all() and batch["context_mask"][:, 0].all()
    assert batch["offsets"][:, 0].eq(-1).all()
    for row in range(8):
        example = data.train.examples[int(batch["example_index"][row])]
        s, e = int(batch["start_positions"][row]), int(batch["end_positions"][row])
        if s:  # the answer is in this window: its offsets give back the answer text
            assert example.context[batch["offsets"][row, s, 0]:batch["offsets"][row, e, 1]] == example.answers[0]
    with pytest.raises(UserInputError, match="accepted options"):
        build_toy_qa(window=3)
    with pytest.raises(UserInputError, match="doc_stride"):
        build_toy_qa(max_context_len=32, doc_stride=32)


# ---------------------------------------------------------------------------------------------
# squad_v1: the original JSON, the Hugging Face parquet and save_to_disk copies
# ---------------------------------------------------------------------------------------------

def _squad_articles():
    """Three articles in SQuAD v1.1's layout, with its quirks."""
    beyonce = ("Beyoncé Giselle Knowles-Carter (born September 4, 1981) is an American singer. "
               "Born and raised in Houston, Texas, she performed in various singing and dancing competitions.")
    denver = "The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title."
    return [
        {"title": "Beyoncé", "paragraphs": [{"context": beyonce, "qas": [
            {"id": "b1", "question": "When was Beyoncé born?",
             "answers": [{"text": "September 4, 1981", "answer_start": beyonce.index("September")}]},
            # A wrong answer_start (off by a few characters): the text is found nearby.
            {"id": "b2", "question": "  In what city did Beyoncé grow up?",
             "answers": [{"text": "Houston", "answer_start": beyonce.index("Houston") + 3}]},
        ]}]},
        {"title": "Super_Bowl_50", "paragraphs": [{"context": denver, "qas": [
            # Dev-style: three answers, one duplicated, different starts.
            {"id": "s1", "question": "Which team won Super Bowl 50?",
             "answers": [{"text": "Denver Broncos", "answer_start": 4},
                         {"text": "The Denver Broncos", "answer_start": 0},
                         {"text": "Denver Broncos", "answer_start": 4}]},
            {"id": "s2", "question": "What was the score?",
             "answers": [{"text": "24–10", "answer_start": denver.index("24")}]},
        ]}]},
        {"title": "Zebra", "paragraphs": [{"context": "Zebras have black and white stripes.", "qas": [
            {"id": "z1", "question": "What colours are zebras?",
             "answers": [{"text": "black and white", "answer_start": 12}]}]}]},
    ]


def _write_squad_json(folder, train_articles, dev_articles):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-v1.1.json").write_text(json.dumps({"data": train_articles, "version": "1.1"}))
    (folder / "dev-v1.1.json").write_text(json.dumps({"data": dev_articles, "version": "1.1"}))


def _squad_rows(articles):
    """The same questions as Hugging Face rajpurkar/squad rows."""
    return [{"id": qa["id"], "title": article["title"], "context": paragraph["context"],
             "question": qa["question"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def _many_articles(n):
    articles = []
    for k in range(n):
        context = f"Article {k} says that the river Alpha{k} flows into lake Beta{k} near town Gamma{k}."
        articles.append({"title": f"T{k}", "paragraphs": [{"context": context, "qas": [
            {"id": f"t{k}", "question": f"Where does Alpha{k} flow?",
             "answers": [{"text": f"lake Beta{k}", "answer_start": context.index("lake")}]}]}]})
    return articles


def test_squad_json_with_its_quirks(tmp_path):
    _write_squad_json(tmp_path / "squad_v1", _many_articles(30) + _squad_articles(), _squad_articles())
    data = build_squad_v1(data_dir=tmp_path, max_samples=None, seed=0, download=False,
                          max_vocab=300, max_context_len=12, doc_stride=4)
    test = {e.qid: e for e in data.test.examples}
    assert set(test) == {"b1", "b2", "s1", "s2", "z1"}
    assert test["s1"].answers == ("Denver Broncos", "The Denver Broncos", "Denver Broncos")  # all kept
    assert test["b2"].question == "In what city did Beyoncé grow up?"                      # stripped
    b2 = test["b2"]
    assert b2.context[b2.span[0]:b2.span[1]] == "Houston"          # the wrong answer_start was moved
    assert test["s2"].context[test["s2"].span[0]:test["s2"].span[1]] == "24–10"
    # Validation takes whole articles: no passage is in both training and validation.
    assert (len(data.train.examples) + len(data.val.examples)) == 35 and len(data.val.examples) >= 3
    assert not {e.context for e in data.train.examples} & {e.context for e in data.val.examples}
    assert "SQuAD v1.1" in data.description and len(data.test) > 5   # long contexts: several windows
    again = build_squad_v1(data_dir=tmp_path, max_samples=None, seed=3, download=False, max_vocab=300)
    assert [e.qid for e in again.val.examples] == [e.qid for e in data.val.examples]


def test_squad_parquet_and_save_to_disk_give_the_same_examples(tmp_path):
    articles = _many_articles(20) + _squad_articles()
    _write_squad_json(tmp_path / "json" / "squad_v1", articles, _squad_articles())
    folder = tmp_path / "parquet" / "squad_v1"
    folder.mkdir(parents=True)
    answers_type = pa.struct([("text", pa.list_(pa.string())), ("answer_start", pa.list_(pa.int32()))])
    for split, rows in (("train", _squad_rows(articles)), ("validation", _squad_rows(_squad_articles()))):
        table = pa.table({key: [row[key] for row in rows] for key in ("id", "title", "context", "question")})
        table = table.append_column("answers", pa.array([row["answers"] for row in rows], type=answers_type))
        pq.write_table(table, folder / f"{split}.parquet")
    from_json = build_squad_v1(data_dir=tmp_path / "json", max_samples=None, seed=0, download=False, max_vocab=300)
    from_parquet = build_squad_v1(data_dir=tmp_path / "parquet", max_samples=None, seed=0, download=False, max_vocab=300)
    for split in ("train", "val", "test"):
        assert getattr(from_json, split).examples == getattr(from_parquet, split).examples

    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "saved" / "squad_v1"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_squad_rows(articles)),
                          "validation": datasets.Dataset.from_list(_squad_rows(_squad_articles()))}
                         ).save_to_disk(str(saved))
    from_disk = build_squad_v1(data_dir=tmp_path / "saved", max_samples=None, seed=0, download=False, max_vocab=300)
    assert from_disk.test.examples == from_json.test.examples


def test_missing_real_datasets_are_one_sentence(tmp_path):
    for builder, name, looked_for in ((build_squad_v1, "squad_v1", "dev-v1.1.json"),
                                      (build_tweet_qa, "tweet_qa", "dev.json")):
        with pytest.raises(DatasetUnavailableError) as caught:
            builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
        message = str(caught.value)
        assert name in message and str(tmp_path / name) in message and looked_for in message
        assert "train.parquet" in message and "toy_qa" in message and "\n" not in message
        # Downloading is refused at once offline (conftest sets HF_HUB_OFFLINE).
        with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):
            builder(data_dir=tmp_path, max_samples=None, seed=0, download=True)


# ---------------------------------------------------------------------------------------------
# tweet_qa: free-form answers
# ---------------------------------------------------------------------------------------------

def test_best_f1_span_matches_brute_force():
    from nbhelpers.data.qa import _words
    rng = random.Random(0)
    vocabulary = ["the", "storm", "hit", "Miami", "on", "friday", ",", "#Miami", "a", "3", "people", "!"]
    for _ in range(60):
        context = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 14)))
        answers = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 2))]
        span, f1 = best_f1_span(context, answers, max_words=6)
        words = _words(context)
        brute = [(max(token_f1(context[words[i][1][0]:words[j][1][1]], a) for a in answers), -(j - i), -i, i, j)
                 for i in range(len(words)) for j in range(i, min(len(words), i + 6))]
        best = max(brute)
        if best[0] == 0:
            assert span is None and f1 == 0.0
        else:
            assert f1 == pytest.approx(best[0])
            assert span == (words[best[3]][1][0], words[best[4]][1][1])


def _tweets(n, offset=0):
    rows = []
    for k in range(offset, offset + n):
        tweet = f"Breaking: storm number {k} hits #Miami tonight, {k % 7 + 2} people rescued. @news{k}"
        rows.append({"Question": f"where does storm {k} hit?", "Answer": ["Miami"], "Tweet": tweet, "qid": f"q{k}"})
    rows.append({"Question": "how many were rescued?", "Answer": ["two people were rescued", "2"],
                 "Tweet": "2 people rescued after the flood #breaking", "qid": f"r{offset}"})
    rows.append({"Question": "who is happy?", "Answer": ["nobody knows"],   # shares nothing with the tweet
                 "Tweet": "What a day!", "qid": f"x{offset}"})
    return rows


def test_tweet_qa_parquet_free_form_answers(tmp_path):
    folder = tmp_path / "tweet_qa"
    folder.mkdir()
    schema = pa.schema([("Question", pa.string()), ("Answer", pa.list_(pa.string())),
                        ("Tweet", pa.string()), ("qid", pa.string())])
    pq.write_table(pa.Table.from_pylist(_tweets(40), schema=schema), folder / "train.parquet")
    pq.write_table(pa.Table.from_pylist(_tweets(6, offset=100), schema=schema), folder / "validation.parquet")
    data = build_tweet_qa(data_dir=tmp_path, max_samples=None, seed=0, download=False, max_vocab=300)
    assert all(e.span is not None for e in data.train.examples)      # "x0" has no span: not trained on
    assert "x0" not in {e.qid for e in data.train.examples}
    assert 41 <= len(data.train.examples) + len(data.val.examples) <= 42
    test = {e.qid: e for e in data.test.examples}
    assert set(test) == {f"q{k}" for k in range(100, 106)} | {"r100", "x100"}    # all scored
    storm = test["q100"]
    assert storm.context[storm.span[0]:storm.span[1]] == "Miami"                 # not "#Miami"
    rescued = test["r100"]
    # Against "two people were rescued" the best span, "people rescued", has F1 2/3 (P 1, R 1/2);
    # against "2" the span "2" has F1 1: it wins.
    assert rescued.context[rescued.span[0]:rescued.span[1]] == "2"
    assert test["x100"].span is None and test["x100"].answers == ("nobody knows",)


def test_tweet_qa_original_json_files(tmp_path):
    folder = tmp_path / "tweet_qa"
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps(_tweets(30)))
    (folder / "dev.json").write_text(json.dumps(_tweets(4, offset=50)))
    (folder / "test.json").write_text(json.dumps([{"Question": "?", "Tweet": "t", "qid": "hidden"}]))
    data = build_tweet_qa(data_dir=tmp_path, max_samples=10, seed=0, download=False, max_vocab=300)
    assert len(data.train.examples) <= 10 and len(data.test.examples) == 6
    assert "hidden" not in {e.qid for e in data.test.examples}


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

SQUAD_INFO = {"vocab_size": 30_000, "pad_id": 0, "max_context_len": 256, "max_question_len": 64}
TINY_INFO = {"vocab_size": 60, "pad_id": 0, "max_context_len": 16, "max_question_len": 8}


def test_model_sizes_at_a_squad_vocabulary_and_registry():
    transformer = build_transformer_qa(info=SQUAD_INFO)
    bilstm = build_bilstm_attention_qa(info=SQUAD_INFO)
    assert 10e6 <= sum(p.numel() for p in transformer.parameters()) <= 20e6
    assert 5e6 <= sum(p.numel() for p in bilstm.parameters()) <= 10e6
    small = build_bilstm_attention_qa(info=SQUAD_INFO, embed_dim=64, hidden=64, modeling_layers=1)
    assert sum(p.numel() for p in small.parameters()) < 3e6
    assert MODELS.get("transformer_qa").meta["task"] == "question_answering"
    assert DATASETS.get("toy_qa").meta == {"task": "question_answering", "offline": True}
    with pytest.raises(UserInputError, match="accepted model_kwargs: d_model"):
        build_transformer_qa(info=SQUAD_INFO, width=3)
    with pytest.raises(UserInputError, match="question-answering dataset"):
        build_bilstm_attention_qa(info={"vocab_size": 10})


def test_masked_bilstm_equals_a_packed_bidirectional_lstm():
    torch.manual_seed(0)
    reference = nn.LSTM(5, 4, num_layers=2, batch_first=True, bidirectional=True)
    ours = MaskedBiLSTM(5, 4, layers=2)
    for layer in range(2):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours.forward_lstms[layer], f"{kind}_l0").data.copy_(getattr(reference, f"{kind}_l{layer}"))
            getattr(ours.backward_lstms[layer], f"{kind}_l0").data.copy_(getattr(reference, f"{kind}_l{layer}_reverse"))
    x = torch.randn(3, 7, 5)
    lengths = torch.tensor([7, 4, 1])
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=7)
    got = ours(x, mask)
    torch.testing.assert_close(got[mask], expected[mask])


def test_exact_match_feature_marks_context_tokens_found_in_the_question():
    question = torch.tensor([[5, 6, 0], [9, 0, 0]])
    context = torch.tensor([[2, 5, 7, 6, 0], [2, 9, 9, 0, 0]])
    feature = exact_match_feature(question, question != 0, context)
    assert feature.shape == (2, 5, 1)
    # Padding in the question (id 0) matches nothing, so context padding stays 0.
    assert feature.squeeze(-1).tolist() == [[False, True, False, True, False], [False, True, True, False, False]]
    without = build_bilstm_attention_qa(info=TINY_INFO, embed_dim=8, hidden=8, exact_match=False)
    with_it = build_bilstm_attention_qa(info=TINY_INFO, embed_dim=8, hidden=8)
    assert with_it.context_lstm.forward_lstms[0].input_size == without.context_lstm.forward_lstms[0].input_size + 1


@pytest.mark.parametrize("builder, kwargs", [
    (build_transformer_qa, {"d_model": 16, "heads": 2, "ff": 32, "context_layers": 1, "question_layers": 1}),
    (build_bilstm_attention_qa, {"embed_dim": 8, "hidden": 8, "modeling_layers": 2})])
def test_padding_changes_nothing_and_is_never_scored(builder, kwargs):
    torch.manual_seed(0)
    model = builder(info=TINY_INFO, **kwargs).eval()
    q, c = torch.tensor([[5, 6, 7]]), torch.tensor([[2, 9, 10, 11, 12]])
    alone = model(q, torch.ones_like(q, dtype=torch.bool), c, torch.ones_like(c, dtype=torch.bool))
    q_pad = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
    c_pad = torch.tensor([[2, 9, 10, 11, 12, 0, 0], [2, 3, 4, 5, 6, 7, 8]])
    start, end = model(q_pad, q_pad != 0, c_pad, c_pad != 0)
    assert start.shape == end.shape == (2, 7)
    torch.testing.assert_close(start[:1, :5], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(end[:1, :5], alone[1], atol=1e-5, rtol=1e-5)
    assert start[0, 5:].max() == torch.finfo(start.dtype).min and end[0, 5:].max() == torch.finfo(end.dtype).min


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

def test_task_spec_loss_and_refused_label_smoothing():
    spec = TASKS.get("question_answering").meta["spec"]
    assert (spec.primary_metric, spec.family, spec.scheduler, spec.max_grad_norm, spec.early_stopping_patience) == \
        ("f1", "text", "plateau", 1.0, 5)
    assert spec.metrics["f1"].higher_is_better and spec.offline_dataset == "toy_qa"
    data = build_toy_qa(max_samples=40, train_passages=20, eval_passages=5)
    task = QuestionAnswering(data=data)
    torch.manual_seed(0)
    model = build_bilstm_attention_qa(info=data.info, embed_dim=8, hidden=8, modeling_layers=1).eval()
    batch = data.collate_fn([data.train[i] for i in range(6)])
    with torch.no_grad():  # eval mode: no dropout, so both passes see the same logits
        loss, stats = task.train_step(model, batch)
        start, end = span_logits(model, batch)
    by_hand = sum(-torch.log_softmax(start[i], 0)[batch["start_positions"][i]]
                  - torch.log_softmax(end[i], 0)[batch["end_positions"][i]] for i in range(6)) / 6
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert task.summarize(stats)["loss"] == pytest.approx(float(loss), rel=1e-5)
    with pytest.raises(UserInputError, match="label_smoothing must be 0"):
        QuestionAnswering(data=data, label_smoothing=0.1)


def test_run_experiment_writes_predictions_that_give_the_summary_again(tmp_path):
    from nbhelpers.config import RunConfig
    from nbhelpers.training import run_experiment

    cfg = RunConfig(task="question_answering", model="bilstm_attention_qa", optimizer="adamw", epochs=2,
                    batch_size=16, max_samples=120, val_max_samples=40, model_kwargs={"embed_dim": 16, "hidden": 16},
                    dataset_kwargs={"train_passages": 60, "eval_passages": 20},
                    output_dir=str(tmp_path), progress=False, device="cpu")
    result = run_experiment(cfg)
    summary = result.summary
    assert summary["dataset"] == "toy_qa" and summary["status"] == "completed"
    assert summary["metric_specs"]["f1"]["label"] == "F1" and summary["target"] == 85.0
    records = [json.loads(line) for line in (result.run_dir / "predictions_test.jsonl").read_text().splitlines()]
    assert len(records) == 60 and [r["id"] for r in records] == list(range(60))
    assert set(records[0]) >= {"id", "qid", "question", "prediction", "answers"}
    again = squad_scores([r["prediction"] for r in records], [r["answers"] for r in records])
    assert summary["test"]["f1"] == pytest.approx(again["f1"]) and summary["test"]["exact_match"] == pytest.approx(again["exact_match"])
    val_records = (result.run_dir / "predictions_val.jsonl").read_text().splitlines()
    assert 0 < len(val_records) <= 60      # val_max_samples caps windows: some questions drop out
    config = json.loads((result.run_dir / "config.json").read_text())["config"]
    assert (config["scheduler"], config["max_grad_norm"], config["early_stopping_patience"]) == ("plateau", 1.0, 5)
    assert "WordPiece" in (result.run_dir / "details.txt").read_text()
