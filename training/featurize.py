"""Decode + featurize images on the executors with the serving code (``sqlext.image`` + ``sqlext.engine``).

The frozen featurizer travels as ONNX bytes in one broadcast and is compiled once per Python
worker by the same ``Engine`` that serves bundles, so the head is trained on exactly the features
serving will compute.  This module is imported by Spark's Python workers: it must not import
torch or BigDL.
"""
import hashlib

import numpy as np
import pandas as pd

from sqlext.engine import Engine
from sqlext.image import DecodeError, decode

ENGINE_BATCH = 16
IMAGES_PER_PARTITION = 64
OUTPUT_SCHEMA = "path string, label string, split string, features array<float>, error string"

_ENGINES = {}  # onnx sha256 -> Engine, per Python worker


def _engine(onnx_bytes: bytes, preprocess: dict) -> Engine:
    key = hashlib.sha256(onnx_bytes).hexdigest()
    if key not in _ENGINES:
        _ENGINES[key] = Engine(onnx_bytes, preprocess)
    return _ENGINES[key]


def featurize_batch(engine: Engine, batch: pd.DataFrame, resize: int, crop: int) -> pd.DataFrame:
    """One Arrow batch of (path, label, split, content) -> (path, label, split, features, error).

    An image that cannot be decoded keeps its row with NULL features and the reason in ``error``.
    """
    features = [None] * len(batch)
    errors = [None] * len(batch)
    tiles, rows = [], []
    for i, content in enumerate(batch["content"]):
        try:
            tiles.append(decode(content, resize, crop))
            rows.append(i)
        except DecodeError as exc:
            errors[i] = str(exc)
    for start in range(0, len(tiles), ENGINE_BATCH):
        vectors = engine.predict(np.stack(tiles[start:start + ENGINE_BATCH]))
        for row, vector in zip(rows[start:start + ENGINE_BATCH], vectors):
            features[row] = vector.astype(np.float32)
    return pd.DataFrame({"path": batch["path"].values, "label": batch["label"].values,
                         "split": batch["split"].values, "features": features, "error": errors})


def featurize(spark, frame, onnx_bytes: bytes, preprocess: dict, partitions: int) -> tuple:
    """Lazily map ``frame`` (path, label, split, content) to features, ``partitions`` tasks wide.

    Returns ``(features frame, accumulator)``; the accumulator counts images as tasks finish.
    """
    sc = spark.sparkContext
    payload, done = sc.broadcast(onnx_bytes), sc.accumulator(0)
    resize, crop = int(preprocess["resize"]), int(preprocess["crop"])

    def run(batches):
        engine = _engine(payload.value, preprocess)
        for batch in batches:
            yield featurize_batch(engine, batch, resize, crop)
            done.add(len(batch))

    features = (frame.select("path", "label", "split", "content").repartition(partitions)
                .mapInPandas(run, OUTPUT_SCHEMA))
    return features, done


def partitions_for(images: int, cores: int) -> int:
    """Enough tasks to keep every core busy and the progress bar moving, not so many they cost more
    than they compute."""
    return max(cores, min(-(-images // IMAGES_PER_PARTITION), 8 * cores))
