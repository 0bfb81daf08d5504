"""Read an encoded image's format and pixel size from its header, without decoding it.

``probe(data) -> (format, (width, height) or None)``.  ``format`` is one of
``FORMATS`` or None (not an image format sqlext decodes).  The size is None when the
header is truncated or corrupt.  Pure Python; reads the first bytes (for JPEG, hops
from marker to marker up to the frame header); never raises on any input.

This is what lets ``sqlext.image`` refuse a decompression bomb (a small file that
claims 100k x 100k pixels) before any decoder allocates memory for it, whatever the
order in which OpenCV and sqlext were imported.
"""
import struct

FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "gif")

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length field


def probe(data) -> tuple:
    """Return ``(format, (width, height))``; see the module docstring for the None cases."""
    fmt = sniff(data)
    if fmt is None:
        return None, None
    try:
        return fmt, _PARSERS[fmt](data)
    except (struct.error, IndexError, ValueError):
        return fmt, None


def sniff(data):
    """The format named by the magic bytes at the start of ``data``, or None."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _sane(size):
    width, height = int(size[0]), int(size[1])
    return (width, height) if width > 0 and height > 0 else None


def _png(data):
    if bytes(data[12:16]) != b"IHDR":
        return None
    return _sane(struct.unpack_from(">II", bytes(data[16:24])))


_JPEG_MAX_MARKERS = 10_000  # real files have a few dozen before the frame header; bounds crafted ones


def _jpeg(data):
    pos, end = 2, len(data)
    for _ in range(_JPEG_MAX_MARKERS):
        if pos + 4 > end:
            return None
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", bytes(data[pos + 5:pos + 9]))
            return _sane((width, height))
        if length < 2:
            return None
        pos += 2 + length
    return None


def _webp(data):
    chunk = bytes(data[12:16])
    if chunk == b"VP8 ":
        if bytes(data[23:26]) != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", bytes(data[26:30]))
        return _sane((width & 0x3FFF, height & 0x3FFF))
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = struct.unpack_from("<I", bytes(data[21:25]))[0]
        return _sane(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
    if chunk == b"VP8X":
        raw = bytes(data[24:30])
        return _sane((int.from_bytes(raw[0:3], "little") + 1, int.from_bytes(raw[3:6], "little") + 1))
    return None


def _bmp(data):
    header_size = struct.unpack_from("<I", bytes(data[14:18]))[0]
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        return _sane(struct.unpack_from("<HH", bytes(data[18:22])))
    width, height = struct.unpack_from("<ii", bytes(data[18:26]))
    return _sane((abs(width), abs(height)))  # negative height = top-down rows


def _tiff(data):
    """Width and height of the first image (IFD0), classic TIFF or BigTIFF."""
    order = "<" if bytes(data[:2]) == b"II" else ">"
    big = struct.unpack_from(order + "H", bytes(data[2:4]))[0] == 43
    if big:
        offset = struct.unpack_from(order + "Q", bytes(data[8:16]))[0]
        count_fmt, entry_size, count_size = order + "Q", 20, 8
    else:
        offset = struct.unpack_from(order + "I", bytes(data[4:8]))[0]
        count_fmt, entry_size, count_size = order + "H", 12, 2
    if offset + count_size > len(data):
        return None
    count = struct.unpack_from(count_fmt, bytes(data[offset:offset + count_size]))[0]
    values = {}
    for i in range(min(count, 4096)):
        at = offset + count_size + i * entry_size
        entry = bytes(data[at:at + entry_size])
        if len(entry) < entry_size:
            break
        tag, kind = struct.unpack_from(order + "HH", entry)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3), LONG (4) or LONG8 (16)
            value_at = 12 if big else 8
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            values[tag] = struct.unpack_from(order + fmt, entry, value_at)[0]
    if 256 not in values or 257 not in values:
        return None
    return _sane((values[256], values[257]))


def _gif(data):
    return _sane(struct.unpack_from("<HH", bytes(data[6:10])))


_PARSERS = {"jpeg": _jpeg, "png": _png, "webp": _webp, "bmp": _bmp, "tiff": _tiff, "gif": _gif}
