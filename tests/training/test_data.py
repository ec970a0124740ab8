"""Data: both CIFAR-10 file formats, the synthetic set, subsets, the stratified holdout, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from train.data import CLASSES, DataNotFound, load_arrays, locate, synthetic
from train.schema import resolve_data


def write_batches(root: Path, per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The official cifar-10-batches-py layout (5 train pickles + test_batch), from synthetic pixels."""
    a = synthetic(per_class * 5, per_class)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    xs = np.array_split(a.train_x, 5)
    ys = np.array_split(a.train_y, 5)
    for i in range(5):
        with open(d / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump({"data": xs[i].reshape(len(xs[i]), -1), "labels": ys[i].tolist()}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"data": a.test_x.reshape(len(a.test_x), -1), "labels": a.test_y.tolist()}, f)
    return a.train_x, a.test_x


def test_reads_the_pickled_batches_format(tmp_path: Path) -> None:
    train_x, test_x = write_batches(tmp_path)
    for fmt in ("auto", "batches"):
        out = load_arrays(resolve_data({"root": str(tmp_path), "format": fmt}), seed=0)
        assert np.array_equal(out["train"][0], train_x) and np.array_equal(out["test"][0], test_x)
    assert locate(resolve_data({"root": str(tmp_path / "cifar-10-batches-py")}))[0] == "batches"


def test_reads_an_imagefolder_and_caches_uint8(tmp_path: Path) -> None:
    from PIL import Image

    a = synthetic(2, 1)
    for split, xs, ys in (("train", a.train_x, a.train_y), ("test", a.test_x, a.test_y)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            d = tmp_path / split / CLASSES[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x.transpose(1, 2, 0)).save(d / f"{i:04d}.png")  # lossless: exact pixels
    cfg = resolve_data({"root": str(tmp_path), "format": "imagefolder"})
    out = load_arrays(cfg, seed=0)
    assert (tmp_path / "orchestrate-uint8.npz").is_file()
    assert out["train"][0].shape == (20, 3, 32, 32) and out["train"][0].dtype == np.uint8
    order = np.lexsort((np.arange(20), a.train_y))  # folder order: by class, then file name
    assert np.array_equal(out["train"][1], a.train_y[order])
    assert np.array_equal(out["train"][0], a.train_x[order])
    again = load_arrays(cfg, seed=0)  # from the cache
    assert np.array_equal(again["train"][0], out["train"][0])


def test_missing_data_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as info:
        load_arrays(resolve_data({"root": str(tmp_path)}), seed=0)
    msg = str(info.value)
    assert str(tmp_path) in msg and "cifar-10-batches-py" in msg and "download: true" in msg
    assert "\n" not in msg


def test_subset_and_stratified_val_split(tmp_path: Path) -> None:
    write_batches(tmp_path, per_class=20)
    cfg = resolve_data({"root": str(tmp_path), "subset": 50, "val_size": 100})
    out = load_arrays(cfg, seed=3)
    assert np.bincount(out["val"][1]).tolist() == [10] * 10
    assert np.bincount(out["train"][1]).tolist() == [40] * 10
    same = load_arrays(cfg, seed=3)
    other = load_arrays(cfg, seed=4)
    assert np.array_equal(same["val"][0], out["val"][0])
    assert not np.array_equal(other["val"][0], out["val"][0])
    # train and val are disjoint pieces of the subset
    rows = {x.tobytes() for x in out["train"][0]}
    assert not any(x.tobytes() in rows for x in out["val"][0])


def test_synthetic_is_deterministic_and_learnable_shaped() -> None:
    a, b = synthetic(10, 5), synthetic(10, 5)
    assert np.array_equal(a.train_x, b.train_x) and a.train_x.shape == (100, 3, 32, 32)
    assert np.bincount(a.test_y).tolist() == [5] * 10
    # class means differ (the structure a model can learn)
    means = np.stack([a.train_x[a.train_y == c].mean(0) for c in range(10)])
    assert np.abs(means[0] - means[1]).mean() > 5


@pytest.mark.parametrize(("raw", "path", "words"), [
    ({"name": "imagenet"}, "data.name", "cifar10, synthetic"),
    ({"subset": 0}, "data.subset", ">= 1"),
    ({"val_size": 15}, "data.val_size", "multiple of 10"),
    ({"format": "tfrecord"}, "data.format", "auto, batches, imagefolder"),
    ({"rooot": "x"}, "data.rooot", "valid keys"),
])
def test_bad_data_values(raw: dict, path: str, words: str) -> None:
    from configcheck import ConfigError

    with pytest.raises(ConfigError) as info:
        resolve_data(raw)
    assert info.value.path == path and words in str(info.value)
