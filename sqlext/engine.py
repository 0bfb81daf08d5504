"""The inference engine: OpenVINO running a bundle's ONNX graph on uint8 NHWC batches.

Normalisation ``(pixel - mean) / std``, the channel order (``sqlext.preprocess``: RGB, or
BGR for models that want it) and the NHWC->NCHW transpose are compiled into the graph with
OpenVINO's PrePostProcessor, so callers hand over the decoded uint8 RGB tiles as they are and
the bundle's ONNX contract (normalised float input) stays intact.  OpenVINO was measured
fastest on these CPUs (README: Engine).
"""
import os
import sys

# `import openvino` sends a usage event from a thread that forks a process: in a forked Spark
# Python worker that can deadlock (seen: a worker stuck on the logging lock), and sqlext must not
# phone home.  With `openvino_telemetry` unimportable, OpenVINO uses its built-in no-op stub.
sys.modules.setdefault("openvino_telemetry", None)

import numpy as np  # noqa: E402
import openvino as ov  # noqa: E402
from openvino.preprocess import PrePostProcessor  # noqa: E402

from .preprocess import channel_order  # noqa: E402

_CORE = None


def _core() -> ov.Core:
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


def default_threads() -> int:
    return int(os.environ.get("SQLEXT_ENGINE_THREADS", "1"))


class Engine:
    """A compiled bundle.  ``predict(tiles)`` maps ``[N, H, W, 3]`` uint8 to ``[N, C]`` float32."""

    def __init__(self, onnx_bytes: bytes, preprocess: dict, threads: int = None):
        model = _core().read_model(onnx_bytes)
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        steps = ppp.input().preprocess().convert_element_type(ov.Type.f32) \
            .mean([float(m) for m in preprocess["mean"]]) \
            .scale([float(s) for s in preprocess["std"]])
        if channel_order(preprocess) == "bgr":  # after mean/std: those are listed R, G, B
            steps.reverse_channels()
        config = {
            "ENABLE_CPU_PINNING": False,  # pinned threads of two Python workers pile onto one core
            "INFERENCE_NUM_THREADS": threads or default_threads(),
            "PERFORMANCE_HINT": "LATENCY",
            # the bundle's graph is float32; on CPUs with AVX512-BF16/AMX OpenVINO would otherwise run it in
            # bfloat16 and move probabilities by ~1e-2 (and flip close top-1 labels)
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._compiled = _core().compile_model(ppp.build(), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.input_size = int(preprocess["crop"])

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        if len(tiles) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        # share_inputs: OpenVINO reads the caller's array in place instead of copying it into its tensor
        result = self._request.infer({0: np.ascontiguousarray(tiles)}, share_inputs=True)
        return np.array(result[self._compiled.output(0)], dtype=np.float32, copy=True)
