"""The Segmenter contract, and what both Segmenters share: the result of one frame and the checks of
a request.

Its own module so that the CPU Segmenter (cpu.py), the GPU Segmenter (gpu.py) and the factory
(factory.py) all import it and none of them imports another back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lcsnet_seg.backends.base import Backend
from lcsnet_seg.errors import ConfigError
from lcsnet_seg.image_formats import PixelFormat, check_image, pixel_format
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.outputs import OUTPUTS as OUTPUT_TABLE

# The result fields a Segmenter can be asked for: the output table's (lcsnet_seg/outputs.py), in its order.
OUTPUTS = tuple(o.field for o in OUTPUT_TABLE)
DEFAULT_OUTPUTS = ("labels", "color_mask", "overlay")
OUTPUT_SIZES = ("input", "network")


@dataclass
class SegmentationResult:
    """Outputs of one frame: ``labels`` always, every other output of the output table (lcsnet_seg/outputs.py)
    that was asked for in ``arrays`` by its field name, and read as an attribute too (``result.overlay``; None
    when not requested), so a new output needs no change here.

    labels: H x W uint8 class ids. color_mask: H x W x 3 uint8 RGB. overlay: H x W x 3 uint8 in
    ``overlay_order`` (the input's colour order; rgb for mono). confidence: H x W float32 in [0, 1].
    H x W is the input size, or the network input size when output_size == "network".
    timings_ms: preprocess, infer, postprocess, total; a GPU Segmenter replaying CUDA graphs reports
    total and gpu only (segmenter/gpu.py).
    """

    labels: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    overlay_order: str = "rgb"
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray | None:
        if name in OUTPUTS:  # an output of the table that was not requested
            return self.__dict__.get("arrays", {}).get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def copy(self) -> SegmentationResult:
        """A result that owns its arrays: keep this, not the original, past the Segmenter's next call when
        the Segmenter's ``results_reused`` is true."""
        return replace(
            self,
            labels=np.array(self.labels),
            arrays={name: np.array(a) for name, a in self.arrays.items()},
            timings_ms=dict(self.timings_ms),
        )


@runtime_checkable
class FrameSegmenter(Protocol):
    """What every caller (the node, evaluate, the demo, the benches) uses, CPU or GPU alike; build one
    with segmenter.build_segmenter.

    ``segmenter(image, pixel_format_name, outputs)`` segments one H x W x C uint8 image and returns the
    requested outputs; ``segment_batch([(image, pixel_format_name), ...], outputs)`` segments several (of any sizes
    and formats: one per camera) in as few backend calls as the backend's ``max_batch`` allows, one result each in
    order, all with the batch's timings; a bad image in it raises for the whole call (the caller may retry the
    others one by one) (``outputs``: fields of OUTPUTS; labels always); ``timings_ms`` of the result
    always has "total" (ms) and the stages the Segmenter could time. ``results_reused``: when true, the
    result's arrays are overwritten by the next call (the GPU Segmenter's pinned buffers), so a caller
    that keeps a result past the next frame keeps ``result.copy()``. ``overlay_alpha`` and
    ``output_size`` may be changed between calls. ``close()`` releases the backend (idempotent).
    ``jpeg_decoder``: not None where the Segmenter decodes JPEG frames itself (the GPU Segmenter with
    SegmenterConfig decoder auto/gpu: ``decode_jpegs(datas)`` returns device images that ``segment_batch`` takes
    as they are)."""

    backend: Backend
    overlay_alpha: float
    output_size: str
    results_reused: bool
    jpeg_decoder: Any  # the GPU Segmenter's nvImageCodec decoder (decode_jpegs), where it has one; else None

    @property
    def info(self) -> ModelInfo: ...

    @property
    def device(self) -> str: ...

    def __call__(
        self, image: np.ndarray, pixel_format_name: str = "rgb8", outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> SegmentationResult: ...

    def segment_batch(
        self, frames: Sequence[tuple[np.ndarray, str]], outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ) -> list[SegmentationResult]: ...

    def close(self) -> None: ...


def check_request(
    image: np.ndarray, pixel_format_name: str, outputs: tuple[str, ...]
) -> tuple[PixelFormat, np.ndarray]:
    """Validate one segmentation request; returns (PixelFormat, image as H x W x C). Shared by both Segmenters."""
    unknown = set(outputs) - set(OUTPUTS)
    if unknown:
        raise ConfigError(f"unknown outputs {sorted(unknown)}; choose from {OUTPUTS}")
    fmt = pixel_format(pixel_format_name)
    return fmt, check_image(image, fmt)


def check_alpha(alpha: float) -> float:
    """overlay_alpha as a float, checked to lie within 0..1."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"overlay_alpha {alpha} must be within 0.0..1.0")
    return alpha
