"""The node's parameters: one table, the single source of truth for declarations, the YAML file
(config/lcsnet_seg.yaml), the launch file and the tests that keep them in agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lcsnet_seg.backends import BACKEND_NAMES
from lcsnet_seg.pipeline import OUTPUT_SIZES

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class ParamSpec:
    """name; default (None: unset, the model file's own value applies); kind: bool, int, float, str,
    int[], float[]; reconfigure: the value is used at configure, so it may change only while the
    node is unconfigured (cleanup, set, configure); otherwise it applies at once."""

    name: str
    default: Any
    kind: str
    description: str
    reconfigure: bool = True
    choices: tuple[str, ...] | None = None
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    array_length: int | None = None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "str", "ONNX model, TensorRT engine or LCSNet .pth; empty: the packaged demo model"),
    ParamSpec("backend", "auto", "str", "inference backend; auto: tensorrt for an .engine, torch_cuda for a .pth "
              "on a GPU, onnxruntime for an .onnx", choices=BACKEND_NAMES),
    ParamSpec("device", 0, "int", "CUDA device index for GPU backends", int_range=(0, 63)),
    ParamSpec("input_transport", "raw", "str", "raw: sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'", choices=TRANSPORTS),
    ParamSpec("input_size", None, "int[]", "network input [height, width]; unset: the model's", array_length=2),
    ParamSpec("mean", None, "float[]", "per-channel mean of pixel/255 in the model's colour order; unset: the "
              "model's", array_length=3),
    ParamSpec("std", None, "float[]", "per-channel std of pixel/255; unset: the model's", array_length=3),
    ParamSpec("classes_file", "", "str", "classes YAML overriding the model's names and palette; empty: the model's"),
    ParamSpec("overlay_alpha", 0.5, "float", "weight of the class colour in ~/overlay", reconfigure=False,
              float_range=(0.0, 1.0)),
    ParamSpec("output_size", "input", "str", "outputs at the input image's size or the network's",
              reconfigure=False, choices=OUTPUT_SIZES),
    ParamSpec("publish_label_mask", True, "bool", "publish ~/label_mask (mono8 class ids)", reconfigure=False),
    ParamSpec("publish_color_mask", True, "bool", "publish ~/color_mask (rgb8 palette colours)", reconfigure=False),
    ParamSpec("publish_overlay", True, "bool", "publish ~/overlay (the image blended with the colours)",
              reconfigure=False),
    ParamSpec("publish_confidence", False, "bool", "publish ~/confidence (32FC1, max softmax)", reconfigure=False),
    ParamSpec("force_outputs", False, "bool", "compute enabled outputs even when nobody subscribes",
              reconfigure=False),
    ParamSpec("use_camera_info", False, "bool", "subscribe to 'camera_info' and publish ~/camera_info rescaled "
              "to the output size"),
    ParamSpec("qos_reliability", "best_effort", "str", "input subscription reliability (sensor data: best_effort)",
              choices=RELIABILITIES),
    ParamSpec("qos_depth", 1, "int", "input subscription queue depth (keep last)", int_range=(1, 100)),
    ParamSpec("output_qos_reliability", "reliable", "str", "output publishers' reliability; reliable also serves "
              "best-effort subscribers", choices=RELIABILITIES),
    ParamSpec("diagnostics_period", 1.0, "float", "seconds between /diagnostics messages", float_range=(0.1, 60.0)),
    ParamSpec("autostart", True, "bool", "configure and activate on start; false for an external lifecycle manager"),
)

BY_NAME = {p.name: p for p in PARAMETERS}


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec``, or None if it is."""
    if value is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{spec.name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.float_range is not None and not spec.float_range[0] <= value <= spec.float_range[1]:
        return f"{spec.name} must be within {spec.float_range[0]}..{spec.float_range[1]}, got {value}"
    if spec.int_range is not None and not spec.int_range[0] <= value <= spec.int_range[1]:
        return f"{spec.name} must be within {spec.int_range[0]}..{spec.int_range[1]}, got {value}"
    if spec.array_length is not None and len(value) != spec.array_length:
        return f"{spec.name} needs {spec.array_length} values, got {len(value)}"
    if spec.name == "std" and any(v <= 0 for v in value):
        return f"std values must be positive, got {list(value)}"
    if spec.name == "input_size" and any(v < 8 for v in value):
        return f"input_size values must be at least 8 pixels, got {list(value)}"
    return None
