"""`sqlext models import`: publish a pretrained ImageNet classifier as a model bundle."""
import tempfile
from pathlib import Path

from sqlext import bundle

from . import backbones, export

# Why --bigdl-model is refused (by `models import` and by `train`).
BIGDL_MODEL_UNSUPPORTED = (
    "--bigdl-model is not supported: a sqlext bundle is ONE ONNX graph (featurizer + head) served by "
    "OpenVINO, and BigDL 2.4 can import ONNX but cannot export a model to ONNX, so a BigDL featurizer "
    "could be trained on but never served. Use an ONNX-exportable backbone instead: "
    "efficientnet-lite0, or resnet50 --weights FILE (a torchvision ResNet-50 state_dict).")


def refuse_bigdl_model(args) -> None:
    if getattr(args, "bigdl_model", None):
        raise SystemExit(f"error: {BIGDL_MODEL_UNSUPPORTED}")


def labels_for(backbone: backbones.Backbone) -> list:
    """ImageNet-1k names for a 1000-way head, else ``class_0 .. class_{n-1}``."""
    n = backbone.head.out_features
    return backbones.imagenet_labels() if n == 1000 else [f"class_{i}" for i in range(n)]


def import_pretrained(models_dir, backbone_name: str, name: str = "imagenet", weights=None) -> bundle.Bundle:
    backbone = backbones.load(backbone_name, weights)
    with tempfile.TemporaryDirectory() as tmp:
        export.to_onnx(export.Classifier(backbone.featurizer, backbone.head), Path(tmp) / bundle.MODEL_FILE,
                       "probabilities", backbone.preprocess["crop"])
        source = "pretrained ImageNet-1k" + (f" ({Path(weights).name})" if weights else "")
        manifest = {"labels": labels_for(backbone), "backbone": backbone.name,
                    "preprocess": backbone.preprocess, "metrics": {}, "source": source}
        return bundle.write(models_dir, name, tmp, manifest)


def import_command(home, args) -> bundle.Bundle:
    """Entry point for `sqlext models import efficientnet-lite0|resnet50 [--weights FILE]`."""
    refuse_bigdl_model(args)
    return import_pretrained(home.models, args.backbone, args.name, getattr(args, "weights", None))
