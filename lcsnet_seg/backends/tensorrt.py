"""TensorRT backend (TensorRT 10.x and 11.x, name-based I/O): deserialise an engine checked against its sidecar.

NOT EXECUTED on any machine this package was developed on: none has TensorRT. The code uses only
APIs present in both 10.x and 11.x (Runtime.deserialize_cuda_engine, ICudaEngine.num_io_tensors /
get_tensor_name / get_tensor_mode / get_tensor_shape / get_tensor_dtype / device_memory_size_v2,
IExecutionContext.set_input_shape / set_tensor_address / execute_async_v3), is type-checked
against tensorrt-stubs (``make typecheck``), and runs the same backend contract tests as every
other backend wherever `tensorrt` imports.
"""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.backends.tensorrt_compat import dims, engine_device_memory_bytes, numpy_dtype
from lcsnet_seg.backends.tensorrt_runtime import gpu_identity, require_tensorrt, select_device
from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar
from lcsnet_seg.errors import ModelFileError


class TensorRTBackend(Backend):
    name = "tensorrt"
    supports_device = True

    def __init__(self, engine_path, info_overrides: dict | None = None, onnx_path=None, device: int = 0) -> None:
        """``device``: the CUDA device index; it is selected before the engine is deserialised."""
        version = require_tensorrt()
        import tensorrt as trt

        check_model_path(engine_path)
        select_device(device)
        gpu_name, capability = gpu_identity(device)
        doc = load_engine_sidecar(
            engine_path, tensorrt_version=version, compute_capability=capability, onnx_path=onnx_path
        )
        super().__init__(doc["model_info_parsed"].with_overrides(**(info_overrides or {})))
        self._gpu, self._device_index = gpu_name, device
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._runtime: trt.Runtime | None = runtime
        engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if engine is None:
            raise ModelFileError(
                f"engine {engine_path} could not be deserialised by TensorRT {version}; "
                "rebuild it on this machine with `ros2 run lcsnet_seg convert`"
            )
        self._engine: trt.ICudaEngine | None = engine
        self.device_memory_bytes = engine_device_memory_bytes(engine)
        specs: dict[str, list[TensorSpec]] = {"input": [], "output": []}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
            shape = tuple(d if d >= 0 else None for d in dims(engine.get_tensor_shape(name)))
            specs[mode].append(TensorSpec(name, shape, numpy_dtype(engine.get_tensor_dtype(name))))
        if len(specs["input"]) != 1 or len(specs["output"]) != 1:
            raise ModelFileError(
                f"engine {engine_path} has {len(specs['input'])} inputs and "
                f"{len(specs['output'])} outputs; expected one image input and one logits output"
            )
        self._input, self._output = specs["input"][0], specs["output"][0]
        recorded = {(t["name"], t["mode"]) for t in doc.get("io", [])}
        if recorded and recorded != {(self._input.name, "input"), (self._output.name, "output")}:
            raise ModelFileError(
                f"engine {engine_path} tensors {self._input.name}/{self._output.name} differ from "
                f"its sidecar {sorted(recorded)}: the sidecar belongs to another engine"
            )
        check_io_specs(str(engine_path), self.info, self._input, self._output)
        context = engine.create_execution_context()
        self._context: trt.IExecutionContext | None = context
        h, w = self.info.input_size
        if None in self._input.shape:
            context.set_input_shape(self._input.name, trt.Dims([1, 3, h, w]))
        out_shape = dims(context.get_tensor_shape(self._output.name))  # low-resolution logits keep theirs
        self._input = TensorSpec(self._input.name, (1, 3, h, w), self._input.dtype)
        self._output = TensorSpec(
            self._output.name, (1, self.info.num_classes, int(out_shape[2]), int(out_shape[3])), self._output.dtype
        )

    @property
    def device(self) -> str:
        return f"cuda:{self._device_index} ({self._gpu}, TensorRT)"

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        context = self._context
        if context is None:
            raise RuntimeError("TensorRT backend used after close()")
        context.set_tensor_address(self._input.name, int(input_ptr))
        context.set_tensor_address(self._output.name, int(output_ptr))
        if not context.execute_async_v3(int(stream_handle)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None
