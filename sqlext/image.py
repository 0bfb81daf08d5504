"""Image bytes -> a uint8 RGB tile of the bundle's input size (or the reason it cannot be).

Contract of ``decode(content, resize, crop)``: returns a C-contiguous ``crop x crop x 3``
uint8 RGB array, or raises ``DecodeError`` (a ValueError) whose message is a short
reason; it raises nothing else for any input bytes.

Memory is bounded per call: the pixel count is read from the header (sqlext.image_header)
and anything over ``MAX_PIXELS`` is refused before a decoder allocates for it; only
JPEG, PNG, WebP, BMP, TIFF (OpenCV) and GIF (Pillow, first frame) are decoded.
``MAX_PIXELS`` comes from ``$SQLEXT_MAX_IMAGE_PIXELS`` (default 64 Mi pixels, e.g.
8192 x 8192: ~200 MB of decoded BGR at most).  OpenCV's own limit,
``OPENCV_IO_MAX_IMAGE_PIXELS``, is set to the same value, but it only takes effect if
this module is imported before anything else imports cv2, hence the header check.
"""
import io
import os

MAX_PIXELS = int(os.environ.get("SQLEXT_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024)))
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_PIXELS)  # read once, when cv2 is first imported
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .image_header import probe  # noqa: E402

cv2.setNumThreads(1)  # Spark already runs one task per core; OpenCV's own pool would oversubscribe


class DecodeError(ValueError):
    pass


def decode(content, resize: int, crop: int) -> np.ndarray:
    """Decode ``content`` (encoded image bytes) to a ``crop x crop x 3`` RGB uint8 array.

    The shorter side is scaled to ``resize`` and the centre ``crop`` square is kept.
    EXIF orientation is honoured (JPEG).  Alpha is dropped, grayscale / palette / CMYK /
    16-bit images become 8-bit RGB.  Raises DecodeError with a short reason.
    """
    if content is None or len(content) == 0:
        raise DecodeError("empty content")
    fmt, size = probe(content)
    if fmt is None:
        raise DecodeError(f"not a decodable image (unknown format, starts {bytes(content[:4]).hex()})")
    if size is None:
        raise DecodeError(f"not a decodable image (truncated or corrupt {fmt.upper()} header)")
    if size[0] * size[1] > MAX_PIXELS:
        raise DecodeError(f"image too large: {size[0]}x{size[1]} pixels, over the limit of {MAX_PIXELS} "
                          "(SQLEXT_MAX_IMAGE_PIXELS)")
    try:
        image = _read_gif(content) if fmt == "gif" else _read_opencv(content, _read_flag(fmt, size, resize))
        return _centre_tile(image, resize, crop)
    except cv2.error as exc:
        raise DecodeError(f"undecodable {fmt.upper()} ({_last_line(exc)})") from None
    except MemoryError:
        raise DecodeError(f"out of memory decoding a {size[0]}x{size[1]} {fmt.upper()}") from None


# JPEG DCT scaling: libjpeg decodes straight to 1/2, 1/4 or 1/8 size, several times cheaper than a full
# decode plus resize for camera photos.  The largest factor that keeps the shorter side >= ``resize`` is
# used, so the tile is still made by shrinking (INTER_AREA).  SQLEXT_JPEG_DCT_SCALING=0 turns it off.
_DCT_SCALING = os.environ.get("SQLEXT_JPEG_DCT_SCALING", "1") != "0"
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _read_flag(fmt: str, size: tuple, resize: int) -> int:
    if fmt == "jpeg" and _DCT_SCALING:
        for factor, flag in _REDUCED:
            if min(size) // factor >= resize:
                return flag
    return cv2.IMREAD_COLOR


def _read_opencv(content, flag: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """BGR uint8 HxWx3 (EXIF orientation applied by OpenCV), or DecodeError."""
    image = cv2.imdecode(np.frombuffer(content, dtype=np.uint8), flag)
    if image is None:
        raise DecodeError("not a decodable image (corrupt or truncated data)")
    return image


def _read_gif(content) -> np.ndarray:
    """First frame of a GIF as BGR (OpenCV's wheels are built without a GIF decoder)."""
    try:
        from PIL import Image
    except ImportError:
        raise DecodeError("GIF needs Pillow, which is not installed") from None
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, in step with ours
    try:
        with Image.open(io.BytesIO(bytes(content))) as picture:
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise DecodeError(f"image too large: {width}x{height} pixels, over the limit of {MAX_PIXELS}")
            rgb = np.asarray(picture.convert("RGB"))
    except DecodeError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, ... on bad data
        raise DecodeError(f"not a decodable image (GIF: {str(exc)[:80]})") from None
    return np.ascontiguousarray(rgb[..., ::-1])


def _centre_tile(image: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """Scale the shorter side to ``resize``, keep the centre ``crop`` square, BGR -> RGB.

    Only the source region that survives the crop is resized (a square of side
    ``short * crop / resize``), so work and memory do not depend on the aspect ratio:
    a 1 x 100000 sliver costs what a 1 x 1 image does.
    """
    height, width = image.shape[:2]
    short = min(height, width)
    if short < resize:
        return cv2.cvtColor(_enlarged_tile(image, resize / short, crop), cv2.COLOR_BGR2RGB)
    side = round(short * crop / resize)
    top, left = (height - side) // 2, (width - side) // 2
    tile = cv2.resize(image[top:top + side, left:left + side], (crop, crop), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(tile, cv2.COLOR_BGR2RGB)


def _enlarged_tile(image: np.ndarray, scale: float, crop: int) -> np.ndarray:
    """The centre ``crop`` square of ``image`` enlarged by ``scale``, sampled at exact sub-pixel positions.

    Cutting a whole-pixel region first (as for shrinking) would shift and zoom small images by up to
    half a source pixel, i.e. several tile pixels: on 28 x 28 images that cost ~1 point of accuracy.
    """
    height, width = image.shape[:2]
    reach = crop / scale / 2 + 1  # source pixels either side of the centre that bilinear sampling touches
    top, left = max(0, int(height / 2 - reach)), max(0, int(width / 2 - reach))
    region = image[top:int(np.ceil(height / 2 + reach)), left:int(np.ceil(width / 2 + reach))]
    # tile pixel x (centre x + 0.5) looks at source position (x + 0.5 - crop/2) / scale + width/2
    offset = (0.5 - crop / 2) / scale - 0.5
    to_source = np.float32([[1 / scale, 0, offset + width / 2 - left], [0, 1 / scale, offset + height / 2 - top]])
    return cv2.warpAffine(region, to_source, (crop, crop), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _last_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1][:80] if str(exc).strip() else type(exc).__name__
