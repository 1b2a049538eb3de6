"""sensor_msgs Image / CompressedImage <-> numpy, without per-pixel Python and without copies where
the layout allows: an incoming Image becomes a view over its data buffer that respects ``step``."""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np

from lcsnet_seg.errors import ImageError
from lcsnet_seg.image_formats import PIXEL_FORMATS

SUPPORTED_ENCODINGS = tuple(PIXEL_FORMATS)


def image_to_array(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (H x W x C uint8 view, encoding). Raises ImageError naming the problem."""
    encoding = msg.encoding
    fmt = PIXEL_FORMATS.get(encoding)
    if fmt is None:
        raise ImageError(f"encoding {encoding!r} is not supported; publish one of {', '.join(SUPPORTED_ENCODINGS)}")
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ImageError(f"image is empty ({width} x {height})")
    row_bytes = width * fmt.channels
    if step < row_bytes:
        raise ImageError(f"step {step} is less than width x channels = {row_bytes} for {encoding}")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * height:
        raise ImageError(f"data has {data.size} bytes but step x height = {step} x {height} = {step * height}")
    rows = data[: step * height].reshape(height, step)
    return rows[:, :row_bytes].reshape(height, width, fmt.channels), encoding


def compressed_to_array(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (jpeg, png) -> (H x W x C uint8, encoding of the decoded pixels)."""
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageError(f"compressed image ({msg.format!r}) has no data")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"compressed image ({msg.format!r}, {data.size} bytes) could not be decoded; "
                         "expected JPEG or PNG")
    if image.dtype != np.uint8:
        raise ImageError(f"compressed image decodes to {image.dtype}; 8-bit images are supported")
    if image.ndim == 2:
        return image, "mono8"
    return image, {3: "bgr8", 4: "bgra8"}[image.shape[2]]


def array_to_image(image_msg_type, array_: np.ndarray, encoding: str, header):
    """H x W (x C) array -> sensor_msgs/Image with ``header`` (stamp and frame_id kept as given).

    The pixels are copied once, straight from the numpy buffer into the message's array('B'):
    assigning bytes or a list to ``msg.data`` would check every element in Python.
    """
    msg = image_msg_type()
    msg.header = header
    contiguous = np.ascontiguousarray(array_)
    msg.height, msg.width = contiguous.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and contiguous.dtype.itemsize > 1)
    msg.step = contiguous.strides[0]
    buffer = array.array("B")
    buffer.frombytes(contiguous.reshape(-1).view(np.uint8))
    msg.data = buffer
    return msg
