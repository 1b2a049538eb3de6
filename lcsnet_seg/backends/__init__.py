"""Inference backends behind one contract (base.Backend) and the selection logic for ``backend: auto``."""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.errors import BackendUnavailable, ConfigError

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt", "torch_cuda")

__all__ = ["Backend", "TensorSpec", "BACKEND_NAMES", "create_backend"]


def create_backend(name: str, model_path, info_overrides: dict | None = None) -> tuple[Backend, str]:
    """Build the backend ``name`` for ``model_path``; returns (backend, why it was chosen).

    ``auto`` picks TensorRT for an .engine file, else ONNX Runtime (CPU, or its CUDA provider
    where present).
    """
    if name not in BACKEND_NAMES:
        raise ConfigError(f"backend {name!r} is unknown; use one of {BACKEND_NAMES}")
    path = Path(model_path)
    if name == "auto":
        if path.suffix == ".engine":
            name, why = "tensorrt", "model_path is a TensorRT engine"
        else:
            name, why = "onnxruntime", "model_path is an ONNX model"
    else:
        why = "requested by the backend parameter"
    if name == "onnxruntime":
        if path.suffix == ".engine":
            raise ConfigError(f"backend onnxruntime cannot run the TensorRT engine {path}; "
                              "point model_path at the .onnx file")
        from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, info_overrides), why
    raise BackendUnavailable(f"backend {name!r} is not available in this build; use backend onnxruntime "
                             "with an .onnx model")
