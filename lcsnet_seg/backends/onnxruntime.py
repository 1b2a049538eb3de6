"""ONNX Runtime backend: the CPU path (and the CUDA execution provider where installed)."""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.backends.model_files import graph_io, onnx_file_info
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelInfo, ModelOverrides, load_onnx

_ORT_DTYPES: dict[str, np.dtype] = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}
_ONNX_DTYPES = {1: "tensor(float)", 10: "tensor(float16)"}  # onnx.TensorProto.FLOAT, FLOAT16


def validate_onnx_file(model_path, overrides: ModelOverrides | None = None) -> tuple[ModelInfo, TensorSpec, TensorSpec]:
    """Read and check an ONNX file before any runtime loads it: readable, described (its lcsnet_seg metadata or
    ``overrides``), one image input and one logits output of fitting shapes. Returns (model info with the
    overrides applied, input spec, output spec; dynamic dimensions None)."""
    model = load_onnx(model_path)
    info = onnx_file_info(model, model_path, overrides)
    inputs, outputs = graph_io(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(
            f"model file {model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "expected one image input and one logits output"
        )

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        kind = _ONNX_DTYPES.get(tensor.elem_type, f"elem_type {tensor.elem_type}")
        return _spec(value.name, dims, kind)

    inp, out = spec(inputs[0]), spec(outputs[0])
    check_io_specs(str(model_path), info, inp, out)
    return info, inp, out


def _spec(name: str, shape, kind: str) -> TensorSpec:
    if kind not in _ORT_DTYPES:
        raise ModelFileError(f"tensor '{name}' has type {kind}; float32 or float16 expected")
    return TensorSpec(name, tuple(d if isinstance(d, int) and d > 0 else None for d in shape), _ORT_DTYPES[kind])


# The most images one call takes from a model with a dynamic batch dimension (several cameras of one node)
DYNAMIC_MAX_BATCH = 16


class OnnxRuntimeBackend(Backend):
    """``input_spec``/``output_spec`` are the shapes at the model's input size: a dynamic output (e.g. logits of a
    dynamic-size model, at 1/4 of its input) is resolved by one inference at load. ``max_batch``: the model's fixed
    batch, or for a dynamic batch dimension the max_batch its metadata records (convert --max-batch), else
    DYNAMIC_MAX_BATCH."""

    name = "onnxruntime"
    supports_host = True

    def __init__(
        self,
        model_path,
        overrides: ModelOverrides | None = None,
        providers: list[str] | None = None,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        check_model_path(model_path)
        info, file_input, file_output = validate_onnx_file(model_path, overrides)
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
        super().__init__(info)
        self.providers = self._session.get_providers()
        h, w = info.input_size
        fixed = file_input.shape[0]  # None: a dynamic batch
        self._fixed_batch = None if fixed is None else int(fixed)
        # a dynamic batch: as many as convert --max-batch recorded, else (an ONNX from elsewhere) DYNAMIC_MAX_BATCH
        self.max_batch = self._fixed_batch or (info.max_batch if info.max_batch > 1 else DYNAMIC_MAX_BATCH)
        self._input = TensorSpec(file_input.name, (1, 3, h, w), file_input.dtype)
        self._output = TensorSpec(file_output.name, (1, *file_output.shape[1:]), file_output.dtype)
        if None in self._output.shape:  # the real logit size at this input size, from the runtime itself
            probe = self.infer(np.zeros((self._fixed_batch or 1, 3, h, w), file_input.dtype))
            self._output = TensorSpec(file_output.name, (1, *(int(d) for d in probe.shape[1:])), file_output.dtype)
            check_io_specs(str(model_path), info, self._input, self._output)

    @property
    def device(self) -> str:
        return "cuda (ONNX Runtime CUDA provider)" if self.providers[0].startswith("CUDA") else "cpu"

    def batch_size_for(self, images: int) -> int:
        """A model exported with a fixed batch runs at exactly that batch (the rest of it padding)."""
        return self._fixed_batch or images

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self._input.dtype:
            batch = batch.astype(self._input.dtype)
        return self._session.run([self._output.name], {self._input.name: batch})[0]

    def close(self) -> None:
        self._session = None
