"""CPU reference postprocessing: argmax, nearest resize, palette colouring, overlay, confidence.

Nearest-neighbour resizing uses half-pixel centres in exact integer arithmetic:
source index = floor((2 * dst + 1) * src_size / (2 * dst_size)). The GPU kernel uses the same
formula, so the two agree bit for bit (OpenCV's INTER_NEAREST_EXACT rounds its 16-bit fixed-point
scale and differs from this at some sizes).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from lcsnet_seg.image_formats import PixelFormat


def argmax_labels(logits: np.ndarray) -> np.ndarray:
    """logits: C x h x w float -> h x w uint8 class ids (the first maximum wins on ties).

    A running max over the C class planes, each read once and contiguously, with no data-dependent
    scatter: on LCSNet's 8 x 384 x 512 logits it took 0.8 ms against 3.7 ms for np.argmax(axis=0)
    on the development machine.
    """
    best = logits[0].copy()
    labels = np.zeros(best.shape, np.uint8)
    better = np.empty(best.shape, bool)
    for c in range(1, logits.shape[0]):
        np.greater(logits[c], best, out=better)
        np.maximum(best, logits[c], out=best)
        np.copyto(labels, np.uint8(c), where=better)
    return labels


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """logits: C x h x w -> h x w float32 probability of the winning class, 1 / sum(exp(l - max))."""
    peak = logits.max(0)
    return (1.0 / np.exp(logits - peak).sum(0)).astype(np.float32)


@lru_cache(maxsize=16)
def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` output positions (half-pixel centres, exact integers)."""
    return ((2 * np.arange(dst, dtype=np.int64) + 1) * src) // (2 * dst)


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W (x C) -> height x width (x C), nearest neighbour with half-pixel centres."""
    if array.shape[:2] == (height, width):
        return array
    rows = nearest_indices(array.shape[0], height)
    cols = nearest_indices(array.shape[1], width)
    return array[rows][:, cols]  # two gathers: ~5x faster than one 2-D fancy index


def colourise(labels: np.ndarray, palette_rgb: np.ndarray, order: str = "rgb") -> np.ndarray:
    """labels: H x W uint8; palette_rgb: 256 x 3 uint8 -> H x W x 3 uint8 in ``order``.

    cv2.LUT on the label replicated to three channels: about twice as fast as np.take(palette, labels).
    """
    lut = palette_rgb if order == "rgb" else palette_rgb[:, ::-1]
    return cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2BGR), np.ascontiguousarray(lut).reshape(256, 1, 3))


def as_three_channel(image: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """The input image as H x W x 3 in fmt.output_order (rgb for mono and rgb/rgba input)."""
    if fmt.channels == 3:
        return image
    code = cv2.COLOR_GRAY2RGB if fmt.channels == 1 else cv2.COLOR_RGBA2RGB  # BGRA->BGR is the same op
    return cv2.cvtColor(image, code)


def blend(image3: np.ndarray, colour_mask: np.ndarray, alpha: float) -> np.ndarray:
    """overlay = round((1 - alpha) * image + alpha * colour_mask), uint8, same colour order as both."""
    return cv2.addWeighted(image3, 1.0 - alpha, colour_mask, alpha, 0.0)


def frame_outputs(
    logits: np.ndarray,
    image: np.ndarray,
    fmt: PixelFormat,
    outputs: tuple[str, ...],
    out_hw: tuple[int, int],
    palette_rgb: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One frame's outputs from its logits (C x h x w float32, at the model's own logit size) and image (H x W x C
    uint8 in ``fmt``): (labels, {field: array} for the other outputs in ``outputs``), at ``out_hw``.

    Labels and confidence are taken at logit resolution and resampled by the nearest rule above; the overlay
    blends the image (resized bilinearly when ``out_hw`` is not its size) with the palette colours in the
    image's colour order. Every output of the table (lcsnet_seg/outputs.py) is computed here on the CPU path.
    """
    height, width = out_hw
    labels = resize_nearest(argmax_labels(logits), height, width)
    arrays: dict[str, np.ndarray] = {}
    if "confidence" in outputs:
        arrays["confidence"] = resize_nearest(max_softmax(logits), height, width)
    if "color_mask" in outputs:
        arrays["color_mask"] = colourise(labels, palette_rgb, "rgb")
    if "overlay" in outputs:
        base = as_three_channel(image, fmt)
        if base.shape[:2] != (height, width):
            base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
        if "color_mask" not in arrays:
            colours = colourise(labels, palette_rgb, fmt.output_order)
        elif fmt.output_order == "bgr":
            colours = cv2.cvtColor(arrays["color_mask"], cv2.COLOR_RGB2BGR)
        else:
            colours = arrays["color_mask"]
        arrays["overlay"] = blend(base, colours, alpha)
    return labels, arrays
