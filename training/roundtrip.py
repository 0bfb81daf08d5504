"""Check an exported model.onnx against the probabilities the training-time head gave.

The graph is run by ONNX Runtime (an independent runtime) on the decoded tiles, normalised exactly
as the bundle contract says (``sqlext.preprocess.model_input``: ``(pixel - mean) / std``, the
manifest's channel order, NCHW float32).
"""
import numpy as np

from sqlext.preprocess import model_input

TOLERANCE = 1e-4


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the trained head."""


def onnx_probabilities(model_path, tiles: np.ndarray, preprocess: dict) -> np.ndarray:
    """Run ``model_path`` on uint8 NHWC ``tiles``; return its output ``[N, classes]``."""
    import onnxruntime

    # ONNX Runtime's default threads (one per core): the executors are idle while the driver checks
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    batch = model_input(tiles, preprocess)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: np.ascontiguousarray(batch[i:i + 32])})[0]
                           for i in range(0, len(batch), 32)])


def check(model_path, tiles: np.ndarray, expected: np.ndarray, preprocess: dict,
          tolerance: float = TOLERANCE) -> float:
    """Raise ExportMismatch unless the graph's probabilities equal ``expected`` within ``tolerance``;
    return the largest absolute difference."""
    actual = onnx_probabilities(model_path, tiles, preprocess)
    if actual.shape != expected.shape:
        raise ExportMismatch(f"exported graph gives shape {actual.shape}, the head {expected.shape}")
    worst = float(np.abs(actual - expected).max()) if len(actual) else 0.0
    if not worst <= tolerance:
        raise ExportMismatch(f"exported graph differs from the trained head by {worst:.2e} "
                             f"(tolerance {tolerance:.0e}) on {len(actual)} validation image(s)")
    return worst
