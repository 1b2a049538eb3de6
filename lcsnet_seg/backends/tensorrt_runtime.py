"""TensorRT runtime helpers beside the backend: is TensorRT here, which GPU is this, select it.

Used by the backend (backends/tensorrt.py) and by the engine builder (convert/build_engine.py);
imports tensorrt and cuda-python lazily, only when called.
"""

from __future__ import annotations

from lcsnet_seg.errors import BackendUnavailable


def require_tensorrt() -> str:
    """The TensorRT version, after checking it imports and is 10.x or 11.x; else BackendUnavailable."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "TensorRT not found: engine not built; the ONNX model runs with backend onnxruntime"
        ) from None
    version = getattr(trt, "__version__", None)
    if version is None:  # e.g. only type stubs installed: a namespace package without the bindings
        raise BackendUnavailable(
            "TensorRT not found (the tensorrt package here has no bindings): engine not "
            "built; the ONNX model runs with backend onnxruntime"
        )
    from lcsnet_seg.backends.tensorrt_compat import check_version

    version = str(version)
    check_version(version)
    return version


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise BackendUnavailable("cuda-python not found: TensorRT needs it here (pip install cuda-python)") from None
    return cudart


def select_device(device: int) -> None:
    """Make CUDA device ``device`` current for this thread (before an engine is built or deserialised)."""
    cudart = _cudart()
    if device < 0:
        raise BackendUnavailable(f"CUDA device {device} does not exist; use 0 or higher")
    (err,) = cudart.cudaSetDevice(device)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailable(f"CUDA device {device} cannot be selected ({err}); check the device parameter")


def gpu_identity(device: int) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of CUDA device ``device``, via cuda-python."""
    cudart = _cudart()
    err, props = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailable(
            f"no CUDA GPU {device} available ({err}); the engine must be built and run on the target GPU"
        )
    return props.name.decode(errors="replace").rstrip("\x00"), f"{props.major}.{props.minor}"
