"""TensorRT backend (TensorRT 10.x and 11.x, or the lean runtime; name-based I/O): an engine checked against its
sidecar, deserialised and run on the GPU Segmenter's stream.

NOT EXECUTED with an engine on any machine this package was developed on: none can install the TensorRT builder,
so no engine exists. The lean runtime (tensorrt-lean-cu13 11.4) was imported on the GPU machine, where every
runtime name used here exists and a corrupt plan is refused (docs/MODELS.md). The code uses only names present
in 10.3 and 11.x (test_tensorrt_names.py), is type-checked against tensorrt-stubs (``make typecheck``), checks
every TensorRT result that signals failure, and runs the backend contract tests wherever an engine can be built.

Frames run as CUDA graphs: graph_capture "stream" (the GPU Segmenter captures execute_async_v3 after two
warm-up frames with the input shape set, NVIDIA's condition for capturing enqueueV3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lcsnet_seg.backends.base import Backend, TensorSpec, check_io_specs, check_model_path
from lcsnet_seg.backends.tensorrt_compat import dims, engine_device_memory_bytes, numpy_dtype
from lcsnet_seg.backends.tensorrt_runtime import gpu_identity, require_tensorrt, select_device
from lcsnet_seg.backends.tensorrt_sidecar import load_engine_sidecar, version_compatible
from lcsnet_seg.errors import ModelFileError
from lcsnet_seg.model_info import ModelOverrides

if TYPE_CHECKING:  # the stub types: mypy checks every call on these objects (the module itself is chosen at run time)
    import tensorrt as trtt

log = logging.getLogger(__name__)


class TensorRTBackend(Backend):
    name = "tensorrt"
    supports_device = True
    # execute_async_v3 is capturable once it has run with the input shapes set (the GPU Segmenter warms up first)
    graph_capture = "stream"

    def __init__(self, engine_path, overrides: ModelOverrides | None = None, onnx_path=None, device: int = 0) -> None:
        """``device``: the CUDA device index; it is selected before the engine is deserialised."""
        trt, version = require_tensorrt()
        check_model_path(engine_path)
        select_device(device)
        gpu_name, capability = gpu_identity(device)
        doc, self.note = load_engine_sidecar(
            engine_path, tensorrt_version=version, compute_capability=capability, onnx_path=onnx_path
        )
        if self.note:
            log.info("%s: %s", engine_path, self.note)
        super().__init__(doc["model_info_parsed"].with_overrides(overrides))
        self._trt = trt
        self._gpu, self._device_index = gpu_name, device
        runtime: trtt.Runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if version_compatible(doc) and not doc.get("build", {}).get("exclude_lean_runtime"):
            # a version-compatible engine carries its own lean runtime as host code: allowed for this engine only,
            # whose bytes the sidecar's hash has just vouched for
            runtime.engine_host_code_allowed = True
        self._runtime: trtt.Runtime | None = runtime
        engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if engine is None:
            raise ModelFileError(
                f"engine {engine_path} could not be deserialised by TensorRT {version} (see the TensorRT log "
                "above); rebuild it on this machine with `ros2 run lcsnet_seg convert`"
            )
        self._engine: trtt.ICudaEngine | None = engine
        self.device_memory_bytes = engine_device_memory_bytes(engine)
        specs: dict[str, list[TensorSpec]] = {"input": [], "output": []}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
            shape = tuple(d if d >= 0 else None for d in dims(engine.get_tensor_shape(name)))
            specs[mode].append(TensorSpec(name, shape, numpy_dtype(trt, engine.get_tensor_dtype(name))))
        if len(specs["input"]) != 1 or len(specs["output"]) != 1:
            raise ModelFileError(
                f"engine {engine_path} has {len(specs['input'])} inputs and "
                f"{len(specs['output'])} outputs; expected one image input and one logits output"
            )
        inp, out = specs["input"][0], specs["output"][0]
        recorded = {(t["name"], t["mode"]) for t in doc.get("io", [])}
        if recorded and recorded != {(inp.name, "input"), (out.name, "output")}:
            raise ModelFileError(
                f"engine {engine_path} tensors {inp.name}/{out.name} differ from "
                f"its sidecar {sorted(recorded)}: the sidecar belongs to another engine"
            )
        check_io_specs(str(engine_path), self.info, inp, out)
        context = engine.create_execution_context()
        if context is None:
            raise ModelFileError(
                f"engine {engine_path}: TensorRT could not create an execution context (out of GPU memory? "
                f"it needs {self.device_memory_bytes >> 20} MiB of device memory)"
            )
        self._context: trtt.IExecutionContext | None = context
        # the batch range: a fixed batch, or the optimisation profile's (convert --max-batch: 1..N)
        if inp.shape[0] is None:
            low, _, high = (dims(d)[0] for d in engine.get_tensor_profile_shape(inp.name, 0))
            self._batches = (int(low), int(high))
        else:
            self._batches = (int(inp.shape[0]), int(inp.shape[0]))
        self.max_batch = self._batches[1]
        h, w = self.info.input_size
        self._batch = self._batches[0]  # the batch the context's input shape is set for (plan_batch changes it)
        if None in inp.shape and not context.set_input_shape(inp.name, trt.Dims([self._batch, 3, h, w])):
            profile = doc.get("profile") or {}
            raise ModelFileError(
                f"engine {engine_path}: input '{inp.name}' cannot take shape {self._batch}x3x{h}x{w}: its optimisation "
                f"profile "
                f"is min {profile.get('min')}, opt {profile.get('opt')}, max {profile.get('max')}; set input_size "
                "within it or rebuild the engine with --min-shape/--opt-shape/--max-shape covering it"
            )
        out_shape = dims(context.get_tensor_shape(out.name))  # the logits' real size (1/4 of the input: SegFormer)
        if any(d < 0 for d in out_shape):
            raise ModelFileError(f"engine {engine_path}: output '{out.name}' has no concrete shape ({out_shape})")
        self._input = TensorSpec(inp.name, (1, 3, h, w), inp.dtype)
        self._output = TensorSpec(out.name, (1, *(int(d) for d in out_shape[1:])), out.dtype)
        check_io_specs(str(engine_path), self.info, self._input, self._output)
        self._addresses: tuple[int, int] | None = None

    @property
    def device(self) -> str:
        return f"cuda:{self._device_index} ({self._gpu}, TensorRT)"

    def plan_batch(self, images: int) -> None:
        """One input shape for every frame: the batch the profile allows for ``images`` images. Changing a context's
        input shape invalidates CUDA graphs captured under the old one, and contexts cannot share a dynamic profile,
        so fewer images than planned run padded to it."""
        low, high = self._batches
        batch = min(max(int(images), low), high)
        if batch == self._batch:
            return
        h, w = self.info.input_size
        context = self._context
        if context is None or not context.set_input_shape(self._input.name, self._trt.Dims([batch, 3, h, w])):
            raise ModelFileError(
                f"TensorRT refused batch {batch} for '{self._input.name}' (the engine takes {low}..{high})"
            )
        self._batch = batch

    def batch_size_for(self, images: int) -> int:
        return self._batch

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int, batch: int = 1) -> None:
        context = self._context
        if context is None:
            raise RuntimeError("TensorRT backend used after close()")
        if batch != self._batch:
            raise RuntimeError(f"TensorRT backend planned for batch {self._batch} was given {batch} (plan_batch first)")
        if self._addresses != (input_ptr, output_ptr):  # set once per pair of buffers, checked
            for tensor, address in ((self._input.name, input_ptr), (self._output.name, output_ptr)):
                if not context.set_tensor_address(tensor, int(address)):
                    raise RuntimeError(f"TensorRT refused the address of tensor '{tensor}' (see the TensorRT log)")
            self._addresses = (input_ptr, output_ptr)
        if not context.execute_async_v3(int(stream_handle)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None
        self._addresses = None
