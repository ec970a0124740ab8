"""CIFAR-10 (pickled batches or an ImageFolder of JPEGs) and a synthetic stand-in, as uint8 arrays.

The arrays go to the training device whole (``DeviceData``); nothing here runs per step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from train.atomic import atomic_save_npz, atomic_write_text
from train.unpickle import ArraysOnly

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHARED_ARCHIVE = "../shared/data/cifar10-jpeg.tar.xz"


class DataNotFound(RuntimeError):
    """The data is not where the config says, and cannot be downloaded: one line says where we
    looked and how to provide it."""


@dataclass
class Arrays:
    train_x: np.ndarray  # uint8 [N, 3, 32, 32]
    train_y: np.ndarray  # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def data_root(cfg: dict[str, Any]) -> Path:
    root = cfg["root"] or os.environ.get("ORCHESTRATE_DATA") or "data"
    return Path(root).expanduser().resolve()


def _batches_dir(root: Path) -> Path | None:
    for d in (root / "cifar-10-batches-py", root):
        if (d / "data_batch_1").is_file() and (d / "test_batch").is_file():
            return d
    return None


def _imagefolder(root: Path) -> bool:
    return all((root / split / c).is_dir() for split in ("train", "test") for c in CLASSES)


def _read_batches(d: Path) -> Arrays:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(d / name, "rb") as f:
            # The official CIFAR-10 python format is a pickle (what torchvision reads too);
            # only point data.root at files you trust.
            batch = ArraysOnly(f, encoding="latin1").load()
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return x, np.asarray(batch["labels"], dtype=np.int64)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = read("test_batch")
    return Arrays(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                  test_x, test_y, f"cifar-10-batches-py at {d}")


def _images(root: Path, split: str, c: str) -> list[Path]:
    """The image files of one class folder, sorted; anything there with an image name that is not
    a regular file (a FIFO, a device, a dangling link) is refused by name: reading it would block
    or fail mid-decode."""
    out = []
    for entry in os.scandir(root / split / c):
        if os.path.splitext(entry.name)[1].lower() not in (".jpg", ".jpeg", ".png"):
            continue
        if not entry.is_file(follow_symlinks=True):
            raise DataNotFound(f"data.root: {entry.path} is not a regular file; refusing to read an image tree "
                               "holding one (remove it)")
        out.append(Path(entry.path))
    return sorted(out)


def _decode_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image  # heavy: loads Pillow; only this path needs it

    xs, ys = [], []
    for label, c in enumerate(CLASSES):
        for path in _images(root, split, c):
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
            if arr.shape != (32, 32, 3):
                raise DataNotFound(f"{path}: expected a 32x32 RGB image, got {arr.shape}")
            xs.append(arr.transpose(2, 0, 1))
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def _read_imagefolder(root: Path) -> Arrays:
    """Decode every JPEG once (~30 s for CIFAR-10) and cache the uint8 arrays beside the tree."""
    cache = root / "orchestrate-uint8.npz"
    if not cache.is_file():
        with Console(stderr=True).status(f"decoding {root} once into {cache.name}"):
            train_x, train_y = _decode_folder(root, "train")
            test_x, test_y = _decode_folder(root, "test")
        try:
            atomic_save_npz(cache, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
        except OSError:  # read-only data dir: decode again next time rather than fail
            return Arrays(train_x, train_y, test_x, test_y, f"imagefolder at {root}")
    with np.load(cache) as z:
        return Arrays(z["train_x"], z["train_y"], z["test_x"], z["test_y"], f"imagefolder at {root} (cached)")


def candidates(cfg: dict[str, Any]) -> list[Path]:
    """Where CIFAR-10 is looked for, in order: ``data.root`` (else ``$ORCHESTRATE_DATA``, else
    ``./data``), then its ``cifar10-jpeg/`` (where ``orchestrate demo`` unpacks the JPEG archive).
    In each: ``cifar-10-batches-py/`` (or the batch files themselves), then ``train/<class>/`` +
    ``test/<class>/`` JPEGs."""
    root = data_root(cfg)
    return [root, root / "cifar10-jpeg"]


def locate(cfg: dict[str, Any]) -> tuple[str, Path]:
    """("batches" | "imagefolder" | "download" | "synthetic", path) without reading any image."""
    if cfg["name"] == "synthetic":
        return "synthetic", Path()
    fmt = cfg["format"]
    places = candidates(cfg)
    for root in places:
        if fmt in ("auto", "batches"):
            d = _batches_dir(root)
            if d is not None:
                return "batches", d
        if fmt in ("auto", "imagefolder") and _imagefolder(root):
            for split in ("train", "test"):  # cheap (directory entries only) and never blocks
                for c in CLASSES:
                    _images(root, split, c)
            return "imagefolder", root
    root = places[0]
    if cfg["download"] and fmt != "imagefolder":
        return "download", root
    looked = {"auto": "cifar-10-batches-py/ (or data_batch_1..5 + test_batch) and train/<class>/ + test/<class>/",
              "batches": "cifar-10-batches-py/ (or data_batch_1..5 + test_batch)",
              "imagefolder": "train/<class>/*.jpg and test/<class>/*.jpg"}[fmt]
    raise DataNotFound(
        f"data.root: no CIFAR-10 found in {' or '.join(map(str, places))} (looked for {looked}); "
        f"set data.root (or $ORCHESTRATE_DATA), "
        f"set data.download: true when online, or unpack an ImageFolder copy there, e.g. "
        f"tar -xJf {SHARED_ARCHIVE} -C {root}")


def load_cifar10(cfg: dict[str, Any]) -> Arrays:
    kind, path = locate(cfg)
    if kind == "batches":
        return _read_batches(path)
    if kind == "imagefolder":
        return _read_imagefolder(path)
    import torchvision  # heavy: loads torchvision; only this path needs it

    try:
        torchvision.datasets.CIFAR10(str(path), train=True, download=True)
    except Exception as err:  # network down, disk full: say which, in one line
        raise DataNotFound(f"data.download: downloading CIFAR-10 into {path} failed: {err}") from None
    return _read_batches(path / "cifar-10-batches-py")


def synthetic(per_class: int, test_per_class: int) -> Arrays:
    """Deterministic, CIFAR-shaped and learnable: each class is a fixed color + oriented stripe
    pattern, each image that pattern shifted, scaled and noised. Same arrays on every machine."""
    g = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    protos = []
    for c in range(10):
        angle = np.pi * c / 10
        freq = 0.25 + 0.05 * (c % 3)
        stripes = np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
        color = g.uniform(0.2, 0.8, size=(3, 1, 1)).astype(np.float32)
        protos.append(color + 0.25 * stripes[None] * g.choice([-1.0, 1.0], size=(3, 1, 1)))

    def make(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for c in range(10):
            shift = rng.integers(-4, 5, size=(n, 2))
            gain = rng.uniform(0.6, 1.4, size=(n, 1, 1, 1)).astype(np.float32)
            base = np.stack([np.roll(protos[c], tuple(s), axis=(1, 2)) for s in shift])
            noise = rng.normal(0, 0.35, size=base.shape).astype(np.float32)
            xs.append(np.clip((base - 0.5) * gain + 0.5 + noise, 0, 1) * 255)
            ys.append(np.full(n, c, dtype=np.int64))
        order = rng.permutation(10 * n)  # CIFAR's files are not sorted by class either
        return np.concatenate(xs).astype(np.uint8)[order], np.concatenate(ys)[order]

    train_x, train_y = make(per_class, np.random.default_rng(1))
    test_x, test_y = make(test_per_class, np.random.default_rng(2))
    return Arrays(train_x, train_y, test_x, test_y, "synthetic")


def first_per_class(y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first ``k`` images of each class, in file order."""
    keep = np.zeros(len(y), dtype=bool)
    for c in range(10):
        keep[np.flatnonzero(y == c)[:k]] = True
    return np.flatnonzero(keep)


def stratified_holdout(y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): ``size // 10`` random images of each class, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: size // 10] for c in range(10)])
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)


@functools.lru_cache(maxsize=2)
def _source(name: str, root: str | None, fmt: str, download: bool, per_class: int, test_per_class: int) -> Arrays:
    """The decoded dataset, once per process: a worker that runs trial after trial (Ray reuses
    its actors) reads and decodes it for the first trial only. Callers never modify the arrays."""
    if name == "synthetic":
        return synthetic(per_class, test_per_class)
    return load_cifar10({"name": name, "root": root, "format": fmt, "download": download})


@functools.lru_cache(maxsize=2)
def _fingerprint(name: str, root: str | None, fmt: str, download: bool, per_class: int, test_per_class: int) -> str:
    a = _source(name, root, fmt, download, per_class, test_per_class)
    h = hashlib.sha256()
    for x in (a.train_x, a.train_y, a.test_x, a.test_y):
        h.update(str(x.shape).encode())
        h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()[:16]


def _key(cfg: dict[str, Any]) -> tuple[str, str | None, str, bool, int, int]:
    synth = cfg["name"] == "synthetic"
    return (cfg["name"], None if synth else str(data_root(cfg)), cfg["format"], bool(cfg["download"]),
            (cfg["subset"] or 5000) if synth else 0, (cfg["test_subset"] or 1000) if synth else 0)


def fingerprint(cfg: dict[str, Any]) -> dict[str, str]:
    """What data a trial trains on, independent of where it lives: a hash of the decoded pixels
    and labels of the whole dataset found (the JPEG q75 copy and the original batches differ),
    with where it was found. A trial's id leaves ``data.root`` out; this is recorded at its first
    start (data.json) and a resume on other data is refused."""
    kind, path = locate(cfg)
    return {"fingerprint": _fingerprint(*_key(cfg)), "kind": kind, "path": str(path) if kind != "synthetic" else ""}


def load_arrays(cfg: dict[str, Any], seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (x, y), "val": (x, y) or absent, "test": (x, y)} per the data config."""
    arrays = _source(*_key(cfg))
    x, y = arrays.train_x, arrays.train_y
    if cfg["subset"]:
        idx = first_per_class(y, cfg["subset"])
        x, y = x[idx], y[idx]
    tx, ty = arrays.test_x, arrays.test_y
    if cfg["test_subset"]:
        idx = first_per_class(ty, cfg["test_subset"])
        tx, ty = tx[idx], ty[idx]
    out = {"test": (tx, ty)}
    if cfg["val_size"]:
        tr, va = stratified_holdout(y, cfg["val_size"], seed)
        out["val"] = (x[va], y[va])
        x, y = x[tr], y[tr]
    out["train"] = (x, y)
    return out


class DataChanged(ValueError):
    failure_kind = "data_changed"


def check_data_identity(out: Path, data: dict[str, str]) -> None:
    """``data.json``: the data a trial first trained on. A trial's id leaves ``data.root`` out (the
    same data moved keeps its results); resuming it on other pixels would mix two datasets."""
    path = out / "data.json"
    try:
        first = json.loads(path.read_text())
    except FileNotFoundError:
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
        return
    except (OSError, ValueError):
        first = None
    if isinstance(first, dict) and first.get("fingerprint") not in (None, data["fingerprint"]):
        raise DataChanged(f"data.root: {data['path'] or data['kind']} holds other data (fingerprint "
                          f"{data['fingerprint']}) than this trial trained on ({first['fingerprint']}, from "
                          f"{first.get('path') or first.get('kind')}); point data.root back there, or run it as a new "
                          "sweep (another name or --runs-dir)")
