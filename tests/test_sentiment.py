"""Sentiment analysis: the lexicon data, the HF loaders on local files, both models, the task,
one end-to-end run and the notebook under papermill.

No test reaches the network: conftest sets the offline variables, the real loaders read parquet
files written here, and the one download path tested gets a stand-in for `datasets`.
"""

from __future__ import annotations

import json
import sys
import types
import warnings

import pytest
import torch

from nbhelpers.config import RunConfig
from nbhelpers.data.sentiment import (
    CONCESSIVES, NEGATORS, TextCollate, WordTokenizer, build_imdb, build_lexicon_sentiment,
    build_sst2, lexicon_label, use_tokenizer)
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.models.sentiment import build_distilbert_sentiment, build_lstm_sentiment, train_wordpiece
from nbhelpers.registry import DATASETS, MODELS, TASKS, load_all

load_all()

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def lexicon():
    return build_lexicon_sentiment(data_dir=None, max_samples=None, seed=0)


def _write(path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


# ---------------------------------------------------------------------------------------------
# Registry and task
# ---------------------------------------------------------------------------------------------

def test_registry_facts_and_task_spec():
    for name, offline in (("lexicon_sentiment", True), ("sst2", False), ("imdb", False)):
        entry = DATASETS.get(name)
        assert entry.meta["task"] == "sentiment_analysis" and entry.meta["offline"] is offline
    for name in ("lstm_sentiment", "distilbert_sentiment"):
        assert MODELS.get(name).meta["task"] == "sentiment_analysis"
    spec = TASKS.get("sentiment_analysis").meta["spec"]
    assert (spec.primary_metric, spec.higher_is_better, list(spec.metrics)) == ("accuracy", True, ["accuracy"])
    assert spec.family == "text" and (spec.primary.unit, spec.primary.scale) == ("%", 100)
    assert (spec.offline_dataset, spec.scheduler, spec.max_grad_norm) == ("lexicon_sentiment", "plateau", 1.0)
    assert (spec.early_stopping_patience, spec.label_smoothing) == (3, 0.05)
    assert dict(spec.defaults) == {"model": "lstm_sentiment", "epochs": 20, "batch_size": 64}


def test_task_forward_sums_and_summarize():
    task = TASKS.get("sentiment_analysis").factory()

    class Fixed(torch.nn.Module):  # logits that favour class 1 for the first two texts only
        def forward(self, input_ids, attention_mask):
            return torch.tensor([[0.0, 2.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])

    batch = {"input_ids": torch.ones(4, 3, dtype=torch.long), "attention_mask": torch.ones(4, 3),
             "labels": torch.tensor([1, 0, 0, 0])}
    loss, stats = task.train_step(Fixed(), batch)
    assert int(stats["correct"]) == 3 and int(stats["count"]) == 4 and task.batch_size(batch) == 4
    plain = torch.nn.functional.cross_entropy(Fixed()(None, None), batch["labels"])
    assert float(loss) > float(plain)  # label smoothing 0.05 costs something on confident logits
    metrics = task.summarize({"loss_sum": torch.tensor(2.0), "correct": torch.tensor(3), "count": torch.tensor(4)})
    assert metrics == {"loss": 0.5, "accuracy": 0.75}


# ---------------------------------------------------------------------------------------------
# lexicon_sentiment
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, label", [
    ("the movie was good", 1),
    ("the movie was bad", 0),
    ("the movie was not bad", 1),
    ("the movie was not good", 0),
    ("the plot never felt boring", 1),
    ("the humour was hardly funny", 0),
    ("the acting was good but the plot was boring", 0),
    ("the acting was bad , but the ending was great", 1),
    ("the acting was not good but the ending was not bad", 1),
    ("the cast was not dull but the script was dull", 0),
    ("although the plot was boring , the acting was great", 1),
    ("the acting was great , although the plot was boring", 1),
    ("although the plot was not boring , the acting was terrible", 0),
    ("honestly while the script was clumsy , the cast was charming", 1),
    ("good but boring", 0),
])
def test_lexicon_rule_on_hand_written_sentences(sentence, label):
    assert lexicon_label(sentence) == label


def test_lexicon_rule_refuses_sentences_without_sentiment():
    with pytest.raises(ValueError):
        lexicon_label("the movie was long")


def test_lexicon_is_deterministic_distinct_and_labelled_by_the_rule(lexicon):
    assert (len(lexicon.train), len(lexicon.val), len(lexicon.test)) == (6000, 1000, 1000)
    again = build_lexicon_sentiment(data_dir=None, max_samples=None, seed=123)
    assert again.train.texts == lexicon.train.texts and again.test.labels == lexicon.test.labels
    texts = lexicon.train.texts + lexicon.val.texts + lexicon.test.texts
    labels = lexicon.train.labels + lexicon.val.labels + lexicon.test.labels
    assert len(set(texts)) == len(texts)  # no sentence is in two splits
    assert [lexicon_label(text) for text in texts] == labels
    assert 0.45 < sum(labels) / len(labels) < 0.55
    words = [set(text.split()) for text in texts]
    share = lambda vocabulary: sum(bool(w & set(vocabulary)) for w in words) / len(words)  # noqa: E731
    assert share(NEGATORS) > 0.3 and share(["but"]) > 0.25 and share(CONCESSIVES) > 0.2


def test_a_bag_of_words_cannot_learn_the_rule(lexicon):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(token_pattern=r"[^ ]+")
    features = vectorizer.fit_transform(lexicon.train.texts)
    classifier = LogisticRegression(max_iter=2000).fit(features, lexicon.train.labels)
    accuracy = classifier.score(vectorizer.transform(lexicon.test.texts), lexicon.test.labels)
    # The rule itself is right on every test sentence (previous test); word counts are not.
    assert accuracy < 0.75


def test_lexicon_info_batches_and_max_samples(lexicon):
    info = lexicon.info
    assert info["num_classes"] == 2 and info["max_len"] == 128 and info["pad_id"] == 0
    assert info["tokenizer"] is info["word_tokenizer"] and lexicon.collate_fn is info["collate"]
    assert info["vocab_size"] == len(info["word_tokenizer"]) < 200
    batch = lexicon.collate_fn([lexicon.train[0], lexicon.train[1]])
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["labels"].tolist() == lexicon.train.labels[:2]
    small = build_lexicon_sentiment(data_dir=None, max_samples=50, seed=0)
    assert (len(small.train), len(small.val), len(small.test)) == (50, 50, 50)
    assert set(small.train.texts) <= set(lexicon.train.texts)
    assert len(small.info["word_tokenizer"]) < len(info["word_tokenizer"])  # vocabulary of the cap
    with pytest.raises(UserInputError, match="max_len"):
        build_lexicon_sentiment(data_dir=None, max_samples=None, seed=0, windows=3)


# ---------------------------------------------------------------------------------------------
# Word tokenization
# ---------------------------------------------------------------------------------------------

def test_word_tokenizer_vocabulary_padding_and_truncation():
    tokenizer = WordTokenizer.fit(["It's GREAT.<br />Great fun", "great plot , dull end", "fun"],
                                  max_vocab=3)
    assert tokenizer.itos[:2] == ["<pad>", "<unk>"] and tokenizer.itos[2] == "great"  # most frequent
    assert len(tokenizer) == 5  # <pad>, <unk> and the 3 most frequent words
    assert WordTokenizer.tokenize("It's GREAT.<br />Fun!") == ["it's", "great", ".", "fun", "!"]
    encoded = tokenizer(["great fun", "never heard of it", ""], max_length=3)
    assert encoded["input_ids"].tolist() == [[2, 3, 0], [1, 1, 1], [1, 0, 0]]
    assert encoded["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]
    collate = TextCollate(tokenizer, max_len=2)
    assert collate([("great great great", 1)])["input_ids"].shape == (1, 2)


# ---------------------------------------------------------------------------------------------
# sst2 and imdb on local files
# ---------------------------------------------------------------------------------------------

def _sst2_files(root, n_train=40, n_val=10):
    folder = root / "sst2"
    _write(folder / "train.parquet", idx=list(range(n_train)),
           sentence=[f"a {'fine' if i % 2 else 'dull'} film number {i} " for i in range(n_train)],
           label=[i % 2 for i in range(n_train)])
    _write(folder / "validation.parquet", sentence=[f"held out sentence {i}" for i in range(n_val)],
           label=[1 - i % 2 for i in range(n_val)])
    _write(folder / "test.parquet", sentence=["no label here"], label=[-1])  # as GLUE ships it
    return folder


def test_sst2_reads_the_local_layout_and_uses_validation_as_test(tmp_path):
    _sst2_files(tmp_path)
    data = build_sst2(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 10)
    assert data.test.texts == [f"held out sentence {i}" for i in range(10)]
    assert not set(data.train.texts) & set(data.val.texts)
    assert set(data.train.labels) == {0, 1}
    assert "held out" not in data.info["word_tokenizer"].stoi  # vocabulary from train only
    assert "official validation split" in data.description
    again = build_sst2(data_dir=tmp_path, max_samples=None, seed=5, download=False)
    assert again.val.texts == data.val.texts  # the split does not move with the seed
    capped = build_sst2(data_dir=tmp_path, max_samples=8, seed=0, download=False)
    assert (len(capped.train), len(capped.val), len(capped.test)) == (8, 4, 8)


def test_imdb_reads_the_local_layout(tmp_path):
    folder = tmp_path / "imdb"
    reviews = [f"Review {i}: a {'great' if i % 2 else 'poor'} movie.<br /><br />The end." for i in range(30)]
    _write(folder / "train.parquet", text=reviews, label=[i % 2 for i in range(30)])
    _write(folder / "test.parquet", text=reviews[:6], label=[i % 2 for i in range(6)])
    data = build_imdb(data_dir=tmp_path, max_samples=None, seed=0, download=False, max_len=5)
    assert (len(data.train), len(data.val), len(data.test)) == (27, 3, 6)
    batch = data.collate_fn([data.train[0], data.test[0]])
    assert batch["input_ids"].shape == (2, 5)  # truncated to max_len
    assert "br" not in data.info["word_tokenizer"].stoi and "<" not in data.info["word_tokenizer"].stoi


def test_bad_labels_in_a_local_file_are_a_user_error(tmp_path):
    _write(tmp_path / "imdb" / "train.parquet", text=["a", "b"], label=[0, 2])
    _write(tmp_path / "imdb" / "test.parquet", text=["a"], label=[0])
    with pytest.raises(UserInputError, match="labels must be 0"):
        build_imdb(data_dir=tmp_path, max_samples=None, seed=0, download=False)


@pytest.mark.parametrize("builder, name, needed", [
    (build_sst2, "sst2", "validation.parquet"), (build_imdb, "imdb", "test.parquet")])
def test_missing_dataset_without_download_is_one_sentence(tmp_path, builder, name, needed):
    with pytest.raises(DatasetUnavailableError) as caught:
        builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    message = str(caught.value)
    assert name in message and str(tmp_path / name) in message and needed in message
    assert "lexicon_sentiment" in message and "\n" not in message


def test_offline_download_fails_at_once_in_one_sentence(tmp_path):
    # conftest sets HF_HUB_OFFLINE: the builder must not even try the hub.
    with pytest.raises(DatasetUnavailableError) as caught:
        build_sst2(data_dir=tmp_path, max_samples=None, seed=0, download=True)
    message = str(caught.value)
    assert "could not be downloaded" in message and "lexicon_sentiment" in message
    assert "\n" not in message and caught.value.__cause__ is None


def test_download_writes_the_local_layout(tmp_path, monkeypatch):
    """The download path: `datasets` (a stand-in here) fetches, the builder writes parquet files."""
    import nbhelpers.data.sentiment as sentiment

    class Split:
        def __init__(self, rows):
            self.rows = rows
            self.column_names = ["text", "label"]

        def __getitem__(self, column):
            return [row[column] for row in self.rows]

    calls = []

    def load_dataset(path, cache_dir=None):
        calls.append((path, cache_dir))
        return {"train": Split([{"text": f"review {i} was fine", "label": i % 2} for i in range(20)]),
                "test": Split([{"text": "a test review", "label": 1}])}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(sentiment, "hub_unreachable_reason", lambda: None)
    data = build_imdb(data_dir=tmp_path, max_samples=None, seed=0, download=True)
    assert calls == [("stanfordnlp/imdb", str(tmp_path / "huggingface"))]
    assert (len(data.train), len(data.val), data.test.texts) == (18, 2, ["a test review"])
    assert {p.name for p in (tmp_path / "imdb").iterdir()} == {"train.parquet", "test.parquet"}
    cached = build_imdb(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    assert cached.train.texts == data.train.texts and len(calls) == 1


# ---------------------------------------------------------------------------------------------
# lstm_sentiment
# ---------------------------------------------------------------------------------------------

def _word_info(vocabulary_size: int) -> dict:
    tokenizer = WordTokenizer([f"w{i}" for i in range(vocabulary_size - 2)])
    info = {"num_classes": 2, "word_tokenizer": tokenizer, "collate": TextCollate(tokenizer)}
    return info


def test_lstm_sentiment_size_for_a_20k_vocabulary():
    model = build_lstm_sentiment(info=_word_info(20_000))
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert model.embedding.num_embeddings == 20_000 and model.dropout.p == 0.5
    bigger = build_lstm_sentiment(info=_word_info(20_000), hidden=256, layers=2)
    assert sum(p.numel() for p in bigger.parameters()) > sum(p.numel() for p in model.parameters())
    with pytest.raises(UserInputError, match="embed_dim"):
        build_lstm_sentiment(info=_word_info(100), width=3)


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_lstm_sentiment_ignores_padding(pooling):
    torch.manual_seed(0)
    model = build_lstm_sentiment(info=_word_info(50), embed_dim=8, hidden=8, pooling=pooling).eval()
    ids = torch.tensor([[5, 6, 7]])
    alone = model(ids, torch.ones(1, 3, dtype=torch.long))
    padded_ids = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    padded_mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    in_batch = model(padded_ids, padded_mask)
    assert in_batch.shape == (2, 2)
    torch.testing.assert_close(in_batch[:1], alone)
    # The padding's ids do not matter either (they are never read).
    torch.testing.assert_close(model(padded_ids.masked_fill(padded_mask == 0, 42), padded_mask)[:1], alone)


# ---------------------------------------------------------------------------------------------
# distilbert_sentiment (offline: the same architecture from its config)
# ---------------------------------------------------------------------------------------------

TINY_BERT = {"dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32, "vocab_size": 300}


def test_distilbert_sentiment_offline_builds_from_config_with_a_wordpiece_of_the_split(lexicon):
    pytest.importorskip("transformers")
    info = dict(lexicon.info)
    info["collate"] = TextCollate(info["word_tokenizer"], max_len=128)
    with pytest.warns(UserWarning, match="random weights and a WordPiece tokenizer"):
        model = build_distilbert_sentiment(info=info, pretrained="auto", **TINY_BERT)
    tokenizer = info["tokenizer"]
    assert not model.pretrained and tokenizer is model.tokenizer is info["collate"].tokenizer
    # ~125 words plus 5 specials and every character twice: under the cap of 300.
    assert len(tokenizer) == info["vocab_size"] == model.net.config.vocab_size <= 300
    assert model.net.config.n_layers == 1 and model.net.config.dim == 16
    # Frequent words of the training split are whole tokens; unseen ones fall apart into pieces.
    assert tokenizer.tokenize("the movie was not bad") == ["the", "movie", "was", "not", "bad"]
    assert tokenizer.tokenize("zebra")[0] != "zebra"
    batch = info["collate"]([lexicon.val[0], lexicon.val[1]])
    first = batch["input_ids"][0]
    assert first[0] == tokenizer.cls_token_id and tokenizer.sep_token_id in first.tolist()
    logits = model(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (2, 2)


def test_distilbert_sentiment_loads_a_saved_checkpoint_as_pretrained(lexicon, tmp_path):
    """The pretrained path, on a checkpoint folder written here (no hub)."""
    pytest.importorskip("transformers")
    info = dict(lexicon.info)
    info["collate"] = TextCollate(info["word_tokenizer"], max_len=128)
    with pytest.warns(UserWarning):
        source = build_distilbert_sentiment(info=info, pretrained=False, **TINY_BERT)
    source.net.save_pretrained(tmp_path / "tiny")
    source.tokenizer.save_pretrained(tmp_path / "tiny")
    info = dict(lexicon.info)
    info["collate"] = TextCollate(info["word_tokenizer"], max_len=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "random weights" warning this time
        model = build_distilbert_sentiment(info=info, checkpoint=str(tmp_path / "tiny"))
    assert model.pretrained and info["collate"].tokenizer is model.tokenizer
    assert model.tokenizer.get_vocab() == source.tokenizer.get_vocab()
    torch.testing.assert_close(model.net.distilbert.embeddings.word_embeddings.weight,
                               source.net.distilbert.embeddings.word_embeddings.weight)


def test_wordpiece_vocabulary_is_reproducible_and_pretrained_true_fails_offline(lexicon):
    pytest.importorskip("transformers")
    first = train_wordpiece(lexicon.train.texts[:500], vocab_size=120)
    second = train_wordpiece(lexicon.train.texts[:500], vocab_size=120)
    assert first.get_vocab() == second.get_vocab() and len(first) == 120
    info = dict(lexicon.info)
    with pytest.raises(UserInputError, match="pretrained"):
        build_distilbert_sentiment(info=info, pretrained=True)
    with pytest.raises(UserInputError, match="architecture"):
        build_distilbert_sentiment(info=info, pretrained=True, dim=16)


# ---------------------------------------------------------------------------------------------
# One run end to end, and the notebook
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def one_thread():
    """Run torch on one thread for the test (restored afterwards).

    The BiLSTM issues many tiny operations per time step; on two cores shared with other
    processes, every OpenMP hand-off between two threads waits for a time slice, which made a
    10-second run take over 100 seconds.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_run_experiment_on_lexicon_sentiment_learns(tmp_path, one_thread):
    from nbhelpers.training import run_experiment

    cfg = RunConfig(task="sentiment_analysis", model="lstm_sentiment", optimizer="adamw", epochs=2,
                    batch_size=32, lr=5e-3, max_samples=3000, output_dir=str(tmp_path), progress=False,
                    device="cpu")
    result = run_experiment(cfg)
    summary = result.summary
    assert summary["dataset"] == "lexicon_sentiment" and summary["epochs_run"] == 2
    assert summary["primary_metric"] == "accuracy" and summary["higher_is_better"] is True
    # Chance is 0.5 and a bag of words stays near 0.55.
    assert summary["test"]["accuracy"] > 0.7
    config = json.loads((result.run_dir / "config.json").read_text())["config"]
    assert (config["scheduler"], config["max_grad_norm"], config["label_smoothing"]) == ("plateau", 1.0, 0.05)
    assert "word tokens" in (result.run_dir / "details.txt").read_text()


def test_notebook_runs_under_papermill(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it (see one_thread)
    import nbformat

    from nbhelpers.sweep.notebooks import NOTEBOOK_DIR, read_notebook

    out = tmp_path / "executed.ipynb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        papermill.execute_notebook(
            read_notebook(NOTEBOOK_DIR / "sentiment_analysis.py"), str(out),
            parameters={"optimizer": "sgd", "epochs": 1, "max_samples": 200, "batch_size": 32,
                        "model_kwargs": {"hidden": 16, "embed_dim": 16},
                        "output_dir": str(tmp_path / "sweep"), "progress": False},
            kernel_name="python3", progress_bar=False, start_timeout=120)
    run_dir = tmp_path / "sweep" / "runs" / "lstm_sentiment-sgd-s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 1
    assert summary["dataset"] == "lexicon_sentiment" and 0 <= summary["test"]["accuracy"] <= 1
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 1
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in executed.cells for o in c.get("outputs", []))
    assert "tokens:" in text and "test:" in text and "misclassified" in text
    assert any("image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))


def test_use_tokenizer_switches_what_batches_are_built_with():
    words = WordTokenizer(["good"])
    other = WordTokenizer(["bad", "good"])
    info = {"collate": TextCollate(words)}
    use_tokenizer(info, other)
    assert info["tokenizer"] is other and info["vocab_size"] == 4 and info["pad_id"] == 0
    assert info["collate"]([("good", 1)])["input_ids"].tolist() == [[3]]
