"""`sqlext train`: registered into the sqlext command through the `sqlext.commands` entry point.

Only argparse here; the pipeline (torch, BigDL, Spark) is imported when the command runs.
"""
from sqlext import preprocess

from .backbones import BACKBONES

HEAD_OPTIMIZERS = ("auto", "local", "distributed")  # here, not in training.head: the CLI must not import numpy


def add_train_command(commands) -> None:
    train = commands.add_parser(
        "train", help="fine-tune a new head on labelled images (BigDL on Spark)",
        description="Featurize labelled images once with a frozen backbone on Spark, train a new "
                    "classifier head with BigDL, and publish backbone + head as the next version of a bundle.")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="folder with one sub-folder of images per class")
    source.add_argument("--table", metavar="DB.TABLE", help="image table made by `sqlext ingest --label-from-dir`")
    train.add_argument("--label-col", default="label", help="label column of --table (default: label)")
    train.add_argument("--name", required=True, help="bundle name; each run publishes its next version")
    train.add_argument("--backbone", choices=BACKBONES, help="frozen featurizer (default: efficientnet-lite0)")
    train.add_argument("--weights", metavar="FILE", help="torchvision ResNet-50 state_dict, for --backbone resnet50")
    bigdl = train.add_argument_group("a BigDL model as the frozen featurizer (instead of --backbone)")
    bigdl.add_argument("--bigdl-model", metavar="FILE",
                       help="a model file saved by BigDL (saveModel), converted to ONNX and checked against BigDL")
    bigdl.add_argument("--bigdl-feature-layer", metavar="NAME",
                       help="the layer whose output is the feature vector (default: the input of the last Linear)")
    preprocess.add_flags(bigdl)
    train.add_argument("--epochs", type=int, default=25, help="passes over the features (default: 25)")
    train.add_argument("--batch-size", type=int, default=32,
                       help="default 32; rounded up to a multiple of the Spark cores (BigDL needs that)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    held_out = train.add_mutually_exclusive_group()
    held_out.add_argument("--validation-fraction", type=float, default=0.2,
                          help="share of each class held out for validation (default: 0.2)")
    held_out.add_argument("--validation", metavar="DIR|DB.TABLE", help="separate labelled validation images")
    train.add_argument("--head-optimizer", choices=HEAD_OPTIMIZERS, default="auto",
                       help="BigDL optimiser for the head: local (LocalOptimizer on the driver, over the collected "
                            "feature vectors), distributed (NNClassifier on the executors), or auto (default: local "
                            "while the vectors fit in 64 MiB)")
    train.add_argument("--seed", type=int, default=42, help="seed for the split and the head's initialisation")
    train.add_argument("--master", help="Spark master (default: $SQLEXT_MASTER or local[*])")
    train.set_defaults(func=_run)


def _run(args, home) -> int:
    from .train import run

    return run(args, home)
