"""The node's name and the absolute topics of its outputs (light: no rclpy, no backend import).

ros/node.py names its node with NODE_NAME; the node harness, the demo and evaluate --node derive
the topics they subscribe to from it and from the output table (lcsnet_seg/outputs.py).
"""

from __future__ import annotations

NODE_NAME = "lcsnet_seg"


def status_name(node_name: str = NODE_NAME) -> str:
    """The name of the node's DiagnosticStatus on /diagnostics."""
    return f"{node_name}: semantic segmentation"


def camera_status_name(node_name: str, camera: str) -> str:
    """The name of one named camera's DiagnosticStatus (the ``cameras`` parameter)."""
    return f"{node_name}: camera {camera}"


def output_topic(topic: str, node_name: str = NODE_NAME, camera: str = "") -> str:
    """The absolute topic of output ``topic`` (an OutputSpec.topic: published as ~/<topic>, or ~/<camera>/<topic>
    for a named camera of the ``cameras`` parameter)."""
    return f"/{node_name}/{camera}/{topic}" if camera else f"/{node_name}/{topic}"
