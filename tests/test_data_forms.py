"""The data forms users have: hub snapshots, the Hugging Face caches, the authors' own files.

Every test writes small files in the published layout (names, folders, columns, gzip) into
tmp_path and loads them with downloads off; none reaches the network. The user's own
Hugging Face caches are hidden (HF_HOME points into tmp_path) so they cannot answer instead.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nbhelpers.config import RunConfig, validate_config
from nbhelpers.data import sentiment
from nbhelpers.data import text_generation as tg
from nbhelpers.data.images import build_mnist
from nbhelpers.data.sentiment import build_imdb, build_sst2
from nbhelpers.data.text_generation import Vocabulary, build_ptb_text_only, build_wikitext2
from nbhelpers.errors import DatasetUnavailableError
from nbhelpers.registry import DATASETS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SHARD = "00000-of-00001"
PTB = {"train": [" the company said it will sell its stake ", " the <unk> company sold shares "],
       "validation": [" the company sold its stake "], "test": [" its shares were sold "]}
WIKI = {"train": ["", " = Valkyria Chronicles = ", "", " the game was released in japan . ", ""],
        "validation": ["", " the game was praised . "], "test": [" a new game was released . ", ""]}


@pytest.fixture(autouse=True)
def hidden_user_caches(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _parquet(path: Path, **columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _sst2_snapshot(folder: Path) -> None:
    """stanfordnlp/sst2 as `huggingface-cli download` leaves it: data/<split>-00000-of-00001.parquet."""
    _parquet(folder / "data" / f"train-{SHARD}.parquet", idx=list(range(20)),
             sentence=[f"train sentence {i} " for i in range(20)], label=[i % 2 for i in range(20)])
    _parquet(folder / "data" / f"validation-{SHARD}.parquet", idx=[0, 1, 2],
             sentence=["good film", "bad film", "fine film"], label=[1, 0, 1])
    _parquet(folder / "data" / f"test-{SHARD}.parquet", idx=[0], sentence=["unlabelled"], label=[-1])
    (folder / "README.md").write_text("---\ndataset_info: ...\n---\n")


def _text_splits(lines: dict, folder: Path, column: str, pattern: str) -> None:
    for split, values in lines.items():
        _parquet(folder / pattern.format(split=split), **{column: values})


# --------------------------------------------------------------------------------------------
# Hub snapshot folders
# --------------------------------------------------------------------------------------------

def test_sst2_reads_a_hub_snapshot_folder(tmp_path):
    _sst2_snapshot(tmp_path / "sst2")
    bundle = build_sst2(data_dir=tmp_path, download=False)
    assert (len(bundle.train), len(bundle.val)) == (18, 2)  # 10% of the 20 held out
    assert bundle.test.texts == ["good film", "bad film", "fine film"]  # the official validation
    assert bundle.test.labels == [1, 0, 1]


def test_imdb_reads_a_snapshot_with_a_config_folder(tmp_path):
    folder = tmp_path / "imdb" / "plain_text"
    for split, n in (("train", 10), ("test", 4), ("unsupervised", 3)):
        labels = [-1] * n if split == "unsupervised" else [i % 2 for i in range(n)]
        _parquet(folder / f"{split}-{SHARD}.parquet", text=[f"{split} review {i}" for i in range(n)], label=labels)
    bundle = build_imdb(data_dir=tmp_path, download=False)
    assert len(bundle.train) + len(bundle.val) == 10 and bundle.test.texts[0] == "test review 0"


def test_wikitext_snapshot_gives_the_same_stream_as_flat_files(tmp_path):
    _text_splits(WIKI, tmp_path / "snap" / "wikitext2", "text", f"wikitext-2-raw-v1/{{split}}-{SHARD}.parquet")
    _text_splits(WIKI, tmp_path / "flat" / "wikitext2", "text", "{split}.parquet")
    snap = build_wikitext2(data_dir=tmp_path / "snap", download=False, bptt=3)
    flat = build_wikitext2(data_dir=tmp_path / "flat", download=False, bptt=3)
    assert torch.equal(snap.train.stream, flat.train.stream) and torch.equal(snap.test.stream, flat.test.stream)


def test_ptb_reads_the_hubs_parquet_conversion_layout(tmp_path):
    _text_splits(PTB, tmp_path / "ptb_text_only", "sentence", "penn_treebank/{split}/0000.parquet")
    bundle = build_ptb_text_only(data_dir=tmp_path, download=False, bptt=2)
    assert bundle.info["train_tokens"] == sum(len(line.split()) + 1 for line in PTB["train"])


# --------------------------------------------------------------------------------------------
# The Hugging Face caches, before the hub
# --------------------------------------------------------------------------------------------

def _hub_cache_repo(hub: Path, repo_id: str) -> Path:
    """A repository as huggingface_hub caches it: snapshots/<revision>/ and refs/main."""
    repo = hub / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("4f1a2b3c")
    return repo / "snapshots" / "4f1a2b3c"


@pytest.mark.parametrize("variable, hub_subfolder", [("HF_HOME", "hub"), ("HF_HUB_CACHE", "")])
def test_sentiment_reads_the_hub_cache_before_trying_the_hub(tmp_path, monkeypatch, variable, hub_subfolder):
    home = tmp_path / "elsewhere"
    monkeypatch.setenv(variable, str(home))
    _sst2_snapshot(_hub_cache_repo(home / hub_subfolder if hub_subfolder else home, "stanfordnlp/sst2"))

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was consulted although the cache has the dataset")
    monkeypatch.setattr(sentiment, "hub_unreachable_reason", no_hub)
    bundle = build_sst2(data_dir=tmp_path / "empty", download=True)
    assert bundle.test.texts == ["good film", "bad film", "fine film"]
    assert not (tmp_path / "empty" / "sst2").exists()  # read in place, nothing copied


def test_language_models_read_the_hub_cache_under_the_current_repo_name(tmp_path, monkeypatch):
    snapshot = _hub_cache_repo(tmp_path / "hf-home" / "hub", "Salesforce/wikitext")
    _text_splits(WIKI, snapshot, "text", f"wikitext-2-raw-v1/{{split}}-{SHARD}.parquet")
    # Another config in the same snapshot must not be mistaken for this one.
    _text_splits({k: ["other words"] for k in WIKI}, snapshot, "text", f"wikitext-103-raw-v1/{{split}}-{SHARD}.parquet")
    monkeypatch.setattr(tg, "hub_reachable", lambda *a, **k: pytest.fail("the hub was consulted"))
    bundle = build_wikitext2(data_dir=tmp_path / "empty", download=True, bptt=3)
    assert "Valkyria" in bundle.info["vocabulary"] and "other" not in bundle.info["vocabulary"]


def _prepare_datasets_cache(cache: Path, source: Path, repo_dir: str, config: str, name: str) -> None:
    """What datasets.load_dataset(<repo>, <config>) leaves in its cache: Arrow files and their info."""
    from datasets.packaged_modules.parquet.parquet import Parquet
    files = {p.stem: str(p) for p in source.glob("*.parquet")}
    builder = Parquet(cache_dir=str(cache), dataset_name=name, data_files=files, hash="0123abcd")
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)
    target = cache / repo_dir / config / prepared.parent.name / prepared.name
    target.parent.mkdir(parents=True)
    shutil.move(str(prepared), str(target))
    info = json.loads((target / "dataset_info.json").read_text())
    (target / "dataset_info.json").write_text(json.dumps({**info, "config_name": config}))


def test_sentiment_reads_what_datasets_prepared_in_HF_DATASETS_CACHE(tmp_path, monkeypatch):
    cache = tmp_path / "datasets-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    _parquet(tmp_path / "src" / "train.parquet", sentence=[f"s {i}" for i in range(10)], label=[i % 2 for i in range(10)])
    _parquet(tmp_path / "src" / "validation.parquet", sentence=["a", "b"], label=[1, 0])
    _prepare_datasets_cache(cache, tmp_path / "src", "stanfordnlp___sst2", "default", "sst2")
    monkeypatch.setattr(sentiment, "hub_unreachable_reason", lambda *a, **k: pytest.fail("the hub was consulted"))
    bundle = build_sst2(data_dir=tmp_path / "empty", download=True)
    assert bundle.test.texts == ["a", "b"] and len(bundle.train) + len(bundle.val) == 10


def test_language_models_read_HF_DATASETS_CACHE(tmp_path, monkeypatch):
    cache = tmp_path / "datasets-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    _text_splits(PTB, tmp_path / "src", "sentence", "{split}.parquet")
    _prepare_datasets_cache(cache, tmp_path / "src", "ptb_text_only", "penn_treebank", "ptb_text_only")
    bundle = build_ptb_text_only(data_dir=tmp_path / "empty", download=False, bptt=2)
    assert bundle.info["test_tokens"] == len(PTB["test"][0].split()) + 1


# --------------------------------------------------------------------------------------------
# The authors' own files
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subfolder", ["", "simple-examples/data"])
def test_ptb_reads_mikolovs_files(tmp_path, subfolder):
    folder = tmp_path / "ptb_text_only" / subfolder
    folder.mkdir(parents=True)
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        (folder / f"ptb.{name}.txt").write_text("\n".join(PTB[split]) + "\n")
    bundle = build_ptb_text_only(data_dir=tmp_path, download=False, bptt=2)
    vocab = Vocabulary(bundle.info["vocabulary"])
    assert vocab.decode(bundle.test.stream.tolist()) == "its shares <unk> sold <eos>"  # "were" is unseen


def test_wikitext_reads_the_raw_files_of_its_zip(tmp_path):
    folder = tmp_path / "wikitext2" / "wikitext-2-raw"
    folder.mkdir(parents=True)
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        (folder / f"wiki.{name}.raw").write_text("\n".join(WIKI[split]) + "\n")
    _text_splits(WIKI, tmp_path / "flat" / "wikitext2", "text", "{split}.parquet")
    raw = build_wikitext2(data_dir=tmp_path, download=False, bptt=3)
    flat = build_wikitext2(data_dir=tmp_path / "flat", download=False, bptt=3)
    assert torch.equal(raw.train.stream, flat.train.stream)
    assert raw.info["vocabulary"] == flat.info["vocabulary"]


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """An IDX file gzipped, as yann.lecun.com publishes MNIST."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_gz_files_with_downloads_off(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = {"train": rng.integers(0, 256, (30, 28, 28)), "t10k": rng.integers(0, 256, (8, 28, 28))}
    for split, array in images.items():
        _write_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", array)
        _write_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(len(array)) % 10)
    bundle = build_mnist(data_dir=tmp_path, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (27, 3, 8)
    first, label = bundle.test[0]
    expected = (torch.as_tensor(images["t10k"][0], dtype=torch.float32) / 255 - 0.1307) / 0.3081
    assert torch.allclose(first[0], expected, atol=1e-6) and label == 0
    assert not list(raw.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# Nothing found: the sentence names the files looked for
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("build, wanted", [
    (build_mnist, ["train-images-idx3-ubyte", ".gz", "digits"]),
    (build_sst2, ["data/train-00000-of-00001.parquet", "train.parquet", "lexicon_sentiment"]),
    (build_wikitext2, ["wiki.train.raw", "wikitext-2-raw-v1/train-00000-of-00001.parquet", "grammar_lm"]),
    (build_ptb_text_only, ["ptb.train.txt", "ptb.valid.txt", "grammar_lm"]),
])
def test_nothing_found_names_the_files_looked_for(tmp_path, build, wanted):
    with pytest.raises(DatasetUnavailableError) as caught:
        build(data_dir=tmp_path, download=False)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message
    for fragment in wanted:
        assert fragment in message, (fragment, message)


def test_seed_001s_dataset_name_is_an_alias():
    assert DATASETS.canonical("ptb_text_only_hf") == "ptb_text_only"
    cfg = validate_config(RunConfig(task="text_generation", dataset="ptb_text_only_hf", model="gpt_small"))
    assert cfg.dataset == "ptb_text_only"
