"""TensorRT runtime helpers beside the backend: is TensorRT here, which GPU is this, select it.

Used by the backend (backends/tensorrt.py) and by the engine builder (convert/build_engine.py);
imports tensorrt and cuda-python lazily, only when called.
"""

from __future__ import annotations

from lcsnet_seg.errors import BackendUnavailable


def require_tensorrt(builder: bool = False):
    """(the TensorRT module, its version) after checking it imports and is 10.x or 11.x; else BackendUnavailable.
    ``builder``: the engine builder is needed, which only the full ``tensorrt`` package has (not the lean runtime)."""
    from lcsnet_seg.backends.tensorrt_compat import check_version, import_runtime

    module, name = import_runtime()
    version = str(module.__version__)
    check_version(version)
    if builder and not hasattr(module, "Builder"):
        raise BackendUnavailable(
            f"only the TensorRT lean runtime ({name} {version}) is installed here: it runs engines but cannot "
            "build one; build the engine where the full TensorRT is installed (a version-compatible engine, "
            "convert --version-compatible, runs on this lean runtime)"
        )
    return module, version


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
