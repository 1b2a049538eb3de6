"""numpy -> rclpy's sensor_msgs/Image for the node's outputs (the codec itself: lcsnet_seg/image_messages.py)."""

from __future__ import annotations

import array

import numpy as np

from lcsnet_seg.image_messages import image_fields


def array_to_image(image_msg_type, array_: np.ndarray, encoding: str, header):
    """H x W (x C) array -> sensor_msgs/Image with ``header`` (stamp and frame_id kept as given).

    The pixels are copied once, straight from the numpy buffer into the message's array('B'):
    assigning bytes or a list to ``msg.data`` would check every element in Python.
    """
    fields = image_fields(array_, encoding)
    msg = image_msg_type()
    msg.header = header
    msg.height, msg.width, msg.encoding = fields["height"], fields["width"], fields["encoding"]
    msg.is_bigendian, msg.step = fields["is_bigendian"], fields["step"]
    buffer = array.array("B")
    buffer.frombytes(fields["data"])  # a flat uint8 view: one copy
    msg.data = buffer
    return msg
