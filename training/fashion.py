"""Real labelled images for the fine-tuning demo and tests: a Fashion-MNIST subset written as PNG files.

The data comes from Debian's ``dataset-fashion-mnist`` package (``scripts/system-deps.sh`` installs
it); ``$SQLEXT_FASHION_MNIST_DIR`` points elsewhere.  Training images come from the train split,
validation images from the separate test split, so the two never overlap.
"""
import gzip
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

ENV = "SQLEXT_FASHION_MNIST_DIR"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
SPLIT_FILES = {"train": "train", "val": "t10k"}  # our folder name -> the dataset's file prefix


def dataset_dir() -> Path:
    folder = Path(os.environ.get(ENV) or DEBIAN_DIR)
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"error: Fashion-MNIST not found in {folder}: install Debian's dataset-fashion-mnist "
                         f"(scripts/system-deps.sh) or set {ENV}")
    return folder


def _idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (big-endian header: magic, dimension sizes; then uint8 data)."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    found, = np.frombuffer(raw[:4], ">i4")
    if found != magic:
        raise SystemExit(f"error: {path} is not an IDX file (magic {found}, expected {magic})")
    dims = np.frombuffer(raw[4:4 + 4 * (magic & 0xFF)], ">i4")
    return np.frombuffer(raw[4 + 4 * len(dims):], np.uint8).reshape(tuple(int(d) for d in dims))


def load(prefix: str) -> tuple:
    """``(images [N, 28, 28] uint8, labels [N] uint8)`` of the ``train`` or ``t10k`` split."""
    folder = dataset_dir()
    return (_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 2051),
            _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 2049))


def write_subset(root, train_per_class: int, val_per_class: int, classes=("sneaker", "sandal"),
                 seed: int = 0) -> dict:
    """Write ``root/{train,val}/<class>/<n>.png`` (replacing earlier runs); return file counts per folder."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    written = {}
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        images, labels = load(SPLIT_FILES[split])
        shutil.rmtree(root / split, ignore_errors=True)
        for name in classes:
            chosen = rng.permutation(np.flatnonzero(labels == CLASSES.index(name)))[:per_class]
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in chosen:
                ok, png = cv2.imencode(".png", images[index])
                if not ok:
                    raise RuntimeError(f"PNG encoding failed for image {index}")
                (folder / f"{SPLIT_FILES[split]}-{index:05d}.png").write_bytes(png.tobytes())
            written[f"{split}/{name}"] = len(chosen)
    return written
