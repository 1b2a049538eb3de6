"""ONNX Runtime backend: the CPU path (and the CUDA execution provider where installed)."""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import METADATA_KEY, ModelInfo

_ORT_DTYPES = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    if arg.type not in _ORT_DTYPES:
        raise ModelFileError(f"tensor '{arg.name}' has type {arg.type}; float32 or float16 expected")
    return TensorSpec(arg.name, shape, _ORT_DTYPES[arg.type])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    supports_host = True

    def __init__(self, model_path, info_overrides: dict | None = None, providers: list[str] | None = None,
                 threads: int = 0) -> None:
        import onnxruntime as ort

        check_model_path(model_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"model file {model_path} could not be loaded by ONNX Runtime ({first}); "
                                 "check that it is a complete ONNX model") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ModelFileError(f"model file {model_path} has no '{METADATA_KEY}' metadata (class names, mean/std, "
                                 "input size); export it with `ros2 run lcsnet_seg convert`")
        info = ModelInfo.from_json(meta[METADATA_KEY], source=f"model file {model_path}")
        super().__init__(info.with_overrides(**(info_overrides or {})))
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFileError(f"model file {model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                                 "expected one image input and one logits output")
        self._input, self._output = _spec(inputs[0]), _spec(outputs[0])
        check_io_specs(str(model_path), self.info, self._input, self._output)
        self.providers = self._session.get_providers()

    @property
    def device(self) -> str:
        return "cuda (ONNX Runtime CUDA provider)" if self.providers[0].startswith("CUDA") else "cpu"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self._input.dtype:
            batch = batch.astype(self._input.dtype)
        return self._session.run([self._output.name], {self._input.name: batch})[0]

    def close(self) -> None:
        self._session = None
