"""Test images in every input encoding, from one generated RGB scene (one table for every test that needs them)."""

import cv2
import numpy as np

from lcsnet_seg.image_formats import PIXEL_FORMATS

ENCODINGS = tuple(PIXEL_FORMATS)  # rgb8, bgr8, rgba8, bgra8, mono8: what the pipeline segments
_FROM_RGB = {
    "rgb8": lambda rgb: rgb,
    "bgr8": lambda rgb: rgb[..., ::-1],
    "rgba8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA),
    "bgra8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
    "mono8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
}
assert set(_FROM_RGB) == set(ENCODINGS), "a new encoding needs its conversion here"


def as_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The H x W x 3 RGB image in ``encoding``, contiguous (H x W for mono8)."""
    return np.ascontiguousarray(_FROM_RGB[encoding](rgb))
