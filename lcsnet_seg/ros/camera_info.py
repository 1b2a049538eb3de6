"""camera_info for the node's outputs: the camera's calibration rescaled to the output size."""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo


def scaled_camera_info(info: CameraInfo, header, height: int, width: int) -> CameraInfo:
    """``info`` for an image resized to height x width (half-pixel-centred scaling of K and P)."""
    out = CameraInfo()
    out.header = header
    out.height, out.width = height, width
    out.distortion_model, out.d, out.r = info.distortion_model, info.d, info.r
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    k, p = list(info.k), list(info.p)
    k[0], k[2], k[4], k[5] = k[0] * sx, (k[2] + 0.5) * sx - 0.5, k[4] * sy, (k[5] + 0.5) * sy - 0.5
    p[0], p[2], p[3], p[5], p[6] = p[0] * sx, (p[2] + 0.5) * sx - 0.5, p[3] * sx, p[5] * sy, (p[6] + 0.5) * sy - 0.5
    out.k, out.p = k, p
    return out
