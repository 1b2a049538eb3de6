"""The packaged Fast DDS profile for camera-sized messages, and the variable this machine's Fast DDS reads it from.

Fast DDS reads its XML profile from FASTDDS_DEFAULT_PROFILES_FILE since 3.0 (Kilted and newer) and from
FASTRTPS_DEFAULT_PROFILES_FILE before (Fast DDS 2.x: Humble, Jazzy). Each ignores the other's name: on Jazzy a
camera started with only FASTDDS_DEFAULT_PROFILES_FILE still has the 512 KiB segment and loses most 640x480 frames
(measured, docs/PERFORMANCE.md), and Fast DDS 3 warns about the old name. So every place that sets or names the
variable asks ``profile_variable()``. No rclpy import: the launch file and the tools use this too.
"""

from __future__ import annotations

import os

PROFILE = "config/fastdds_large_images.xml"  # in the package's share directory
FASTDDS_3 = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTDDS_2 = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS_2_DISTRIBUTIONS = ("humble", "iron", "jazzy")
FASTDDS_2_RCLPY_MAJORS = (3, 4, 5, 6, 7)  # rclpy's major version names the distribution (7: Jazzy)


def profile_variable() -> str:
    """The environment variable this machine's Fast DDS reads its profile from: ROS_DISTRO where a ROS install's
    setup script set it, else the installed rclpy's version (the PyPI wheels), else Fast DDS 3's name."""
    distribution = os.environ.get("ROS_DISTRO", "").strip().lower()
    if distribution:
        return FASTDDS_2 if distribution in FASTDDS_2_DISTRIBUTIONS else FASTDDS_3
    try:
        import importlib.metadata

        major = int(importlib.metadata.version("ros-rclpy").split(".")[0])
    except Exception:  # noqa: BLE001 - no wheel metadata (a source install without ROS_DISTRO): the current name
        return FASTDDS_3
    return FASTDDS_2 if major in FASTDDS_2_RCLPY_MAJORS else FASTDDS_3


def camera_setting() -> str:
    """What a camera driver's process needs so that whole frames reach the node, as one shell assignment."""
    return f"{profile_variable()}=$(ros2 pkg prefix lcsnet_seg)/share/lcsnet_seg/{PROFILE}"
