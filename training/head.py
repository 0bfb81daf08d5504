"""Train the classifier head on cached feature vectors with BigDL: Linear + LogSoftMax, ClassNLLCriterion, Adam.

Two BigDL optimisers, same model, loss, optimiser settings and epochs:

- ``local``: BigDL's LocalOptimizer on the driver, over the feature vectors collected there.  A linear
  head on a few thousand vectors is microseconds of arithmetic per step; the distributed optimiser
  spends two Spark jobs on every step (25 epochs of 180 images: ~5 s against ~0.6 s here).
- ``distributed``: NNClassifier (BigDL's DistriOptimizer on the executors) over the cached feature
  frame, for feature sets too large to collect on the driver.

``auto`` picks ``local`` when the vectors fit LOCAL_FEATURE_BYTES.  BigDL's ClassNLLCriterion counts
classes from 1, so labels are shifted by one on the way in.
"""
import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from . import progress
from .cli import HEAD_OPTIMIZERS as OPTIMIZERS
from .spark import quiet_stdout, total_cores

LOCAL_FEATURE_BYTES = 64 << 20    # training + validation vectors as float32 (~13k images of 1280 features)


@dataclass
class TrainedHead:
    weight: np.ndarray            # [classes, features]
    bias: np.ndarray              # [classes]
    train_loss: list              # training loss per epoch (local: at its end; distributed: mean of its steps)
    val_loss: list                # validation loss after each epoch
    batch_size: int               # the batch size used
    optimizer: str                # "local" | "distributed"
    model: object                 # the trained BigDL module

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """softmax(head(features)), computed by the trained BigDL module itself."""
        self.model.evaluate()
        with quiet_stdout():
            log_probs = self.model.forward(np.ascontiguousarray(features, dtype=np.float32))
        return np.exp(np.asarray(log_probs, dtype=np.float64))


def choose_optimizer(requested: str, rows: int, n_features: int) -> str:
    if requested not in OPTIMIZERS:
        raise ValueError(f"unknown head optimizer {requested!r}; expected one of {', '.join(OPTIMIZERS)}")
    if requested != "auto":
        return requested
    return "local" if rows * n_features * 4 <= LOCAL_FEATURE_BYTES else "distributed"


def batch_size_for(requested: int, cores: int) -> int:
    """Round up to a multiple of ``cores``: BigDL's DistriOptimizer splits every batch evenly over all cores."""
    return max(cores, int(math.ceil(requested / cores)) * cores)


def _bigdl():
    with quiet_stdout():  # BigDL's modules print their class registrations on import
        from bigdl.dllib.nn import criterion, layer
        from bigdl.dllib.optim import optimizer
        from bigdl.dllib.utils import common
    return criterion, layer, optimizer, common


def _new_model(n_features: int, n_classes: int, seed: int):
    _, layer, _, common = _bigdl()
    common.RNG().set_seed(seed)
    return layer.Sequential().add(layer.Linear(n_features, n_classes)).add(layer.LogSoftMax())


def _trained(model, train_loss, val_loss, batch: int, optimizer: str) -> TrainedHead:
    weight, bias = model.get_weights()[:2]
    return TrainedHead(np.asarray(weight, np.float32), np.asarray(bias, np.float32), train_loss, val_loss,
                       batch, optimizer, model)


def train_local(train: tuple, val: tuple, n_classes: int, epochs: int, batch_size: int, learning_rate: float,
                seed: int) -> TrainedHead:
    """Fit the head on the driver: ``train`` and ``val`` are (features [N, F] float32, 0-based labels [N])."""
    criterion, layer, optimizer, common = _bigdl()
    (x, y), (x_val, y_val) = train, val
    with tempfile.TemporaryDirectory(prefix="sqlext-head-") as snapshots, quiet_stdout():
        model = _new_model(x.shape[1], n_classes, seed)
        local = optimizer.LocalOptimizer(x, (y + 1).astype(np.float32), model, criterion.ClassNLLCriterion(),
                                         optimizer.MaxEpoch(epochs), batch_size,
                                         optimizer.Adam(learningrate=learning_rate), cores=1)
        # LocalOptimizer keeps no loss history: a snapshot after every epoch gives the curve afterwards
        local.set_checkpoint(optimizer.EveryEpoch(), snapshots, isOverWrite=False)
        trained = progress.follow(local.optimize, lambda: len(_snapshots(snapshots)), epochs, "train head", "epoch")
        per_epoch = [layer.Layer.of(common.callBigDlFunc("float", "loadBigDL", path))
                     for path in _snapshots(snapshots)]
        train_loss, val_loss = _losses(per_epoch, (x, y), (x_val, y_val), n_classes)
    return _trained(trained, train_loss, val_loss, batch_size, "local")


def _snapshots(folder: str) -> list:
    """The epoch snapshots LocalOptimizer wrote (``model.<iteration>``), oldest first."""
    names = [n for n in os.listdir(folder) if n.startswith("model.") and n[6:].isdigit()]
    return [os.path.join(folder, n) for n in sorted(names, key=lambda n: int(n[6:]))]


def _losses(models: list, train: tuple, val: tuple, n_classes: int) -> tuple:
    """Mean NLL of every model on ``train`` and ``val``: the models side by side in one Concat, one forward."""
    _, layer, _, _ = _bigdl()
    side_by_side = layer.Concat(2)
    for model in models:
        side_by_side.add(model)
    side_by_side.evaluate()
    x = np.concatenate([train[0], val[0]]).astype(np.float32)
    y = np.concatenate([train[1], val[1]]).astype(int)
    log_probs = np.asarray(side_by_side.forward(x), np.float64).reshape(len(x), len(models), n_classes)
    nll = -log_probs[np.arange(len(x)), :, y]          # [rows, models]
    n = len(train[0])
    return [float(v) for v in nll[:n].mean(axis=0)], [float(v) for v in nll[n:].mean(axis=0)]


def _per_epoch(records, steps_per_epoch: int, epochs: int) -> list:
    """Mean of per-iteration scalars (step, value, time) grouped into epochs of ``steps_per_epoch``."""
    sums, counts = [0.0] * epochs, [0] * epochs
    for step, value, _ in records:
        epoch = min(epochs, max(1, math.ceil(step / steps_per_epoch))) - 1
        sums[epoch] += float(value)
        counts[epoch] += 1
    return [s / c if c else float("nan") for s, c in zip(sums, counts)]


def train_distributed(spark, train, val, n_features: int, n_classes: int, n_train: int, epochs: int,
                      batch_size: int, learning_rate: float, seed: int) -> TrainedHead:
    """Fit the head with NNClassifier on the executors: ``train`` and ``val`` are frames with ``features``
    (array<float>) and ``label_index`` (0-based); validated after every epoch."""
    from pyspark.sql import functions as F

    criterion, _, optimizer, _ = _bigdl()
    with quiet_stdout():
        from bigdl.dllib.nnframes import NNClassifier

    batch = batch_size_for(batch_size, total_cores(spark))
    steps_per_epoch = math.ceil(n_train / batch)  # BigDL ends an epoch once it has seen n_train records

    def bigdl_frame(frame):
        return frame.select("features", (F.col("label_index") + 1).cast("double").alias("label"))

    with tempfile.TemporaryDirectory(prefix="sqlext-head-") as logs, quiet_stdout():
        model = _new_model(n_features, n_classes, seed)
        train_summary = optimizer.TrainSummary(logs, "head")
        val_summary = optimizer.ValidationSummary(logs, "head")
        classifier = (NNClassifier(model, criterion.ClassNLLCriterion(), [n_features])
                      .setOptimMethod(optimizer.Adam(learningrate=learning_rate))
                      .setBatchSize(batch).setMaxEpoch(epochs)
                      .setTrainSummary(train_summary)
                      .setValidation(optimizer.EveryEpoch(), bigdl_frame(val),
                                     [optimizer.Loss(criterion.ClassNLLCriterion())], batch)
                      .setValidationSummary(val_summary))
        fitted = progress.follow(lambda: classifier.fit(bigdl_frame(train)),
                                 lambda: len(train_summary.read_scalar("Loss")) / steps_per_epoch,
                                 epochs, "train head", "epoch")
        trained = fitted.getModel()
        train_loss = _per_epoch(train_summary.read_scalar("Loss"), steps_per_epoch, epochs)
        val_loss = [float(value) for _, value, _ in val_summary.read_scalar("Loss")]
    return _trained(trained, train_loss, val_loss, batch, "distributed")
