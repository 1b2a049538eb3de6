"""The node's parameters: one table, the single source of truth for declarations, descriptors, the
YAML file (config/lcsnet_seg.yaml), the launch file and the tests that keep them in agreement."""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from lcsnet_seg.backends import BACKEND_NAMES
from lcsnet_seg.outputs import OUTPUTS as OUTPUT_TABLE
from lcsnet_seg.segmenter.contract import OUTPUT_SIZES

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("raw", "compressed")
MAX_CAMERAS = 16
# a camera name: a relative ROS name (tokens of letters, digits, underscores, not starting with a digit, "/" between)
CAMERA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class ParamSpec:
    """name; default (None: unset, the model file's own value applies); kind: bool, int, float, str,
    int[], float[]; runtime: the value may change while the node runs and applies from the next
    frame on; otherwise it is read at configure and may change only while the node is unconfigured
    (cleanup, set, configure). str[]: a list of strings (the camera names)."""

    name: str
    default: Any
    kind: str
    description: str
    runtime: bool = False
    choices: tuple[str, ...] | None = None
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    array_length: int | None = None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "str", "ONNX model, TensorRT engine or LCSNet .pth; empty: the packaged demo model"),
    ParamSpec(
        "cameras",
        None,
        "str[]",
        "camera names: each reads <name>/image (or <name>/image/compressed) and publishes ~/<name>/label_mask etc., "
        "all segmented in one batch per tick; empty: one input 'image' and outputs ~/label_mask etc.",
    ),
    ParamSpec(
        "backend",
        "auto",
        "str",
        "inference backend; auto: tensorrt for an .engine, torch_cuda for a .pth on a GPU (torch_cpu without one), "
        "onnxruntime for an .onnx",
        choices=BACKEND_NAMES,
    ),
    ParamSpec("device", 0, "int", "CUDA device index for GPU backends", int_range=(0, 63)),
    ParamSpec(
        "compile_dir",
        "",
        "str",
        "torch_cuda: a directory prepared by convert --stages compile (inductor "
        "cache); empty or not prepared for this GPU: the model runs uncompiled (one log line says why)",
    ),
    ParamSpec(
        "cuda_graph",
        True,
        "bool",
        "GPU backends that can capture (torch_cuda): run each frame as one "
        "replayed CUDA graph; false: launch every stage each frame (slower, with per-stage times)",
    ),
    ParamSpec(
        "input_transport",
        "raw",
        "str",
        "raw: sensor_msgs/Image on 'image'; compressed: sensor_msgs/CompressedImage on 'image/compressed'",
        choices=TRANSPORTS,
    ),
    ParamSpec(
        "batch_wait_ms",
        5.0,
        "float",
        "several cameras: once a tick's first frame is in, wait up to this long for the frames of the other cameras "
        "that are due, so that cameras triggered together share one batch (it ends as soon as they are all in); "
        "0: take what is there",
        float_range=(0.0, 100.0),
    ),
    ParamSpec(
        "decoder",
        "auto",
        "str",
        "compressed input: where JPEG frames are decoded; auto: on the GPU (nvImageCodec) when the GPU path runs "
        "and nvImageCodec is installed, else the CPU; gpu: on the GPU or a configure error naming what to install; "
        "cpu: OpenCV",
        choices=("auto", "cpu", "gpu"),
    ),
    ParamSpec("input_size", None, "int[]", "network input [height, width]; unset: the model's", array_length=2),
    ParamSpec(
        "mean",
        None,
        "float[]",
        "per-channel mean of pixel/255 in the model's colour order; unset: the model's",
        array_length=3,
    ),
    ParamSpec("std", None, "float[]", "per-channel std of pixel/255; unset: the model's", array_length=3),
    ParamSpec("classes_file", "", "str", "classes YAML overriding the model's names and palette; empty: the model's"),
    ParamSpec(
        "overlay_alpha", 0.5, "float", "weight of the class colour in ~/overlay", runtime=True, float_range=(0.0, 1.0)
    ),
    ParamSpec(
        "output_size",
        "input",
        "str",
        "outputs at the input image's size or the network's",
        runtime=True,
        choices=OUTPUT_SIZES,
    ),
    *(
        ParamSpec(o.parameter, o.on_by_default, "bool", f"publish ~/{o.topic} ({o.what})", runtime=True)
        for o in OUTPUT_TABLE
    ),
    ParamSpec("force_outputs", False, "bool", "compute enabled outputs even when nobody subscribes", runtime=True),
    ParamSpec(
        "use_camera_info",
        False,
        "bool",
        "subscribe to 'camera_info' and publish ~/camera_info rescaled to the output size",
    ),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        "str",
        "input subscription reliability (sensor data: best_effort)",
        choices=RELIABILITIES,
    ),
    ParamSpec("qos_depth", 1, "int", "input subscription queue depth (keep last)", int_range=(1, 100)),
    ParamSpec(
        "output_qos_reliability",
        "reliable",
        "str",
        "output publishers' reliability; reliable also serves best-effort subscribers",
        choices=RELIABILITIES,
    ),
    ParamSpec("diagnostics_period", 1.0, "float", "seconds between /diagnostics messages", float_range=(0.1, 60.0)),
    ParamSpec("autostart", True, "bool", "configure and activate on start; false for an external lifecycle manager"),
)

BY_NAME = {p.name: p for p in PARAMETERS}
# the run-time parameters that decide which outputs are computed (ros/config.py OutputSettings)
OUTPUT_PARAMETERS = tuple(o.parameter for o in OUTPUT_TABLE) + ("force_outputs",)
# Read once at start-up, never changed by a running node (an external lifecycle manager sets it).
READ_ONLY = ("autostart",)

_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "int[]": ParameterType.PARAMETER_INTEGER_ARRAY,
    "float[]": ParameterType.PARAMETER_DOUBLE_ARRAY,
    "str[]": ParameterType.PARAMETER_STRING_ARRAY,
}


def declared_value(spec: ParamSpec) -> Any:
    """The value a parameter is declared with. An unset array is declared as an empty one (not as an
    uninitialised parameter): rclpy answers a get-parameters request that names an uninitialised
    parameter with nothing at all, so `ros2 param dump` and rqt would see no parameters."""
    return [] if spec.default is None else spec.default


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ParameterDescriptor of ``spec``: type, description, ranges, and when a change applies."""
    unset_array = spec.default is None
    # rclpy types an empty list as a byte array, so an unset array is declared dynamically typed and
    # its element type is checked by check_value instead.
    d = ParameterDescriptor(
        name=spec.name,
        type=ParameterType.PARAMETER_NOT_SET if unset_array else _TYPES[spec.kind],
        description=spec.description,
        read_only=spec.name in READ_ONLY,
        dynamic_typing=unset_array,
    )
    notes = []
    if unset_array and spec.kind == "str[]":
        notes.append(f"at most {MAX_CAMERAS} distinct relative ROS names (e.g. [front, rear])")
    elif unset_array:
        notes.append(f"{spec.array_length} {'integers' if spec.kind == 'int[]' else 'numbers'}; empty: the model's")
    if spec.choices:
        notes.append("one of: " + ", ".join(spec.choices))
    if not spec.runtime and spec.name not in READ_ONLY:
        notes.append("changes only while unconfigured (cleanup, set, configure)")
    d.additional_constraints = "; ".join(notes)
    if spec.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0], to_value=spec.float_range[1])]
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    return d


# declared by rclpy itself for every node
RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")


def declare_all(node) -> list[str]:
    """Declare every parameter of the table on ``node`` (built with automatically_declare_parameters_from_overrides,
    so that every name it was given exists as a parameter first: rclpy's public API has no other way to tell a
    misspelt one), each with its descriptor, the given value applied; undeclare the names that are not ours and
    return one error line for each."""
    given = set(node.get_parameters_by_prefix(""))
    for spec in PARAMETERS:
        if node.has_parameter(spec.name):  # declared from an override, without our descriptor: again, with it
            node.undeclare_parameter(spec.name)
        node.declare_parameter(spec.name, declared_value(spec), descriptor(spec))
    for name in given - set(BY_NAME) - set(RCLPY_PARAMETERS):
        node.undeclare_parameter(name)
    return unknown_overrides(given, node.get_name())


def unknown_overrides(given, node_name: str) -> list[str]:
    """One error line for each name given to the node (parameter file, -p) that is not one of its parameters."""
    import difflib

    known = set(BY_NAME) | set(RCLPY_PARAMETERS)
    errors = []
    for name in sorted(set(given) - known):
        close = difflib.get_close_matches(name, list(BY_NAME), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known parameters: {', '.join(BY_NAME)}"
        errors.append(f"parameter '{name}' given to {node_name} is not one of its parameters and is ignored{hint}")
    return errors


def plain_value(value: Any) -> Any:
    """A parameter value as the node works with it: rclpy hands INTEGER_ARRAY and DOUBLE_ARRAY values set
    through the set_parameters service (what ``ros2 param set`` sends) as ``array.array``, but values from
    a parameter file as lists; both become a list."""
    return list(value) if isinstance(value, array) else value


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec``, or None if it is (None and [] mean unset)."""
    value = plain_value(value)
    if value is None or (spec.kind.endswith("[]") and isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if spec.kind == "str[]":
        return _check_names(spec.name, value)
    if spec.kind in ("int[]", "float[]"):
        number = int if spec.kind == "int[]" else (int, float)
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, number) and not isinstance(v, bool) for v in value
        ):
            what = "integers" if spec.kind == "int[]" else "numbers"
            return f"{spec.name} must be a list of {spec.array_length} {what}, got {value!r}"
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


def _check_names(name: str, value: Any) -> str | None:
    """Why ``value`` is not a list of distinct camera names (CAMERA_NAME), or None."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return f"{name} must be a list of names, e.g. [front, rear], got {value!r}"
    for item in value:
        if not CAMERA_NAME.fullmatch(item) or "__" in item:
            return (
                f"{name} entry {item!r} is not a valid relative ROS name: use letters, digits and underscores "
                "(not first: a digit; no '__'), '/' between parts"
            )
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        return f"{name} lists {', '.join(repeated)} more than once; each camera once"
    if len(value) > MAX_CAMERAS:
        return f"{name} lists {len(value)} cameras; at most {MAX_CAMERAS} in one node"
    return None


def configure_values(param: Callable[[str], Any]) -> tuple[dict[str, Any], str | None]:
    """Every parameter's value (``param(name)``: None for an unset array) and the first reason one is not
    acceptable (None when all are): what configure reads, once."""
    values = {spec.name: param(spec.name) for spec in PARAMETERS}
    why = next(filter(None, (check_value(BY_NAME[name], value) for name, value in values.items())), None)
    return values, why


def check_changes(changes: list[tuple[str, Any]], state: str) -> str | None:
    """Why a set-parameters request (name, value pairs) must be refused, or None. ``state``: the node's lifecycle
    state label (unconfigured, inactive, active). Parameters read at configure may change only while the node is
    unconfigured; every value must be valid."""
    for name, value in changes:
        spec = BY_NAME.get(name)
        if spec is None:
            continue
        if not spec.runtime and state != "unconfigured" and name not in READ_ONLY:
            steps = "cleanup" if state == "inactive" else "deactivate, then cleanup"
            return (
                f"{name} is used at configure: change it while the node is unconfigured "
                f"(ros2 lifecycle set <node> {steps})"
            )
        why = check_value(spec, value)
        if why:
            return why
    return None
