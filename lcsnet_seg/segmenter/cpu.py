"""The CPU Segmenter: preprocess -> backend (host arrays) -> postprocess, with per-stage timings; the reference
the GPU Segmenter is checked against. It keeps the contract in segmenter/contract.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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
    jpeg_decoder: Any = None  # JPEG frames are decoded on the CPU (only the GPU Segmenter decodes on the GPU)

    def __init__(self, backend: Backend, overlay_alpha: float = 0.5, output_size: str = "input") -> None:
        if output_size not in OUTPUT_SIZES:
            raise ConfigError(f"output_size {output_size!r} must be one of {OUTPUT_SIZES}")
        self.backend = backend
        self.overlay_alpha = check_alpha(overlay_alpha)
        self.output_size = output_size
        self._input = np.empty((0, 3, *self.info.input_size), np.float32)  # grown to the largest batch, then reused
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
        return self.segment_batch([(image, pixel_format_name)], outputs)[0]

    def segment_batch(
        self, frames: Sequence[tuple[np.ndarray, str]], outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> list[SegmentationResult]:
        """Segment several images (``(image, pixel format name)`` each, of any sizes and formats) with as few
        backend calls as its batch allows; one result per image, in order. timings_ms are the whole batch's."""
        checked = [check_request(image, name, outputs) for image, name in frames]
        results: list[SegmentationResult] = []
        times = dict.fromkeys(("preprocess", "infer", "postprocess"), 0.0)
        start = time.perf_counter()
        step = max(1, self.backend.max_batch)
        for first in range(0, len(checked), step):
            chunk = checked[first : first + step]
            t0 = time.perf_counter()
            batch = self._batch(self.backend.batch_size_for(len(chunk)))
            for i, (fmt, image) in enumerate(chunk):
                preprocess(image, fmt, self.info, out=batch[i : i + 1])
            t1 = time.perf_counter()
            logits = self.backend.infer(batch)
            t2 = time.perf_counter()
            for i, (fmt, image) in enumerate(chunk):
                one = logits[i] if logits.dtype == np.float32 else logits[i].astype(np.float32)
                out_hw = image.shape[:2] if self.output_size == "input" else self.info.input_size
                labels, arrays = frame_outputs(one, image, fmt, outputs, out_hw, self._palette, self.overlay_alpha)
                results.append(SegmentationResult(labels=labels, arrays=arrays, overlay_order=fmt.output_order))
            t3 = time.perf_counter()
            for stage, ms in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[stage] += ms * 1e3
        timings = {**times, "total": (time.perf_counter() - start) * 1e3}
        for result in results:
            result.timings_ms = dict(timings)
        return results

    def _batch(self, size: int) -> np.ndarray:
        """The model input for ``size`` images: a contiguous view of one buffer, allocated anew only to grow."""
        if len(self._input) < size:
            self._input = np.empty((size, *self._input.shape[1:]), np.float32)
        return self._input[:size]

    def close(self) -> None:
        self.backend.close()
