"""ONNX -> TensorRT engine: a strongly typed network, on TensorRT 10.x and 11.x alike, that proves its precision.

The precision is decided in the ONNX before this stage (``convert --precision``: ``NAME.fp16.onnx``
holds fp16 tensors, ``NAME.int8.onnx`` Q/DQ pairs); the builder keeps the types it is given. No
weak-typing API (precision builder flags, INT8 calibrators, calibration profiles) is used: TensorRT
11 removed them. TF32 is cleared unless asked for (``allow_tf32``): on 10.x and 11.x it is on by default,
so an "fp32" engine would otherwise run its convolutions in TF32. Every TensorRT result that signals a
failure is checked. The engine is built with detailed profiling verbosity; the engine inspector's
per-layer precisions go into the sidecar, and a build whose convolutions do not run in the precision
asked for (fewer than ``min_precision_share`` of them) is refused (PrecisionError, convert's exit 3),
naming the layers that fell back. ``version_compatible`` builds an engine that newer TensorRT runtimes of
the same major version (the lean runtime included) can run.

Not executed on the machines this package is developed on (none can install the TensorRT builder);
type-checked against tensorrt-stubs (``make typecheck``) and name-checked against 10.3 and 11.x
(test_tensorrt_names.py). Everything around the build (quantisation, parity, sidecar, the layer report's
parsing and the precision verdict) is tested.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lcsnet_seg.errors import ConfigError, ModelFileError
from lcsnet_seg.model_info import ModelInfo

if TYPE_CHECKING:
    import tensorrt as trtt

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineOptions:
    """precision: what the ONNX holds (the builder keeps it; recorded in the sidecar and verified after the
    build). min/opt/max_hw: (height, width) of a dynamic-shape optimisation profile; None for a static model.
    max_batch: the model's max batch (ModelInfo.max_batch): an ONNX with a dynamic batch gets a profile of batch
    1 (min) to max_batch (opt and max: the node fills a batch with one frame per camera)."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    timing_cache: Path | None = None
    min_hw: tuple[int, int] | None = None
    opt_hw: tuple[int, int] | None = None
    max_hw: tuple[int, int] | None = None
    max_batch: int = 1
    device: int = 0
    allow_tf32: bool = False
    version_compatible: bool = False
    min_precision_share: float = 0.9

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        if self.workspace_mb <= 0:
            raise ConfigError(f"workspace {self.workspace_mb} MB must be positive")
        if not 0.0 <= self.min_precision_share <= 1.0:
            raise ConfigError(f"min_precision_share {self.min_precision_share} must be within 0..1")
        if self.max_batch < 1:
            raise ConfigError(f"max batch {self.max_batch} must be at least 1")


def build_engine(onnx_path, engine_path, info: ModelInfo, options: EngineOptions, log=print) -> Path:
    """Parse ``onnx_path``, build, check the engine's layer precisions, serialise to ``engine_path`` and write the
    JSON sidecar beside it. Both files are written under temporary names and renamed only once all holds."""
    from lcsnet_seg.backends.tensorrt_compat import dims, network_flags
    from lcsnet_seg.backends.tensorrt_layers import check_precision, precision_report
    from lcsnet_seg.backends.tensorrt_runtime import gpu_identity, require_tensorrt, select_device
    from lcsnet_seg.backends.tensorrt_sidecar import sidecar_path, write_sidecar

    trt, version = require_tensorrt(builder=True)
    select_device(options.device)
    gpu_name, capability = gpu_identity(options.device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder: trtt.Builder = trt.Builder(logger)
    network: trtt.INetworkDefinition = builder.create_network(network_flags(trt))
    parser: trtt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT could not parse {onnx_path}: {errors[:300]}")
    config: trtt.IBuilderConfig = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if not options.allow_tf32:
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: an fp32 engine would run TF32 convolutions
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector reports each layer's precision
    cache, cache_note = _timing_cache(config, options.timing_cache)
    if cache_note:
        log(cache_note)
    profile_doc = _add_profile(trt, builder, network, config, options)
    config.progress_monitor = _progress_monitor(trt)
    extras = "".join(
        text
        for text, on in ((", TF32 allowed", options.allow_tf32), (", version-compatible", options.version_compatible))
        if on
    )
    log(
        f"building TensorRT {version} engine (strongly typed, {options.precision} from the ONNX{extras}) for "
        f"{gpu_name} (sm {capability}); this takes a minute or more"
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    plan = bytes(serialized)
    report = precision_report(_inspect(trt, logger, plan, options.version_compatible, onnx_path))
    check_precision(report, options.precision, options.min_precision_share, str(onnx_path), options.allow_tf32)
    log(
        f"engine layers: {report['convolutions']} convolutions, "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["convolution_precisions"].items()))
    )
    engine_path = Path(engine_path)
    partial = engine_path.with_name(engine_path.name + ".partial")
    partial.write_bytes(plan)
    if cache is not None and options.timing_cache is not None:
        Path(options.timing_cache).write_bytes(bytes(cache.serialize()))  # this build's, never a rejected one
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
        build={"tf32": options.allow_tf32, "version_compatible": options.version_compatible},
        layers=report,
    )
    os.replace(partial, engine_path)
    os.replace(doc, sidecar_path(engine_path))
    return engine_path


def _timing_cache(config: trtt.IBuilderConfig, path: Path | None) -> tuple[trtt.ITimingCache | None, str | None]:
    """The builder's timing cache from ``path`` (created when missing). A cache TensorRT rejects (another GPU or
    TensorRT, or a damaged file) is replaced by a fresh one, which this build then writes back in its place."""
    if path is None:
        return None, None
    blob = Path(path).read_bytes() if Path(path).is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
    except Exception:  # noqa: BLE001 - a damaged file: some releases raise instead of returning None
        cache = None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return cache, None
    fresh = config.create_timing_cache(b"")
    if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
        raise ModelFileError("TensorRT refused even an empty timing cache; build without --timing-cache")
    return fresh, f"timing cache {path} was rejected by TensorRT (another GPU or version, or damaged): rebuilt"


def _inspect(trt, logger, plan: bytes, version_compatible: bool, onnx_path) -> str:
    """The engine inspector's JSON for a just-built plan (deserialised by the same TensorRT)."""
    runtime: trtt.Runtime = trt.Runtime(logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True  # the plan carries its lean runtime: ours, just built
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ModelFileError(f"the engine just built from {onnx_path} could not be deserialised (see the log)")
    inspector = engine.create_engine_inspector()
    if inspector is None:
        raise ModelFileError(f"TensorRT gave no engine inspector for the engine built from {onnx_path}")
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def profile_shapes(
    input_shape: tuple[int, ...], options: EngineOptions
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(min, opt, max) N x C x H x W of the input's optimisation profile; None for a fully static input.

    A dynamic batch (-1) spans 1 .. ``max_batch`` (opt at ``max_batch``); a dynamic height/width takes
    min/opt/max_hw (all three needed); a static dimension stays what it is. A fixed batch cannot take
    ``max_batch`` > 1 (ConfigError).
    """
    if len(input_shape) != 4:
        raise ConfigError(f"the ONNX model's input has shape {input_shape}; an image model takes N x 3 x H x W")
    n, c, h, w = (int(d) for d in input_shape)
    if n >= 0 and options.max_batch > 1:
        raise ConfigError(
            f"the ONNX model has a fixed batch of {n} but max batch {options.max_batch} was asked for: export it with "
            f"a dynamic batch (`convert WEIGHTS.pth --max-batch {options.max_batch}`)"
        )
    if min(n, c, h, w) >= 0:
        return None
    if h < 0 or w < 0:
        if not (options.min_hw and options.opt_hw and options.max_hw):
            raise ConfigError("the ONNX model has dynamic height/width: give --min-shape, --opt-shape and --max-shape")
        sizes = (options.min_hw, options.opt_hw, options.max_hw)
    else:
        sizes = ((h, w),) * 3
    channels = c if c >= 0 else 3
    batches = (1, options.max_batch, options.max_batch) if n < 0 else (n, n, n)
    low, opt, high = ((b, channels, *hw) for b, hw in zip(batches, sizes))
    return low, opt, high


def _add_profile(
    trt, builder: trtt.Builder, network: trtt.INetworkDefinition, config: trtt.IBuilderConfig, options: EngineOptions
) -> dict | None:
    """The optimisation profile of a model with a dynamic batch or height/width (profile_shapes); None for a static
    model. The sidecar's ``profile`` holds its shapes and batch range, for the runtime to learn from."""
    from lcsnet_seg.backends.tensorrt_compat import dims

    input_tensor = network.get_input(0)
    shapes = profile_shapes(tuple(dims(input_tensor.shape)), options)
    if shapes is None:
        return None
    profile = builder.create_optimization_profile()
    profile.set_shape(
        input_tensor.name, trt.Dims(list(shapes[0])), trt.Dims(list(shapes[1])), trt.Dims(list(shapes[2]))
    )
    if config.add_optimization_profile(profile) < 0:
        raise ConfigError(
            f"TensorRT refused the optimisation profile of input '{input_tensor.name}' (min {shapes[0]}, opt "
            f"{shapes[1]}, max {shapes[2]}): min <= opt <= max must hold in every dimension and fit the model"
        )
    return profile_doc(input_tensor.name, shapes)


def profile_doc(input_name: str, shapes) -> dict:
    """The sidecar's ``profile`` entry: the input, its min/opt/max shapes, and the batch range they span."""
    low, opt, high = (list(shape) for shape in shapes)
    return {"input": input_name, "min": low, "opt": opt, "max": high, "min_batch": low[0], "max_batch": high[0]}


def _progress_monitor(trt) -> trtt.IProgressMonitor:
    """A TensorRT IProgressMonitor drawing one tqdm bar per builder phase."""
    from tqdm import tqdm

    class TqdmMonitor(trt.IProgressMonitor):  # the runtime module's class
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
