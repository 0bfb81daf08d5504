"""The usual way's model, cached per Python worker (the pattern sparkdl and blog posts use).

Imported by the row-at-a-time UDF in bench/torch_udf.py inside Spark's Python workers; a module
global survives across tasks in a reused worker, so each worker loads the model once.
"""
import io

_MODELS = {}


def get(backbone: str, weights: str = None):
    if backbone not in _MODELS:
        import torch

        from training import backbones, export

        torch.set_num_threads(1)  # one Spark task per core: fairer to the baseline than oversubscribing
        b = backbones.load(backbone, weights)
        model = export.Classifier(b.featurizer, b.head).eval()
        labels = backbones.imagenet_labels() if b.head.out_features == 1000 else list(range(b.head.out_features))
        _MODELS[backbone] = (model, b.preprocess, labels)
    return _MODELS[backbone]


def pil_tensor(image, pre: dict):
    """The usual PIL way: resize the shorter side, centre crop, normalise -> CHW float32 tensor."""
    import numpy as np
    import torch
    from PIL import Image

    resize, crop = int(pre["resize"]), int(pre["crop"])
    w, h = image.size
    scale = resize / min(w, h)
    image = image.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - crop) // 2, (h - crop) // 2
    pixels = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32)
    x = (pixels - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32))


def label(content: bytes, backbone: str, weights: str = None):
    """PIL decode, resize the shorter side, centre crop, normalise, fp32 eager forward of ONE image."""
    import torch
    from PIL import Image

    if content is None:
        return None
    model, pre, labels = get(backbone, weights)
    try:
        image = Image.open(io.BytesIO(content)).convert("RGB")
    except Exception:  # noqa: BLE001 - a bad image gives NULL, as sqlext does
        return None
    tensor = pil_tensor(image, pre).unsqueeze(0)
    with torch.no_grad():
        probs = model(tensor)
    return labels[int(probs.argmax())]
