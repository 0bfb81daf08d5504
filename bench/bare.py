"""The bare-engine ceiling: the same bundle, decode and preprocessing (sqlext.image + sqlext.engine)
in a plain Python loop, one process per core, no Spark.

The image bytes are read into memory before the clock starts; each process takes every
``processes``-th image (so both get the same mix of sizes), decodes it to a tile, runs the engine
on batches of ``predict.ENGINE_BATCH`` and takes the top-1 label, as the UDF does.
"""
import json
import multiprocessing as mp
import time
from pathlib import Path

_STATE = {}


def _init(bundle_dir: str, paths: list, share: int, processes: int) -> None:
    from sqlext.engine import Engine

    bundle = Path(bundle_dir)
    manifest = json.loads((bundle / "manifest.json").read_text())
    _STATE["engine"] = Engine((bundle / "model.onnx").read_bytes(), manifest["preprocess"])
    _STATE["labels"] = manifest["labels"]
    _STATE["pre"] = manifest["preprocess"]
    _STATE["contents"] = {}
    _STATE["paths"] = paths


def _work(args) -> dict:
    import numpy as np

    from sqlext import predict
    from sqlext.image import DecodeError, decode

    share, processes = args
    engine, pre, labels = _STATE["engine"], _STATE["pre"], _STATE["labels"]
    contents = _STATE["contents"].get(share)
    if contents is None:
        contents = [Path(p).read_bytes() for p in _STATE["paths"][share::processes]]
        _STATE["contents"][share] = contents
    resize, crop = int(pre["resize"]), int(pre["crop"])
    started = time.perf_counter()
    out = []
    for start in range(0, len(contents), predict.ENGINE_BATCH):
        tiles = []
        for content in contents[start:start + predict.ENGINE_BATCH]:
            try:
                tiles.append(decode(content, resize, crop))
            except DecodeError:
                pass
        scores = engine.predict(np.stack(tiles))
        out.extend(labels[i] for i in scores.argmax(axis=1))
    return {"seconds": time.perf_counter() - started, "images": len(out)}


class BareEngine:
    """``processes`` worker processes that keep the engine and the image bytes between runs."""

    def __init__(self, bundle_dir, paths, processes: int = 2):
        self.processes = processes
        ctx = mp.get_context("spawn")
        self.pools = [ctx.Pool(1, initializer=_init, initargs=(str(bundle_dir), [str(p) for p in paths], i, processes))
                      for i in range(processes)]
        self.run()  # warm: engines compiled, bytes read

    def run(self) -> dict:
        """One pass over all images; returns images/s measured on the wall clock."""
        from .common import cpu_seconds

        pids = [p.pid for pool in self.pools for p in pool._pool]
        cpu = cpu_seconds(pids)
        started = time.perf_counter()
        pending = [pool.apply_async(_work, ((i, self.processes),)) for i, pool in enumerate(self.pools)]
        results = [p.get() for p in pending]
        wall = time.perf_counter() - started
        images = sum(r["images"] for r in results)
        return {"images": images, "seconds": wall, "images_per_s": images / wall,
                "cpu_ms_per_image": (cpu_seconds(pids) - cpu) * 1000 / images}

    def close(self) -> None:
        for pool in self.pools:
            pool.terminate()
            pool.join()
