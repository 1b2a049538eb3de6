"""Arrays from sensor_msgs/Image- and CompressedImage-shaped messages, rclpy's or rosbags' alike.

Only the message fields are used (height, width, step, encoding, data; format, data), so the node
(rclpy messages) and bag evaluation (rosbags messages) share one decoder and no ROS import is
needed here. An Image becomes a view over its data buffer that respects ``step``: no copy.
"""

from __future__ import annotations

import cv2
import numpy as np

from lcsnet_seg.errors import ImageError
from lcsnet_seg.image_formats import PIXEL_FORMATS

SUPPORTED_ENCODINGS = tuple(PIXEL_FORMATS)


def image_to_array(msg, as_encoding: str | None = None) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (H x W x C uint8 view, encoding). Raises ImageError naming the problem.

    ``as_encoding`` reads the pixels as that encoding instead of msg.encoding (e.g. 8UC1 as mono8).
    """
    encoding = as_encoding or msg.encoding
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
        raise ImageError(
            f"compressed image ({msg.format!r}, {data.size} bytes) could not be decoded; expected JPEG or PNG"
        )
    if image.dtype != np.uint8:
        raise ImageError(f"compressed image decodes to {image.dtype}; 8-bit images are supported")
    if image.ndim == 2:
        return image, "mono8"
    return image, {3: "bgr8", 4: "bgra8"}[image.shape[2]]


def message_to_array(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image or CompressedImage (told apart by their fields) -> (H x W x C uint8, encoding)."""
    return compressed_to_array(msg) if hasattr(msg, "format") else image_to_array(msg)
