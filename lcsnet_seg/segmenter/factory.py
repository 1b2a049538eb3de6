"""The one factory every caller uses (the node, evaluate in both modes, the fleet's workers, the benchmarks):
the backend for a model file, then the Segmenter that fits it, from one frozen SegmenterConfig.

What does not change frame by frame lives in SegmenterConfig (the Segmenter is rebuilt when it changes);
overlay_alpha and output_size are the Segmenter's own run-time settings and may change between calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.model_info import ModelOverrides
from lcsnet_seg.segmenter.contract import OUTPUT_SIZES, FrameSegmenter, check_alpha


@dataclass(frozen=True)
class SegmenterConfig:
    """backend: auto, onnxruntime, tensorrt, torch_cuda, torch_cpu (backends.BACKEND_NAMES); device: CUDA index;
    overrides: what configuration says about the model (ModelOverrides); compile_dir: torch_cuda's prepared
    torch.compile cache (None: uncompiled); cuda_graph: GPU frames as replayed CUDA graphs where the backend
    allows; overlay_alpha, output_size: the Segmenter's starting run-time settings."""

    backend: str = "auto"
    device: int = 0
    overrides: ModelOverrides = field(default_factory=ModelOverrides)
    compile_dir: Path | None = None
    cuda_graph: bool = True
    overlay_alpha: float = 0.5
    output_size: str = "input"

    def __post_init__(self) -> None:
        from lcsnet_seg.backends import BACKEND_NAMES

        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"backend {self.backend!r} is unknown; use one of {BACKEND_NAMES}")
        if self.output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {self.output_size!r} must be one of {OUTPUT_SIZES}")
        check_alpha(self.overlay_alpha)


def build_segmenter(model_path, config: SegmenterConfig | None = None) -> tuple[FrameSegmenter, str]:
    """The backend for ``model_path`` (backends.create_backend), then the Segmenter that fits it. Returns
    (segmenter, one line saying why this backend)."""
    from lcsnet_seg.backends import create_backend

    config = config or SegmenterConfig()
    chosen, why = create_backend(
        config.backend, model_path, config.overrides, device=config.device, compile_dir=config.compile_dir
    )
    try:
        return make_segmenter(chosen, config), why
    except BaseException:
        chosen.close()
        raise


def make_segmenter(backend: Backend, config: SegmenterConfig | None = None) -> FrameSegmenter:
    """The GPU Segmenter for a device-pointer backend (TensorRT, torch_cuda), else the CPU Segmenter."""
    config = config or SegmenterConfig()
    if backend.supports_device:
        from lcsnet_seg.segmenter.gpu import GpuSegmenter

        return GpuSegmenter(
            backend, config.overlay_alpha, config.output_size, config.device, cuda_graph=config.cuda_graph
        )
    from lcsnet_seg.segmenter.cpu import Segmenter

    return Segmenter(backend, config.overlay_alpha, config.output_size)
