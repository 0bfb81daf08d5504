"""In-process measurements (one core, no Spark) behind the choice of levers: decode, engine, batch, hash."""
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .common import log, summary


def _rate(fn, items: int, seconds: float = 1.0) -> float:
    fn()
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        fn()
        n += items
    return n / (time.perf_counter() - started)


def decode(paths: list, bundle_dir: Path, rounds: int = 3) -> dict:
    """Full decode + resize vs JPEG DCT scaling: images/s on one core, and top-1 agreement of the bundle."""
    from sqlext import image
    from sqlext.engine import Engine

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    pre = manifest["preprocess"]
    resize, crop = int(pre["resize"]), int(pre["crop"])
    contents = [p.read_bytes() for p in paths]
    modes = {}
    for mode in ("full", "dct"):
        image._DCT_SCALING = mode == "dct"
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            tiles = [image.decode(c, resize, crop) for c in contents]
            rates.append(len(contents) / (time.perf_counter() - started))
        modes[mode] = {"rate": summary(rates), "tiles": np.stack(tiles)}
    image._DCT_SCALING = os.environ.get("SQLEXT_JPEG_DCT_SCALING", "1") != "0"
    engine = Engine((bundle_dir / "model.onnx").read_bytes(), pre)
    top = {m: np.concatenate([engine.predict(v["tiles"][i:i + 16]).argmax(1) for i in range(0, len(contents), 16)])
           for m, v in modes.items()}
    diff = np.abs(modes["full"]["tiles"].astype(int) - modes["dct"]["tiles"].astype(int)).mean()
    return {"full": modes["full"]["rate"], "dct": modes["dct"]["rate"],
            "speedup": modes["dct"]["rate"]["median"] / modes["full"]["rate"]["median"],
            "top1_agreement": float((top["full"] == top["dct"]).mean()), "mean_abs_pixel_diff": float(diff),
            "images": len(contents)}


def engines(bundles: dict) -> dict:
    """images/s of each bundle version at batch 1 and 16, one thread (a Spark task's share)."""
    from sqlext.engine import Engine

    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    out = {}
    for label, bundle_dir in bundles.items():
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
        engine = Engine((bundle_dir / "model.onnx").read_bytes(), manifest["preprocess"], threads=1)
        row = {}
        for batch in (1, 8, 16, 32):
            row[batch] = _rate(lambda: engine.predict(tiles[:batch]), batch)
        out[label] = row
        log(f"  engine {label}: " + ", ".join(f"batch {b}: {r:.0f} img/s" for b, r in row.items()))
    return out


def hashing(paths: list) -> dict:
    contents = [p.read_bytes() for p in paths]
    total = sum(map(len, contents))
    out = {}
    for name, fn in (("sha256", lambda c: hashlib.sha256(c).digest()),
                     ("blake2b", lambda c: hashlib.blake2b(c, digest_size=16).digest())):
        rate = _rate(lambda: [fn(c) for c in contents], total)
        out[name] = rate / 1e6
    return out


def decode_engine_share(paths: list, bundle_dir: Path) -> dict:
    """Where one core's time goes per image in the UDF: decode vs engine (ms/image)."""
    from sqlext import image
    from sqlext.engine import Engine

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    pre = manifest["preprocess"]
    contents = [p.read_bytes() for p in paths]
    started = time.perf_counter()
    tiles = np.stack([image.decode(c, int(pre["resize"]), int(pre["crop"])) for c in contents])
    decode_ms = (time.perf_counter() - started) * 1000 / len(contents)
    engine = Engine((bundle_dir / "model.onnx").read_bytes(), pre, threads=1)
    engine.predict(tiles[:16])
    started = time.perf_counter()
    for i in range(0, len(tiles), 16):
        engine.predict(tiles[i:i + 16])
    engine_ms = (time.perf_counter() - started) * 1000 / len(contents)
    return {"decode_ms": decode_ms, "engine_ms": engine_ms}
