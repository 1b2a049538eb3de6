"""GPU pre/post-processing with cuda-python (cuda.core: NVRTC compile, launch; cuda.bindings: copies).

Importing this package needs nothing GPU-specific; ``available()`` says whether the GPU path can run.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when cuda.core imports and a CUDA device is present, else why not (one line)."""
    try:
        import cuda.core  # noqa: F401  (importable is part of the question)
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        return f"cuda-python (cuda.core, cuda.bindings) is not installed ({exc.name})"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        return f"no CUDA device ({err.name if hasattr(err, 'name') else err})"
    return None


def available() -> bool:
    return unavailable_reason() is None
