"""Image bytes -> a uint8 RGB tile of the bundle's input size (or the reason it cannot be)."""
import os

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024))  # refuse decompression bombs
import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)  # Spark already runs one task per core; OpenCV's own pool would oversubscribe


class DecodeError(ValueError):
    pass


def decode(content, resize: int, crop: int) -> np.ndarray:
    """Decode ``content`` (encoded image bytes) to a ``crop x crop x 3`` RGB uint8 array.

    The shorter side is scaled to ``resize`` and the centre ``crop`` square is kept.
    EXIF orientation is honoured.  Raises DecodeError with a short reason.
    """
    if content is None or len(content) == 0:
        raise DecodeError("empty content")
    buffer = np.frombuffer(content, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise DecodeError(f"undecodable image ({str(exc).strip().splitlines()[-1][:80]})") from None
    if image is None:
        raise DecodeError("not a decodable image")
    height, width = image.shape[:2]
    scale = resize / min(height, width)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(image, size, interpolation=interpolation)
    top, left = (size[1] - crop) // 2, (size[0] - crop) // 2
    tile = image[top:top + crop, left:left + crop]
    return cv2.cvtColor(tile, cv2.COLOR_BGR2RGB)
