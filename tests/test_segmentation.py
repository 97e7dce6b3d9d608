"""Semantic segmentation: the shapes generator, the real loaders on files in their published
layouts, both models, the loss and the metrics against direct computations, and one run whose
mIoU is recomputed from predictions_test.jsonl with numpy.

No test reaches the network: the pets and ADE20K files are written here (trimap values 1-3,
ADE's 0 class, the Hugging Face parquet form), and downloading is off.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nbhelpers.config import RunConfig
from nbhelpers.data import segmentation as seg
from nbhelpers.data.segmentation import (
    ADE20K_CLASSES, IGNORE_INDEX, build_ade20k, build_oxford_iiit_pet, build_shapes)
from nbhelpers.data.shapes_scenes import _shape_mask, generate_scenes
from nbhelpers.errors import DatasetUnavailableError, UserInputError
from nbhelpers.models.segmentation import build_deeplabv3_resnet50, build_unet
from nbhelpers.registry import DATASETS, MODELS, TASKS, load_all
from nbhelpers.tasks.semantic_segmentation import (
    AUX_WEIGHT, SemanticSegmentation, class_balanced_weights, confusion_matrix, cross_entropy,
    per_image_confusions, segmentation_metrics, soft_dice_loss)

load_all()

SMALL = {"num_train": 24, "num_val": 8, "num_test": 8}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return build_shapes(data_dir=tmp_path_factory.mktemp("data"), max_samples=None, seed=0, **SMALL)


# ---------------------------------------------------------------------------------------------
# Registry and task facts
# ---------------------------------------------------------------------------------------------

def test_registry_facts_and_task_spec():
    for name, offline in (("shapes", True), ("oxford_iiit_pet", False), ("ade20k", False)):
        entry = DATASETS.get(name)
        assert entry.meta["task"] == "semantic_segmentation" and entry.meta["offline"] is offline
    for name in ("unet", "deeplabv3_resnet50"):
        assert MODELS.get(name).meta["task"] == "semantic_segmentation"
    spec = TASKS.get("semantic_segmentation").meta["spec"]
    assert spec.family == "vision" and spec.primary_metric == "miou" and spec.higher_is_better
    assert set(spec.metrics) == {"miou", "pixel_accuracy", "dice"}
    assert (spec.primary.label, spec.primary.unit, spec.primary.scale) == ("mIoU", "%", 100.0)
    assert (spec.offline_dataset, spec.scheduler, spec.max_grad_norm, spec.early_stopping_patience) == (
        "shapes", "cosine", 1.0, 5)
    assert spec.defaults["model"] == "unet"


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------

def test_shapes_are_deterministic_cached_and_independent_of_the_run_seed(tmp_path, monkeypatch):
    first = build_shapes(data_dir=tmp_path, max_samples=None, seed=0, **SMALL)
    cached = list((tmp_path / "shapes").glob("scenes-*.npz"))
    assert len(cached) == 1
    # A second build reads the cache: the generator must not be called again.
    monkeypatch.setattr(seg, "generate_scenes", lambda *a, **k: pytest.fail("regenerated"))
    again = build_shapes(data_dir=tmp_path, max_samples=None, seed=7, **SMALL)
    for split in ("val", "test"):
        a, b = getattr(first, split), getattr(again, split)
        assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(len(a)))
    assert (len(first.train), len(first.val), len(first.test)) == (24, 8, 8)


def test_shapes_items_info_and_masks(shapes):
    image, mask = shapes.val[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and type(image) is torch.Tensor
    assert mask.shape == (64, 64) and mask.dtype == torch.int64
    info = shapes.info
    assert (info["num_classes"], info["ignore_index"], info["in_channels"], info["image_size"]) == (4, 255, 3, 64)
    assert info["class_names"] == ["background", "circle", "square", "triangle"] == shapes.class_names
    assert info["target"] == pytest.approx(0.80)
    values = torch.cat([shapes.val[i][1].flatten() for i in range(len(shapes.val))]).unique().tolist()
    assert set(values) <= {0, 1, 2, 3} and len(values) >= 3  # evaluation masks carry no ignore label


def test_train_augmentation_moves_image_and_mask_together(tmp_path):
    flip_only = build_shapes(data_dir=tmp_path, max_samples=None, seed=0, scale_range=[1, 1], **SMALL)
    train = flip_only.train
    plain = seg.SegmentationSplit(train.source, train.indices, seg.joint_transform(64, train=False, scale_range=None))
    image0, mask0 = plain[0]
    torch.manual_seed(0)
    kinds = set()
    for image, mask in (train[0] for _ in range(10)):
        if torch.equal(image, image0) and torch.equal(mask, mask0):
            kinds.add("as is")
        else:  # flipped: image and mask together
            assert torch.equal(image, image0.flip(-1)) and torch.equal(mask, mask0.flip(-1))
            kinds.add("flipped")
    assert kinds == {"as is", "flipped"}
    rescaled = build_shapes(data_dir=tmp_path, max_samples=None, seed=0, scale_range=[0.5, 0.6], **SMALL)
    image, mask = rescaled.train[0]
    padded = mask == IGNORE_INDEX
    # Shrunk to half size and padded back to 64x64: the padding is labelled 255 in the mask and
    # has the mean colour (0 once normalized) in the image, at the same pixels.
    assert 0.3 < float(padded.float().mean()) < 0.9
    assert float(image[:, padded].abs().max()) < 0.03 and float(image[:, ~padded].abs().mean()) > 0.1


def test_shape_decides_not_colour():
    images, masks = generate_scenes(400, seed=3)
    pixels = images.transpose(0, 2, 3, 1).reshape(-1, 3).astype(float)
    labels = masks.reshape(-1)
    means = np.stack([pixels[labels == c].mean(0) for c in (1, 2, 3)])
    # Colours are drawn independently of the class: the three shapes' mean colours agree.
    assert np.abs(means - means.mean(0)).max() < 12
    shares = np.bincount(labels, minlength=4) / labels.size
    assert 0.6 < shares[0] < 0.9 and all(0.03 < s < 0.12 for s in shares[1:])


def test_shape_outlines_have_similar_areas():
    yy, xx = np.mgrid[0:200, 0:200].astype(float)
    areas = [_shape_mask(kind, 100, 100, 30, 0.3, yy, xx).sum() for kind in (1, 2, 3)]
    assert areas[0] == pytest.approx(math.pi * 30 ** 2, rel=0.02)
    assert max(areas) / min(areas) < 1.05


def test_bad_dataset_options_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not accept 'colour'"):
        build_shapes(data_dir=tmp_path, max_samples=None, seed=0, colour=True)
    with pytest.raises(UserInputError, match="scale_range"):
        build_shapes(data_dir=tmp_path, max_samples=None, seed=0, scale_range=[2, 1])
    with pytest.raises(UserInputError, match="does not accept 'dice_weight'"):  # a task knob now
        build_shapes(data_dir=tmp_path, max_samples=None, seed=0, dice_weight=0.5, **SMALL)


# ---------------------------------------------------------------------------------------------
# oxford_iiit_pet: torchvision's folder layout, trimaps 1 pet / 2 background / 3 border
# ---------------------------------------------------------------------------------------------

def _trimap(size=(40, 30)) -> np.ndarray:
    """Background (2) with a pet (1) in the middle rimmed by a border band (3), as the real files."""
    trimap = np.full(size[::-1], 2, dtype=np.uint8)
    trimap[6:24, 8:32] = 3
    trimap[9:21, 11:29] = 1
    return trimap


def _write_pets(root, n_trainval=20, n_test=5):
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("trainval", n_trainval), ("test", n_test)):
        lines = []
        for i in range(n):
            name = f"{'Abyssinian' if i % 2 else 'american_bulldog'}_{split}{i}"
            Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(base / "images" / f"{name}.jpg")
            Image.fromarray(_trimap()).save(base / "annotations" / "trimaps" / f"{name}.png")
            lines.append(f"{name} {1 + i % 2} {1 + i % 2} 1")  # image, class id, species, breed id
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_oxford_iiit_pet_reads_the_torchvision_layout_and_maps_the_trimap(tmp_path):
    _write_pets(tmp_path)
    bundle = build_oxford_iiit_pet(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (18, 2, 5)
    assert bundle.class_names == ["background", "pet"] and bundle.ignore_index == 255
    image, mask = bundle.test[0]
    assert image.shape == (3, 256, 256) and mask.shape == (256, 256)
    expected = torch.from_numpy(seg.label_lookup(seg.PET_LABELS)[_trimap()])
    expected = F.interpolate(expected[None, None].float(), size=(256, 256), mode="nearest")[0, 0].long()
    assert torch.equal(mask, expected)
    assert set(mask.unique().tolist()) == {0, 1, 255}
    assert "border" in bundle.description and "ignored" in bundle.description


def test_missing_real_datasets_are_one_sentence(tmp_path):
    for builder, folder in ((build_oxford_iiit_pet, "oxford-iiit-pet"), (build_ade20k, "ADEChallengeData2016")):
        with pytest.raises(DatasetUnavailableError) as info:
            builder(data_dir=tmp_path, max_samples=None, seed=0, download=False)
        message = str(info.value)
        assert folder in message and "--dataset shapes" in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# ade20k: the MIT release folders and the Hugging Face parquet form; 0 = other (ignored)
# ---------------------------------------------------------------------------------------------

def _ade_annotation(index: int) -> np.ndarray:
    """Values 0 ('other') and 1..150, in blocks wide enough to survive resizing to 256."""
    values = np.array([0, 1, 150, 13 + index], dtype=np.uint8)
    return np.repeat(np.repeat(values.reshape(2, 2), 16, axis=0), 16, axis=1)


def _write_ade_release(root, n_train=10, n_val=3):
    rng = np.random.default_rng(1)
    for split, prefix, n in (("training", "ADE_train", n_train), ("validation", "ADE_val", n_val)):
        images = root / "ADEChallengeData2016" / "images" / split
        annotations = root / "ADEChallengeData2016" / "annotations" / split
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for i in range(1, n + 1):
            name = f"{prefix}_{i:08d}"
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"{name}.jpg")
            Image.fromarray(_ade_annotation(i)).save(annotations / f"{name}.png")


def _expected_ade_mask(index: int) -> torch.Tensor:
    raw = torch.from_numpy(seg.label_lookup(seg.ADE20K_LABELS)[_ade_annotation(index)])
    return F.interpolate(raw[None, None].float(), size=(256, 256), mode="nearest")[0, 0].long()


def test_ade20k_reads_the_mit_release_and_ignores_other(tmp_path):
    _write_ade_release(tmp_path)
    bundle = build_ade20k(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 1, 3)
    assert bundle.num_classes == 150 and bundle.class_names[:3] == ["wall", "building", "sky"]
    assert len(ADE20K_CLASSES) == 150 == len(set(ADE20K_CLASSES))
    _, mask = bundle.test[1]  # the validation release is the test split, in file order
    assert torch.equal(mask, _expected_ade_mask(2))
    assert {255, 0, 149, 14} == set(mask.unique().tolist())


def test_ade20k_reads_the_hugging_face_parquet_form(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(2)
    for split, n in (("train", 10), ("validation", 3)):
        rows = {"image": [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)],
                "annotation": [Image.fromarray(_ade_annotation(i + 1)) for i in range(n)],
                "scene_category": [0] * n}
        features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image(),
                                      "scene_category": datasets.Value("int64")})
        folder = tmp_path / "scene_parse_150" / "scene_parsing" / split
        folder.mkdir(parents=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "0000.parquet"))
    bundle = build_ade20k(data_dir=tmp_path, max_samples=None, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 1, 3)
    _, mask = bundle.test[2]
    assert torch.equal(mask, _expected_ade_mask(3))
    assert "parquet" in bundle.description


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

INFO = {"in_channels": 3, "num_classes": 4}


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_unet_sizes_shapes_and_knobs():
    assert 7_000_000 <= _count(build_unet(info=INFO)) <= 30_000_000
    assert _count(build_unet(info=INFO, width=16)) < 1_000_000
    model = build_unet(info=INFO, width=4, depth=3, bilinear=False).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)
        assert model(torch.randn(1, 3, 37, 50)).shape == (1, 4, 37, 50)  # padded, then cropped back
    with pytest.raises(UserInputError, match="accepted model_kwargs: width, depth, bilinear"):
        build_unet(info=INFO, layers=2)
    with pytest.raises(UserInputError, match="depth"):
        build_unet(info=INFO, depth=0)


def test_unet_channels_last_changes_the_layout_not_the_results():
    torch.manual_seed(0)
    fast = build_unet(info=INFO, width=4, depth=2)
    plain = build_unet(info=INFO, width=4, depth=2, channels_last=False)
    plain.load_state_dict(fast.state_dict())  # the checkpoints are interchangeable
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 32, 32)
    for model in (fast, plain):
        model.train()
        model(images).square().mean().backward()
    torch.testing.assert_close(fast(images), plain(images), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.stem[0].weight.grad, plain.stem[0].weight.grad, atol=1e-5, rtol=1e-4)


def test_deeplabv3_resnet50_warns_without_cached_weights_and_returns_aux_in_training(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_deeplabv3_resnet50(info=INFO)
    assert any("random weights" in str(w.message) for w in caught) and not model.backbone_pretrained
    assert 39_000_000 < _count(model) < 45_000_000
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert set(out) == {"out", "aux"} and out["out"].shape == out["aux"].shape == (2, 4, 64, 64)
    model.eval()
    with torch.no_grad():
        assert set(model(torch.randn(1, 3, 48, 40))) == {"out"}


def test_deeplabv3_resnet50_loads_cached_backbone_weights(tmp_path, monkeypatch):
    from torchvision.models import ResNet50_Weights, resnet50

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = tmp_path / "hub" / "checkpoints" / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(5)
    reference = resnet50().state_dict()
    torch.save(reference, cached)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "random weights" warning now
        model = build_deeplabv3_resnet50(info=INFO)
    assert model.backbone_pretrained
    assert torch.equal(model.net.backbone.conv1.weight, reference["conv1.weight"])


# ---------------------------------------------------------------------------------------------
# Loss and metrics against direct computations
# ---------------------------------------------------------------------------------------------

def _batch(seed=0, classes=4, shape=(3, 9, 7)):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], classes, *shape[1:], generator=gen)
    labels = torch.randint(0, classes, shape, generator=gen)
    labels[torch.rand(shape, generator=gen) < 0.2] = IGNORE_INDEX
    return logits, labels


def test_cross_entropy_matches_torch_with_weights_and_ignore():
    logits, labels = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0])
    assert cross_entropy(logits, labels) == pytest.approx(float(F.cross_entropy(logits, labels, ignore_index=255)), rel=1e-5)
    assert cross_entropy(logits, labels, weight=weight) == pytest.approx(
        float(F.cross_entropy(logits, labels, weight=weight, ignore_index=255)), rel=1e-5)
    everything_ignored = torch.full_like(labels, IGNORE_INDEX)
    assert float(cross_entropy(logits, everything_ignored)) == 0.0  # not NaN


def test_class_balanced_weights_follow_enet():
    labels = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 255, 255]])
    weights = class_balanced_weights(labels, 3)
    assert weights.tolist() == pytest.approx([1 / math.log(1.02 + 0.75), 1 / math.log(1.02 + 0.25), 0.0])


def test_soft_dice_matches_a_one_hot_computation():
    logits, labels = _batch(seed=1)
    valid = labels != IGNORE_INDEX
    probs = torch.softmax(logits, 1) * valid[:, None]
    onehot = F.one_hot(torch.where(valid, labels, 0), 4).permute(0, 3, 1, 2) * valid[:, None]
    dims = (0, 2, 3)
    dice = (2 * (probs * onehot).sum(dims) + 1) / (probs.sum(dims) + onehot.sum(dims) + 1)
    present = onehot.sum(dims) > 0
    assert float(soft_dice_loss(logits, labels)) == pytest.approx(float(1 - dice[present].mean()), rel=1e-5)
    perfect = torch.where(valid, labels, 0)
    assert float(soft_dice_loss(F.one_hot(perfect, 4).permute(0, 3, 1, 2) * 50.0, labels)) < 1e-3


def test_confusion_matrices_and_metrics_match_numpy():
    logits, labels = _batch(seed=2, classes=5)
    predictions = logits.argmax(1)
    predictions[predictions == 4] = 0  # class 4 predicted nowhere...
    labels[labels == 4] = IGNORE_INDEX  # ...and absent from the ground truth: no IoU
    valid = (labels != IGNORE_INDEX).numpy()
    expected = np.zeros((5, 5), dtype=np.int64)
    np.add.at(expected, (labels.numpy()[valid], predictions.numpy()[valid]), 1)
    matrix = confusion_matrix(predictions, labels, 5)
    assert np.array_equal(matrix.numpy(), expected)
    assert torch.equal(per_image_confusions(predictions, labels, 5).sum(0), matrix)
    metrics = segmentation_metrics(matrix)
    ious = [expected[c, c] / (expected[c].sum() + expected[:, c].sum() - expected[c, c]) for c in range(4)]
    dices = [2 * expected[c, c] / (expected[c].sum() + expected[:, c].sum()) for c in range(4)]
    assert metrics["miou"] == pytest.approx(np.mean(ious))
    assert metrics["dice"] == pytest.approx(np.mean(dices))
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    assert math.isnan(metrics["per_class_iou"][4])


class _TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.aux = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return {"out": self.conv(x), "aux": self.aux(x)}


def test_task_loss_weights_the_aux_head_and_reads_the_loss_knobs(shapes):
    images, labels = (torch.stack(t) for t in zip(*[shapes.val[i] for i in range(4)]))
    model = _TwoHeads()
    task = SemanticSegmentation(data=shapes)
    assert (task.dice_weight, task.class_balanced) == (0.5, True)
    loss, stats = task.train_step(model, (images, labels))
    with torch.no_grad():
        out = model(images)
    expected = task.criterion(out["out"], labels) + AUX_WEIGHT * task.criterion(out["aux"], labels)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert stats["confusion"].shape == (4, 4) and int(stats["confusion"].sum()) == int((labels != 255).sum())
    plain = SemanticSegmentation(data=shapes, dice_weight=0.0, class_balanced=False)
    assert float(plain.criterion(out["out"], labels)) == pytest.approx(
        float(F.cross_entropy(out["out"], labels, ignore_index=255)), rel=1e-5)


def test_loss_knobs_are_task_knobs_checked_before_a_run(tmp_path):
    from nbhelpers.config import RunConfig, validate_config
    from nbhelpers.training.experiment import Experiment
    base = RunConfig(task="semantic_segmentation", dataset="shapes", model="unet", data_dir=str(tmp_path),
                     output_dir=str(tmp_path / "out"), dataset_kwargs=SMALL, max_samples=8)
    exp = Experiment(base.replace(task_kwargs={"dice_weight": 0.0, "class_balanced": False}))
    exp.load_data()
    exp.build_model()
    assert (exp.task.dice_weight, exp.task.class_balanced) == (0.0, False)
    for bad, words in (({"dice_weight": -1}, "dice_weight must be a number >= 0"),
                       ({"dice_weight": "abc"}, "dice_weight"), ({"dice": 1}, "dice")):
        with pytest.raises(UserInputError, match=words):
            validate_config(base.replace(task_kwargs=bad, output_dir=str(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------
# One run: mIoU recomputed from predictions_test.jsonl with numpy
# ---------------------------------------------------------------------------------------------

def test_run_writes_predictions_that_recompute_the_test_miou(tmp_path):
    from nbhelpers.training import run_experiment

    cfg = RunConfig(task="semantic_segmentation", dataset="shapes", model="unet", optimizer="adamw",
                    epochs=2, batch_size=8, dataset_kwargs=SMALL, model_kwargs={"width": 4, "depth": 2},
                    data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / "out"), device="cpu",
                    progress=False)
    result = run_experiment(cfg)
    summary = result.summary
    assert summary["status"] == "completed" and summary["primary_metric"] == "miou"
    assert summary["metric_specs"]["miou"]["label"] == "mIoU"
    records = [json.loads(line) for line in (result.run_dir / "predictions_test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(8))
    matrix = np.zeros((4, 4))
    for record in records:
        for true, predicted, count in record["confusion"]:
            matrix[true, predicted] += count
        assert record["pixels"] == sum(n for _, _, n in record["confusion"]) == 64 * 64
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    iou = tp[union > 0] / union[union > 0]
    assert summary["test"]["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert summary["test"]["pixel_accuracy"] == pytest.approx(tp.sum() / matrix.sum(), abs=1e-12)
    names = ["background", "circle", "square", "triangle"]
    for c in np.flatnonzero(union > 0):
        assert summary["test"][f"iou_{names[c]}"] == pytest.approx(tp[c] / union[c], abs=1e-12)
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert {"train_miou", "val_miou", "val_pixel_accuracy", "val_dice"} <= set(history[0])
    assert not any(key.startswith("val_iou_") for key in history[0])  # per-class IoU: test only
