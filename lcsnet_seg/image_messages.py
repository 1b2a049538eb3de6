"""The one image-message codec: arrays <-> sensor_msgs/Image- and CompressedImage-shaped messages, rclpy's or
rosbags' alike.

Only the message fields are used (height, width, step, encoding, is_bigendian, data; format, data), so the
node (rclpy messages), the replay, the demo and bag I/O (rosbags messages) share one decoder and one encoder,
and no ROS import is needed here.

- ``decode_image(msg)``: any encoding of ENCODINGS (the pipeline's input formats and every output's: mono8
  labels, rgb8/bgr8 colours and overlays, 32FC1 confidence, ...) -> H x W or H x W x C array of its dtype, a
  view over the data that respects ``step`` (padded rows) and is copied only to fix a foreign byte order.
- ``image_to_array(msg)``: the pipeline's input, one of its pixel formats (uint8) -> (H x W x C view, encoding).
- ``compressed_to_array(msg)``: JPEG/PNG -> (H x W x C uint8, encoding of the decoded pixels).
- ``image_fields(array, encoding)``: the fields of an Image message for an array (data as a flat uint8 view:
  ros/image_codec.py copies it once into rclpy's array('B'), a rosbags message takes it as it is).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from lcsnet_seg.errors import ImageError
from lcsnet_seg.image_formats import PIXEL_FORMATS

SUPPORTED_ENCODINGS = tuple(PIXEL_FORMATS)  # what the pipeline segments
# every encoding a message of this package may carry: channels and element type
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    **{name: (fmt.channels, np.dtype(np.uint8)) for name, fmt in PIXEL_FORMATS.items()},
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "8UC4": (4, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
}
_BIG_ENDIAN_HOST = sys.byteorder == "big"


def decode_image(msg, as_encoding: str | None = None) -> np.ndarray:
    """sensor_msgs/Image -> H x W (one channel) or H x W x C array of the encoding's dtype. Raises ImageError
    naming the problem. ``as_encoding`` reads the pixels as that encoding instead of msg.encoding."""
    encoding = as_encoding or msg.encoding
    if encoding not in ENCODINGS:
        raise ImageError(f"encoding {encoding!r} is not supported; use one of {', '.join(ENCODINGS)}")
    channels, dtype = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageError(f"image is empty ({width} x {height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageError(f"step {step} is less than width x channels x bytes = {row_bytes} for {encoding}")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * height:
        raise ImageError(f"data has {data.size} bytes but step x height = {step} x {height} = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    if dtype.itemsize > 1:
        if step % dtype.itemsize:  # rows would start misaligned: one copy into an aligned array
            rows = np.ascontiguousarray(rows)
        rows = rows.view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
        if bool(msg.is_bigendian) != _BIG_ENDIAN_HOST:
            rows = rows.astype(dtype)  # to this machine's byte order (a copy, only for foreign data)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rows.reshape(shape)


def image_to_array(msg, as_encoding: str | None = None) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image in one of the pipeline's pixel formats -> (H x W x C uint8 view, encoding)."""
    encoding = as_encoding or msg.encoding
    fmt = PIXEL_FORMATS.get(encoding)
    if fmt is None:
        raise ImageError(f"encoding {encoding!r} is not supported; publish one of {', '.join(SUPPORTED_ENCODINGS)}")
    image = decode_image(msg, encoding)
    return (image[..., None] if image.ndim == 2 else image), encoding


JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


def jpeg_truncated(data: np.ndarray) -> bool:
    """Whether ``data`` (uint8) starts as a JPEG but has no end-of-image marker in its last 32 bytes (encoders may
    pad after it): a frame cut short in transport or recording. Decoders fill its missing rows with grey instead
    of failing, which the model would segment as if it were the scene."""
    return data[:3].tobytes() == JPEG_START and data[-32:].tobytes().rfind(JPEG_END) < 0


def compressed_to_array(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (jpeg, png) -> (H x W x C uint8, encoding of the decoded pixels). A truncated
    JPEG (jpeg_truncated) is an ImageError, as a corrupt one is."""
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageError(f"compressed image ({msg.format!r}) has no data")
    if jpeg_truncated(data):
        raise ImageError(
            f"JPEG image ({msg.format!r}, {data.size} bytes) is truncated (no end-of-image marker); the frame was "
            "cut short between the camera and here"
        )
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


def image_fields(array: np.ndarray, encoding: str) -> dict:
    """height, width, encoding, is_bigendian, step and data (a flat uint8 view of the contiguous pixels) of the
    Image message for ``array`` (H x W or H x W x C of the encoding's dtype, in this machine's byte order)."""
    channels, dtype = ENCODINGS.get(encoding, (None, None))
    if dtype is None:
        raise ImageError(f"encoding {encoding!r} is not supported; use one of {', '.join(ENCODINGS)}")
    contiguous = np.ascontiguousarray(array)
    if contiguous.dtype != dtype or (contiguous.shape[2] if contiguous.ndim == 3 else 1) != channels:
        raise ImageError(f"a {contiguous.dtype} array of shape {contiguous.shape} cannot be sent as {encoding}")
    return {
        "height": contiguous.shape[0],
        "width": contiguous.shape[1],
        "encoding": encoding,
        "is_bigendian": int(_BIG_ENDIAN_HOST and dtype.itemsize > 1),
        "step": contiguous.strides[0],
        "data": contiguous.reshape(-1).view(np.uint8),
    }
