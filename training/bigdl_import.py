"""A model file saved by BigDL -> an equivalent torch module, checked against BigDL's own forward.

A bundle is one ONNX graph and BigDL 2.4 cannot export ONNX.  So the loaded BigDL module tree is
walked on the JVM through py4j (``layer.value`` is the Scala object; its vals are methods, private
ones are read by reflection) and rebuilt layer by layer in torch (``training.bigdl_layers``) with its
weights and batch-norm statistics; ``training.export`` then writes the ONNX.  Every conversion is
checked: BigDL and torch run the same random batch and must agree within
``TOLERANCE x max(1, max |output|)``, else SystemExit with the difference.

Needs the BigDL JVM: call after ``training.spark.start()``.  Bad input (missing file, not a BigDL
model, a layer that cannot be converted, an unknown layer name) raises SystemExit with the reason.
"""
import contextlib
import logging
import os

import numpy as np
import torch
from torch import nn

from . import bigdl_layers as L
from .bigdl_cut import CHAINS, Converted, classifier_path, cut, path_to
from .spark import quiet_stdout

TOLERANCE = 1e-4


class Unsupported(Exception):
    def __init__(self, jvm, why: str = ""):
        super().__init__(f"layer {jvm.getName()!r} is a BigDL {_kind(jvm)}{why}")


# ----------------------------------------------------------------------------------------------- loading
JAVA_SERIALIZATION = b"\xac\xed"   # the magic of BigDL's older ``Module.save`` files (saveModel writes protobuf)


@contextlib.contextmanager
def _quiet_bigdl_errors():
    """BigDL's Python side logs a banner for every failing JVM call before raising; the caller reports it."""
    log = logging.getLogger("bigdl.dllib.utils.log4Error")
    disabled, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = disabled


def load(path):
    """Load a BigDL model file (``saveModel`` protobuf format, or the older ``save`` Java serialization)
    and return the Scala module, in evaluation mode."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: no such BigDL model file: {path}")
    with open(path, "rb") as fh:
        legacy = fh.read(2) == JAVA_SERIALIZATION
    with quiet_stdout(), _quiet_bigdl_errors():
        from bigdl.dllib.utils.common import callBigDlFunc
        try:
            module = (callBigDlFunc("float", "loadBigDL", str(path)) if legacy
                      else callBigDlFunc("float", "loadBigDLModule", str(path), None))
        except Exception as exc:  # py4j errors for foreign files; BigDL wraps some in RuntimeError
            raise SystemExit(f"error: {path} is not a model file saved by BigDL (BigDL cannot load it: "
                             f"{_java_reason(exc)})") from None
    module.evaluate()
    return module


def _java_reason(exc) -> str:
    cause = getattr(exc, "java_exception", None)
    if cause is None:
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    while cause.getCause() is not None:
        cause = cause.getCause()
    return f"{cause.getClass().getSimpleName()}: {str(cause.getMessage())[:200]}"


# -------------------------------------------------------------------------------------------- conversion
def _kind(jvm) -> str:
    return jvm.getClass().getSimpleName()


def _array(tensor):
    """A BigDL tensor (py4j) -> float32 numpy array (None for a missing tensor)."""
    if tensor is None:
        return None
    from bigdl.dllib.utils.common import callBigDlFunc

    return np.asarray(callBigDlFunc("float", "toJTensor", tensor).to_ndarray(), dtype=np.float32)


def _private(jvm, name: str):
    """A private Scala field (no public accessor), read through Java reflection."""
    cls = jvm.getClass()
    while cls is not None:
        for candidate in cls.getDeclaredFields():
            if candidate.getName() == name:
                candidate.setAccessible(True)
                return candidate.get(jvm)
        cls = cls.getSuperclass()
    raise AttributeError(f"{_kind(jvm)} has no field {name}")


def _copy(param: torch.Tensor, value) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(param.shape))


def _nchw(jvm) -> None:
    if str(jvm.format().toString()) != "NCHW":
        raise Unsupported(jvm, " in NHWC format (only NCHW is converted)")


def _conv(jvm) -> nn.Module:
    _nchw(jvm)
    kernel, stride = (jvm.kernelH(), jvm.kernelW()), (jvm.strideH(), jvm.strideW())
    same = jvm.padW() == -1 and jvm.padH() == -1
    conv = nn.Conv2d(jvm.nInputPlane(), jvm.nOutputPlane(), kernel, stride, 0 if same else (jvm.padH(), jvm.padW()),
                     groups=jvm.nGroup(), bias=bool(jvm.withBias()))
    _copy(conv.weight, _array(jvm.weight()))   # BigDL keeps [groups, out/groups, in/groups, kH, kW]
    if conv.bias is not None:
        _copy(conv.bias, _array(jvm.bias()))
    return L.SamePadding(conv, kernel, stride) if same else conv


def _dilated_conv(jvm) -> nn.Module:
    conv = nn.Conv2d(jvm.nInputPlane(), jvm.nOutputPlane(), (jvm.kH(), jvm.kW()), (jvm.dH(), jvm.dW()),
                     (jvm.padH(), jvm.padW()), dilation=(jvm.dilationH(), jvm.dilationW()))
    _copy(conv.weight, _array(jvm.weight()))
    _copy(conv.bias, _array(jvm.bias()))
    return conv


def _batch_norm(jvm) -> nn.Module:
    spatial = _kind(jvm) == "SpatialBatchNormalization"
    if spatial and str(_private(jvm, "dataFormat").toString()) != "NCHW":
        raise Unsupported(jvm, " in NHWC format (only NCHW is converted)")
    norm = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(jvm.nOutput(), eps=jvm.eps(), affine=bool(jvm.affine()))
    _copy(norm.running_mean, _array(jvm.runningMean()))
    _copy(norm.running_var, _array(jvm.runningVar()))
    if norm.affine:
        _copy(norm.weight, _array(jvm.weight()))
        _copy(norm.bias, _array(jvm.bias()))
    return norm.eval()


def _max_pool(jvm) -> nn.Module:
    _nchw(jvm)
    kernel, stride = (jvm.kH(), jvm.kW()), (jvm.dH(), jvm.dW())
    if jvm.padW() == -1 and jvm.padH() == -1:
        return L.SamePadding(nn.MaxPool2d(kernel, stride), kernel, stride, value=float("-inf"))
    return nn.MaxPool2d(kernel, stride, (jvm.padH(), jvm.padW()), ceil_mode=bool(jvm.ceilMode()))


def _avg_pool(jvm) -> nn.Module:
    _nchw(jvm)
    divide = bool(_private(jvm, "divide"))
    if jvm.globalPooling():
        return L.GlobalAveragePool(divide)
    kernel, stride = (jvm.kH(), jvm.kW()), (jvm.dH(), jvm.dW())
    if jvm.padW() == -1 or jvm.padH() == -1 or not divide:
        raise Unsupported(jvm, " with SAME padding or without division")
    return nn.AvgPool2d(kernel, stride, (jvm.padH(), jvm.padW()), ceil_mode=bool(jvm.ceilMode()),
                        count_include_pad=bool(_private(jvm, "countIncludePad")))


def _linear(jvm) -> nn.Module:
    linear = nn.Linear(jvm.inputSize(), jvm.outputSize(), bias=bool(jvm.withBias()))
    _copy(linear.weight, _array(jvm.weight()))
    if linear.bias is not None:
        _copy(linear.bias, _array(jvm.bias()))
    return linear


def _reshape(jvm) -> nn.Module:
    batch_mode = jvm.batchMode()   # Option: None means "batched when the element count says so"
    literal = batch_mode.isDefined() and not batch_mode.get()
    return L.Reshape(list(jvm.size()), per_sample=not literal)


def _dropout(jvm) -> nn.Module:
    return nn.Identity() if jvm.scale() else L.Scaled(1.0 - float(jvm.getP()))


def _squeeze(jvm) -> nn.Module:
    dims = jvm.dims()
    return L.Squeeze(None if dims is None else list(dims), bool(jvm.batchMode()))


def _scale(jvm) -> nn.Module:
    return L.ChannelAffine(_array(jvm.cmul().weight()).reshape(list(jvm.size())),
                           _array(jvm.cadd().bias()).reshape(list(jvm.size())))


LAYERS = {
    "SpatialConvolution": _conv,
    "SpatialDilatedConvolution": _dilated_conv,
    "SpatialBatchNormalization": _batch_norm,
    "BatchNormalization": _batch_norm,
    "ReLU": lambda j: nn.ReLU(),
    "ReLU6": lambda j: nn.Hardtanh(0.0, 6.0),
    "HardTanh": lambda j: nn.Hardtanh(j.minValue(), j.maxValue()),
    "Threshold": lambda j: nn.Threshold(j.threshold(), j.value()),
    "Sigmoid": lambda j: nn.Sigmoid(),
    "Tanh": lambda j: nn.Tanh(),
    "SpatialMaxPooling": _max_pool,
    "SpatialAveragePooling": _avg_pool,
    "SpatialCrossMapLRN": lambda j: nn.LocalResponseNorm(j.size(), j.alpha(), j.beta(), j.k()),
    "Linear": _linear,
    "CMul": lambda j: L.ChannelAffine(weight=_array(j.weight())),
    "CAdd": lambda j: L.ChannelAffine(bias=_array(j.bias())),
    "Scale": _scale,
    "View": lambda j: L.Reshape(list(j.sizes())),
    "Reshape": _reshape,
    "InferReshape": lambda j: L.Reshape(list(_private(j, "size")), per_sample=bool(j.batchMode())),
    "Squeeze": _squeeze,
    "Dropout": _dropout,
    "Identity": lambda j: nn.Identity(),
    "Input": lambda j: nn.Identity(),
    "SoftMax": lambda j: nn.Softmax(dim=1),
    "LogSoftMax": lambda j: nn.LogSoftmax(dim=-1),
    "CAddTable": lambda j: L.SumTable(),
    "JoinTable": lambda j: L.Join(j.dimension(), j.nInputDims()),
}
CONTAINERS = ("Sequential", "ConcatTable", "Concat", "ParallelTable", "StaticGraph", "GraphNet")
SUPPORTED = sorted(CONTAINERS + tuple(LAYERS))


def convert(jvm) -> Converted:
    """Rebuild a BigDL module (py4j) in torch; raises Unsupported naming the first layer it cannot."""
    kind, name = _kind(jvm), str(jvm.getName())
    if kind == "GraphNet":   # Analytics Zoo's Net.load_bigdl / new_graph wrapper around a plain module
        return convert(jvm.module())
    if kind == "StaticGraph":
        return _graph(jvm)
    if kind in CONTAINERS:
        modules = jvm.modules()
        children = [convert(modules.apply(i)) for i in range(modules.size())]
        parts = [c.module for c in children]
        built = {"Sequential": lambda: nn.Sequential(*parts), "ConcatTable": lambda: L.Branches(parts),
                 "ParallelTable": lambda: L.Parallel(parts),
                 "Concat": lambda: L.Concat(parts, jvm.dimension() - 1)}[kind]()
        return Converted(kind, name, jvm, built, children)
    if kind not in LAYERS:
        raise Unsupported(jvm)
    return Converted(kind, name, jvm, LAYERS[kind](jvm).eval())


def _graph(jvm) -> Converted:
    nodes = list(jvm.getSortedForwardExecutions())
    index = {str(node.element().getName()): i for i, node in enumerate(nodes)}
    sources = []
    for node in nodes:
        links = node.prevNodesAndEdges()
        pairs = [links.apply(k) for k in range(links.size())]
        sources.append([(index[str(prev._1().element().getName())],
                         int(prev._2().fromIndex().get()) if prev._2().fromIndex().isDefined() else None)
                        for prev in pairs])
    outputs = jvm.outputs()
    roots = sum(1 for s in sources if not s)
    if roots != 1 or outputs.size() != 1:
        raise Unsupported(jvm, f" with {roots} inputs and {outputs.size()} outputs (one of each is converted)")
    children = [convert(node.element()) for node in nodes]
    output = index[str(outputs.apply(0).element().getName())]
    return Converted("StaticGraph", str(jvm.getName()), jvm, L.Graph([c.module for c in children], sources, output),
                     children, nodes)


# ---------------------------------------------------------------------------------------------- checking
def bigdl_forward(jvm, batch: np.ndarray) -> np.ndarray:
    with quiet_stdout():
        from bigdl.dllib.nn.layer import Layer
        out = Layer(jvm, "float").forward(np.ascontiguousarray(batch, dtype=np.float32))
    if isinstance(out, list):
        raise SystemExit("error: the chosen BigDL output is a table of several tensors, not one tensor")
    return np.asarray(out, dtype=np.float32)


def check(module: nn.Module, jvm, size: int, what: str, flatten: bool = False, say=print) -> float:
    """Run BigDL (``jvm``) and ``module`` on one random 2 x 3 x size x size batch; SystemExit unless they
    agree within TOLERANCE x max(1, max |output|).  Returns the largest absolute difference."""
    batch = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    try:
        with _quiet_bigdl_errors():
            expected = bigdl_forward(jvm, batch)
    except SystemExit:
        raise
    except Exception as exc:  # py4j / BigDL errors, e.g. an input size the model cannot take
        raise SystemExit(f"error: BigDL's own forward fails on a 2 x 3 x {size} x {size} batch (is --input-size "
                         f"right?): {_java_reason(exc)}") from None
    with torch.no_grad():
        try:
            actual = module.eval()(torch.from_numpy(batch)).numpy()
        except RuntimeError as exc:
            raise SystemExit(f"error: converted {what} fails where BigDL's forward works: "
                             f"{str(exc).strip().splitlines()[0][:300]}") from None
    if flatten:
        expected = expected.reshape(len(expected), -1)
    if actual.shape != expected.shape:
        raise SystemExit(f"error: converted {what} gives shape {tuple(actual.shape)}, BigDL {tuple(expected.shape)}")
    worst = float(np.abs(actual - expected).max())
    limit = TOLERANCE * max(1.0, float(np.abs(expected).max()))
    if not worst <= limit:
        raise SystemExit(f"error: converted {what} differs from BigDL's own forward by {worst:.2e} "
                         f"(allowed {limit:.1e}); refusing it")
    say(f"converted {what} matches BigDL's own forward: max |diff| {worst:.1e}")
    return worst


# ------------------------------------------------------------------------------------------- entry points
def _converted(model_file) -> Converted:
    jvm = load(model_file)
    try:
        return convert(jvm)
    except Unsupported as exc:
        raise SystemExit(f"error: {os.path.basename(str(model_file))}: {exc}, which sqlext cannot convert to ONNX. "
                         f"Supported: {', '.join(SUPPORTED)}") from None


def featurizer(model_file, feature_layer: str = None, size: int = 224, say=print) -> tuple:
    """The frozen featurizer of a BigDL model: ``feature_layer``'s output (default: the input of the
    classifier's last Linear), flattened to ``[N, features]``.  Returns ``(torch module, max |diff|)``."""
    model = _converted(model_file)
    if feature_layer:
        path = path_to(model, feature_layer)
        if path is None:
            raise SystemExit(f"error: the BigDL model has no layer {feature_layer!r}; its layers: "
                             f"{', '.join(model.names())}")
        module, jvm = cut(model, path, inclusive=True)
    else:
        path = classifier_path(model)
        if not path:
            raise SystemExit("error: cannot tell where the BigDL model's classifier starts (it does not end in a "
                             "Linear, optionally followed by SoftMax/LogSoftMax); name the feature layer with "
                             f"--bigdl-feature-layer (layers: {', '.join(model.names())})")
        module, jvm = cut(model, path, inclusive=False)
    featurizer_ = L.Flatten(module).eval()
    worst = check(featurizer_, jvm, size, "BigDL featurizer", flatten=True, say=say)
    return featurizer_, worst


def classifier(model_file, size: int = 224, say=print) -> tuple:
    """The whole BigDL model as a classifier giving probabilities ``[N, classes]``.
    Returns ``(torch module, number of classes, max |diff|)``."""
    model = _converted(model_file)
    worst = check(model.module, model.jvm, size, "BigDL model", say=say)
    last = model
    while last.kind in CHAINS and last.children:
        last = last.children[last.module.output] if last.kind == "StaticGraph" else last.children[-1]
    probabilities = L.Probabilities(model.module, last.kind).eval()
    with torch.no_grad():
        out = probabilities(torch.zeros(1, 3, size, size))
    if out.dim() != 2:
        raise SystemExit(f"error: the BigDL model's output has shape {tuple(out.shape)}; a classifier gives "
                         "[N, classes]")
    return probabilities, int(out.shape[1]), worst
