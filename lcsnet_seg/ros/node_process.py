"""Start and stop segmentation_node as a separate process (the demo and the node replay mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lcsnet_seg.resources import share_file


def ros_environment() -> None:
    """Local-only discovery, and whole camera frames through Fast DDS shared memory
    (config/fastdds_large_images.xml, under the variable this Fast DDS reads: ros/fastdds.py). Inherited by
    child processes; values already set win."""
    from lcsnet_seg.ros.fastdds import PROFILE, profile_variable

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault(profile_variable(), str(share_file(PROFILE)))


def start_node(
    log_path: Path, parameters: dict[str, object], remappings: dict[str, str], node_name: str | None = None
) -> subprocess.Popen:
    """segmentation_node as a child process, its output in ``log_path``. ``node_name``: run it under another
    name (``-r __node:=``), so that its services and ~/ topics cannot be confused with those of another
    segmentation_node in the same ROS domain (a robot's own, or one left by an earlier run)."""
    args = [sys.executable, "-m", "lcsnet_seg.ros.segmentation_node", "--ros-args"]
    if node_name:
        args += ["-r", f"__node:={node_name}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={_ros_arg_value(value)}"]
    for src, dst in remappings.items():
        args += ["-r", f"{src}:={dst}"]
    log = open(log_path, "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _ros_arg_value(value) -> str:
    """A parameter value as a --ros-args -p argument (YAML): strings and paths quoted, so that an empty
    string or a string like 'true' stays a string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):  # a YAML list (e.g. cameras: [front, rear])
        return "[" + ", ".join(_ros_arg_value(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def stop_node(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
