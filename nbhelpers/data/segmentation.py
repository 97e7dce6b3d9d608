"""Semantic-segmentation datasets: `shapes` (offline), `oxford_iiit_pet` and `ade20k`.

Every builder returns a DataBundle whose items are `(image, mask)`: a float image (3, H, W)
normalized with the ImageNet statistics, and an int64 mask (H, W) of class ids in
0..num_classes-1, with IGNORE_INDEX (255) on pixels that count neither in the loss nor in the
metrics. info holds num_classes, class_names (also as "classes"), ignore_index, in_channels,
image_size, mean, std and loss_options (see below).

Preprocessing follows the seed guide: real images are resized to 256x256 (bilinear, masks
nearest-neighbour); `shapes` keeps its native 64x64. Training images and masks are augmented
together (torchvision.transforms.v2 with tv_tensors.Mask): a random scale, a random crop back
to the working size (pixels padded in get the ignore label) and a horizontal flip. Validation
and test are never augmented.

Where the real datasets are looked for (`data_dir` is --data-dir, default ~/.cache/nbhelpers):

    <data_dir>/oxford-iiit-pet/images/<name>.jpg               torchvision's OxfordIIITPet layout
    <data_dir>/oxford-iiit-pet/annotations/trimaps/<name>.png  (trimap 1 pet, 2 background,
    <data_dir>/oxford-iiit-pet/annotations/{trainval,test}.txt   3 border: ignored)
    <data_dir>/ADEChallengeData2016/images/{training,validation}/ADE_*.jpg   the MIT Scene
    <data_dir>/ADEChallengeData2016/annotations/{training,validation}/ADE_*.png  Parsing release
    <data_dir>/scene_parse_150/scene_parsing/{train,validation}/*.parquet    or its Hugging Face
                                                                             parquet form

ADE20K annotations hold 0 ("other", ignored) and the classes 1..150, which become 0..149.
Validation splits are fixed held-out slices of the training splits (SPLIT_SEED); the official
test (pets) and validation (ADE20K) releases are our test splits.

The loss knobs (dice_weight, class_balanced) are the task's: `task_kwargs`, not dataset options.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nbhelpers.data.base import SPLIT_SEED, DataBundle, cap, fixed_split
from nbhelpers.data.shapes_scenes import SHAPE_CLASSES, generate_scenes
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.registry import DATASETS

TASK = "semantic_segmentation"
OFFLINE_ALTERNATIVE = "shapes"
IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The padding colour of a scaled-down training crop: the ImageNet mean, i.e. 0 once normalized.
_PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)
REAL_SIZE = 256
SCALE_RANGE = (0.5, 2.0)  # the seed guide's random scale for real images
VAL_FRACTION = 0.1        # of the official training split, for oxford_iiit_pet and ade20k

PET_CLASSES = ("background", "pet")
# Trimap values -> class ids: 1 pet, 2 background, 3 the uncertain border (ignored).
PET_LABELS = {1: 1, 2: 0, 3: IGNORE_INDEX}

# The 150 classes of the MIT Scene Parsing benchmark (ADE20K annotation values 1..150), short names.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag")
# ADE20K annotation values -> class ids: 0 ("other") ignored, k -> k - 1.
ADE20K_LABELS = {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 151)}}


# --------------------------------------------------------------------------------------------
# Items and transforms
# --------------------------------------------------------------------------------------------

def label_lookup(mapping: dict[int, int]) -> np.ndarray:
    """A 256-entry uint8 table from raw mask values to class ids; unlisted values are ignored."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, label in mapping.items():
        table[raw] = label
    return table


def joint_transform(size: int, *, train: bool, scale_range: tuple[float, float] | None) -> Callable:
    """The image+mask transform: augmentation (train only), then float and ImageNet statistics.

    Inputs are tv_tensors.Image (uint8) and tv_tensors.Mask; v2 resizes masks with nearest
    neighbour and applies Normalize to the image only.
    """
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    steps: list[Callable] = []
    if train:
        if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
            steps += [v2.ScaleJitter((size, size), scale_range=tuple(scale_range)),
                      v2.RandomCrop(size, pad_if_needed=True,
                                    fill={tv_tensors.Image: _PAD_RGB, tv_tensors.Mask: IGNORE_INDEX})]
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


class SegmentationSplit(Dataset):
    """Items `indices` of `source` passed through `transform`, as (float image, int64 mask).

    `source[i]` gives (tv_tensors.Image uint8 (3, H, W), tv_tensors.Mask uint8 (H, W) of class
    ids). Train and validation are two of these over one source, with different transforms.
    """

    def __init__(self, source: Any, indices: Sequence[int], transform: Callable):
        self.source = source
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.transform(*self.source[self.indices[index]])
        # Plain tensors: tv_tensor subclasses would survive collation and surprise a model.
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def _as_tv_tensors(image: Any, mask: np.ndarray, lookup: np.ndarray,
                   size: int | None) -> tuple[Any, Any]:
    """A PIL/array image and a raw mask -> (Image uint8, Mask of class ids), resized to size."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    # np.array (a copy): PIL's buffers are read-only, which torch warns about.
    array = np.array(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    image_t = tv_tensors.Image(torch.from_numpy(array).permute(2, 0, 1))
    mask_t = tv_tensors.Mask(torch.from_numpy(lookup[np.asarray(mask, dtype=np.uint8)]))
    if size is not None:
        image_t = TF.resize(image_t, [size, size], antialias=True)
        mask_t = TF.resize(mask_t, [size, size])  # nearest neighbour for masks
    return image_t, mask_t


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

def _options(name: str, dataset_kwargs: dict[str, Any], accepted: dict[str, Any]) -> dict[str, Any]:
    """Dataset options merged over `accepted` defaults; unknown ones are errors."""
    defaults = dict(accepted)
    unknown = sorted(set(dataset_kwargs) - set(defaults))
    if unknown:
        raise UserInputError(f"dataset {name!r} does not accept {', '.join(map(repr, unknown))} "
                             f"(accepted options: {', '.join(defaults)})")
    options = {**defaults, **dataset_kwargs}
    scale = options.get("scale_range")
    if scale is not None:
        if (not isinstance(scale, (list, tuple)) or len(scale) != 2
                or not 0 < float(scale[0]) <= float(scale[1])):
            raise UserInputError(f"scale_range must be two numbers 0 < low <= high, got {scale!r}")
        options["scale_range"] = (float(scale[0]), float(scale[1]))
    return options


def _info(class_names: Sequence[str], size: int, options: dict[str, Any]) -> dict[str, Any]:
    return {"num_classes": len(class_names), "class_names": list(class_names),
            "classes": list(class_names), "ignore_index": IGNORE_INDEX, "in_channels": 3,
            "image_size": size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def _bundle(train: Dataset, val: Dataset, test: Dataset, max_samples: int | None,
            info: dict[str, Any], description: str) -> DataBundle:
    if max_samples is not None and max_samples < 1:
        raise UserInputError(f"max_samples must be a positive number or None, got {max_samples}")
    return DataBundle(train=cap(train, max_samples), val=cap(val, max_samples),
                      test=cap(test, max_samples), info=info, description=description)


def _augmentation_text(options: dict[str, Any], size: int) -> str:
    scale = options.get("scale_range")
    if scale is None or tuple(scale) == (1.0, 1.0):
        return "Training images and masks are flipped horizontally at random"
    return (f"Training images and masks are rescaled together by a random factor in "
            f"[{scale[0]:g}, {scale[1]:g}], randomly cropped back to {size}x{size} (padding "
            f"labelled {IGNORE_INDEX}, ignored) and flipped horizontally at random")


# --------------------------------------------------------------------------------------------
# shapes: generated scenes, the offline default
# --------------------------------------------------------------------------------------------

SHAPES_SIZE = 64
SHAPES_SEED = 20240917  # fixed: the scenes never change with the run's seed
SHAPES_SPLITS = {"num_train": 3000, "num_val": 300, "num_test": 300}
SHAPES_SCALE_RANGE = (0.75, 1.25)
SHAPES_TARGET = 0.80  # validation mIoU


class ArraySource:
    """Scenes held in memory: images (N, 3, H, W) uint8 and masks (N, H, W) uint8."""

    def __init__(self, images: np.ndarray, masks: np.ndarray):
        self.images = torch.from_numpy(images)
        self.masks = torch.from_numpy(masks)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from torchvision import tv_tensors
        return tv_tensors.Image(self.images[index]), tv_tensors.Mask(self.masks[index])


def load_shapes_scenes(data_dir: Path | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` generated scenes, read from the cache under data_dir/shapes or generated and cached."""
    # The generator's source is part of the key: changing it must not serve stale scenes.
    from nbhelpers.data import shapes_scenes
    code = hashlib.sha1(Path(shapes_scenes.__file__).read_bytes()).hexdigest()[:10]
    path = None
    if data_dir is not None:
        path = Path(data_dir).expanduser() / "shapes" / f"scenes-{n}-{SHAPES_SEED}-{code}.npz"
        if path.exists():
            with np.load(path) as cached:
                return cached["images"], cached["masks"]
    images, masks = generate_scenes(n, SHAPES_SEED, SHAPES_SIZE)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(partial, images=images, masks=masks)
            os.replace(partial, path)  # atomic: a concurrent run never reads half a file
        except OSError:
            pass  # an unwritable cache only costs the next run a few seconds
    return images, masks


@DATASETS.register(
    "shapes",
    description="generated 64x64 scenes of circles, squares and triangles with masks, "
                "3000/300/300 (offline)",
    task=TASK, offline=True)
def build_shapes(*, data_dir: Path | None = None, max_samples: int | None = None, seed: int = 0,
                 download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """The offline segmentation dataset: generated scenes with exact masks (4 classes).

    One to four circles, squares and triangles over a textured background; colour and texture
    are independent of the class, so the outline decides. Split sizes are options (num_train,
    num_val, num_test); the scenes come from a fixed seed (SHAPES_SEED), not the run's seed, and
    are cached under data_dir/shapes. Training augmentation: random scale in `scale_range`
    (default 0.75-1.25), crop back to 64x64, horizontal flip. `download` is unused.
    """
    options = _options("shapes", dataset_kwargs,
                       {**SHAPES_SPLITS, "scale_range": SHAPES_SCALE_RANGE})
    sizes = [int(options[key]) for key in SHAPES_SPLITS]
    if min(sizes) < 1:
        raise UserInputError(f"shapes: num_train, num_val and num_test must be >= 1, got {sizes}")
    images, masks = load_shapes_scenes(data_dir, sum(sizes))
    source = ArraySource(images, masks)
    n_train, n_val, _ = sizes
    train_tf = joint_transform(SHAPES_SIZE, train=True, scale_range=options["scale_range"])
    eval_tf = joint_transform(SHAPES_SIZE, train=False, scale_range=None)
    # Scenes are independent draws, so consecutive slices are random splits.
    train = SegmentationSplit(source, range(n_train), train_tf)
    val = SegmentationSplit(source, range(n_train, n_train + n_val), eval_tf)
    test = SegmentationSplit(source, range(n_train + n_val, sum(sizes)), eval_tf)
    info = _info(SHAPE_CLASSES, SHAPES_SIZE, options)
    # Time to target: when validation mIoU first reaches the figure the benchmark asks of
    # adamw within 5 CPU minutes (benchmarks/results/segmentation.md).
    info["target"] = SHAPES_TARGET
    description = (
        f"shapes: {sum(sizes):,} generated {SHAPES_SIZE}x{SHAPES_SIZE} RGB scenes (fixed seed "
        f"{SHAPES_SEED}), split {n_train}/{n_val}/{sizes[2]} into train/validation/test; one to "
        "four circles, squares and triangles (rotated, partly occluding each other, cut by the "
        "frame) over a flat, striped, checked or blotchy background, with colours and textures "
        "drawn independently of the class, an illumination gradient and pixel noise. Four "
        "classes: background, circle, square, triangle. Images are scaled to [0, 1] and "
        f"normalized with the ImageNet mean and std. {_augmentation_text(options, SHAPES_SIZE)}; "
        "validation and test images are not augmented.")
    return _bundle(train, val, test, max_samples, info, description)


# --------------------------------------------------------------------------------------------
# Real datasets: shared helpers
# --------------------------------------------------------------------------------------------

def _unavailable(name: str, folder: Path, looked_for: str, reason: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r} is not in {folder} (looked for {looked_for}) and {reason}; "
        f"put the files there, or use --dataset {OFFLINE_ALTERNATIVE} (offline)")


def _real_splits(source_train: Any, source_test: Any, options: dict[str, Any]
                 ) -> tuple[Dataset, Dataset, Dataset]:
    """Train/validation from a fixed split of the official training source; test from the other."""
    train_idx, val_idx = fixed_split(len(source_train), (1 - VAL_FRACTION, VAL_FRACTION),
                                     seed=SPLIT_SEED)
    train_tf = joint_transform(REAL_SIZE, train=True, scale_range=options["scale_range"])
    eval_tf = joint_transform(REAL_SIZE, train=False, scale_range=None)
    return (SegmentationSplit(source_train, train_idx, train_tf),
            SegmentationSplit(source_train, val_idx, eval_tf),
            SegmentationSplit(source_test, range(len(source_test)), eval_tf))


# --------------------------------------------------------------------------------------------
# oxford_iiit_pet through torchvision
# --------------------------------------------------------------------------------------------

class PetSource:
    """torchvision's OxfordIIITPet (segmentation targets) as resized image/mask tv_tensors."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.lookup = label_lookup(PET_LABELS)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, trimap = self.dataset[index]
        return _as_tv_tensors(image, np.asarray(trimap), self.lookup, REAL_SIZE)


@DATASETS.register(
    "oxford_iiit_pet",
    description="Oxford-IIIT Pet trimaps as pet/background masks, 3,680 trainval / 3,669 test "
                "(torchvision)",
    task=TASK, offline=False)
def build_oxford_iiit_pet(*, data_dir: Path, max_samples: int | None = None, seed: int = 0,
                          download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """Oxford-IIIT Pet from `data_dir`/oxford-iiit-pet (torchvision downloads it when allowed).

    Two classes (background, pet); the trimap's border band is ignored. Validation is a fixed
    10% of the official trainval split; test is the official test split. Images resized to
    256x256. `seed` is unused: splits are fixed by SPLIT_SEED.
    """
    from torchvision.datasets import OxfordIIITPet

    from nbhelpers.data.images import _short_reason, _socket_timeout

    options = _options("oxford_iiit_pet", dataset_kwargs, {"scale_range": SCALE_RANGE})
    root = Path(data_dir).expanduser()
    folder = root / "oxford-iiit-pet"
    looked_for = "images/*.jpg, annotations/trimaps/*.png, annotations/trainval.txt and test.txt"

    def open_splits(allow_download: bool):
        return [OxfordIIITPet(root, split=split, target_types="segmentation",
                              download=allow_download) for split in ("trainval", "test")]

    try:
        trainval, test = open_splits(False)
    except (RuntimeError, FileNotFoundError):
        if not download:
            raise _unavailable("oxford_iiit_pet", folder, looked_for,
                               "downloading is off (download=False)") from None
        try:
            with _socket_timeout(30.0):
                trainval, test = open_splits(True)
        except (OSError, RuntimeError, EOFError) as error:
            raise _unavailable("oxford_iiit_pet", folder, looked_for,
                               f"could not be downloaded ({_short_reason(error)})") from None
    train, val, test_split = _real_splits(PetSource(trainval), PetSource(test), options)
    info = _info(PET_CLASSES, REAL_SIZE, options)
    description = (
        "Oxford-IIIT Pet (torchvision's OxfordIIITPet, segmentation trimaps): trimap value 1 "
        "(pet) is class 1, 2 (background) class 0, and 3 (the uncertain border band) is "
        f"ignored ({IGNORE_INDEX}) in the loss and the metrics. Images are resized to "
        f"{REAL_SIZE}x{REAL_SIZE} (bilinear; masks nearest-neighbour), scaled to [0, 1] and "
        f"normalized with the ImageNet mean and std. {_augmentation_text(options, REAL_SIZE)}; "
        "validation (a fixed 10% of the official trainval split) and the official test split "
        "are not augmented.")
    return _bundle(train, val, test_split, max_samples, info, description)


# --------------------------------------------------------------------------------------------
# ade20k: the MIT Scene Parsing release, or its Hugging Face parquet form
# --------------------------------------------------------------------------------------------

ADE_FOLDER = "ADEChallengeData2016"
ADE_PARQUET_FOLDER = "scene_parse_150"
ADE_HUB_REPO = "zhoubolei/scene_parse_150"  # the parquet files are on its refs/convert/parquet


class ADEFolderSource:
    """Pairs of (image .jpg, annotation .png) files of one split of the MIT release."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]]):
        self.pairs = list(pairs)
        self.lookup = label_lookup(ADE20K_LABELS)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        from PIL import Image

        image_path, mask_path = self.pairs[index]
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            return _as_tv_tensors(image, np.asarray(mask), self.lookup, REAL_SIZE)


def _ade_folder_pairs(split_dir_images: Path, split_dir_masks: Path) -> list[tuple[Path, Path]]:
    """Every image of a split with its annotation (same stem, .png); images without one are skipped."""
    pairs = []
    for image_path in sorted(split_dir_images.glob("*.jpg")):
        mask_path = split_dir_masks / f"{image_path.stem}.png"
        if mask_path.exists():
            pairs.append((image_path, mask_path))
    return pairs


class ADEParquetSource:
    """Rows of the Hugging Face scene_parse_150 parquet files (columns image, annotation)."""

    def __init__(self, table: Any):
        self.table = table  # a datasets.Dataset: memory-mapped, so only touched rows are read
        self.lookup = label_lookup(ADE20K_LABELS)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int):
        row = self.table[index]
        return _as_tv_tensors(_decode(row["image"]), np.asarray(_decode(row["annotation"])),
                              self.lookup, REAL_SIZE)


def _decode(value: Any) -> Any:
    """A PIL image from a decoded datasets Image feature or its raw {"bytes", "path"} struct."""
    if isinstance(value, dict):
        from PIL import Image
        return Image.open(io.BytesIO(value["bytes"]))
    return value


def _ade_parquet_files(folder: Path, split: str) -> list[str]:
    return sorted(glob.glob(str(folder / "scene_parsing" / split / "*.parquet")))


def _open_ade_parquet(folder: Path, data_dir: Path) -> tuple[Any, Any]:
    from datasets import load_dataset

    files = {split: _ade_parquet_files(folder, split) for split in ("train", "validation")}
    loaded = load_dataset("parquet", data_files=files, cache_dir=str(data_dir / "huggingface"))
    return ADEParquetSource(loaded["train"]), ADEParquetSource(loaded["validation"])


def _download_ade_parquet(folder: Path) -> None:
    """Fetch the train and validation parquet files of scene_parse_150 from the hub."""
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=ADE_HUB_REPO, repo_type="dataset", revision="refs/convert/parquet",
                      allow_patterns=["scene_parsing/train/*", "scene_parsing/validation/*"],
                      local_dir=str(folder))


@DATASETS.register(
    "ade20k",
    description="ADE20K / MIT Scene Parsing, 150 classes, 20,210 train / 2,000 validation "
                "(folder release or Hugging Face parquet)",
    task=TASK, offline=False)
def build_ade20k(*, data_dir: Path, max_samples: int | None = None, seed: int = 0,
                 download: bool = True, **dataset_kwargs: Any) -> DataBundle:
    """ADE20K from `data_dir`/ADEChallengeData2016, else `data_dir`/scene_parse_150 parquet.

    When neither is there and downloading is allowed, the parquet files are fetched from the
    Hugging Face hub. 150 classes; annotation 0 ("other") is ignored. The official validation
    release serves as test; a fixed 10% of the training release as validation. 256x256.
    """
    options = _options("ade20k", dataset_kwargs, {"scale_range": SCALE_RANGE})
    root = Path(data_dir).expanduser()
    release, parquet = root / ADE_FOLDER, root / ADE_PARQUET_FOLDER
    looked_for = (f"{ADE_FOLDER}/images/{{training,validation}}/*.jpg with annotations/.../*.png, "
                  f"or {ADE_PARQUET_FOLDER}/scene_parsing/{{train,validation}}/*.parquet")
    train_pairs = _ade_folder_pairs(release / "images" / "training", release / "annotations" / "training")
    test_pairs = _ade_folder_pairs(release / "images" / "validation",
                                   release / "annotations" / "validation")
    if train_pairs and test_pairs:
        source_train, source_test = ADEFolderSource(train_pairs), ADEFolderSource(test_pairs)
        form = f"the MIT release ({ADE_FOLDER}: images .jpg, annotations .png)"
    else:
        have_parquet = all(_ade_parquet_files(parquet, s) for s in ("train", "validation"))
        if not have_parquet:
            from nbhelpers.data.sentiment import hub_unreachable_reason

            reason = "downloading is off (download=False)" if not download else hub_unreachable_reason()
            if reason is not None:
                raise _unavailable("ade20k", root, looked_for, reason)
            try:
                _download_ade_parquet(parquet)
            except Exception as error:  # the hub client raises many kinds; all mean "not here"
                raise _unavailable("ade20k", root, looked_for,
                                   f"could not be downloaded ({type(error).__name__})") from None
        source_train, source_test = _open_ade_parquet(parquet, root)
        form = "the Hugging Face scene_parse_150 parquet files (columns image, annotation)"
    train, val, test = _real_splits(source_train, source_test, options)
    info = _info(ADE20K_CLASSES, REAL_SIZE, options)
    description = (
        f"ADE20K (MIT Scene Parsing benchmark) read from {form}: annotation values 1..150 are "
        f"classes 0..149 and 0 ('other') is ignored ({IGNORE_INDEX}) in the loss and the metrics. "
        f"Images are resized to {REAL_SIZE}x{REAL_SIZE} (bilinear; masks nearest-neighbour), "
        "scaled to [0, 1] and normalized with the ImageNet mean and std. "
        f"{_augmentation_text(options, REAL_SIZE)}; validation (a fixed 10% of the training "
        "release) and test (the official validation release) are not augmented.")
    return _bundle(train, val, test, max_samples, info, description)
