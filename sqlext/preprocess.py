"""The bundle manifest's ``preprocess``: how a decoded tile becomes the model's input.

Keys: ``resize`` (shorter side, pixels), ``crop`` (centre square fed to the model), ``mean`` and
``std`` (three numbers each, in 0..255 pixel units, listed R, G, B), and optionally
``channel_order``: ``"rgb"`` (the default, also when absent) or ``"bgr"`` for models trained on
BGR input (Caffe-converted models).  The model input is ``(pixel - mean) / std`` per colour,
NCHW float32, with the three channels in ``channel_order``.  Training states it with the flags of
``add_flags``; ``sqlext.engine`` compiles it into the OpenVINO graph; ``model_input`` is the same
thing in numpy, for checks.
"""
CHANNEL_ORDERS = ("rgb", "bgr")
FLAGS = ("input_size", "resize", "mean", "std", "channel_order")   # argparse destinations of add_flags


def channel_order(preprocess: dict) -> str:
    """``"rgb"`` or ``"bgr"``; ValueError for anything else."""
    order = preprocess.get("channel_order", "rgb")
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"preprocess channel_order must be one of {', '.join(CHANNEL_ORDERS)}, not {order!r}")
    return order


def model_input(tiles, preprocess: dict):
    """uint8 RGB NHWC tiles -> the bundle's ONNX input: float32 NCHW, normalised, in the model's channel order."""
    import numpy as np  # here, not on top: the `sqlext` command imports this module for its flags

    mean = np.asarray(preprocess["mean"], np.float32)
    std = np.asarray(preprocess["std"], np.float32)
    normalised = (tiles.astype(np.float32) - mean) / std
    if channel_order(preprocess) == "bgr":
        normalised = normalised[..., ::-1]
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


def _three_numbers(text: str) -> list:
    import argparse

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers R,G,B, got {text!r}")
    return values


def add_flags(parser) -> None:
    """The flags that state a model's preprocessing (for models that do not carry it, e.g. BigDL files).
    Unset flags stay None, so the caller can fill defaults and tell given from omitted."""
    parser.add_argument("--input-size", type=int, metavar="PIXELS",
                        help="side of the square the model takes (the centre crop; default 224)")
    parser.add_argument("--resize", type=int, metavar="PIXELS",
                        help="shorter image side before the centre crop (default: input size x 256/224, 256 for 224)")
    parser.add_argument("--mean", type=_three_numbers, metavar="R,G,B",
                        help="per-colour mean in 0..255 pixel units (default: torchvision's ImageNet mean)")
    parser.add_argument("--std", type=_three_numbers, metavar="R,G,B",
                        help="per-colour std in 0..255 pixel units (default: torchvision's ImageNet std)")
    parser.add_argument("--channel-order", choices=CHANNEL_ORDERS,
                        help="channel order the model expects (default rgb; Caffe-converted models want bgr)")
