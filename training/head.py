"""Train the classifier head on cached feature vectors with BigDL: Linear + LogSoftMax, ClassNLLCriterion, Adam.

Input frames have ``features`` (array<float>) and ``label_index`` (0-based class index); BigDL's
ClassNLLCriterion counts classes from 1, so labels are shifted by one on the way in.
"""
import math
import tempfile
from dataclasses import dataclass

import numpy as np

from . import progress
from .spark import quiet_stdout, total_cores


@dataclass
class TrainedHead:
    weight: np.ndarray            # [classes, features]
    bias: np.ndarray              # [classes]
    train_loss: list              # mean training loss of each epoch
    val_loss: list                # validation loss after each epoch
    batch_size: int               # the batch size used (a multiple of BigDL's core count)
    model: object                 # the trained BigDL module

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """softmax(head(features)), computed by the trained BigDL module itself."""
        self.model.evaluate()
        with quiet_stdout():
            log_probs = self.model.forward(np.ascontiguousarray(features, dtype=np.float32))
        return np.exp(np.asarray(log_probs, dtype=np.float64))


def batch_size_for(requested: int, cores: int) -> int:
    """Round up to a multiple of ``cores``: BigDL splits every batch evenly over all cores."""
    return max(cores, int(math.ceil(requested / cores)) * cores)


def _per_epoch(records, steps_per_epoch: int, epochs: int) -> list:
    """Mean of per-iteration scalars (step, value, time) grouped into epochs of ``steps_per_epoch``."""
    sums, counts = [0.0] * epochs, [0] * epochs
    for step, value, _ in records:
        epoch = min(epochs, max(1, math.ceil(step / steps_per_epoch))) - 1
        sums[epoch] += float(value)
        counts[epoch] += 1
    return [s / c if c else float("nan") for s, c in zip(sums, counts)]


def train_head(spark, train, val, n_features: int, n_classes: int, n_train: int, epochs: int,
               batch_size: int, learning_rate: float, seed: int) -> TrainedHead:
    """Fit the head on ``train`` (validated on ``val`` after every epoch) and return its weights."""
    from pyspark.sql import functions as F

    with quiet_stdout():  # BigDL's modules print their class registrations on import
        from bigdl.dllib.nn.criterion import ClassNLLCriterion
        from bigdl.dllib.nn.layer import Linear, LogSoftMax, Sequential
        from bigdl.dllib.nnframes import NNClassifier
        from bigdl.dllib.optim.optimizer import Adam, EveryEpoch, Loss, TrainSummary, ValidationSummary
        from bigdl.dllib.utils.common import RNG

    batch = batch_size_for(batch_size, total_cores(spark))
    steps_per_epoch = math.ceil(n_train / batch)  # BigDL ends an epoch once it has seen n_train records

    def bigdl_frame(frame):
        return frame.select("features", (F.col("label_index") + 1).cast("double").alias("label"))

    with tempfile.TemporaryDirectory(prefix="sqlext-head-") as logs, quiet_stdout():
        RNG().set_seed(seed)
        model = Sequential().add(Linear(n_features, n_classes)).add(LogSoftMax())
        train_summary, val_summary = TrainSummary(logs, "head"), ValidationSummary(logs, "head")
        classifier = (NNClassifier(model, ClassNLLCriterion(), [n_features])
                      .setOptimMethod(Adam(learningrate=learning_rate))
                      .setBatchSize(batch).setMaxEpoch(epochs)
                      .setTrainSummary(train_summary)
                      .setValidation(EveryEpoch(), bigdl_frame(val), [Loss(ClassNLLCriterion())], batch)
                      .setValidationSummary(val_summary))
        fitted = progress.follow(lambda: classifier.fit(bigdl_frame(train)),
                                 lambda: len(train_summary.read_scalar("Loss")) / steps_per_epoch,
                                 epochs, "train head", "epoch")
        trained = fitted.getModel()
        weight, bias = trained.get_weights()[:2]
        train_loss = _per_epoch(train_summary.read_scalar("Loss"), steps_per_epoch, epochs)
        val_loss = [float(value) for _, value, _ in val_summary.read_scalar("Loss")]
    return TrainedHead(np.asarray(weight, np.float32), np.asarray(bias, np.float32), train_loss, val_loss,
                       batch, trained)
