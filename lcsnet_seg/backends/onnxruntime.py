"""ONNX Runtime backend: the CPU path (and the CUDA execution provider where installed)."""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelInfo, onnx_model_info

_ORT_DTYPES: dict[str, np.dtype] = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}
_ONNX_DTYPES = {1: "tensor(float)", 10: "tensor(float16)"}  # onnx.TensorProto.FLOAT, FLOAT16


def validate_onnx_file(model_path) -> tuple[ModelInfo, TensorSpec, TensorSpec]:
    """Read and check an ONNX file before any runtime loads it: readable, lcsnet_seg metadata, one image
    input and one logits output of fitting shapes. Returns (model info, input spec, output spec)."""
    from types import SimpleNamespace

    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelFileError(
            f"model file {model_path} is not a readable ONNX model ({type(exc).__name__}); "
            "re-export it with `ros2 run lcsnet_seg convert`"
        ) from None
    info = onnx_model_info(model, model_path)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(
            f"model file {model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "expected one image input and one logits output"
        )

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else "?" for d in tensor.shape.dim]
        return _spec(
            SimpleNamespace(
                name=value.name, shape=dims, type=_ONNX_DTYPES.get(tensor.elem_type, f"elem_type {tensor.elem_type}")
            )
        )

    inp, out = spec(inputs[0]), spec(outputs[0])
    check_io_specs(str(model_path), info, inp, out)
    return info, inp, out


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    if arg.type not in _ORT_DTYPES:
        raise ModelFileError(f"tensor '{arg.name}' has type {arg.type}; float32 or float16 expected")
    return TensorSpec(arg.name, shape, _ORT_DTYPES[arg.type])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    supports_host = True

    def __init__(
        self, model_path, info_overrides: dict | None = None, providers: list[str] | None = None, threads: int = 0
    ) -> None:
        import onnxruntime as ort

        check_model_path(model_path)
        file_info, _, _ = validate_onnx_file(model_path)
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
            raise ModelFileError(
                f"model file {model_path} could not be loaded by ONNX Runtime ({first}); "
                "check that it is a complete ONNX model"
            ) from None
        super().__init__(file_info.with_overrides(**(info_overrides or {})))
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFileError(
                f"model file {model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected one image input and one logits output"
            )
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
