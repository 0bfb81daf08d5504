"""Worker side: a batch of image bytes -> (label, probability, model) rows.

Engines are built once per Python worker process and kept in ``_ENGINES``;
Spark reuses Python workers across tasks, so a bundle is compiled once per worker.
"""
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd

from . import prediction_cache
from .image import DecodeError, decode

log = logging.getLogger("sqlext.predict")
if not log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

ENGINE_BATCH = 16
_ENGINES = {}
# what this worker did, for `SQLEXT_PREDICT_STATS=1` (one log line per UDF call) and tests
STATS = Counter()
_CACHE = []  # [PredictionCache or None], built on first use from the environment


def _cache():
    if not _CACHE:
        _CACHE.append(prediction_cache.PredictionCache.from_env())
    return _CACHE[0]


class _Loaded:
    def __init__(self, key, manifest, engine):
        self.key, self.manifest, self.engine = key, manifest, engine
        self.labels = np.array(manifest["labels"], dtype=object)
        self.resize = int(manifest["preprocess"]["resize"])
        self.crop = int(manifest["preprocess"]["crop"])


def _loaded(catalog, key) -> _Loaded:
    if key not in _ENGINES:
        from .engine import Engine
        manifest_json, onnx_bytes = catalog.payloads[key].value
        manifest = json.loads(manifest_json)
        if hashlib.sha256(onnx_bytes).hexdigest() != manifest["files"]["model.onnx"]:
            raise ValueError(f"model {key}: broadcast bytes do not match the manifest sha256")
        _ENGINES[key] = _Loaded(key, manifest, Engine(onnx_bytes, manifest["preprocess"]))
        _ENGINES[key].tag = prediction_cache.model_tag(manifest_json)
    return _ENGINES[key]


def _predict_one_model(model: _Loaded, contents, on_error: str = "null", digests=None) -> tuple:
    """Return (label array, probability array) for ``contents`` (no NULLs: ``classify`` leaves them out);
    undecodable rows get None/NaN.

    With ``on_error='fail'`` the first undecodable row raises ValueError naming its reason.
    ``digests`` (one per row, see sqlext.prediction_cache) lets cached rows skip decoding and inference.
    """
    n = len(contents)
    labels = np.full(n, None, dtype=object)
    probs = np.full(n, np.nan)
    cache = _cache() if digests is not None else None
    t0 = time.perf_counter()
    hits = cache.lookup(model.tag, digests) if cache is not None else {}
    for i, (label, prob) in hits.items():
        labels[i], probs[i] = label, prob
    t1 = time.perf_counter()
    tiles, rows, reasons = [], [], Counter()
    for i, content in enumerate(contents):
        if i in hits:
            continue
        try:
            tiles.append(decode(content, model.resize, model.crop))
            rows.append(i)
        except DecodeError as exc:
            if on_error == "fail":
                raise ValueError(f"sqlext.on_error=fail: image not usable ({exc}; {len(content)} bytes "
                                 f"starting {bytes(content[:8]).hex() or 'empty'})") from None
            reasons[str(exc)] += 1
    if reasons:
        log.warning("model %s: %d of %d rows not decodable, returned NULL (%s)", model.key,
                    sum(reasons.values()), n, "; ".join(f"{r}: {c}" for r, c in reasons.most_common(3)))
    t2 = time.perf_counter()
    for start in range(0, len(tiles), ENGINE_BATCH):
        batch = np.stack(tiles[start:start + ENGINE_BATCH])
        scores = model.engine.predict(batch)
        top = scores.argmax(axis=1)
        idx = rows[start:start + ENGINE_BATCH]
        labels[idx] = model.labels[top]
        probs[idx] = scores[np.arange(len(top)), top]
        STATS["engine_calls"] += 1
    t3 = time.perf_counter()
    if cache is not None and rows:
        cache.store(model.tag, [(digests[i], labels[i], probs[i]) for i in rows])
    STATS.update(cache_hits=len(hits), decoded=len(rows), undecodable=sum(reasons.values()),
                 cache_ms=round((t1 - t0 + time.perf_counter() - t3) * 1000), decode_ms=round((t2 - t1) * 1000),
                 engine_ms=round((t3 - t2) * 1000))
    return labels, probs


def classify(catalog, contents: pd.Series, specs: pd.Series = None, on_error: str = "null",
             digests: list = None) -> pd.DataFrame:
    """Classify a batch.  ``specs`` (optional) holds a model spec per row; NULL spec = default.
    ``digests`` (optional): each row's ``prediction_cache.digest``, already computed by the JVM.

    Undecodable images give NULL columns (``on_error='null'``) or raise (``'fail'``).
    """
    n = len(contents)
    out = pd.DataFrame({"label": pd.Series([None] * n, dtype=object),
                        "probability": np.full(n, np.nan),
                        "model": pd.Series([None] * n, dtype=object)})
    if specs is None:
        groups = {catalog.resolve(None): np.arange(n)}
    else:
        groups = {}
        for spec, positions in pd.Series(np.arange(n)).groupby(specs.fillna("").values).groups.items():
            key = catalog.resolve(spec or None)
            groups.setdefault(key, []).extend(positions)
    values = contents.values
    present = contents.notna().values  # NULL: no image, or one the JVM level of the cache answered
    STATS.update(rows=n, content_rows=int(present.sum()))
    started = time.perf_counter()
    if _cache() is None:
        digests = None
    elif digests is None:
        digests = prediction_cache.series_digests(contents)
        STATS["hashed_rows"] += int(present.sum())
    STATS["hash_ms"] += round((time.perf_counter() - started) * 1000)
    for key, positions in groups.items():
        positions = np.asarray(positions, dtype=int)
        positions = positions[present[positions]]
        if not len(positions):
            continue
        labels, probs = _predict_one_model(_loaded(catalog, key), values[positions], on_error,
                                           None if digests is None else [digests[p] for p in positions])
        out.loc[positions, "label"] = labels
        out.loc[positions, "probability"] = probs
        out.loc[positions, "model"] = np.where(pd.isna(labels), None, key)
    STATS["udf_ms"] += round((time.perf_counter() - started) * 1000)
    if os.environ.get("SQLEXT_PREDICT_STATS") == "1":
        log.info("predict stats pid=%d %s", os.getpid(), " ".join(f"{k}={v}" for k, v in sorted(STATS.items())))
    return out
