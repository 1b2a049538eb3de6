"""What both Segmenters share: the result of one frame and the checks of a request.

Its own module so that the CPU Segmenter (pipeline.py), the GPU Segmenter (gpu/segmenter.py) and the
factory (pipeline.make_segmenter) all import it and none of them imports another back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lcsnet_seg.errors import ConfigError
from lcsnet_seg.image_formats import PixelFormat, check_image, pixel_format

OUTPUTS = ("labels", "color_mask", "overlay", "confidence")
OUTPUT_SIZES = ("input", "network")


@dataclass
class SegmentationResult:
    """Outputs of one frame. Arrays not requested are None.

    labels: H x W uint8 class ids. color_mask: H x W x 3 uint8 RGB. overlay: H x W x 3 uint8 in
    ``overlay_order`` (the input's colour order; rgb for mono). confidence: H x W float32 in [0, 1].
    H x W is the input size, or the network input size when output_size == "network".
    timings_ms: preprocess, infer, postprocess, total; a GPU Segmenter replaying CUDA graphs reports
    total and gpu only (lcsnet_seg/gpu/segmenter.py).
    """

    labels: np.ndarray
    color_mask: np.ndarray | None = None
    overlay: np.ndarray | None = None
    confidence: np.ndarray | None = None
    overlay_order: str = "rgb"
    timings_ms: dict[str, float] = field(default_factory=dict)


def check_request(image: np.ndarray, pixel_format_name: str,
                  outputs: tuple[str, ...]) -> tuple[PixelFormat, np.ndarray]:
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
