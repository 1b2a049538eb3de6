"""Inference backends behind one contract (base.Backend) and the selection logic for ``backend: auto``."""

from __future__ import annotations

from pathlib import Path

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.backends.model_files import read_model_info
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.model_info import ModelOverrides

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt", "torch_cuda", "torch_cpu")

__all__ = ["Backend", "TensorSpec", "BACKEND_NAMES", "create_backend", "read_model_info"]


def create_backend(
    name: str,
    model_path,
    overrides: ModelOverrides | None = None,
    device: int = 0,
    compile_dir=None,
    precision: str = "fp16",
) -> tuple[Backend, str]:
    """Build the backend ``name`` for ``model_path``; returns (backend, why it was chosen).

    auto: an .engine runs on TensorRT; an LCSNet .pth runs on PyTorch CUDA (the GPU path) when a
    GPU is present, else PyTorch on the CPU (torch_cpu: the reference, slow); an .onnx runs on ONNX
    Runtime (its CUDA provider where installed, else the CPU).

    torch_cuda only: ``precision`` (fp16, the default, or fp32) and ``compile_dir``, a directory
    prepared by torch_compile.prepare_compiled_model (``convert``): with a matching marker there
    the model is compiled from its warm cache, else it runs uncompiled; the returned line then
    ends with which of the two, and why.
    """
    if name not in BACKEND_NAMES:
        raise ConfigError(f"backend {name!r} is unknown; use one of {BACKEND_NAMES}")
    path = Path(model_path)
    if name == "auto":
        if path.suffix == ".engine":
            name, why = "tensorrt", "model_path is a TensorRT engine"
        elif path.suffix == ".pth":
            from lcsnet_seg.gpu import unavailable_reason

            gpu_problem = unavailable_reason() or _torch_cuda_problem()
            if gpu_problem is None:
                name, why = "torch_cuda", "model_path is a .pth and a CUDA GPU is present"
            else:
                from lcsnet_seg.backends.pytorch import TorchBackend

                return (
                    TorchBackend.from_checkpoint(path, overrides),
                    f"model_path is a .pth but the GPU path is unavailable ({gpu_problem}): PyTorch on the CPU",
                )
        else:
            name, why = "onnxruntime", "model_path is an ONNX model"
    else:
        why = "requested by the backend parameter"
    if name == "torch_cpu":
        if path.suffix != ".pth":
            raise ConfigError(f"backend torch_cpu runs weights (.pth), got {path}")
        from lcsnet_seg.backends.pytorch import TorchBackend

        return TorchBackend.from_checkpoint(path, overrides), why
    if name == "onnxruntime":
        if path.suffix != ".onnx":
            raise ConfigError(f"backend onnxruntime needs an .onnx model, got {path}; export it with convert")
        from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, overrides), why
    if name == "torch_cuda":
        if path.suffix != ".pth":
            raise ConfigError(f"backend torch_cuda runs LCSNet weights (.pth), got {path}")
        from lcsnet_seg.backends.pytorch import TorchBackend

        backend = TorchBackend.from_checkpoint(
            path, overrides, device=f"cuda:{device}", precision=precision, compile_dir=compile_dir
        )
        return backend, f"{why}; {backend.compile_status}"
    if path.suffix != ".engine":
        raise ConfigError(f"backend tensorrt needs an .engine file, got {path}; build one with convert")
    from lcsnet_seg.backends.tensorrt import TensorRTBackend
    from lcsnet_seg.errors import BackendUnavailable

    try:
        return TensorRTBackend(path, overrides, device=device), why
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"engine {path} cannot run here: {exc}") from None


def _torch_cuda_problem() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "PyTorch has no CUDA device"
