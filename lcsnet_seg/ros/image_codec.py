"""numpy -> sensor_msgs/Image for the node's outputs (decoding lives in lcsnet_seg.image_messages)."""

from __future__ import annotations

import array
import sys

import numpy as np


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
    # numpy's stubs give ndarray __buffer__ only for Python >= 3.12 (mypy checks for 3.10); it is a buffer
    buffer.frombytes(contiguous.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    msg.data = buffer
    return msg
