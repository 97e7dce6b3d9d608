"""Image datasets: the offline `digits`, and the torchvision loaders on files written here.

No test reaches the network: every real loader is called with download=False, or with
torchvision's download replaced by a stub that fails the way an offline machine does.
"""

from __future__ import annotations

import hashlib
import pickle
import pickletools
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nbhelpers.data.images import build_cifar10, build_digits, build_mnist
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return build_digits(data_dir=None, max_samples=None, seed=0)


def _stack(dataset):
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.as_tensor([int(label) for label in labels])


def test_registry_facts():
    for name, offline in (("digits", True), ("mnist", False), ("cifar10", False)):
        entry = DATASETS.get(name)
        assert entry.meta["task"] == "image_classification"
        assert entry.meta["offline"] is offline


def test_digits_split_sizes_are_fixed_and_disjoint(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1258, 270, 269)
    parts = [set(split.indices) for split in (digits.train, digits.val, digits.test)]
    assert sum(map(len, parts)) == 1797
    assert len(parts[0] | parts[1] | parts[2]) == 1797


def test_digits_items_and_info(digits):
    image, label = digits.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= int(label) < 10
    assert digits.info["num_classes"] == 10
    assert digits.info["in_channels"] == 1 and digits.info["image_size"] == 28
    assert digits.info["classes"] == [str(d) for d in range(10)]
    assert "No augmentation" in digits.description


def test_digits_are_normalized_with_training_statistics(digits):
    images, labels = _stack(digits.train)
    assert abs(images.mean().item()) < 1e-4
    assert abs(images.std().item() - 1) < 1e-3
    assert set(labels.tolist()) == set(range(10))


def test_digits_are_deterministic_and_independent_of_the_run_seed(digits):
    again = build_digits(data_dir=None, max_samples=None, seed=123)
    for first, second in ((digits.train, again.train), (digits.test, again.test)):
        assert first.indices == second.indices
        assert torch.equal(_stack(first)[0], _stack(second)[0])


def test_digits_max_samples_caps_every_split():
    small = build_digits(data_dir=None, max_samples=100, seed=0)
    assert (len(small.train), len(small.val), len(small.test)) == (100, 100, 100)
    medium = build_digits(data_dir=None, max_samples=500, seed=0)
    assert (len(medium.train), len(medium.val), len(medium.test)) == (500, 270, 269)
    again = build_digits(data_dir=None, max_samples=100, seed=0)
    assert torch.equal(small.train[0][0], again.train[0][0])


def test_unknown_dataset_option_is_a_user_error():
    with pytest.raises(UserInputError, match="augment"):
        build_digits(data_dir=None, max_samples=None, seed=0, augment=True)


# ---------------------------------------------------------------------------------------------
# MNIST, from IDX files written here
# ---------------------------------------------------------------------------------------------

def _write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it (uncompressed): magic 0x0000 08 <ndim>, big-endian sizes."""
    magic = 0x0800 + array.ndim  # 0x08: unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def mnist_root(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = {"train": rng.integers(0, 256, (40, 28, 28)),
              "t10k": rng.integers(0, 256, (12, 28, 28))}
    labels = {"train": np.arange(40) % 10, "t10k": np.arange(12) % 10}
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte", images[split])
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels[split])
    return tmp_path, images, labels


def test_mnist_reads_idx_files_and_splits(mnist_root):
    root, images, labels = mnist_root
    header = (root / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[:16]
    assert header == struct.pack(">IIII", 2051, 40, 28, 28)  # the magic number MNIST ships
    bundle = build_mnist(data_dir=root, max_samples=None, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (36, 4, 12)
    assert not set(bundle.train.indices) & set(bundle.val.indices)
    assert bundle.info == {"num_classes": 10, "in_channels": 1, "image_size": 28,
                           "classes": [str(d) for d in range(10)],
                           "mean": (0.1307,), "std": (0.3081,)}
    # Validation items are the raw pixels, scaled and normalized, with no augmentation.
    image, label = bundle.val[0]
    source = bundle.val.indices[0]
    pixels = torch.as_tensor(images["train"][source], dtype=torch.float32) / 255
    expected = (pixels - 0.1307) / 0.3081
    assert image.shape == (1, 28, 28)
    assert torch.allclose(image[0], expected, atol=1e-5)
    assert label == labels["train"][source]
    assert torch.equal(bundle.val[0][0], bundle.val[0][0])
    test_image, test_label = bundle.test[3]
    assert test_label == labels["t10k"][3]


def test_mnist_max_samples_caps_every_split(mnist_root):
    bundle = build_mnist(data_dir=mnist_root[0], max_samples=5, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (5, 4, 5)


# ---------------------------------------------------------------------------------------------
# CIFAR-10, from pickled batches written here
# ---------------------------------------------------------------------------------------------

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
# Strings that the official (Python 2) pickles hold as Python 2 `str`.
PY2_STRINGS = {"data", "labels", "batch_label", "label_names", "num_cases_per_batch", "num_vis",
               *CIFAR_NAMES}


def _write_py2_pickle(path: Path, obj) -> None:
    """Pickle `obj` as the official batches are: protocol 2 with the keys as Python 2 `str`.

    Python 3 would write them as unicode strings. A Python 2 str (SHORT_BINSTRING) is what makes
    the official files give b'data' under pickle.load(encoding="bytes") and 'data' under the
    encoding="latin1" that torchvision uses, so the test file is read exactly like the real one.
    """
    data = pickle.dumps(obj, protocol=2)
    ops = list(pickletools.genops(data))
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    out, last = bytearray(), 0
    for (op, arg, pos), end in zip(ops, ends):
        if op.name == "BINUNICODE" and arg in PY2_STRINGS:
            raw = arg.encode("ascii")
            out += data[last:pos] + b"U" + bytes([len(raw)]) + raw
            last = end
    path.write_bytes(bytes(out + data[last:]))


@pytest.fixture()
def cifar_root(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name, count in [(f"data_batch_{i}", 6) for i in range(1, 6)] + [("test_batch", 8)]:
        batches[name] = {"batch_label": "batch",
                         "data": rng.integers(0, 256, (count, 3072)).astype(np.uint8),
                         "labels": [int(v) for v in rng.integers(0, 10, count)]}
        _write_py2_pickle(folder / name, batches[name])
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": 6, "num_vis": 3072}
    _write_py2_pickle(folder / "batches.meta", meta)

    # torchvision checks every file against the md5 of the official release, which files
    # written here cannot match. Rather than switching the check off (its _check_integrity
    # would not cover batches.meta, which _load_meta checks separately), hand torchvision the
    # md5s of the files written here: its integrity checks and the unpickling still run for real.
    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    train_list = [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5("batches.meta")})
    return tmp_path, batches


def test_cifar_pickles_are_written_like_the_official_ones(cifar_root):
    root, _ = cifar_root
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) == {b"batch_label", b"data", b"labels"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (6, 3072)


def test_cifar10_reads_pickled_batches_and_splits(cifar_root):
    root, batches = cifar_root
    bundle = build_cifar10(data_dir=root, max_samples=None, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (27, 3, 8)
    assert not set(bundle.train.indices) & set(bundle.val.indices)
    assert bundle.info["classes"] == CIFAR_NAMES
    info = bundle.info
    assert (info["num_classes"], info["in_channels"], info["image_size"]) == (10, 3, 32)
    image, label = bundle.test[2]
    assert image.shape == (3, 32, 32)
    assert label == batches["test_batch"]["labels"][2]
    # The test image is the stored pixels, channel-normalized, untouched by augmentation.
    raw = torch.as_tensor(batches["test_batch"]["data"][2], dtype=torch.float32)
    raw = raw.view(3, 32, 32) / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
    assert torch.allclose(image, (raw - mean) / std, atol=1e-5)


def test_cifar10_augments_train_but_not_val(cifar_root):
    bundle = build_cifar10(data_dir=cifar_root[0], max_samples=None, seed=0, download=False)
    torch.manual_seed(0)
    assert torch.equal(bundle.val[0][0], bundle.val[0][0])
    draws = [bundle.train[0][0] for _ in range(6)]
    assert any(not torch.equal(draws[0], draw) for draw in draws[1:])


# ---------------------------------------------------------------------------------------------
# Missing data: one clear sentence
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("builder, name, subfolder", [
    (build_mnist, "mnist", "MNIST/raw"),
    (build_cifar10, "cifar10", "cifar-10-batches-py"),
])
def test_missing_dataset_without_download_is_one_sentence(tmp_path, builder, name, subfolder):
    with pytest.raises(DatasetUnavailableError) as caught:
        builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    message = str(caught.value)
    assert name in message and str(tmp_path / subfolder) in message and "digits" in message
    assert "\n" not in message


def test_failed_download_is_one_sentence_and_restores_the_socket_timeout(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline_download(self):  # what torchvision raises after trying every mirror offline
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://x/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\n")

    monkeypatch.setattr(MNIST, "download", offline_download)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetUnavailableError) as caught:
        build_mnist(data_dir=tmp_path, max_samples=None, seed=0, download=True)
    message = str(caught.value)
    assert "could not be downloaded" in message and "Name or service not known" in message
    assert "digits" in message and str(tmp_path) in message and "\n" not in message
    assert caught.value.__suppress_context__  # no second traceback below the sentence
    assert socket.getdefaulttimeout() == before
