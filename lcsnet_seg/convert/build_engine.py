"""ONNX -> TensorRT engine (TensorRT 10+ Python API, name-based I/O).

Not executed on the machines this package is developed on (none has TensorRT); the code follows
the TensorRT 10 API reference and is kept thin. Everything around it (ONNX export, sidecar,
calibration image sources) is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lcsnet_seg.errors import BackendUnavailable, ConfigError, ModelFileError
from lcsnet_seg.model_info import ModelInfo

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class EngineOptions:
    precision: str = "fp16"
    workspace_mb: int = 1024
    timing_cache: Path | None = None
    # (height, width) triples for a dynamic-shape optimisation profile; None = static model
    min_hw: tuple[int, int] | None = None
    opt_hw: tuple[int, int] | None = None
    max_hw: tuple[int, int] | None = None
    calibration_batches: Iterator[np.ndarray] | None = None  # 1 x 3 x H x W float32, for int8
    calibration_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} must be one of {PRECISIONS}")
        if self.workspace_mb <= 0:
            raise ConfigError(f"workspace {self.workspace_mb} MB must be positive")


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT not found: engine not built; the ONNX model runs with backend "
                                 "onnxruntime") from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: 10.0 or newer is needed for name-based I/O")
    return trt


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of device 0, via cuda-python."""
    from cuda.bindings import runtime as cudart

    err, props = cudart.cudaGetDeviceProperties(0)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailable(f"no CUDA GPU available ({err}); the engine must be built on the target GPU")
    return props.name.decode(errors="replace").rstrip("\x00"), f"{props.major}.{props.minor}"


def build_engine(onnx_path, engine_path, info: ModelInfo, options: EngineOptions, log=print) -> Path:
    """Parse ``onnx_path``, build, serialise to ``engine_path`` and write the JSON sidecar beside it."""
    from lcsnet_seg.convert.sidecar import write_sidecar

    trt = import_tensorrt()
    gpu_name, capability = gpu_identity()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT could not parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "int8":
        if not hasattr(trt, "IInt8EntropyCalibrator2"):
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no implicit INT8 calibration; "
                                     "quantise the ONNX explicitly (Q/DQ) and build with fp16")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        config.int8_calibrator = _make_calibrator(trt, options, info)
    cache = None
    if options.timing_cache is not None:
        blob = Path(options.timing_cache).read_bytes() if Path(options.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    input_tensor = network.get_input(0)
    profile_doc = None
    if any(d < 0 for d in input_tensor.shape):
        if not (options.min_hw and options.opt_hw and options.max_hw):
            raise ConfigError("the ONNX model has dynamic height/width: give --min-shape, --opt-shape and --max-shape")
        profile = builder.create_optimization_profile()
        shapes = [(1, 3, *hw) for hw in (options.min_hw, options.opt_hw, options.max_hw)]
        profile.set_shape(input_tensor.name, *shapes)
        config.add_optimization_profile(profile)
        profile_doc = {"input": input_tensor.name, "min": shapes[0], "opt": shapes[1], "max": shapes[2]}
    if hasattr(trt, "IProgressMonitor"):  # TensorRT 10: show the builder's phases as progress bars
        config.progress_monitor = _progress_monitor(trt)
    log(f"building TensorRT {trt.__version__} engine ({options.precision}) for {gpu_name} (sm {capability}); "
        "this takes a minute or more")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path = Path(engine_path)
    engine_path.write_bytes(bytes(serialized))
    if cache is not None:
        Path(options.timing_cache).write_bytes(bytes(cache.serialize()))
    io = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        io.append({"name": t.name, "mode": "input", "shape": list(t.shape), "dtype": str(t.dtype)})
    for i in range(network.num_outputs):
        t = network.get_output(i)
        io.append({"name": t.name, "mode": "output", "shape": list(t.shape), "dtype": str(t.dtype)})
    write_sidecar(engine_path, info=info, onnx_path=onnx_path, tensorrt_version=trt.__version__, gpu_name=gpu_name,
                  compute_capability=capability, precision=options.precision, io=io, profile=profile_doc)
    return engine_path


def _progress_monitor(trt):
    """A TensorRT IProgressMonitor drawing one tqdm bar per builder phase."""
    from tqdm import tqdm

    class TqdmMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=False)

        def step_complete(self, phase_name, step) -> bool:
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return TqdmMonitor()


def _make_calibrator(trt, options: EngineOptions, info: ModelInfo):
    """An entropy calibrator over ``options.calibration_batches``; the cache is written and reused."""
    from cuda.bindings import runtime as cudart

    if options.calibration_batches is None and not (options.calibration_cache and
                                                    Path(options.calibration_cache).is_file()):
        raise ConfigError("int8 needs calibration images (--calib-folder or --calib-bag) or an existing --calib-cache")
    h, w = info.input_size
    nbytes = 3 * h * w * 4

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = options.calibration_batches
            err, self.device_buffer = cudart.cudaMalloc(nbytes)
            if err != cudart.cudaError_t.cudaSuccess:
                raise BackendUnavailable(f"cudaMalloc of the calibration buffer failed ({err})")

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            batch = next(self.batches, None) if self.batches is not None else None
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch, np.float32)
            cudart.cudaMemcpy(self.device_buffer, batch.ctypes.data, nbytes,
                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
            return [int(self.device_buffer)]

        def read_calibration_cache(self):
            cache = options.calibration_cache
            return Path(cache).read_bytes() if cache and Path(cache).is_file() else None

        def write_calibration_cache(self, cache) -> None:
            if options.calibration_cache:
                Path(options.calibration_cache).write_bytes(bytes(cache))

    return EntropyCalibrator()
