"""`sqlext models import`: publish a pretrained ImageNet classifier as a model bundle."""
import tempfile
from pathlib import Path

from sqlext import bundle

from . import backbones, export

IMPORTERS = {"efficientnet-lite0": backbones.efficientnet_lite0}


def import_pretrained(models_dir, backbone_name: str, name: str = "imagenet") -> bundle.Bundle:
    if backbone_name not in IMPORTERS:
        raise SystemExit(f"unknown backbone {backbone_name!r}; choose one of: {', '.join(IMPORTERS)}")
    backbone = IMPORTERS[backbone_name]()
    with tempfile.TemporaryDirectory() as tmp:
        export.to_onnx(export.Classifier(backbone.featurizer, backbone.head), Path(tmp) / bundle.MODEL_FILE,
                       "probabilities", backbone.preprocess["crop"])
        manifest = {"labels": backbones.imagenet_labels(), "backbone": backbone.name,
                    "preprocess": backbone.preprocess, "metrics": {}, "source": "pretrained ImageNet-1k"}
        return bundle.write(models_dir, name, tmp, manifest)


def import_command(home, args) -> bundle.Bundle:
    """Entry point for `sqlext models import efficientnet-lite0`."""
    return import_pretrained(home.models, args.backbone, args.name)
