"""Every difference between TensorRT 10.x and 11.x that this package meets, in one place.

Written for TensorRT 10.x (JetPack 6 ships 10.3) and 11.x. TensorRT 11 removed weak typing
(precision builder flags, INT8 calibrators, calibration profiles, quantization flags) and the
first version of the engine's device-memory query; this package uses none of them: precision is decided in the
ONNX (``convert --precision``) and every network is built strongly typed. Checked with mypy
against tensorrt-stubs (``make typecheck``); never executed here, as no machine of this project
has TensorRT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lcsnet_seg.errors import BackendUnavailable

if TYPE_CHECKING:
    import tensorrt as trt

SUPPORTED_MAJORS = (10, 11)


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


def network_flags() -> int:
    """Creation flags for a strongly typed network.

    On 10.x STRONGLY_TYPED must be set (the network takes its precision from the ONNX: fp16 tensors
    run in fp16, Q/DQ pairs in int8). On 11.x every network is strongly typed and the flag is
    accepted but ignored, so setting it is right on both.
    """
    import tensorrt as trt

    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:  # a release after 11.x that drops the deprecated flag: strong typing is unconditional there
        return 0
    return 1 << int(flag)


def engine_device_memory_bytes(engine: trt.ICudaEngine) -> int:
    """Device memory an execution context needs (``device_memory_size_v2``: 10.1+ and 11.x).

    The unversioned query it replaced is gone in 11.x and never used here.
    """
    return int(engine.device_memory_size_v2)


def numpy_dtype(dtype: trt.DataType) -> np.dtype:
    """numpy dtype of an engine I/O tensor; only the types the backends exchange (float32, float16)."""
    import tensorrt as trt

    known: dict[object, type] = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}
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
