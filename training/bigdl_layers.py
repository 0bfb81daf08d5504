"""Torch modules that compute what BigDL containers and layers compute, where torch has no direct twin.

``training.bigdl_import`` builds these from a loaded BigDL model; everything here is plain torch, so
``training.export`` turns the result into ONNX.  A BigDL *Table* (several activations) is a Python
list here.  Inputs are always batched (NCHW or N x features): the per-sample shapes BigDL layers state
are applied after the batch dimension.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Branches(nn.ModuleList):
    """BigDL ConcatTable: every branch sees the same input; the output is the list of their outputs."""

    def forward(self, x):
        return [branch(x) for branch in self]


class Parallel(nn.ModuleList):
    """BigDL ParallelTable: branch i gets element i of the input list."""

    def forward(self, xs):
        return [branch(x) for branch, x in zip(self, xs)]


class Concat(nn.ModuleList):
    """BigDL Concat: every branch sees the same input; outputs are joined along ``dim`` (0-based)."""

    def __init__(self, branches, dim: int):
        super().__init__(branches)
        self.dim = dim

    def forward(self, x):
        return torch.cat([branch(x) for branch in self], dim=self.dim)


class Graph(nn.Module):
    """BigDL StaticGraph: ``nodes`` in topological order; ``sources[i]`` lists where node i's input
    comes from as ``(node index, table index or None)``.  No sources: the graph input.  One source: that
    activation.  Several: the list of them (a BigDL Table).  The output is node ``output``'s."""

    def __init__(self, nodes, sources, output: int):
        super().__init__()
        self.nodes = nn.ModuleList(nodes)
        self.sources = [list(s) for s in sources]
        self.output = output

    @staticmethod
    def _pick(activation, index):
        # BigDL's Edge.fromIndex is 1-based and index 1 of a plain tensor is the tensor itself
        if index is None or (index == 1 and torch.is_tensor(activation)):
            return activation
        return activation[index - 1]

    def forward(self, x):
        outputs = []
        for node, sources in zip(self.nodes, self.sources):
            inputs = [self._pick(outputs[i], index) for i, index in sources]
            outputs.append(node(x if not inputs else inputs[0] if len(inputs) == 1 else inputs))
        return outputs[self.output]

    def up_to(self, index: int) -> "Graph":
        """The sub-graph whose output is node ``index``: only that node and its ancestors are kept."""
        keep, todo = set(), [index]
        while todo:
            i = todo.pop()
            if i not in keep:
                keep.add(i)
                todo.extend(j for j, _ in self.sources[i])
        order = sorted(keep)
        new_index = {old: new for new, old in enumerate(order)}
        return Graph([self.nodes[i] for i in order],
                     [[(new_index[j], k) for j, k in self.sources[i]] for i in order], new_index[index])


class SumTable(nn.Module):
    """BigDL CAddTable: the element-wise sum of the input list."""

    def forward(self, xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class Join(nn.Module):
    """BigDL JoinTable(dimension, nInputDims): ``dimension`` is 1-based and counts from the batch dimension
    only when the inputs have ``n_input_dims + 1`` dimensions."""

    def __init__(self, dimension: int, n_input_dims: int):
        super().__init__()
        self.dimension, self.n_input_dims = dimension, n_input_dims

    def forward(self, xs):
        batched = self.n_input_dims > 0 and xs[0].dim() == self.n_input_dims + 1
        return torch.cat(xs, dim=self.dimension - 1 + int(batched))


class Reshape(nn.Module):
    """BigDL View / Reshape / InferReshape: ``sizes`` per sample (after the batch dimension) when
    ``per_sample``, else for the whole tensor.  -1 is inferred; 0 copies the matching input dimension."""

    def __init__(self, sizes, per_sample: bool = True):
        super().__init__()
        self.sizes, self.per_sample = [int(s) for s in sizes], per_sample

    def forward(self, x):
        dims = list(x.shape[1:]) if self.per_sample else list(x.shape)
        target = [dims[i] if s == 0 else s for i, s in enumerate(self.sizes)]
        return x.reshape([x.shape[0], *target] if self.per_sample else target)


class Squeeze(nn.Module):
    """BigDL Squeeze: drop the given 1-based dimensions if they have size 1 (``None``: every size-1
    dimension after the batch one); ``batch_mode`` counts them after the batch dimension."""

    def __init__(self, dims, batch_mode: bool):
        super().__init__()
        self.dims = None if dims is None else sorted((int(d) - 1 + int(batch_mode) for d in dims), reverse=True)

    def forward(self, x):
        dims = self.dims if self.dims is not None else [d for d in range(x.dim() - 1, 0, -1) if x.shape[d] == 1]
        for d in dims:
            if x.shape[d] == 1:
                x = x.squeeze(d)
        return x


class SamePadding(nn.Module):
    """TensorFlow-style SAME padding, which BigDL uses when both pads are -1: the output has
    ceil(input / stride) positions and the extra padding goes to the bottom/right."""

    def __init__(self, inner: nn.Module, kernel: tuple, stride: tuple, value: float = 0.0):
        super().__init__()
        self.inner, self.kernel, self.stride, self.value = inner, kernel, stride, value

    def forward(self, x):
        pads = []
        for size, k, s in ((x.shape[3], self.kernel[1], self.stride[1]), (x.shape[2], self.kernel[0], self.stride[0])):
            total = max(0, (math.ceil(int(size) / s) - 1) * s + k - int(size))
            pads += [total // 2, total - total // 2]
        return self.inner(F.pad(x, pads, value=self.value))


class GlobalAveragePool(nn.Module):
    """BigDL SpatialAveragePooling(globalPooling=true): the mean (or sum) over H and W, kept as 1 x 1."""

    def __init__(self, divide: bool = True):
        super().__init__()
        self.divide = divide

    def forward(self, x):
        return x.mean((2, 3), keepdim=True) if self.divide else x.sum((2, 3), keepdim=True)


class ChannelAffine(nn.Module):
    """BigDL CMul / CAdd / Scale: ``x * weight + bias`` with parameters of the layer's own shape, broadcast
    over the batch (a 1-D parameter of C values applies per channel)."""

    def __init__(self, weight=None, bias=None):
        super().__init__()
        self.weight = None if weight is None else nn.Parameter(torch.as_tensor(weight), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(torch.as_tensor(bias), requires_grad=False)

    @staticmethod
    def _shaped(param, x):
        if param.dim() == 1 and x.dim() > 2:
            return param.reshape(1, -1, *[1] * (x.dim() - 2))
        return param

    def forward(self, x):
        if self.weight is not None:
            x = x * self._shaped(self.weight, x)
        if self.bias is not None:
            x = x + self._shaped(self.bias, x)
        return x


class Scaled(nn.Module):
    """Multiply by a constant (BigDL Dropout without ``scale`` multiplies by 1 - p at inference)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x):
        return x * self.factor


class Flatten(nn.Module):
    """``module``'s output as ``[N, features]``: the featurizer contract of training.backbones."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return torch.flatten(self.module(x), 1)


class Probabilities(nn.Module):
    """A classifier's output as probabilities: exp of a LogSoftMax, a SoftMax as it is, else a softmax."""

    def __init__(self, module: nn.Module, ends_with: str):
        super().__init__()
        self.module, self.ends_with = module, ends_with

    def forward(self, x):
        out = self.module(x)
        if self.ends_with == "LogSoftMax":
            return torch.exp(out)
        return out if self.ends_with == "SoftMax" else torch.softmax(out, dim=1)
