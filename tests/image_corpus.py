"""A corpus of bad and awkward images, generated from one real photo (Pillow / OpenCV / zlib).

``build(photo) -> [Case]``.  Every case says what a classifier must answer for it:

* ``same``  - the photo's own label (the image is the photo in another encoding);
* ``label`` - some label, not NULL (a legitimate but degraded or tiny image);
* ``null``  - NULL; ``reason`` is a substring of the DecodeError message.

``write(cases, folder)`` stores them as ``<id>-<name>`` files, except NULL and empty content:
NULL cannot live in a file, and Spark's file sources skip empty files.  Nothing is random: reruns give the same bytes.
"""
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image

SOURCE_PHOTO = "coffee.png"  # the sample photo every variant derives from (espresso, p~0.95)


@dataclass(frozen=True)
class Case:
    id: int
    name: str
    content: Optional[bytes]
    expect: str          # "same" | "label" | "null"
    reason: str = ""     # for "null": a substring of the decode error


def _encode(picture: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int, complete: bool = True) -> bytes:
    """A grayscale PNG of ``width x height`` zeros: a few hundred kB that decode to width*height*3 bytes.

    ``complete=False`` keeps only the header and a token IDAT (the 'claims 100k x 100k' bomb).
    """
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if complete:
        compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
        for _ in range(height):
            parts.append(compressor.compress(row))
        parts.append(compressor.flush())
        data = b"".join(parts)
    else:
        data = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOFn) patched to claim ``width x height``."""
    pos = 2
    while pos < len(jpeg):
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[:pos + 5] + struct.pack(">HH", height, width) + jpeg[pos + 9:]
        pos += 2 + length
    raise ValueError("no frame header")


def exif_rotated(upright: Image.Image, orientation: int, quality: int = 95) -> bytes:
    """A JPEG that stores ``upright`` transformed, tagged with EXIF ``orientation`` (2..8).

    A viewer that honours the tag shows ``upright`` again.
    """
    # EXIF tag -> how a viewer turns the stored pixels upright; each stored image is its inverse
    to_display = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                  4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                  6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
    inverse = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
               Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}
    method = to_display[orientation]
    stored = upright.transpose(inverse.get(method, method))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(stored, "JPEG", quality=quality, exif=exif.tobytes())


def build(photo) -> list:
    """The corpus, derived from the photo file ``photo``; ids are unique and stable."""
    original = Path(photo).read_bytes()
    rgb = Image.open(io.BytesIO(original)).convert("RGB")
    jpeg = _encode(rgb, "JPEG", quality=92)
    png = _encode(rgb, "PNG")
    rng = np.random.default_rng(7)
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    bgr16 = np.asarray(rgb)[..., ::-1].astype(np.uint16) * 257
    png16 = cv2.imencode(".png", bgr16)[1].tobytes()
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    webp_lossy = _encode(rgb, "WEBP", quality=90)
    tiff = _encode(rgb, "TIFF", compression="tiff_lzw")
    gif = _encode(rgb, "GIF")
    corrupt = bytearray(jpeg)
    corrupt[len(jpeg) // 2:len(jpeg) // 2 + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    cases = [
        Case(1, "photo_original", original, "same"),
        Case(2, "photo_jpeg", jpeg, "same"),
        Case(3, "truncated_jpeg", jpeg[:len(jpeg) // 2], "null", "corrupt or truncated"),
        Case(4, "truncated_png", png[:len(png) // 2], "null", "corrupt or truncated"),
        Case(5, "truncated_jpeg_header", jpeg[:20], "null", "truncated or corrupt JPEG header"),
        Case(6, "random_bytes", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "null", "unknown format"),
        Case(7, "text", b"this is not an image\n", "null", "unknown format"),
        Case(8, "empty", b"", "null", "empty content"),
        Case(9, "null", None, "null"),
        Case(10, "one_pixel_png", _encode(rgb.resize((1, 1)), "PNG"), "label"),
        Case(11, "bomb_png_100k_header", png_bomb(100_000, 100_000, complete=False), "null", "too large"),
        Case(12, "bomb_png_20k_zeros", png_bomb(20_000, 20_000), "null", "too large"),
        Case(13, "bomb_jpeg_65k_header", jpeg_claiming(jpeg, 65_000, 65_000), "null", "too large"),
        Case(14, "sliver_1x60000_png", _encode(Image.new("L", (1, 60_000), 128), "PNG"), "label"),
        Case(15, "cmyk_jpeg", _encode(rgb.convert("CMYK"), "JPEG", quality=92), "same"),
        Case(16, "png_16bit", png16, "same"),
        Case(17, "grayscale_png", _encode(rgb.convert("L"), "PNG"), "label"),
        Case(18, "palette_transparent_png", _encode(palette, "PNG", transparency=0), "same"),
        Case(19, "rgba_png", _encode(rgba, "PNG"), "same"),
        Case(20, "exif_rotated_90_jpeg", exif_rotated(rgb, 6), "same"),
        Case(21, "exif_rotated_270_jpeg", exif_rotated(rgb, 8), "same"),
        Case(22, "webp_lossy", webp_lossy, "same"),
        Case(23, "webp_lossless", _encode(rgb, "WEBP", lossless=True), "same"),
        Case(24, "gif", gif, "same"),
        Case(25, "bmp", _encode(rgb, "BMP"), "same"),
        Case(26, "tiff_lzw", tiff, "same"),
        Case(27, "truncated_webp", webp_lossy[:len(webp_lossy) // 3], "null", "corrupt or truncated"),
        Case(28, "truncated_gif", gif[:len(gif) // 3], "null", "GIF"),
        Case(29, "truncated_tiff", tiff[:len(tiff) // 3], "null", "TIFF"),
        Case(30, "corrupt_jpeg_scan", bytes(corrupt), "label"),
        Case(31, "ppm_unsupported", b"P6\n4 4\n255\n" + bytes(48), "null", "unknown format"),
    ]
    assert len({c.id for c in cases}) == len(cases)
    return cases


def write(cases, folder) -> Path:
    """Write every case with non-empty content to ``folder/<id>-<name>``; return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        if case.content:
            (folder / f"{case.id}-{case.name}").write_bytes(case.content)
    return folder
