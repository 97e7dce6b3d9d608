"""NER data: IOB2 handling, the gazetteer_ner generator, the collate function, and the real
loaders on files written here in the published formats (CoNLL-2003 text files with their
-DOCSTART- lines and IOB1 tags; Hugging Face parquet/arrow files with ClassLabel metadata)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from seqeval.scheme import IOB2, Entities

from nbhelpers.data.ner import (NERCollate, Vocabulary, build_conll2003, build_gazetteer_ner, build_wikiann_en,
                                entity_spans, read_conll_text, tag_sentence, to_iob2)
from nbhelpers.data.ner_gazetteer import NEUTRAL_TEMPLATES, TAGS, generate_split, name_pools
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

datasets = pytest.importorskip("datasets")

CONLL_TAGS = list(TAGS)


@pytest.fixture(scope="module")
def gazetteer():
    return build_gazetteer_ner()


def _tags(bundle, dataset, i):
    return [bundle.info["tag_names"][t] for t in dataset[i][1]]


# ---------------------------------------------------------------------------------------------
# IOB2
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    (["I-ORG", "O", "I-MISC", "I-MISC"], ["B-ORG", "O", "B-MISC", "I-MISC"]),   # IOB1 starts with I-
    (["I-LOC", "B-LOC", "I-LOC"], ["B-LOC", "B-LOC", "I-LOC"]),                 # IOB1's B- between two LOCs
    (["I-PER", "I-LOC"], ["B-PER", "B-LOC"]),                                     # a type change starts one
    (["B-PER", "I-PER", "O", "B-ORG"], ["B-PER", "I-PER", "O", "B-ORG"]),        # IOB2 stays as it is
])
def test_to_iob2(given, expected):
    assert to_iob2(given) == expected


def test_entity_spans_read_strict_iob2_like_seqeval():
    tags = ["O", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-PER", "B-PER", "I-PER"]
    expected = [(e.start, e.end, e.tag) for e in Entities([tags], IOB2, suffix=False).entities[0]]
    assert entity_spans(tags) == expected == [(2, 4, "LOC"), (5, 6, "PER"), (6, 8, "PER")]
    assert tag_sentence("a b c d e f g h".split(), tags) == "a b [LOC c d] e [PER f] [PER g h]"


# ---------------------------------------------------------------------------------------------
# gazetteer_ner
# ---------------------------------------------------------------------------------------------

def test_gazetteer_is_fixed_and_valid_iob2(gazetteer):
    assert DATASETS.get("gazetteer_ner").meta == {"task": "ner", "offline": True}
    assert (len(gazetteer.train), len(gazetteer.val), len(gazetteer.test)) == (4000, 1000, 1000)
    assert generate_split("test", 50) == generate_split("test", 50)
    # The run's seed changes nothing; max_samples takes the same fixed subset every time.
    assert build_gazetteer_ner(seed=7, max_samples=20).train[3] == build_gazetteer_ner(max_samples=20).train[3]
    for dataset in (gazetteer.train, gazetteer.val, gazetteer.test):
        kinds = Counter()
        for i in range(len(dataset)):
            tags = _tags(gazetteer, dataset, i)
            assert to_iob2(tags) == tags and len(tags) == len(dataset[i][0]) >= 1
            kinds.update(kind for _, _, kind in entity_spans(tags))
        assert set(kinds) == {"PER", "ORG", "LOC", "MISC"} and min(kinds.values()) > len(dataset) // 20


def _entity_names(bundle, dataset):
    return {" ".join(dataset[i][0][s:e]) for i in range(len(dataset))
            for s, e, _ in entity_spans(_tags(bundle, dataset, i))}


def test_validation_and_test_names_never_occur_in_training(gazetteer):
    train_words = {w for i in range(len(gazetteer.train)) for w in gazetteer.train[i][0]}
    train_names = _entity_names(gazetteer, gazetteer.train)
    for split in (gazetteer.val, gazetteer.test):
        names = _entity_names(gazetteer, split)
        assert names and not names & train_names
        # Name words outside the designator words ("Bank", "New", "Cup") are new words too.
        name_words = {w for name in names for w in name.split()}
        shared = name_words & train_words
        assert shared and all(len(w) <= 8 and w[0].isupper() for w in shared)
        assert len(shared) < 0.1 * len(name_words)
    pools = name_pools()
    for kind in ("surname", "town", "company", "ambiguous"):
        assert not set(getattr(pools["train"], kind)) & set(getattr(pools["test"], kind))


def test_ambiguous_names_take_several_types_and_context_decides(gazetteer):
    ambiguous = set(name_pools()["train"].ambiguous)
    types_of: dict[str, set] = {}
    contexts = Counter()
    for i in range(len(gazetteer.train)):
        words, tags = gazetteer.train[i][0], _tags(gazetteer, gazetteer.train, i)
        for s, e, kind in entity_spans(tags):
            if e - s == 1 and words[s] in ambiguous:
                types_of.setdefault(words[s], set()).add(kind)
                contexts[(" ".join(words[max(0, s - 2):s]).lower(), words[e], kind)] += 1
    assert sum(len(kinds) > 1 for kinds in types_of.values()) > 20
    # The words around an ambiguous name ("the mayor of X met") point to one type only: the
    # context resolves it.
    by_context: dict[tuple, set] = {}
    for (before, after, kind) in contexts:
        by_context.setdefault((before, after), set()).add(kind)
    assert len(by_context) >= 6 and all(len(kinds) == 1 for kinds in by_context.values())


def test_about_a_third_of_sentences_has_no_context_cue():
    name = r"[A-Z]\S*(?: [A-Z]\S*)*"
    patterns = [re.compile(" ".join(name if p == "{ANY}" else r"\S+" if p in ("{NUM}", "{DAY}") else re.escape(p)
                                    for p in template.split()) + "$") for template in NEUTRAL_TEMPLATES]
    tokens, _ = generate_split("train", 3000)
    sentences = [" ".join([s[0][:1].lower() + s[0][1:]] + s[1:]) for s in tokens]
    neutral = sum(any(p.match(s) or p.match(s[:1].upper() + s[1:]) for p in patterns) for s in sentences)
    assert 0.25 < neutral / len(sentences) < 0.35  # NEUTRAL_SHARE is 0.3


def test_gazetteer_info_options_and_caps(gazetteer):
    info = gazetteer.info
    assert info["tag_names"] == CONLL_TAGS == info["class_names"] and info["num_tags"] == 9
    assert info["words"][:2] == ["<pad>", "<unk>"] and info["vocab_size"] == len(info["words"])
    assert (info["pad_id"], info["unk_id"], info["char_pad_id"]) == (0, 1, 0)
    assert info["entity_types"] == ["PER", "ORG", "LOC", "MISC"]
    assert gazetteer.num_classes == 9 and gazetteer.class_names == CONLL_TAGS
    small = build_gazetteer_ner(max_samples=50, train_size=400, min_freq=2, max_word_len=6)
    assert (len(small.train), len(small.val), len(small.test)) == (50, 50, 50)
    assert small.collate_fn([small.train[0]])["char_ids"].shape[-1] <= 6
    with pytest.raises(UserInputError, match="does not take 'bptt'"):
        build_gazetteer_ner(bptt=3)
    with pytest.raises(UserInputError, match="whole number"):
        build_gazetteer_ner(min_freq=0)


def test_collate_pads_words_characters_and_tags():
    words = Vocabulary(["the", "Bank"])
    chars = Vocabulary(list("theBank"))
    collate = NERCollate(words, chars, max_word_len=3)
    batch = collate([(["the", "Zorbank", "Bank"], [0, 3, 4]), (["the"], [0])])
    assert batch["word_ids"].tolist() == [[2, 1, 3], [2, 0, 0]]
    assert batch["tags"].tolist() == [[0, 3, 4], [0, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["char_ids"].shape == (2, 3, 3)  # words cut to max_word_len characters
    assert batch["char_ids"][0, 1].tolist() == [1, chars.id("o"), chars.id("r")] and chars.id("o") == 1
    assert batch["char_ids"][1, 1:].eq(0).all() and batch["tokens"][1] == ["the"]


# ---------------------------------------------------------------------------------------------
# conll2003: the original text files
# ---------------------------------------------------------------------------------------------

# As in eng.train: a -DOCSTART- line, a blank line after each sentence, IOB1 tags (entities
# start with I-; B- only between two adjacent entities of the same type).
CONLL_TRAIN = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
to TO I-VP O
boycott VB I-VP O
British JJ I-NP I-MISC
lamb NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
1996-08-22 CD I-NP O

Germany NNP I-NP I-LOC
France NNP I-NP B-LOC
and CC O O
Spain NNP I-NP I-LOC
"""
CONLL_TESTA = "-DOCSTART- -X- O O\n\nCRICKET NNP I-NP O\n- : O O\nLEICESTERSHIRE NNP I-NP I-ORG\n\n"
CONLL_TESTB = "-DOCSTART- -X- O O\n\nSOCCER NN I-NP O\n- : O O\nJAPAN NNP I-NP I-LOC\nGET VB I-VP O\n"


def _write_conll_text(folder, names=("eng.train", "eng.testa", "eng.testb")):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, (CONLL_TRAIN, CONLL_TESTA, CONLL_TESTB)):
        (folder / name).write_text(text)


def test_conll_text_files_iob1_to_iob2(tmp_path):
    _write_conll_text(tmp_path / "conll2003")
    tokens, tags = read_conll_text(tmp_path / "conll2003" / "eng.train")
    assert len(tokens) == 4 and tokens[0][0] == "EU" and "-DOCSTART-" not in sum(tokens, [])
    assert tags[0] == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    assert tags[1] == ["B-PER", "I-PER"]
    assert tags[3] == ["B-LOC", "B-LOC", "O", "B-LOC"]  # IOB1's B-LOC kept two LOCs apart
    bundle = build_conll2003(data_dir=tmp_path, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (4, 1, 1)
    assert bundle.info["tag_names"] == CONLL_TAGS
    assert _tags(bundle, bundle.test, 0) == ["O", "O", "B-LOC", "O"]
    assert "CoNLL-2003" in bundle.description


def test_conll_text_files_with_hugging_face_names(tmp_path):
    # The files Hugging Face's conll2003 zip holds: train.txt / valid.txt / test.txt.
    _write_conll_text(tmp_path / "conll2003", names=("train.txt", "valid.txt", "test.txt"))
    bundle = build_conll2003(data_dir=tmp_path, download=False)
    assert len(bundle.train) == 4 and bundle.val[0][0] == ["CRICKET", "-", "LEICESTERSHIRE"]


def test_a_malformed_conll_line_is_one_sentence(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU NNP I-NP I-ORG\nrejects\n")
    with pytest.raises(UserInputError, match="line 2"):
        read_conll_text(path)


# ---------------------------------------------------------------------------------------------
# Hugging Face files: conll2003 and wikiann_en
# ---------------------------------------------------------------------------------------------

POS = ['"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR",
       "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS",
       "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB"]
CHUNK = ["O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ", "B-LST", "I-LST",
         "B-NP", "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR", "B-UCP", "I-UCP", "B-VP", "I-VP"]


def _conll_hf(ner_names=CONLL_TAGS):
    """Two sentences in the Hugging Face conll2003 schema (the first is its real first row)."""
    f = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "pos_tags": datasets.Sequence(datasets.ClassLabel(names=POS)),
        "chunk_tags": datasets.Sequence(datasets.ClassLabel(names=CHUNK)),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(ner_names)))})
    named = [["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"]]
    return datasets.Dataset.from_dict({
        "id": ["0", "1"],
        "tokens": [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
                   ["Peter", "Blackburn"]],
        "pos_tags": [[22, 42, 16, 21, 35, 37, 16, 21, 7], [22, 22]],
        "chunk_tags": [[11, 21, 11, 12, 21, 22, 11, 12, 0], [11, 12]],
        "ner_tags": [[list(ner_names).index(t) for t in s] for s in named]}, features=f)


def test_conll2003_parquet_reads_tag_names_from_the_file(tmp_path):
    folder = tmp_path / "conll2003"
    folder.mkdir()
    # A file whose ClassLabel order differs from the usual one: the names must come from it.
    shuffled = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    for split in ("train", "validation", "test"):
        _conll_hf(shuffled).to_parquet(str(folder / f"{split}.parquet"))
    bundle = build_conll2003(data_dir=tmp_path, download=False)
    assert bundle.info["tag_names"] == shuffled
    assert _tags(bundle, bundle.train, 0)[:3] == ["B-ORG", "O", "B-MISC"]
    assert _tags(bundle, bundle.test, 1) == ["B-PER", "I-PER"]


def test_conll2003_save_to_disk_arrow_folder(tmp_path):
    split = _conll_hf()
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(
        str(tmp_path / "conll2003"))
    bundle = build_conll2003(data_dir=tmp_path, download=False, max_vocab=5)
    assert bundle.info["tag_names"] == CONLL_TAGS and len(bundle.train) == 2
    assert bundle.train[1] == (["Peter", "Blackburn"], [1, 2])
    assert bundle.info["vocab_size"] == 7  # <pad>, <unk> and the 5 most frequent words


def _wikiann():
    """WikiANN's schema; the first row is the real first row of its English training split."""
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    f = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        "langs": datasets.Sequence(datasets.Value("string")),
        "spans": datasets.Sequence(datasets.Value("string"))})
    tokens = [["R.H.", "Saunders", "(", "St.", "Lawrence", "River", ")", "(", "968", "MW", ")"],
              ["**", "Sheffield", "Wednesday", "F.C", "."]]
    return datasets.Dataset.from_dict({
        "tokens": tokens, "ner_tags": [[3, 4, 0, 3, 4, 4, 0, 0, 0, 0, 0], [0, 3, 4, 4, 0]],
        "langs": [["en"] * len(t) for t in tokens],
        "spans": [["ORG: R.H. Saunders", "ORG: St. Lawrence River"], ["ORG: Sheffield Wednesday F.C"]]},
        features=f)


def test_wikiann_parquet_shards_and_spans_agree(tmp_path):
    folder = tmp_path / "wikiann_en"
    folder.mkdir()
    data = _wikiann()
    for split in ("train", "validation", "test"):  # the hub's shard names
        data.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    bundle = build_wikiann_en(data_dir=tmp_path, download=False)
    assert bundle.info["tag_names"] == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    assert bundle.info["entity_types"] == ["PER", "ORG", "LOC"]
    for i in range(len(bundle.train)):
        words = bundle.train[i][0]
        spans = [f"{kind}: {' '.join(words[s:e])}" for s, e, kind in entity_spans(_tags(bundle, bundle.train, i))]
        assert spans == data[i]["spans"]


@pytest.mark.parametrize("builder, name, files", [
    (build_conll2003, "conll2003", "eng.train"),
    (build_wikiann_en, "wikiann_en", ".parquet"),
])
def test_missing_real_data_is_one_sentence(tmp_path, builder, name, files):
    with pytest.raises(DatasetUnavailableError) as error:
        builder(data_dir=tmp_path, download=False)
    message = str(error.value)
    assert name in message and str(tmp_path / name) in message and files in message
    assert "gazetteer_ner" in message and "\n" not in message
    # With downloads allowed but the hub unreachable (the tests run offline), as quickly.
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):
        builder(data_dir=tmp_path, download=True)
