"""Every difference between TensorRT 10.x and 11.x (and the lean runtime) that this package meets, in one place.

Written for TensorRT 10.x (JetPack 6 ships 10.3) and 11.x. TensorRT 11 removed weak typing (precision builder
flags, INT8 calibrators, calibration profiles, quantization flags), the first version of the engine's
device-memory query and more (test/data/tensorrt_api/: the Python names of 10.3 and 11.1, from NVIDIA's
bindings); this package uses only names present in both, and guards the few newer than 10.3 behind
``version_at_least`` (test/test_tensorrt_names.py checks both). Precision is decided in the ONNX
(``convert --precision``) and every network is built strongly typed. Never executed with a TensorRT builder
here: no machine of this project can install one.

The runtime module: the full ``tensorrt`` package where it is installed, else the lean runtime (``tensorrt_lean``,
or ``tensorrt_lean_bindings`` as the tensorrt-lean-cu13 wheels name it), which deserialises and runs
version-compatible engines but has no builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lcsnet_seg.errors import BackendUnavailable

if TYPE_CHECKING:
    import tensorrt as trt

SUPPORTED_MAJORS = (10, 11)
RUNTIME_MODULES = ("tensorrt", "tensorrt_lean", "tensorrt_lean_bindings")  # the first that imports is used


def import_runtime() -> tuple[Any, str]:
    """(the TensorRT module, its import name): the full ``tensorrt`` or else a lean runtime. BackendUnavailable
    naming what to install when none imports, or when what imports has no bindings (stubs only)."""
    import importlib

    for name in RUNTIME_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "__version__", None) is None or not hasattr(module, "Runtime"):
            continue  # e.g. a namespace package of type stubs, or an sdist stub without the bindings
        return module, name
    raise BackendUnavailable(
        "TensorRT not found: engine not built; the ONNX model runs with backend onnxruntime "
        "(install TensorRT 10.x or 11.x: JetPack's python3-libnvinfer, NVIDIA's tensorrt wheels, or the "
        "tensorrt-lean runtime for version-compatible engines)"
    )


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); unreadable parts end the tuple."""
    parts = []
    for part in str(version).split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def version_at_least(trt_module, major: int, minor: int = 0) -> bool:
    """Whether the running TensorRT is ``major.minor`` or newer: the guard for every name newer than 10.3
    (test_tensorrt_names.py treats the body of ``if version_at_least(...)`` as guarded)."""
    return version_tuple(getattr(trt_module, "__version__", "0"))[:2] >= (major, minor)


def check_version(version: str) -> None:
    """Refuse a TensorRT whose major version this package was not written for (one line)."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise BackendUnavailable(f"TensorRT reports an unreadable version {version!r}") from None
    if major < SUPPORTED_MAJORS[0]:
        raise BackendUnavailable(
            f"TensorRT {version} is too old: 10.x or 11.x is needed (name-based I/O, "
            "strongly typed networks); on Jetson use JetPack 6 or newer"
        )
    if major > SUPPORTED_MAJORS[-1]:
        raise BackendUnavailable(
            f"TensorRT {version} is newer than this package was written for (10.x, 11.x); "
            "check its migration guide, or install TensorRT 11.x"
        )


def network_flags(trt_module) -> int:
    """Creation flags for a strongly typed network.

    On 10.x STRONGLY_TYPED must be set (the network takes its precision from the ONNX: fp16 tensors
    run in fp16, Q/DQ pairs in int8). On 11.x every network is strongly typed and the flag is
    accepted but ignored, so setting it is right on both.
    """
    flag = getattr(trt_module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:  # a release after 11.x that drops the deprecated flag: strong typing is unconditional there
        return 0
    return 1 << int(flag)


def engine_device_memory_bytes(engine: trt.ICudaEngine) -> int:
    """Device memory an execution context needs (``device_memory_size_v2``: 10.1+ and 11.x).

    The unversioned query it replaced is gone in 11.x and never used here.
    """
    return int(engine.device_memory_size_v2)


def numpy_dtype(trt_module, dtype: trt.DataType) -> np.dtype:
    """numpy dtype of an engine I/O tensor; only the types the backends exchange (float32, float16)."""
    known: dict[object, type] = {trt_module.DataType.FLOAT: np.float32, trt_module.DataType.HALF: np.float16}
    if dtype not in known:
        from lcsnet_seg.errors import ModelFileError

        raise ModelFileError(
            f"engine tensor type {dtype} is not float32/float16; convert keeps the model's "
            "input and output in float32, rebuild the engine with `convert`"
        )
    return np.dtype(known[dtype])


def dims(shape: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (-1 for a dynamic dimension)."""
    return tuple(int(d) for d in shape[0 : len(shape)])
