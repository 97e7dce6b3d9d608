"""Image-classification datasets: `digits` (offline), `mnist` and `cifar10` (torchvision).

Every builder returns a DataBundle (see nbhelpers/data/base.py) whose items are
`(image tensor C x H x W, normalized; int label)` and whose info holds
num_classes, in_channels, image_size, classes, mean and std.

The train/val/test split and the `max_samples` caps depend only on SPLIT_SEED, never on
the run's seed, so every optimizer and every seed is scored on the same images. The
run's seed still drives the random augmentation, through torch's global RNG.

torchvision and scikit-learn are imported inside the builders: importing this module (which
registering the datasets requires) should not pay for them.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import tarfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from nbhelpers.data.base import SPLIT_SEED, DataBundle, cap, fixed_split
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "image_classification"
OFFLINE_ALTERNATIVE = "digits"
DIGIT_CLASSES = [str(digit) for digit in range(10)]

# The usual published statistics, so runs here match runs elsewhere.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

# torchvision opens its URLs without a timeout: on a network that drops packets instead of
# refusing them, a download would wait forever. This bounds each socket operation (connect,
# one read), not the whole download, so a slow but live connection still finishes.
DOWNLOAD_SOCKET_TIMEOUT_S = 30.0

# Fraction of the official training split held out for validation (mnist, cifar10).
VAL_FRACTION = 0.1


class TransformedSubset(Dataset):
    """The items `indices` of `base` (which yields (PIL image, label)), passed through `transform`.

    Train and validation are two of these over ONE loaded copy of the official training files,
    so the held-out images are read once and get the evaluation transform, never augmentation.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Callable):
        self.base = base
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[self.indices[index]]
        return self.transform(image), int(label)


def _reject_dataset_kwargs(name: str, dataset_kwargs: dict[str, Any]) -> None:
    """Image datasets take no extra options; say so instead of ignoring a typo."""
    if dataset_kwargs:
        given = ", ".join(sorted(dataset_kwargs))
        raise UserInputError(f"dataset {name!r} takes no extra options (got: {given})")


def _bundle(name: str, train: Dataset, val: Dataset, test: Dataset, max_samples: int | None,
            info: dict[str, Any], description: str) -> DataBundle:
    """Cap all three splits at `max_samples` (fixed subsets) and wrap them in a DataBundle."""
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    return DataBundle(train=cap(train, max_samples), val=cap(val, max_samples),
                      test=cap(test, max_samples), info=info, description=description)


# --------------------------------------------------------------------------------------------
# digits: scikit-learn's bundled 8x8 digits, the offline default
# --------------------------------------------------------------------------------------------

DIGITS_SIZE = 28
DIGITS_FRACTIONS = (0.70, 0.15, 0.15)


def _digits_tensors(size: int = DIGITS_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, size, size) floats in [0, 1] and (N,) int64 labels."""
    from sklearn.datasets import load_digits  # ships with scikit-learn: no network

    digits = load_digits()
    # Pixel values are integer counts 0..16 (of a 4x4 block of the original 32x32 bitmap).
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    # Resized once, up front, so the MNIST-sized models run unchanged and loading costs nothing
    # per batch. Bilinear output is a convex mix of inputs, so it stays within [0, 1].
    images = torch.nn.functional.interpolate(images, size=(size, size),
                                             mode="bilinear", align_corners=False)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    return images, labels


@DATASETS.register(
    "digits",
    description="scikit-learn's 1,797 handwritten 8x8 digits resized to 28x28 (offline, bundled)",
    task=TASK, offline=True)
def build_digits(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                 download: bool = True, image_size: int = DIGITS_SIZE, channels: int = 1,
                 **dataset_kwargs: Any) -> DataBundle:
    """The offline image dataset: real handwritten digits that need no download.

    A fixed 70/15/15 train/val/test split (SPLIT_SEED); pixels normalized with the training
    split's mean and std; no augmentation. `data_dir`, `seed` and `download` are accepted for
    the common builder signature and unused: the data ship with scikit-learn.
    Options: `image_size` (side in pixels, default 28) and `channels` (1, or 3 for the grey
    image repeated, so CIFAR-shaped models run unchanged: image_size 32, channels 3).
    """
    _reject_dataset_kwargs("digits", dataset_kwargs)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 256:
        raise UserInputError(f"dataset 'digits': image_size must be a whole number from 8 to 256, got {image_size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise UserInputError(f"dataset 'digits': channels must be 1 or 3, got {channels!r}")
    images, labels = _digits_tensors(image_size)
    train_idx, val_idx, test_idx = fixed_split(len(labels), DIGITS_FRACTIONS, seed=SPLIT_SEED)
    # Statistics of the training split only, so nothing of val/test leaks into preprocessing.
    train_pixels = images[train_idx]
    mean, std = train_pixels.mean().item(), train_pixels.std().item()
    normalized = (images - mean) / std
    if channels == 3:  # one grey image in each channel; expand() shares the storage
        normalized = normalized.expand(-1, 3, -1, -1)
    full = TensorDataset(normalized, labels)
    info = {"num_classes": 10, "in_channels": channels, "image_size": image_size,
            "classes": list(DIGIT_CLASSES), "mean": (mean,) * channels, "std": (std,) * channels}
    description = (
        "scikit-learn's 8x8 handwritten digits (1,797 images, 0-16 intensities) scaled to [0, 1], "
        f"resized to {image_size}x{image_size} by bilinear interpolation and normalized with the "
        f"training split's mean {mean:.4f} and std {std:.4f}, "
        + ("repeated in 3 channels, " if channels == 3 else "")
        + "in a fixed 70/15/15 train/val/test split. No augmentation.")
    return _bundle("digits", Subset(full, train_idx), Subset(full, val_idx), Subset(full, test_idx),
                   max_samples, info, description)


# --------------------------------------------------------------------------------------------
# mnist and cifar10 through torchvision
# --------------------------------------------------------------------------------------------

@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every blocking socket operation while downloading (process-wide, then restored)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _short_reason(error: BaseException) -> str:
    """The last line of an error message (torchvision's are multi-line), kept short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


# The four files of MNIST as Yann LeCun's site publishes them (torchvision reads them unpacked).
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def unpack_mnist_archives(root: Path) -> None:
    """Gunzip MNIST's .gz files into root/MNIST/raw where only the archives are there.

    torchvision reads the unpacked files and, with downloads off, does not look at the .gz
    ones; a gunzip is not a download. The archives are looked for in MNIST/raw (where
    torchvision puts them), MNIST/ and mnist/.
    """
    raw = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        target = raw / name
        if target.is_file():
            continue
        archive = next((folder / f"{name}.gz" for folder in (raw, root / "MNIST", root / "mnist")
                        if (folder / f"{name}.gz").is_file()), None)
        if archive is None:
            continue
        raw.mkdir(parents=True, exist_ok=True)
        partial = raw / f".{name}.{os.getpid()}.tmp"
        try:
            with gzip.open(archive, "rb") as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)  # never a half-unpacked file under the real name
        except (OSError, EOFError, zlib.error) as error:
            partial.unlink(missing_ok=True)
            raise DatasetUnavailableError(f"dataset 'mnist': cannot unpack {archive} ({_short_reason(error)}); "
                                          f"replace it, or use --dataset {OFFLINE_ALTERNATIVE} (offline)") from None


def _open_cached_or_download(name: str, folder: Path, open_splits: Callable[[bool], Any],
                             download: bool, looked_for: str = "") -> Any:
    """Call open_splits(download=False); when the files are missing, download if allowed.

    Either way a dataset that cannot be had ends in one DatasetUnavailableError sentence
    (with the cause dropped: a notebook would otherwise print two long tracebacks).
    """
    try:
        return open_splits(False)
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        pass
    instead = f"or use --dataset {OFFLINE_ALTERNATIVE} (offline)"
    if not download:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not cached in {folder}{looked_for} and downloading is off "
            f"(download=False); run once with network access and downloading on, {instead}")
    try:
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            return open_splits(True)
    # URLError and socket timeouts are OSErrors; torchvision wraps failed mirrors in RuntimeError;
    # a truncated archive fails in tarfile, gzip (EOFError) or zlib.
    except (OSError, RuntimeError, EOFError, tarfile.TarError, zlib.error) as error:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not cached in {folder} and could not be downloaded "
            f"({_short_reason(error)}); run once with network access, {instead}") from None


def _split_official_train(base: Dataset, test: Dataset, train_transform: Callable,
                          eval_transform: Callable) -> tuple[Dataset, Dataset, Dataset]:
    """Hold out a fixed VAL_FRACTION of the official train split; the official test stays test."""
    train_idx, val_idx = fixed_split(len(base), (1 - VAL_FRACTION, VAL_FRACTION), seed=SPLIT_SEED)
    return (TransformedSubset(base, train_idx, train_transform),
            TransformedSubset(base, val_idx, eval_transform),
            TransformedSubset(test, range(len(test)), eval_transform))


@DATASETS.register(
    "mnist",
    description="MNIST handwritten digits, 60k train / 10k test, 28x28 grey (torchvision)",
    task=TASK, offline=False)
def build_mnist(*, data_dir: Path, max_samples: int | None = None, seed: int = 0,
                download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """MNIST from `data_dir`/MNIST/raw (downloaded there when missing and `download` is true).

    The four IDX files may also be there (or in MNIST/ or mnist/) only as the published
    .gz archives: they are unpacked without a download (unpack_mnist_archives).

    Validation is a fixed 10% of the official training split; test is the official test split.
    Training images get RandomRotation(10); all are normalized with (0.1307,)/(0.3081,).
    `seed` is unused: splits are fixed by SPLIT_SEED.
    """
    _reject_dataset_kwargs("mnist", dataset_kwargs)
    from torchvision import datasets, transforms

    root = Path(data_dir).expanduser()

    def open_splits(allow_download: bool):
        # transform=None: the subsets below apply train or eval transforms to the PIL images.
        return (datasets.MNIST(root, train=True, download=allow_download),
                datasets.MNIST(root, train=False, download=allow_download))

    unpack_mnist_archives(root)
    looked_for = f" (looked for {', '.join(MNIST_FILES)}, each also as .gz)"
    base, test = _open_cached_or_download("mnist", root / "MNIST" / "raw", open_splits, download, looked_for)
    to_tensor = [transforms.ToTensor(), transforms.Normalize(MNIST_MEAN, MNIST_STD)]
    train_transform = transforms.Compose([transforms.RandomRotation(10), *to_tensor])
    eval_transform = transforms.Compose(to_tensor)
    train, val, test = _split_official_train(base, test, train_transform, eval_transform)
    info = {"num_classes": 10, "in_channels": 1, "image_size": 28, "classes": list(DIGIT_CLASSES),
            "mean": MNIST_MEAN, "std": MNIST_STD}
    description = (
        "MNIST 28x28 grey digits scaled to [0, 1] and normalized with mean 0.1307 and std 0.3081; "
        "training images are randomly rotated by up to 10 degrees, while validation (a fixed 10% "
        "of the official training set) and the official test set are not augmented.")
    return _bundle("mnist", train, val, test, max_samples, info, description)


@DATASETS.register(
    "cifar10",
    description="CIFAR-10, 50k train / 10k test, 32x32 colour, 10 object classes (torchvision)",
    task=TASK, offline=False)
def build_cifar10(*, data_dir: Path, max_samples: int | None = None, seed: int = 0,
                  download: bool = True, stand_in: str | None = None,
                  **dataset_kwargs: Any) -> DataBundle:
    """CIFAR-10 from `data_dir`/cifar-10-batches-py (downloaded there when missing and allowed).

    Validation is a fixed 10% of the official training split (no augmentation); test is the
    official test split. Training images get RandomCrop(32, padding=4) and a random horizontal
    flip; all are normalized per channel with the CIFAR-10 statistics. `seed` is unused.

    `stand_in: digits` (the paper presets set it): when CIFAR-10 can be neither found nor
    downloaded, train on the digits at 32x32 in 3 channels instead, with a printed note, so
    that the preset still runs end to end; the run's details.txt and summary.json say so.
    """
    _reject_dataset_kwargs("cifar10", dataset_kwargs)
    if stand_in not in STAND_INS:
        raise UserInputError(f"dataset 'cifar10': stand_in must be one of "
                             f"{', '.join(map(repr, STAND_INS))}, got {stand_in!r}")
    from torchvision import datasets, transforms

    root = Path(data_dir).expanduser()

    def open_splits(allow_download: bool):
        return (datasets.CIFAR10(root, train=True, download=allow_download),
                datasets.CIFAR10(root, train=False, download=allow_download))

    try:
        base, test = _open_cached_or_download("cifar10", root / "cifar-10-batches-py", open_splits,
                                              download)
    except DatasetUnavailableError as missing:
        if stand_in is None:
            raise
        return _cifar10_stand_in(str(missing).split(";")[0], max_samples)  # why, without the advice
    to_tensor = [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    train_transform = transforms.Compose([transforms.RandomCrop(32, padding=4),
                                          transforms.RandomHorizontalFlip(), *to_tensor])
    eval_transform = transforms.Compose(to_tensor)
    train, val, test = _split_official_train(base, test, train_transform, eval_transform)
    info = {"num_classes": 10, "in_channels": 3, "image_size": 32, "classes": list(base.classes),
            "mean": CIFAR10_MEAN, "std": CIFAR10_STD}
    description = (
        "CIFAR-10 32x32 colour images scaled to [0, 1] and normalized per channel with mean "
        "(0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435, 0.2616); training images get a random "
        "32x32 crop of the 4-pixel zero-padded image and a random horizontal flip, while "
        "validation (a fixed 10% of the official training set) and the official test set are not "
        "augmented.")
    return _bundle("cifar10", train, val, test, max_samples, info, description)


# What a preset may train on when CIFAR-10 is not there (None: fail instead).
STAND_INS = (None, "digits")


def _cifar10_stand_in(reason: str, max_samples: int | None) -> DataBundle:
    """digits at CIFAR-10's shape (32x32, 3 channels, 10 classes), labelled as a stand-in."""
    bundle = build_digits(max_samples=max_samples, image_size=32, channels=3)
    note = ("CIFAR-10 is not available, so this run trains on a STAND-IN: the offline digits "
            "at 32x32 in 3 channels (the same shapes and 10 classes; the figures say nothing "
            f"about CIFAR-10). Why: {reason}")
    print(f"note: {note}", flush=True)
    bundle.info["stand_in"] = "digits"
    bundle.description = f"{note}. {bundle.description}"
    return bundle
