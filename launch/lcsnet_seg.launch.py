"""Launch the lcsnet_seg lifecycle node.

    ros2 launch lcsnet_seg lcsnet_seg.launch.py image_topic:=/camera/color/image_raw
    ros2 launch lcsnet_seg lcsnet_seg.launch.py model_path:=$HOME/models/lcsnet.engine autostart:=false
    ros2 launch lcsnet_seg lcsnet_seg.launch.py input_transport:=compressed    # image_topic/compressed (JPEG/PNG)
    ros2 launch lcsnet_seg lcsnet_seg.launch.py params_file:=$HOME/robot/lcsnet.yaml
    ros2 launch lcsnet_seg lcsnet_seg.launch.py cameras:=front,rear   # front/image, rear/image in one batch

The node's parameters come from params_file (default: the package's config/lcsnet_seg.yaml); a node
parameter given as a launch argument (model_path, backend, input_transport, cameras, autostart) overrides
that file, and one left empty keeps the file's value. With cameras, each camera reads <name>/image (and
<name>/camera_info) in the node's namespace: set namespace, or remap them in a launch file of your own;
image_topic and camera_info_topic then apply to none.

Camera frames are larger than Fast DDS's default 512 KiB shared-memory segment. The node is started
with the packaged large-image profile (fastdds_profile), so its own outputs reach RViz and rosbag2
whole; the camera driver's process needs the same profile (README, "On a robot": FASTDDS_DEFAULT_PROFILES_FILE
on Kilted, FASTRTPS_DEFAULT_PROFILES_FILE on Jazzy and Humble, whose Fast DDS 2.x reads only that name).

Stopping: Ctrl-C (SIGINT) to ros2 launch stops the node cleanly. launch 3.7 installs no SIGTERM handler,
so `kill -TERM` to the ros2 launch process ends only that process and leaves the node running: send
SIGINT to the launch, or SIGTERM to the node's own process (README, "The node").
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from lcsnet_seg.ros.fastdds import profile_variable

SHARE = FindPackageShare("lcsnet_seg")
# name, default, description; a default of None is given in DEFAULTS below (it needs a substitution)
ARGUMENTS = (
    ("model_path", "", "ONNX model, TensorRT engine or LCSNet .pth; empty: params_file's (default: the demo model)"),
    ("backend", "", "a backend name (config/lcsnet_seg.yaml lists them); empty: params_file's (default: auto)"),
    ("image_topic", "/camera/image_raw", "camera image topic (for compressed input, its /compressed sibling)"),
    (
        "input_transport",
        "",
        "raw: sensor_msgs/Image on image_topic; compressed: sensor_msgs/CompressedImage on "
        "image_topic/compressed; empty: params_file's (default: raw)",
    ),
    ("camera_info_topic", "/camera/camera_info", "camera info topic (used when use_camera_info is true)"),
    (
        "cameras",
        "",
        "camera names, comma-separated (front,rear): each reads <name>/image and publishes ~/<name>/label_mask "
        "etc., all in one batch per tick; empty: params_file's (default: none, the single image_topic)",
    ),
    ("namespace", "", "namespace of the node"),
    ("params_file", None, "parameter YAML (default: the package's config/lcsnet_seg.yaml)"),
    (
        "autostart",
        "",
        "true: configure and activate on start; false: an external lifecycle manager drives it; "
        "empty: params_file's (default: true)",
    ),
    ("use_sim_time", "false", "use /clock (bag replay)"),
    (
        "fastdds_profile",
        None,
        "Fast DDS profile for the node's process (default: FASTDDS_DEFAULT_PROFILES_FILE, or on Fast DDS 2 "
        "(Humble, Jazzy) FASTRTPS_DEFAULT_PROFILES_FILE, if set, else the package's config/fastdds_large_images.xml)",
    ),
)
DEFAULTS = {
    "params_file": PathJoinSubstitution([SHARE, "config", "lcsnet_seg.yaml"]),
    "fastdds_profile": EnvironmentVariable(
        profile_variable(),  # the variable this machine's Fast DDS reads (2.x: FASTRTPS_..., 3.x: FASTDDS_...)
        default_value=PathJoinSubstitution([SHARE, "config", "fastdds_large_images.xml"]),
    ),
}
# Launch arguments that set a node parameter of the same name when not empty: name -> type of the value.
NODE_PARAMETERS = {"model_path": str, "backend": str, "input_transport": str, "cameras": list, "autostart": bool}


def _typed(kind, text: str):
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"launch argument value {text!r} must be true or false")
        return text.lower() == "true"
    if kind is list:  # front,rear or [front, rear]
        return [name.strip() for name in text.strip().strip("[]").split(",") if name.strip()]
    return text


def _node(context):
    """The node, with the launch arguments given (non-empty) laid over params_file."""
    arg = LaunchConfiguration
    overrides = {
        name: _typed(kind, arg(name).perform(context))
        for name, kind in NODE_PARAMETERS.items()
        if arg(name).perform(context) != ""
    }
    overrides["use_sim_time"] = _typed(bool, arg("use_sim_time").perform(context))
    return [
        LifecycleNode(
            package="lcsnet_seg",
            executable="segmentation_node",
            name="lcsnet_seg",
            namespace=arg("namespace"),
            output="screen",
            additional_env={profile_variable(): arg("fastdds_profile")},
            parameters=[arg("params_file"), overrides],
            remappings=[
                ("image", arg("image_topic")),
                ("image/compressed", [arg("image_topic"), "/compressed"]),
                ("camera_info", arg("camera_info_topic")),
            ],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    declarations = [
        DeclareLaunchArgument(name, default_value=DEFAULTS[name] if default is None else default, description=text)
        for name, default, text in ARGUMENTS
    ]
    return LaunchDescription(declarations + [OpaqueFunction(function=_node)])
