"""TensorRT backend (TensorRT 10+ name-based I/O): deserialise an engine checked against its sidecar.

NOT EXECUTED on any machine this package was developed on: none has TensorRT. The code follows
the TensorRT 10 Python API (Runtime.deserialize_cuda_engine, ICudaEngine.num_io_tensors /
get_tensor_name / get_tensor_mode / get_tensor_shape / get_tensor_dtype,
IExecutionContext.set_input_shape / set_tensor_address / execute_async_v3) and runs the same
backend contract tests as every other backend wherever `tensorrt` imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.convert.build_engine import gpu_identity, import_tensorrt
from lcsnet_seg.convert.sidecar import check_engine_fits, read_sidecar
from lcsnet_seg.errors import ModelFileError


class TensorRTBackend(Backend):
    name = "tensorrt"
    supports_device = True

    def __init__(self, engine_path, info_overrides: dict | None = None, onnx_path=None,
                 rebuild_if_stale: bool = False) -> None:
        trt = import_tensorrt()
        check_model_path(engine_path)
        doc = read_sidecar(engine_path)
        gpu_name, capability = gpu_identity()
        source_onnx = onnx_path or (Path(engine_path).parent / doc.get("onnx_file", ""))
        try:
            check_engine_fits(engine_path, doc, tensorrt_version=trt.__version__, compute_capability=capability,
                              onnx_path=source_onnx if Path(source_onnx).is_file() else None)
        except ModelFileError:
            if not (rebuild_if_stale and Path(source_onnx).is_file()):
                raise
            from lcsnet_seg.convert.build_engine import EngineOptions, build_engine

            build_engine(source_onnx, engine_path, doc["model_info_parsed"],
                         EngineOptions(precision=doc.get("precision", "fp16")))
            doc = read_sidecar(engine_path)
        super().__init__(doc["model_info_parsed"].with_overrides(**(info_overrides or {})))
        self._gpu = gpu_name
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        self._engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise ModelFileError(f"engine {engine_path} could not be deserialised by TensorRT {trt.__version__}; "
                                 "rebuild it on this machine with `ros2 run lcsnet_seg convert`")
        specs = {"input": [], "output": []}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            mode = "input" if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
            shape = tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            specs[mode].append(TensorSpec(name, shape, np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))))
        if len(specs["input"]) != 1 or len(specs["output"]) != 1:
            raise ModelFileError(f"engine {engine_path} has {len(specs['input'])} inputs and "
                                 f"{len(specs['output'])} outputs; expected one image input and one logits output")
        self._input, self._output = specs["input"][0], specs["output"][0]
        recorded = {(t["name"], t["mode"]) for t in doc.get("io", [])}
        if recorded and recorded != {(self._input.name, "input"), (self._output.name, "output")}:
            raise ModelFileError(f"engine {engine_path} tensors {self._input.name}/{self._output.name} differ from "
                                 f"its sidecar {sorted(recorded)}: the sidecar belongs to another engine")
        check_io_specs(str(engine_path), self.info, self._input, self._output)
        self._context = self._engine.create_execution_context()
        h, w = self.info.input_size
        if None in self._input.shape:
            self._context.set_input_shape(self._input.name, (1, 3, h, w))
        self._input = TensorSpec(self._input.name, (1, 3, h, w), self._input.dtype)
        self._output = TensorSpec(self._output.name, (1, self.info.num_classes, h, w), self._output.dtype)

    @property
    def device(self) -> str:
        return f"cuda ({self._gpu}, TensorRT)"

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        self._context.set_tensor_address(self._input.name, int(input_ptr))
        self._context.set_tensor_address(self._output.name, int(output_ptr))
        if not self._context.execute_async_v3(int(stream_handle)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None
