"""Transfer learning on Spark: labelled images -> frozen backbone features (once) -> BigDL head -> bundle.

1. read the labelled images (a class-per-folder tree or a Hive image table) and split off validation;
2. export the backbone's featurizer to ONNX and featurize every image ONCE on the executors with the
   serving engine; the feature vectors are cached, unreadable images are counted and skipped;
3. train Linear + LogSoftMax with BigDL (NNClassifier, ClassNLLCriterion, Adam) on the cached vectors;
4. evaluate on validation (accuracy, per-class precision/recall, confusion matrix) and draw it;
5. export ONE model.onnx = backbone + head + softmax, check it reproduces the head's probabilities on
   validation images within 1e-4, and publish it as the next version of the bundle.
"""
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqlext import bundle as _bundle

from . import data, evaluate, progress, roundtrip
from .head import OPTIMIZERS

FEATURIZER_OUTPUT = "features"


@dataclass
class TrainConfig:
    name: str
    images: str = None                # folder: one sub-folder per class
    table: str = None                 # or DB.TABLE made by `sqlext ingest --label-from-dir`
    label_col: str = "label"
    backbone: str = "efficientnet-lite0"
    weights: str = None               # torchvision ResNet-50 state_dict (resnet50 only)
    bigdl_model: str = None           # or a model file saved by BigDL as the featurizer (replaces backbone)
    bigdl_feature_layer: str = None   # its layer whose output is the feature vector
    preprocess: dict = None           # the BigDL model's preprocessing (backbones.stated_preprocess)
    epochs: int = 25
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2
    validation: str = None            # folder or DB.TABLE; replaces validation_fraction
    seed: int = 42
    head_optimizer: str = "auto"      # BigDL LocalOptimizer on the driver, or NNClassifier on the executors
    check_images: int = 64            # validation images the exported graph is checked on

    def check(self) -> "TrainConfig":
        """Raise SystemExit for settings that cannot work, before anything starts."""
        try:
            _bundle.check_name(self.name)
        except _bundle.BundleError as exc:
            raise SystemExit(f"error: {exc}") from None
        if (self.images is None) == (self.table is None):
            raise SystemExit("error: give exactly one of --images DIR or --table DB.TABLE")
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise SystemExit("error: --epochs, --batch-size and --learning-rate must be positive")
        if self.validation is None and not 0 < self.validation_fraction < 1:
            raise SystemExit("error: --validation-fraction must be between 0 and 1 (exclusive)")
        if self.head_optimizer not in OPTIMIZERS:
            raise SystemExit(f"error: --head-optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.bigdl_model is not None and not Path(self.bigdl_model).is_file():
            raise SystemExit(f"error: no such BigDL model file: {self.bigdl_model}")
        return self

    @property
    def source(self) -> str:
        return self.images if self.images is not None else self.table

    @property
    def needs_hive(self) -> bool:
        return self.table is not None or (self.validation is not None and data.is_table(self.validation))


@dataclass
class TrainResult:
    bundle: _bundle.Bundle
    labels: list
    metrics: dict
    head: object                      # head.TrainedHead
    val_paths: list
    val_index: np.ndarray             # true class index per validation image
    val_features: np.ndarray          # [N, features] as the serving engine computed them
    val_probabilities: np.ndarray     # softmax(head(val_features)), from the BigDL module
    skipped: dict = field(default_factory=dict)   # unreadable-image reason -> count


def load_backbone(config: TrainConfig, say=print):
    """The frozen featurizer ``config`` names (a BigDL model needs the BigDL JVM: start Spark first)."""
    from . import backbones

    if config.bigdl_model:
        return backbones.bigdl(config.bigdl_model, config.bigdl_feature_layer, config.preprocess, say)
    return backbones.load(config.backbone, config.weights)


def freeze(config: TrainConfig, say=print) -> tuple:
    """(backbone, its featurizer as ONNX bytes for the executors): torch work that can run while Spark's
    JVM starts, as can the imports the pipeline needs later.  A BigDL model needs that JVM running."""
    from . import export, featurize, plots  # noqa: F401  (imported now, off the critical path)

    backbone = load_backbone(config, say)
    with tempfile.TemporaryDirectory(prefix="sqlext-featurizer-") as tmp:
        path = Path(tmp) / "featurizer.onnx"
        export.to_onnx(backbone.featurizer, path, FEATURIZER_OUTPUT, backbone.preprocess["crop"])
        return backbone, path.read_bytes()


def precheck(config: TrainConfig) -> None:
    """Checks that need no Spark: folder layout and class count (fast, clear errors)."""
    if config.images is not None:
        data.require_classes(data.scan_folder(config.images), config.images)
    if config.validation is not None and not data.is_table(config.validation):
        data.scan_folder(config.validation)


def _load(spark, config: TrainConfig, say):
    """The labelled rows with ``split`` = train | val, the class counts and the number of rows."""
    from pyspark.sql import functions as F

    source = data.read_source(spark, config.source, config.label_col)
    counts = data.class_counts(source)
    if not counts:
        raise SystemExit(f"error: {config.source} has no labelled images (label column {config.label_col!r} "
                         "is NULL everywhere; ingest with --label-from-dir)")
    data.require_classes(counts, config.source)
    rows = source.where("label IS NOT NULL")
    total = sum(counts.values())
    if config.validation is None:
        frame = data.split(rows, config.validation_fraction, config.seed)
    else:
        val = data.read_source(spark, config.validation, config.label_col).where("label IS NOT NULL")
        val_counts = data.class_counts(val)
        unknown = sorted(set(val_counts) - set(counts))
        if unknown:
            raise SystemExit(f"error: validation classes {', '.join(map(repr, unknown))} do not occur in "
                             f"{config.source} (training classes: {', '.join(counts)})")
        frame = rows.withColumn("split", F.lit("train")).unionByName(val.withColumn("split", F.lit("val")))
        total += sum(val_counts.values())
    unlabelled = source.count() - sum(counts.values()) if config.table is not None else 0
    if unlabelled:
        say(f"ignoring {unlabelled} row(s) with a NULL {config.label_col}")
    say(f"classes: {', '.join(f'{label} ({n})' for label, n in counts.items())}")
    return frame, counts, total


def _featurize_once(spark, frame, backbone, featurizer_onnx: bytes, images: int, say):
    """Featurize every row once on the executors; return the cached feature frame and skip counts."""
    from pyspark import StorageLevel

    from . import featurize

    cores = int(spark.sparkContext.defaultParallelism)
    features, done = featurize.featurize(spark, frame, featurizer_onnx, backbone.preprocess,
                                         featurize.partitions_for(images, cores))
    features = features.persist(StorageLevel.MEMORY_AND_DISK)
    started = time.monotonic()
    # one job fills the cache and counts the unreadable images by reason
    by_error = progress.follow(lambda: features.groupBy("error").count().collect(), lambda: done.value, images,
                               "featurize", "img")
    total = sum(row["count"] for row in by_error)
    skipped = {row["error"]: row["count"] for row in by_error if row["error"] is not None}
    if skipped:
        examples = [row["path"] for row in features.where("error IS NOT NULL").select("path").limit(3).collect()]
        reasons = "; ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]))
        say(f"skipped {sum(skipped.values())} unreadable image(s) ({reasons}), e.g. {', '.join(examples)}")
    if sum(skipped.values()) >= total:
        raise SystemExit(f"error: none of the {total} images could be decoded")
    say(f"featurized {total - sum(skipped.values())} image(s) with {backbone.name} in "
        f"{time.monotonic() - started:.1f}s")
    return features, skipped


def _indexed(features, labels: list):
    """Readable rows with ``label_index`` (0-based position in ``labels``; rows of other labels dropped)."""
    from pyspark.sql import functions as F

    index = F.create_map(*[F.lit(x) for i, label in enumerate(labels) for x in (label, i)])
    return (features.where("error IS NULL").withColumn("label_index", index[F.col("label")])
            .where("label_index IS NOT NULL"))


def _readable_classes(features, split: str) -> dict:
    rows = features.where(f"error IS NULL AND split = '{split}'").groupBy("label").count().collect()
    return {row["label"]: row["count"] for row in sorted(rows, key=lambda r: r["label"])}


def _tiles(source, paths: list, preprocess: dict) -> np.ndarray:
    """Decode the images at ``paths`` (in that order) the way serving does."""
    from pyspark.sql import functions as F

    from sqlext.image import decode

    contents = {row["path"]: row["content"] for row in
                source.where(F.col("path").isin(paths)).select("path", "content").collect()}
    return np.stack([decode(contents[p], int(preprocess["resize"]), int(preprocess["crop"])) for p in paths])


def _collect(rows) -> tuple:
    """(paths, 0-based label indices, features [N, F] float32) of ``rows``, ordered by path; through Arrow
    (training.spark enables it), so the vectors arrive as arrays, not as Python floats."""
    frame = rows.select("path", "label_index", "features").orderBy("path").toPandas()
    features = np.stack(frame["features"].to_numpy()) if len(frame) else np.zeros((0, 0))
    return list(frame["path"]), frame["label_index"].to_numpy(dtype=int), features.astype(np.float32)


def _train_head(spark, config: TrainConfig, train_rows, val_rows, val: tuple, n_train: int, n_classes: int):
    from . import head

    val_index, val_features = val
    n_features = val_features.shape[1]
    chosen = head.choose_optimizer(config.head_optimizer, n_train + len(val_index), n_features)
    settings = dict(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                    seed=config.seed)
    if chosen == "local":
        _, train_index, train_features = _collect(train_rows)
        return head.train_local((train_features, train_index), (val_features, val_index), n_classes, **settings)
    return head.train_distributed(spark, train_rows, val_rows, n_features, n_classes, n_train, **settings)


def train(spark, home, config: TrainConfig, frozen: tuple = None, say=print) -> TrainResult:
    """Run the whole pipeline on ``spark`` (a session from training.spark.start) and publish the bundle.
    ``frozen`` is what ``freeze(config)`` returns (made here if not given)."""
    from . import export
    from .plots import confusion_matrix, training_curve

    config.check()
    frame, counts, total = _load(spark, config, say)
    backbone, featurizer_onnx = frozen or freeze(config, say)
    with tempfile.TemporaryDirectory(prefix="sqlext-train-") as tmp:
        bundle_dir = Path(tmp) / "bundle"
        bundle_dir.mkdir()
        features, skipped = _featurize_once(spark, frame, backbone, featurizer_onnx, total, say)
        train_classes = _readable_classes(features, "train")
        data.require_classes(train_classes, f"{config.source} (readable training images)")
        labels = sorted(train_classes)
        indexed = _indexed(features, labels)
        train_rows, val_rows = indexed.where("split = 'train'"), indexed.where("split = 'val'")
        val_paths, val_index, val_features = _collect(val_rows)
        if not val_paths:
            raise SystemExit("error: no readable validation images (add some, or raise --validation-fraction)")
        n_train = sum(train_classes.values())
        started = time.monotonic()
        head = _train_head(spark, config, train_rows, val_rows, (val_index, val_features), n_train, len(labels))
        say(f"trained the head ({len(labels)} classes, {config.epochs} epochs, batch {head.batch_size}, BigDL "
            f"{head.optimizer}) in {time.monotonic() - started:.1f}s; last training loss {head.train_loss[-1]:.4f}")
        features.unpersist()
        val_probabilities = head.probabilities(val_features)
        metrics = evaluate.evaluate(val_index, val_probabilities, labels)
        say(evaluate.report(metrics))

        model_path = bundle_dir / _bundle.MODEL_FILE
        checked = val_paths[:config.check_images]
        with ThreadPoolExecutor(1) as pool:  # torch exports the graph while Spark reads the check's images
            exporting = pool.submit(export.to_onnx, export.Classifier(backbone.featurizer, export.linear(
                head.weight, head.bias)), model_path, "probabilities", backbone.preprocess["crop"])
            tiles = _tiles(frame, checked, backbone.preprocess)
            exporting.result()
        worst = roundtrip.check(model_path, tiles, val_probabilities[:len(checked)], backbone.preprocess)
        say(f"model.onnx reproduces the head on {len(checked)} validation image(s) (max |diff| {worst:.1e})")

        confusion_matrix(metrics, bundle_dir)
        training_curve(head.train_loss, head.val_loss, bundle_dir)
        metrics = dict(metrics, summary={"val_accuracy": metrics["accuracy"], "val_images": len(val_paths)},
                       train_loss_per_epoch=[round(x, 5) for x in head.train_loss],
                       val_loss_per_epoch=[round(x, 5) for x in head.val_loss],
                       export_max_abs_diff=worst)
        manifest = {
            "labels": labels, "backbone": backbone.name, "preprocess": backbone.preprocess, "metrics": metrics,
            "source": f"fine-tuned with BigDL on {config.source}",
            "training": {"images" if config.images is not None else "table": config.source,
                         "label_col": config.label_col, "validation": config.validation
                         or f"{config.validation_fraction:g} of each class",
                         "train_images": n_train, "skipped_unreadable": sum(skipped.values()),
                         "epochs": config.epochs, "batch_size": head.batch_size, "head_optimizer": head.optimizer,
                         "learning_rate": config.learning_rate, "seed": config.seed,
                         "weights": Path(config.weights).name if config.weights else None, **backbone.source},
        }
        published = _bundle.write(home.models, config.name, bundle_dir, manifest)
    return TrainResult(published, labels, metrics, head, val_paths, val_index, val_features,
                       val_probabilities, skipped)


def config_from_args(args) -> TrainConfig:
    from sqlext.preprocess import FLAGS

    from .backbones import stated_preprocess

    stated = {flag: getattr(args, flag) for flag in FLAGS if getattr(args, flag, None) is not None}
    if args.bigdl_model and (args.backbone or args.weights):
        raise SystemExit("error: --bigdl-model replaces --backbone/--weights: give one or the other")
    bigdl_only = [*stated, *(["bigdl_feature_layer"] if args.bigdl_feature_layer else [])]
    if bigdl_only and not args.bigdl_model:
        raise SystemExit(f"error: {', '.join('--' + f.replace('_', '-') for f in bigdl_only)}: only with "
                         "--bigdl-model (the other backbones carry their own preprocessing)")
    return TrainConfig(name=args.name, images=args.images, table=args.table, label_col=args.label_col,
                       backbone=args.backbone or TrainConfig.backbone, weights=args.weights, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       validation_fraction=args.validation_fraction, validation=args.validation,
                       seed=args.seed, head_optimizer=args.head_optimizer, bigdl_model=args.bigdl_model,
                       bigdl_feature_layer=args.bigdl_feature_layer,
                       preprocess=stated_preprocess(**stated) if args.bigdl_model else None).check()


def run(args, home) -> int:
    """`sqlext train ...`: checks first (no Spark needed), then the pipeline; returns the exit code."""
    from sqlext.session import stop

    from .spark import start

    config = config_from_args(args)
    precheck(config)
    with ThreadPoolExecutor(1) as pool:
        # torch loads the weights and exports the featurizer while Spark's JVM starts; a BigDL model loads on
        # that JVM
        freezing = None if config.bigdl_model else pool.submit(freeze, config)
        spark = start(home.ensure(), args.master, hive=config.needs_hive, archive="write")
        try:
            result = train(spark, home, config, freezing.result() if freezing else None)
        finally:
            stop(spark)
    print(f"published {result.bundle.key} (validation accuracy {result.metrics['accuracy']:.4f}) "
          f"-> {result.bundle.path}")
    return 0
