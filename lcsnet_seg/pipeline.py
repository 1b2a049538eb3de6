"""The CPU Segmenter (preprocess -> backend -> postprocess, with per-stage timings) and the one
factory, build_segmenter, that every caller uses: it picks the backend for (model, backend name,
device) and the Segmenter that fits it (the GPU Segmenter for a device-pointer backend). Both
Segmenters keep the contract in segmentation.FrameSegmenter.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.model_info import ModelInfo, ModelOverrides
from lcsnet_seg.postprocess import argmax_labels, as_three_channel, blend, colourise, max_softmax, resize_nearest
from lcsnet_seg.preprocess import preprocess

# re-exported: scripts import these from lcsnet_seg.pipeline
from lcsnet_seg.segmentation import (  # noqa: F401
    DEFAULT_OUTPUTS,
    OUTPUT_SIZES,
    OUTPUTS,
    FrameSegmenter,
    SegmentationResult,
    check_alpha,
    check_request,
)


class Segmenter:
    """Segments H x W x C uint8 images with one backend.

    overlay_alpha: weight of the class colour in the overlay, 0..1 (changeable at run time).
    output_size: "input" (outputs at the image's size) or "network" (at the model input size).
    Each result owns its arrays (results_reused is false).
    """

    results_reused = False

    def __init__(self, backend: Backend, overlay_alpha: float = 0.5, output_size: str = "input") -> None:
        if output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {output_size!r} must be one of {OUTPUT_SIZES}")
        self.backend = backend
        self.overlay_alpha = check_alpha(overlay_alpha)
        self.output_size = output_size
        h, w = self.info.input_size
        self._input = np.empty((1, 3, h, w), np.float32)  # allocated once, reused every frame
        self._palette = self.info.classes.palette_rgb()

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def device(self) -> str:
        return self.backend.device

    def __call__(
        self, image: np.ndarray, pixel_format_name: str = "rgb8", outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> SegmentationResult:
        """Segment one image. ``pixel_format_name``: rgb8, bgr8, rgba8, bgra8 or mono8."""
        fmt, image = check_request(image, pixel_format_name, outputs)
        t0 = time.perf_counter()
        preprocess(image, fmt, self.info, out=self._input)
        t1 = time.perf_counter()
        logits = self.backend.infer(self._input)[0]
        t2 = time.perf_counter()
        if logits.dtype != np.float32:
            logits = logits.astype(np.float32)
        labels = argmax_labels(logits)
        confidence = max_softmax(logits) if "confidence" in outputs else None
        if self.output_size == "input":
            height, width = image.shape[:2]
        else:
            height, width = self.info.input_size
        labels = resize_nearest(labels, height, width)
        if confidence is not None:
            confidence = resize_nearest(confidence, height, width)
        result = SegmentationResult(labels=labels, confidence=confidence, overlay_order=fmt.output_order)
        if "color_mask" in outputs:
            result.color_mask = colourise(labels, self._palette, "rgb")
        if "overlay" in outputs:
            base = as_three_channel(image, fmt)
            if base.shape[:2] != (height, width):
                base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
            if result.color_mask is None:
                colours = colourise(labels, self._palette, fmt.output_order)
            elif fmt.output_order == "bgr":
                colours = cv2.cvtColor(result.color_mask, cv2.COLOR_RGB2BGR)
            else:
                colours = result.color_mask
            result.overlay = blend(base, colours, self.overlay_alpha)
        t3 = time.perf_counter()
        result.timings_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return result

    def close(self) -> None:
        self.backend.close()


def build_segmenter(
    model_path,
    backend: str = "auto",
    device: int = 0,
    *,
    overrides: ModelOverrides | None = None,
    overlay_alpha: float = 0.5,
    output_size: str = "input",
    compile_dir=None,
    cuda_graph: bool = True,
) -> tuple[FrameSegmenter, str]:
    """The one factory: the backend for ``model_path`` (create_backend: ``backend`` auto, onnxruntime,
    tensorrt or torch_cuda, on CUDA ``device``), then the Segmenter that fits it. Returns (segmenter,
    one line saying why this backend). ``compile_dir`` and ``cuda_graph``: torch_cuda only (see
    backends.torch_compile and gpu.segmenter)."""
    from lcsnet_seg.backends import create_backend

    chosen, why = create_backend(backend, model_path, overrides, device=device, compile_dir=compile_dir)
    try:
        return make_segmenter(chosen, overlay_alpha, output_size, device, cuda_graph=cuda_graph), why
    except BaseException:
        chosen.close()
        raise


def make_segmenter(
    backend: Backend,
    overlay_alpha: float = 0.5,
    output_size: str = "input",
    device_id: int = 0,
    cuda_graph: bool = True,
) -> FrameSegmenter:
    """The GPU Segmenter for a device-pointer backend (TensorRT, torch_cuda), else the CPU Segmenter.

    cuda_graph: on a backend that can capture (torch_cuda), run each frame as one replayed CUDA graph;
    False runs the GPU path eagerly (the reference, with per-stage timings)."""
    if backend.supports_device:
        from lcsnet_seg.gpu.segmenter import GpuSegmenter

        return GpuSegmenter(backend, overlay_alpha, output_size, device_id, cuda_graph=cuda_graph)
    return Segmenter(backend, overlay_alpha, output_size)
