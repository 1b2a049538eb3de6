"""CPU reference preprocessing: resize, colour order, mean/std normalise, planar CHW float32.

Sampling convention (the GPU kernel follows it exactly): bilinear with half-pixel centres and
edge clamping, no antialiasing (OpenCV INTER_LINEAR), computed in float32 with no rounding to
uint8 between resize and normalisation.
"""

from __future__ import annotations

import cv2
import numpy as np

from lcsnet_seg.image_formats import PixelFormat, check_image
from lcsnet_seg.model_info import ModelInfo


def normalisation(info: ModelInfo) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel scale and offset such that x_norm = pixel * scale + offset (pixel in 0..255)."""
    std = np.asarray(info.std, np.float64)
    scale = 1.0 / (255.0 * std)
    offset = -np.asarray(info.mean, np.float64) / std
    return scale.astype(np.float32), offset.astype(np.float32)


def channel_sources(fmt: PixelFormat, model_order: str) -> tuple[int, int, int]:
    """Which input channel feeds each of the model's three channels."""
    if fmt.color_order == "mono":
        return 0, 0, 0
    return (0, 1, 2) if fmt.color_order == model_order else (2, 1, 0)


def preprocess(image: np.ndarray, fmt: PixelFormat, info: ModelInfo, out: np.ndarray | None = None) -> np.ndarray:
    """image: H x W x C uint8 in ``fmt`` -> 1 x 3 x h x w float32 (h, w = info.input_size), contiguous.

    ``out``, when given, must be a contiguous float32 array of that shape and is written in place.
    """
    image = check_image(image, fmt)
    h, w = info.input_size
    if out is None:
        out = np.empty((1, 3, h, w), np.float32)
    src = image.astype(np.float32) if fmt.channels != 4 else image[..., :3].astype(np.float32)
    resized = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[..., None]
    scale, offset = normalisation(info)
    for c, s in enumerate(channel_sources(fmt, info.color_order)):
        np.multiply(resized[..., s], scale[c], out=out[0, c])
        out[0, c] += offset[c]
    return out
