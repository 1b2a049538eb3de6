"""The CPU Segmenter: preprocess -> backend (host arrays) -> postprocess, with per-stage timings; the reference
the GPU Segmenter is checked against. It keeps the contract in segmenter/contract.py.
"""

from __future__ import annotations

import time

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.postprocess import frame_outputs
from lcsnet_seg.preprocess import preprocess
from lcsnet_seg.segmenter.contract import (
    DEFAULT_OUTPUTS,
    OUTPUT_SIZES,
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
        out_hw = image.shape[:2] if self.output_size == "input" else self.info.input_size
        labels, arrays = frame_outputs(logits, image, fmt, outputs, out_hw, self._palette, self.overlay_alpha)
        result = SegmentationResult(labels=labels, arrays=arrays, overlay_order=fmt.output_order)
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
