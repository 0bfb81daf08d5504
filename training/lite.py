"""The EfficientNet-Lite0 featurizer: the pretrained network up to its global average pool."""
import torch


class LiteFeatures(torch.nn.Module):
    """NCHW normalised float -> ``[N, 1280]`` pooled features of an ``efficientnet_lite_pytorch`` net."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.flatten(self.net._avg_pooling(self.net.extract_features(x)), 1)
