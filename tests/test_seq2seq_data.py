"""Translation and summarization data: the generated sets, BPE, batches and the real loaders on
files written here in the published formats (no test reaches the network)."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from nbhelpers.data.seq2seq_text import BPETokenizer, Seq2SeqCollate, TextPairs, train_tokenizer, use_tokenizer
from nbhelpers.data.summarization import build_aeslc, build_cnn_dailymail, build_toy_summaries
from nbhelpers.data.toy_documents import NAMES, oracle_summary, toy_documents
from nbhelpers.data.toy_language import lexicon, toy_pairs
from nbhelpers.data.translation import (build_europarl_bilingual, build_iwslt14_en_de, build_toy_translation,
                                        undo_subword_nmt)
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SMALL = {"train_size": 600, "eval_size": 50, "vocab_size": 400}


@pytest.fixture(scope="module")
def toy_mt():
    return build_toy_translation(data_dir=None, max_samples=None, seed=0, **SMALL)


def _parquet(path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

def test_registry_facts():
    for name, task, offline in (("toy_translation", "machine_translation", True),
                                ("iwslt14_en_de", "machine_translation", False),
                                ("europarl_bilingual", "machine_translation", False),
                                ("toy_summaries", "text_summarization", True),
                                ("cnn_dailymail", "text_summarization", False),
                                ("aeslc", "text_summarization", False)):
        entry = DATASETS.get(name)
        assert entry.meta["task"] == task and entry.meta["offline"] is offline


# ---------------------------------------------------------------------------------------------
# Byte-level BPE
# ---------------------------------------------------------------------------------------------

ODD_TEXTS = ["Die Katze   sitzt\nauf der Matte.", "  leading and trailing  ", "tabs\tand\r\nwindows lines",
             "Über 5 € – naïve café 🙂", "", "ver@@ stehen (CNN) -- it's 9:30 a.m.", "中文 和 日本語"]


def test_bpe_decoding_gives_every_text_back_exactly(toy_mt):
    corpus = toy_mt.train.sources[:200] + toy_mt.train.targets[:200] + ODD_TEXTS[:3]
    tokenizer = BPETokenizer.train(corpus, vocab_size=400)
    for text in ODD_TEXTS + toy_mt.test.sources[:20] + toy_mt.test.targets[:20]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode_batch(tokenizer.encode_batch(ODD_TEXTS)) == ODD_TEXTS
    # Special tokens at fixed ids, skipped when decoding.
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    assert tokenizer.decode([1] + tokenizer.encode("a b") + [2, 0, 0]) == "a b"
    pieces = tokenizer.tokens("the cat\nsat  down")
    assert "⏎" in pieces and "".join(pieces).replace("▁", " ").replace("⏎", "\n") == "the cat\nsat  down"


def test_bpe_is_reproducible_and_cached(tmp_path, toy_mt):
    texts = toy_mt.train.sources + toy_mt.train.targets
    first, second = BPETokenizer.train(texts, 500), BPETokenizer.train(texts, 500)
    assert first == second and len(first) <= 500
    cached = train_tokenizer(texts, 500, tmp_path)
    files = list(tmp_path.glob("bpe-500-*.json"))
    assert len(files) == 1 and cached == first
    stamp = files[0].stat().st_mtime_ns
    assert train_tokenizer(texts, 500, tmp_path) == first
    assert files[0].stat().st_mtime_ns == stamp  # read back, not trained and written again
    files[0].write_text("not json")  # a damaged cache file is replaced
    assert train_tokenizer(texts, 500, tmp_path) == first and files[0].read_text().startswith("{")
    with pytest.raises(UserInputError, match="vocab_size"):
        BPETokenizer.train(texts, 100)


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path):
    _iwslt_files(tmp_path, test_word="Zwölfzylinder")
    data = build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    tokenizer = data.info["tokenizer"]
    assert "Zwölfzylinder" in data.test.targets[0]
    assert len(tokenizer.encode("Zwölfzylinder")) > 3  # unseen: spelled out in byte pieces


# ---------------------------------------------------------------------------------------------
# toy_translation
# ---------------------------------------------------------------------------------------------

def test_toy_translation_is_a_function_of_the_source_and_deterministic(toy_mt):
    sources, targets = toy_pairs(5000, 2)
    assert len(set(sources)) == 5000  # distinct sources, hence one translation each
    again = build_toy_translation(data_dir=None, max_samples=None, seed=7, **SMALL)
    assert again.train.sources == toy_mt.train.sources and again.test.targets == toy_mt.test.targets
    every = toy_mt.train.sources + toy_mt.val.sources + toy_mt.test.sources
    assert len(set(every)) == len(every)  # no test sentence was seen in training
    assert (len(toy_mt.train), len(toy_mt.val), len(toy_mt.test)) == (600, 50, 50)


def test_toy_translation_rules_on_generated_sentences():
    lex = lexicon()
    pairs = list(zip(*toy_pairs(3000, 2)))
    # SOV -> SVO: a present-tense verb is the last source word and the second target unit.
    cat, apple = lex.noun_stem["cat"], lex.noun_stem["apple"]
    gender = {"m": ("lo", "o"), "f": ("la", "a")}
    for source, target in pairs:
        words = source.split()
        if words[:2] == ["the", "cat"] and words[-1].endswith("s") and words[2] in ("the", "a", "an"):
            determiner, ending = gender[lex.noun_gender["cat"]]
            assert target.startswith(f"{determiner} {cat}{ending} ")  # agreement on the determiner
            assert target.split()[2].endswith("it")                  # 3rd person singular present
            break
    else:
        pytest.fail("no 'the cat ... <verb>s' sentence generated")
    # Many-to-one: "ice cream" is one target word.
    assert any("ice cream" in s and lex.noun_stem["ice cream"] in t for s, t in pairs)
    # Adverbs move to the end of the target.
    adverb = lex.adverb["today"]
    with_adverb = [(s, t) for s, t in pairs if " today " in f" {s} "]
    assert with_adverb and all(t.split()[-1] == adverb for _, t in with_adverb)
    # Difficulty changes the sentences.
    easy, hard = toy_pairs(500, 1)[0], toy_pairs(500, 3)[0]
    mean = lambda xs: sum(len(x.split()) for x in xs) / len(xs)  # noqa: E731
    assert mean(easy) < mean([s for s, _ in pairs]) < mean(hard)


def test_toy_translation_options_and_errors():
    with pytest.raises(UserInputError, match="difficulty"):
        build_toy_translation(data_dir=None, max_samples=None, seed=0, difficulty=5, **SMALL)
    with pytest.raises(UserInputError, match="accepted options"):
        build_toy_translation(data_dir=None, max_samples=None, seed=0, bptt=3)
    with pytest.raises(UserInputError, match="max_source_len"):
        build_toy_translation(data_dir=None, max_samples=None, seed=0, max_source_len=0, **SMALL)
    capped = build_toy_translation(data_dir=None, max_samples=40, seed=0, **SMALL)
    assert (len(capped.train), len(capped.val), len(capped.test)) == (40, 40, 40)
    assert capped.info["target"] == 90.0 and capped.info["best_bleu"] == 100.0


def test_batches_hold_ids_masks_texts_and_cut_at_the_caps(toy_mt):
    info = toy_mt.info
    assert (info["pad_id"], info["bos_id"], info["eos_id"]) == (0, 1, 2)
    assert toy_mt.tokenizer is info["tokenizer"] and toy_mt.vocab_size == len(info["tokenizer"])
    items = [toy_mt.train[i] for i in range(5)]
    batch = toy_mt.collate_fn(items)
    assert batch["example_id"].tolist() == [0, 1, 2, 3, 4]
    assert batch["source_text"] == toy_mt.train.sources[:5] and batch["target_text"] == toy_mt.train.targets[:5]
    tokenizer = info["tokenizer"]
    for row in range(5):
        source = batch["source_ids"][row][batch["source_mask"][row]].tolist()
        assert source[-1] == 2 and tokenizer.decode(source) == items[row][1]
        target = [t for t in batch["target_ids"][row].tolist() if t != 0]
        assert target[0] == 1 and target[-1] == 2 and tokenizer.decode(target) == items[row][2]
    short = Seq2SeqCollate(tokenizer, max_source_len=4, max_target_len=5)(items)
    assert short["source_ids"].shape[1] <= 4 and short["target_ids"].shape[1] <= 5
    for row in range(5):  # </s> survives truncation: it ends every row's real tokens
        assert short["source_ids"][row][short["source_mask"][row]][-1] == 2
        assert [t for t in short["target_ids"][row].tolist() if t != 0][-1] == 2


def test_use_tokenizer_switches_the_collate_function(toy_mt):
    info = dict(toy_mt.info)
    other = BPETokenizer.train(["tiny corpus"] * 5, 300)
    collate = Seq2SeqCollate(info["tokenizer"], max_source_len=8, max_target_len=8)
    info["collate"] = collate
    use_tokenizer(info, other)
    assert collate.tokenizer is other and info["vocab_size"] == len(other)


# ---------------------------------------------------------------------------------------------
# toy_summaries
# ---------------------------------------------------------------------------------------------

def test_toy_summaries_reference_follows_from_the_document():
    for difficulty in (1, 2, 3):
        documents, summaries = toy_documents(400, difficulty)
        assert len(set(documents)) == 400
        assert [oracle_summary(d) for d in documents] == summaries
    documents, summaries = toy_documents(300, 2)
    for document, summary in zip(documents, summaries):
        lines = summary.split("\n")
        main = lines[0].split()[0]
        assert main in NAMES and all(line.split()[0] == main for line in lines)
        counts = {name: document.count(f", {name} ") for name in NAMES}
        assert counts[main] == len(lines) == max(counts.values())
        assert sorted(counts.values())[-2] < counts[main]  # the main entity is unique
        assert document.split(", ", 2)[1].startswith(main)  # difficulty 2: the lead is about it


def test_toy_summaries_bundle():
    data = build_toy_summaries(data_dir=None, max_samples=None, seed=0, train_size=300, eval_size=20,
                               vocab_size=400)
    assert (len(data.train), len(data.val), len(data.test)) == (300, 20, 20)
    assert data.info["kind"] == "summarization" and data.info["target"] == 80.0
    assert "\n" in data.train.targets[0]
    batch = data.collate_fn([data.test[0]])
    assert data.info["tokenizer"].decode(batch["target_ids"][0]) == data.test.targets[0]


# ---------------------------------------------------------------------------------------------
# iwslt14_en_de: fairseq's prepared text files and Hugging Face translation dicts
# ---------------------------------------------------------------------------------------------

def _iwslt_files(root, test_word="Auto"):
    folder = root / "iwslt14_en_de"
    folder.mkdir(parents=True)
    # As prepare-iwslt14.sh leaves them: tokenized, lowercased, subword-nmt "@@ " joins.
    en = [f"we need to under@@ stand number {i} ." for i in range(30)]
    de = [f"wir müssen das ver@@ stehen , nummer {i} ." for i in range(30)]
    for split, n in (("train", 30), ("valid", 5), ("test", 4)):
        (folder / f"{split}.en").write_text("\n".join(en[:n]) + "\n", encoding="utf-8")
        german = de[:n] if split != "test" else [f"das {test_word} ist rot ."] + de[:n - 1]
        (folder / f"{split}.de").write_text("\n".join(german) + "\n", encoding="utf-8")
    return folder


def test_iwslt_reads_fairseq_files_and_undoes_their_subword_joins(tmp_path):
    _iwslt_files(tmp_path)
    data = build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 5, 4)
    assert data.train.sources[3] == "we need to understand number 3 ."
    assert data.train.targets[3] == "wir müssen das verstehen , nummer 3 ."
    assert data.info["source_lang"] == "en" and data.info["target_lang"] == "de"
    reverse = build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False,
                                  vocab_size=300, direction="de-en")
    assert reverse.train.sources == data.train.targets and reverse.info["source_lang"] == "de"
    assert undo_subword_nmt("a@@ b@@ c d@@") == "abc d"
    with pytest.raises(UserInputError, match="direction"):
        build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False, direction="fr-en")


def test_iwslt_misaligned_files_are_a_user_error(tmp_path):
    folder = _iwslt_files(tmp_path)
    (folder / "train.de").write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="aligned"):
        build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)


def test_iwslt_reads_hugging_face_translation_dicts(tmp_path):
    folder = tmp_path / "iwslt14_en_de"
    pairs = [{"de": f"Hallo Welt {i}.", "en": f"Hello world {i}."} for i in range(20)]
    _parquet(folder / "train.parquet", translation=pairs)
    # The hub's parquet conversion: <config>/<split>/0000.parquet, for the held-out splits.
    _parquet(folder / "iwslt2017-de-en" / "validation" / "0000.parquet", translation=pairs[:3])
    (folder / "test.jsonl").write_text("\n".join(json.dumps({"translation": p}) for p in pairs[:2]),
                                       encoding="utf-8")
    data = build_iwslt14_en_de(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    assert data.train.sources[0] == "Hello world 0." and data.train.targets[0] == "Hallo Welt 0."
    assert (len(data.train), len(data.val), len(data.test)) == (20, 3, 2)


def test_missing_real_datasets_are_one_sentence(tmp_path):
    for builder, name in ((build_iwslt14_en_de, "iwslt14_en_de"), (build_europarl_bilingual, "europarl_bilingual"),
                          (build_cnn_dailymail, "cnn_dailymail"), (build_aeslc, "aeslc")):
        with pytest.raises(DatasetUnavailableError) as caught:
            builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
        message = str(caught.value)
        assert name in message and str(tmp_path / name) in message and "\n" not in message
        assert ("toy_translation" in message) != ("toy_summaries" in message)
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):  # HF_HUB_OFFLINE is set
        build_aeslc(data_dir=tmp_path, max_samples=None, seed=0, download=True)


# ---------------------------------------------------------------------------------------------
# europarl_bilingual: one split, fixed held-out slices, empty sides dropped
# ---------------------------------------------------------------------------------------------

def test_europarl_reads_hub_shards_drops_empty_pairs_and_slices_held_out_sets(tmp_path):
    folder = tmp_path / "europarl_bilingual" / "de-en"
    rows = [{"de": f"Satz {i}.", "en": f"Sentence {i}."} for i in range(100)]
    rows[5]["de"] = ""     # Europarl has one-sided lines
    rows[6]["en"] = "  "
    _parquet(folder / "train-00000-of-00002.parquet", translation=rows[:50])
    _parquet(folder / "train-00001-of-00002.parquet", translation=rows[50:])
    data = build_europarl_bilingual(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    sizes = (len(data.train), len(data.val), len(data.test))
    assert sum(sizes) == 98 and sizes[1] == sizes[2] == 9
    every = data.train.sources + data.val.sources + data.test.sources
    assert len(set(every)) == 98 and "Sentence 5." not in every and "Sentence 6." not in every
    again = build_europarl_bilingual(data_dir=tmp_path, max_samples=None, seed=3, download=False, vocab_size=300)
    assert again.test.sources == data.test.sources  # the slices do not move with the seed
    assert data.train.targets[data.train.sources.index("Sentence 0.")] == "Satz 0."


# ---------------------------------------------------------------------------------------------
# cnn_dailymail and aeslc
# ---------------------------------------------------------------------------------------------

def test_cnn_dailymail_reads_the_hub_layout_and_keeps_highlight_newlines(tmp_path):
    folder = tmp_path / "cnn_dailymail" / "3.0.0"
    def split(n, tag):
        return dict(article=[f"(CNN) -- Story {tag} {i} happened . It was long ." for i in range(n)],
                    highlights=[f"Story {tag} {i} happened .\nIt was long ." for i in range(n)],
                    id=[f"{tag}{i:04x}" for i in range(n)])
    _parquet(folder / "train-00000-of-00001.parquet", **split(12, "a"))
    _parquet(folder / "validation-00000-of-00001.parquet", **split(3, "b"))
    _parquet(folder / "test-00000-of-00001.parquet", **split(3, "c"))
    data = build_cnn_dailymail(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300,
                               max_source_len=6)
    assert (len(data.train), len(data.val), len(data.test)) == (12, 3, 3)
    assert data.test.targets[0] == "Story c 0 happened .\nIt was long ."
    batch = data.collate_fn([data.test[0]])
    assert batch["source_ids"].shape[1] == 6 and batch["target_text"][0].count("\n") == 1


def test_aeslc_reads_its_columns_and_a_missing_column_is_named(tmp_path):
    folder = tmp_path / "aeslc"
    for name, n in (("train", 10), ("validation", 2), ("test", 2)):
        _parquet(folder / f"{name}.parquet", email_body=[f"Hi team,\n\nthe meeting {i} moved.\n" for i in range(n)],
                 subject_line=[f"meeting {i}" for i in range(n)])
    data = build_aeslc(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    assert data.train.targets[1] == "meeting 1" and data.train.sources[1].startswith("Hi team,\n\n")
    _parquet(folder / "test.parquet", body=["x"], subject=["y"])
    with pytest.raises(UserInputError, match="email_body"):
        build_aeslc(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)


def test_download_writes_the_local_layout(tmp_path, monkeypatch):
    import nbhelpers.data.sentiment as sentiment

    class Split(dict):
        @property
        def column_names(self):
            return list(self)

    calls = []

    def load_dataset(path, config=None, revision=None, cache_dir=None):
        calls.append((path, config, cache_dir))
        make = lambda n: Split(email_body=[f"body {i}" for i in range(n)], subject_line=[f"s {i}" for i in range(n)])  # noqa: E731
        return {"train": make(8), "validation": make(2), "test": make(2)}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(sentiment, "hub_unreachable_reason", lambda: None)
    data = build_aeslc(data_dir=tmp_path, max_samples=None, seed=0, download=True, vocab_size=300)
    assert calls == [("Yale-LILY/aeslc", None, str(tmp_path / "huggingface"))] and len(data.train) == 8
    assert {p.name for p in (tmp_path / "aeslc").iterdir()} == {"train.parquet", "validation.parquet",
                                                                 "test.parquet"}
    build_aeslc(data_dir=tmp_path, max_samples=None, seed=0, download=False, vocab_size=300)
    assert len(calls) == 1


def test_text_pairs_check_their_lengths():
    with pytest.raises(ValueError):
        TextPairs(["a"], [])
    assert TextPairs(["a", "b"], ["x", "y"]).select([1])[0] == (0, "b", "y")
    assert torch.is_tensor(Seq2SeqCollate(BPETokenizer.train(["a b"] * 3, 300), max_source_len=4,
                                          max_target_len=4)([(0, "a", "b")])["source_ids"])
