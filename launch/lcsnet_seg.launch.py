"""Launch the lcsnet_seg lifecycle node.

    ros2 launch lcsnet_seg lcsnet_seg.launch.py image_topic:=/camera/color/image_raw
    ros2 launch lcsnet_seg lcsnet_seg.launch.py model_path:=$HOME/models/lcsnet.engine autostart:=false

Camera frames are larger than Fast DDS's default 512 KiB shared-memory segment. The node is started
with the packaged large-image profile (fastdds_profile), so its own outputs reach RViz and rosbag2
whole; the camera driver's process needs the same FASTDDS_DEFAULT_PROFILES_FILE (README, "On a robot").
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

SHARE = FindPackageShare("lcsnet_seg")
# name, default, description; a default of None is given in DEFAULTS below (it needs a substitution)
ARGUMENTS = (
    ("model_path", "", "ONNX model, TensorRT engine or LCSNet .pth; empty: the packaged demo model"),
    ("backend", "auto", "auto | onnxruntime | tensorrt | torch_cuda"),
    ("image_topic", "/camera/image_raw", "camera image topic (for compressed input, its /compressed sibling)"),
    ("camera_info_topic", "/camera/camera_info", "camera info topic (used when use_camera_info is true)"),
    ("namespace", "", "namespace of the node"),
    ("params_file", None, "parameter YAML (default: the package's config/lcsnet_seg.yaml)"),
    ("autostart", "true", "configure and activate on start (false: an external lifecycle manager drives it)"),
    ("use_sim_time", "false", "use /clock (bag replay)"),
    (
        "fastdds_profile",
        None,
        "Fast DDS profile for the node's process (default: FASTDDS_DEFAULT_PROFILES_FILE "
        "if set, else the package's config/fastdds_large_images.xml)",
    ),
)
DEFAULTS = {
    "params_file": PathJoinSubstitution([SHARE, "config", "lcsnet_seg.yaml"]),
    "fastdds_profile": EnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        default_value=PathJoinSubstitution([SHARE, "config", "fastdds_large_images.xml"]),
    ),
}


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    declarations = [
        DeclareLaunchArgument(name, default_value=DEFAULTS[name] if default is None else default, description=text)
        for name, default, text in ARGUMENTS
    ]
    node = LifecycleNode(
        package="lcsnet_seg",
        executable="segmentation_node",
        name="lcsnet_seg",
        namespace=arg("namespace"),
        output="screen",
        additional_env={"FASTDDS_DEFAULT_PROFILES_FILE": arg("fastdds_profile")},
        parameters=[
            arg("params_file"),
            {
                "model_path": ParameterValue(arg("model_path"), value_type=str),
                "backend": ParameterValue(arg("backend"), value_type=str),
                "autostart": ParameterValue(arg("autostart"), value_type=bool),
                "use_sim_time": ParameterValue(arg("use_sim_time"), value_type=bool),
            },
        ],
        remappings=[
            ("image", arg("image_topic")),
            ("image/compressed", [arg("image_topic"), "/compressed"]),
            ("camera_info", arg("camera_info_topic")),
        ],
    )
    return LaunchDescription(declarations + [node])
