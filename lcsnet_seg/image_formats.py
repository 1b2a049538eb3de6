"""Pixel formats the pipeline accepts (named as sensor_msgs/Image encodings) and input validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcsnet_seg.errors import ImageError


@dataclass(frozen=True)
class PixelFormat:
    name: str
    channels: int
    color_order: str  # "rgb", "bgr", or "mono"

    @property
    def output_order(self) -> str:
        """Colour order of the 3-channel overlay made from an image of this format."""
        return "bgr" if self.color_order == "bgr" else "rgb"


PIXEL_FORMATS = {
    f.name: f
    for f in (
        PixelFormat("rgb8", 3, "rgb"),
        PixelFormat("bgr8", 3, "bgr"),
        PixelFormat("rgba8", 4, "rgb"),
        PixelFormat("bgra8", 4, "bgr"),
        PixelFormat("mono8", 1, "mono"),
    )
}


def pixel_format(name: str) -> PixelFormat:
    try:
        return PIXEL_FORMATS[name]
    except KeyError:
        raise ImageError(f"pixel format {name!r} is not supported; use one of {sorted(PIXEL_FORMATS)}") from None


def check_image(image: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Validate an image for ``fmt`` and return it as H x W x C (a view, never a copy).

    Rows may be padded (a row stride larger than width x channels, as in sensor_msgs/Image with a
    larger ``step``); pixels within a row must be contiguous.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"image dtype is {image.dtype}; {fmt.name} needs uint8 (convert with image.astype(np.uint8))")
    if fmt.channels == 1 and image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] != fmt.channels:
        raise ImageError(f"image shape {image.shape} does not fit {fmt.name}; expected H x W x {fmt.channels}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image is empty ({image.shape[0]} x {image.shape[1]} pixels)")
    row = image.shape[1] * fmt.channels
    if (fmt.channels > 1 and image.strides[2] != 1) or image.strides[1] != fmt.channels or image.strides[0] < row:
        raise ImageError(
            f"image pixels are not contiguous (strides {image.strides}); row padding is fine, but "
            "pass np.ascontiguousarray(image) for flipped or sub-sampled views"
        )
    return image
