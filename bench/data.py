"""Realistic benchmark JPEGs, made from the real sample photos (sqlext/samples.py).

Each image is a sample photo, randomly cropped, upscaled to a camera-like size, with sensor-like
noise added, then JPEG-encoded at quality 92: the noise keeps the entropy-coded data (and so the
decoding cost) as large as a real photo's of that size (~2.5-3 MB at 12 MP, ~60 KB at 0.2 MP).
Every image is distinct, so nothing in a table repeats (the prediction cache gets no free hits).
"""
from pathlib import Path

import numpy as np

from sqlext import samples

# (width, height): web-sized, a downscaled camera photo, a 12 MP phone photo
SIZES = [(500, 375), (1600, 1200), (4000, 3000)]


_NOISE = {}


def _noise(shape, rng) -> np.ndarray:
    """Gaussian noise (sigma 6) for ``shape``: a shifted tiling of one 1024x1024 bank (fast)."""
    if "bank" not in _NOISE:
        _NOISE["bank"] = np.random.default_rng(12345).normal(0.0, 6.0, (1024, 1024, 3)).round().astype(np.int16)
    bank = np.roll(_NOISE["bank"], (int(rng.integers(1024)), int(rng.integers(1024))), axis=(0, 1))
    reps = (-(-shape[0] // 1024), -(-shape[1] // 1024), 1)
    return np.tile(bank, reps)[:shape[0], :shape[1]]


def _variant(photo: np.ndarray, size, rng) -> np.ndarray:
    import cv2

    h, w = photo.shape[:2]
    cut = rng.uniform(0.8, 1.0)
    ch, cw = int(h * cut), int(w * cut)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[top:top + ch, left:left + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    width, height = size
    if ch > cw:  # portrait sources stay portrait
        width, height = height, width
    big = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(big.astype(np.int16) + _noise(big.shape, rng), 0, 255).astype(np.uint8)


def generate(folder, count: int, seed: int = 0, sizes=SIZES, extra_sources=()) -> list:
    """Write ``count`` JPEGs into ``folder/images`` (sizes in equal shares, cycling the sample photos
    and ``extra_sources``); return their paths."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = samples.copy_sample_photos(folder / "_sources") + [p for p in extra_sources
                                                                 if p.suffix.lower() in (".png", ".jpg")]
    photos = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sources]
    paths = []
    for i in range(count):
        size = sizes[i % len(sizes)]
        source = (i // len(sizes)) % len(photos)
        path = folder / "images" / f"img{i:05d}_{size[0]}x{size[1]}_{sources[source].stem}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            image = _variant(photos[source], size, np.random.default_rng([seed, i]))
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            assert ok
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(encoded.tobytes())
            tmp.rename(path)
        paths.append(path)
    return paths


def describe(paths) -> dict:
    sizes = [p.stat().st_size for p in paths]
    by_size = {}
    for p, s in zip(paths, sizes):
        by_size.setdefault(p.name.split("_")[1], []).append(s)
    return {"count": len(paths), "bytes": sum(sizes),
            "mean_kb_by_size": {k: round(sum(v) / len(v) / 1024) for k, v in by_size.items()},
            "count_by_size": {k: len(v) for k, v in by_size.items()}}


def small_jpeg_hex() -> str:
    """A 160x120 JPEG of a sample photo (not in any table), as hex for an SQL X'..' literal."""
    import tempfile

    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        photo = cv2.imread(str(samples.copy_sample_photos(tmp)[0]), cv2.IMREAD_COLOR)
    ok, encoded = cv2.imencode(".jpg", cv2.resize(photo, (160, 120), interpolation=cv2.INTER_AREA))
    assert ok
    return encoded.tobytes().hex().upper()
