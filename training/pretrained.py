"""`sqlext models import`: publish a pretrained classifier as a model bundle.

``efficientnet-lite0`` and ``resnet50`` are ImageNet classifiers in torch; ``bigdl`` is a whole
classifier saved by BigDL (``--bigdl-model FILE --labels FILE``), converted to torch and checked
against BigDL's own forward (training.bigdl_import), so an existing BigDL model is served from SQL.
"""
import tempfile
from pathlib import Path

import numpy as np

from sqlext import bundle
from sqlext.preprocess import FLAGS

from . import backbones, export


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


def read_labels(path) -> list:
    """Class names, one per line (blank lines ignored); SystemExit for a missing file, none, or duplicates."""
    if not path:
        raise SystemExit("error: `models import bigdl` needs --labels FILE (the class names, one per line)")
    try:
        labels = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: cannot read the labels file {path}: {exc}") from None
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if not labels or repeated:
        raise SystemExit(f"error: {path} must list distinct class names, one per line"
                         + (f" (repeated: {', '.join(repeated)})" if repeated else " (it is empty)"))
    return labels


def import_bigdl(home, model_path, labels_path, name: str, preprocess: dict, master: str = None) -> bundle.Bundle:
    """`sqlext models import bigdl`: checks that need no JVM, then Spark with BigDL, then publish_bigdl."""
    from .spark import start

    labels = read_labels(labels_path)
    if not Path(model_path).is_file():
        raise SystemExit(f"error: no such BigDL model file: {model_path}")
    spark = start(home.ensure(), master, hive=False)
    try:
        return publish_bigdl(home.models, model_path, labels, name, preprocess)
    finally:
        spark.stop()


def publish_bigdl(models_dir, model_path, labels: list, name: str, preprocess: dict, say=print) -> bundle.Bundle:
    """Publish a classifier saved by BigDL: its converted output as probabilities, ``labels`` in output
    order.  Needs the BigDL JVM (training.spark.start)."""
    from . import bigdl_import, roundtrip

    model, classes, worst = bigdl_import.classifier(model_path, preprocess["crop"], say)
    if classes != len(labels):
        raise SystemExit(f"error: the labels file lists {len(labels)} labels but the BigDL model outputs {classes} "
                         "classes; give one label per output, in order")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / bundle.MODEL_FILE
        export.to_onnx(model, onnx_path, "probabilities", preprocess["crop"])
        tiles = np.random.default_rng(0).integers(0, 256, (4, preprocess["crop"], preprocess["crop"], 3), np.uint8)
        export_diff = roundtrip.check(onnx_path, tiles, _probabilities(model, tiles, preprocess), preprocess)
        record = backbones.bigdl_file(model_path, max_abs_diff=worst, export_max_abs_diff=export_diff)
        manifest = {"labels": labels, "backbone": f"bigdl:{record['file']}", "preprocess": preprocess,
                    "metrics": {}, "source": f"classifier saved by BigDL ({record['file']})", "bigdl_model": record}
        return bundle.write(models_dir, name, tmp, manifest)


def _probabilities(model, tiles, preprocess) -> np.ndarray:
    import torch

    from sqlext.preprocess import model_input

    with torch.no_grad():
        return model(torch.from_numpy(model_input(tiles, preprocess))).numpy()


def import_command(home, args) -> bundle.Bundle:
    """Entry point for `sqlext models import efficientnet-lite0|resnet50 [--weights FILE]` and
    `sqlext models import bigdl --bigdl-model FILE --labels FILE [preprocessing flags]`."""
    stated = {flag: getattr(args, flag) for flag in FLAGS if getattr(args, flag, None) is not None}
    if args.backbone == "bigdl":
        if not args.bigdl_model or args.weights:
            raise SystemExit("error: `models import bigdl` takes --bigdl-model FILE (and no --weights)")
        return import_bigdl(home, args.bigdl_model, args.labels, args.name, backbones.stated_preprocess(**stated),
                            args.master)
    if args.bigdl_model or args.labels or stated:
        raise SystemExit(f"error: --bigdl-model, --labels and the preprocessing flags go with `sqlext models import "
                         f"bigdl`; {args.backbone} carries its own labels and preprocessing")
    return import_pretrained(home.models, args.backbone, args.name, getattr(args, "weights", None))
