"""Torch modules -> ONNX files that honour the bundle contract."""
import warnings

import torch


class Classifier(torch.nn.Module):
    """featurizer + linear head + softmax: normalised NCHW float -> class probabilities."""

    def __init__(self, featurizer, head):
        super().__init__()
        self.featurizer, self.head = featurizer, head

    def forward(self, x):
        return torch.softmax(self.head(self.featurizer(x)), dim=1)


def to_onnx(module: torch.nn.Module, path, output_name: str, crop: int = 224) -> None:
    module.eval()
    example = torch.zeros(2, 3, crop, crop)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), input_names=["image"], output_names=[output_name],
                          dynamic_axes={"image": {0: "batch"}, output_name: {0: "batch"}},
                          opset_version=17, dynamo=False)


def linear(weight, bias) -> torch.nn.Linear:
    """A torch Linear holding trained weights ``[classes, features]`` and bias ``[classes]``."""
    weight = torch.as_tensor(weight, dtype=torch.float32)
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return layer.eval()
