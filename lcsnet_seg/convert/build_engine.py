"""ONNX -> TensorRT engine: a strongly typed network, on TensorRT 10.x and 11.x alike.

The precision is decided in the ONNX before this stage (``convert --precision``: ``NAME.fp16.onnx``
holds fp16 tensors, ``NAME.int8.onnx`` Q/DQ pairs); the builder keeps the types it is given. No
weak-typing API (precision builder flags, INT8 calibrators, calibration profiles) is used: TensorRT
11 removed them. Not executed on the machines this package is developed on (none has TensorRT);
type-checked against tensorrt-stubs (``make typecheck``). Everything around it (quantisation,
parity, sidecar) is tested.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lcsnet_seg.errors import ConfigError, ModelFileError
from lcsnet_seg.model_info import ModelInfo

if TYPE_CHECKING:
    import tensorrt as trt

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class EngineOptions:
    """precision: what the ONNX holds (recorded in the sidecar; the builder does not change it)."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    timing_cache: Path | None = None
    # (height, width) triples for a dynamic-shape optimisation profile; None = static model
    min_hw: tuple[int, int] | None = None
    opt_hw: tuple[int, int] | None = None
    max_hw: tuple[int, int] | None = None
    device: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        if self.workspace_mb <= 0:
            raise ConfigError(f"workspace {self.workspace_mb} MB must be positive")


def build_engine(onnx_path, engine_path, info: ModelInfo, options: EngineOptions, log=print) -> Path:
    """Parse ``onnx_path``, build, serialise to ``engine_path`` and write the JSON sidecar beside it.

    Both files are written under temporary names and renamed only once the build succeeded.
    """
    from lcsnet_seg.backends.tensorrt_compat import dims, network_flags
    from lcsnet_seg.backends.tensorrt_runtime import gpu_identity, require_tensorrt, select_device
    from lcsnet_seg.backends.tensorrt_sidecar import sidecar_path, write_sidecar

    version = require_tensorrt()
    import tensorrt as trt

    select_device(options.device)
    gpu_name, capability = gpu_identity(options.device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags())
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT could not parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    cache = None
    if options.timing_cache is not None:
        blob = Path(options.timing_cache).read_bytes() if Path(options.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    profile_doc = _add_profile(builder, network, config, options)
    config.progress_monitor = _progress_monitor()
    log(
        f"building TensorRT {version} engine (strongly typed, {options.precision} from the ONNX) for {gpu_name} "
        f"(sm {capability}); this takes a minute or more"
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path = Path(engine_path)
    partial = engine_path.with_name(engine_path.name + ".partial")
    partial.write_bytes(bytes(serialized))
    if cache is not None and options.timing_cache is not None:
        Path(options.timing_cache).write_bytes(bytes(cache.serialize()))
    io = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        io.append({"name": t.name, "mode": "input", "shape": list(dims(t.shape)), "dtype": str(t.dtype)})
    for i in range(network.num_outputs):
        t = network.get_output(i)
        io.append({"name": t.name, "mode": "output", "shape": list(dims(t.shape)), "dtype": str(t.dtype)})
    doc = write_sidecar(
        partial,
        info=info,
        onnx_path=onnx_path,
        tensorrt_version=version,
        gpu_name=gpu_name,
        compute_capability=capability,
        precision=options.precision,
        io=io,
        profile=profile_doc,
    )
    os.replace(partial, engine_path)
    os.replace(doc, sidecar_path(engine_path))
    return engine_path


def _add_profile(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig, options: EngineOptions
) -> dict | None:
    """An optimisation profile for a model with dynamic height/width; None for a static model."""
    import tensorrt as trt

    from lcsnet_seg.backends.tensorrt_compat import dims

    input_tensor = network.get_input(0)
    if not any(d < 0 for d in dims(input_tensor.shape)):
        return None
    if not (options.min_hw and options.opt_hw and options.max_hw):
        raise ConfigError("the ONNX model has dynamic height/width: give --min-shape, --opt-shape and --max-shape")
    profile = builder.create_optimization_profile()
    shapes = [(1, 3, *hw) for hw in (options.min_hw, options.opt_hw, options.max_hw)]
    profile.set_shape(
        input_tensor.name, trt.Dims(list(shapes[0])), trt.Dims(list(shapes[1])), trt.Dims(list(shapes[2]))
    )
    config.add_optimization_profile(profile)
    return {"input": input_tensor.name, "min": shapes[0], "opt": shapes[1], "max": shapes[2]}


def _progress_monitor() -> trt.IProgressMonitor:
    """A TensorRT IProgressMonitor drawing one tqdm bar per builder phase."""
    import tensorrt as trt
    from tqdm import tqdm

    class TqdmMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=False)

        def step_complete(self, phase_name: str, step: int) -> bool:
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return TqdmMonitor()
