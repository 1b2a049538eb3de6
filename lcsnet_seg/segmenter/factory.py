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

DECODERS = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class SegmenterConfig:
    """backend: auto, onnxruntime, tensorrt, torch_cuda, torch_cpu (backends.BACKEND_NAMES); device: CUDA index;
    overrides: what configuration says about the model (ModelOverrides); compile_dir: torch_cuda's prepared
    torch.compile cache (None: uncompiled); cuda_graph: GPU frames as replayed CUDA graphs where the backend
    allows; overlay_alpha, output_size: the Segmenter's starting run-time settings; max_batch: the most images one
    segment_batch call runs in one backend call (a node's camera count; the backend's own limit also holds);
    max_graphs: the CUDA graphs (one per batch composition: images present, sizes, outputs) kept at most;
    decoder: where JPEG frames are decoded: cpu (OpenCV), gpu (nvImageCodec on the GPU Segmenter's device and stream;
    an error naming what to install where it cannot), auto (gpu where the Segmenter runs on the GPU and
    nvImageCodec decodes there, else cpu)."""

    backend: str = "auto"
    device: int = 0
    overrides: ModelOverrides = field(default_factory=ModelOverrides)
    compile_dir: Path | None = None
    cuda_graph: bool = True
    overlay_alpha: float = 0.5
    output_size: str = "input"
    max_batch: int = 1
    max_graphs: int = 4
    decoder: str = "cpu"

    def __post_init__(self) -> None:
        from lcsnet_seg.backends import BACKEND_NAMES

        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"backend {self.backend!r} is unknown; use one of {BACKEND_NAMES}")
        if self.output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {self.output_size!r} must be one of {OUTPUT_SIZES}")
        check_alpha(self.overlay_alpha)
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder {self.decoder!r} must be one of {', '.join(DECODERS)}")
        for name in ("max_batch", "max_graphs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} {getattr(self, name)} must be at least 1")


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

        gpu = GpuSegmenter(
            backend,
            config.overlay_alpha,
            config.output_size,
            config.device,
            cuda_graph=config.cuda_graph,
            max_graphs=config.max_graphs,
            max_batch=config.max_batch,
        )
        if config.decoder != "cpu":
            _add_gpu_decoder(gpu, config.decoder)
        return gpu
    if config.decoder == "gpu":
        raise ConfigError(
            f"decoder gpu needs the GPU path, and backend {backend.name} runs on the CPU: use backend torch_cuda or "
            "tensorrt on a CUDA GPU, or decoder auto or cpu"
        )
    from lcsnet_seg.segmenter.cpu import Segmenter

    return Segmenter(backend, config.overlay_alpha, config.output_size)


def _add_gpu_decoder(gpu, decoder: str) -> None:
    """GPU JPEG decoding for ``gpu`` (decoder gpu: or a one-line error naming what to install; auto: where it can)."""
    from lcsnet_seg.errors import BackendUnavailable

    try:
        gpu.use_gpu_decoder()
    except BackendUnavailable as exc:
        if decoder == "gpu":
            gpu.close()
            raise ConfigError(f"decoder gpu: {exc}") from None
        gpu.decoder_note = f"JPEG frames decoded on the CPU ({exc})"
