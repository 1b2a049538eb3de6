"""Launch the lcsnet_seg lifecycle node.

    ros2 launch lcsnet_seg lcsnet_seg.launch.py image_topic:=/camera/color/image_raw
    ros2 launch lcsnet_seg lcsnet_seg.launch.py model_path:=$HOME/models/lcsnet.engine autostart:=false
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("model_path", "", "ONNX model or TensorRT engine; empty: the packaged demo model"),
    ("backend", "auto", "auto | onnxruntime | tensorrt | torch_cuda"),
    ("image_topic", "/camera/image_raw", "camera image topic (for compressed input, its /compressed sibling)"),
    ("camera_info_topic", "/camera/camera_info", "camera info topic (used when use_camera_info is true)"),
    ("namespace", "", "namespace of the node"),
    ("params_file", None, "parameter YAML (default: the package's config/lcsnet_seg.yaml)"),
    ("autostart", "true", "configure and activate on start (false: an external lifecycle manager drives it)"),
    ("use_sim_time", "false", "use /clock (bag replay)"),
)


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    default_params = PathJoinSubstitution([FindPackageShare("lcsnet_seg"), "config", "lcsnet_seg.yaml"])
    declarations = [DeclareLaunchArgument(name, default_value=default_params if default is None else default,
                                          description=text) for name, default, text in ARGUMENTS]
    node = LifecycleNode(
        package="lcsnet_seg",
        executable="segmentation_node",
        name="lcsnet_seg",
        namespace=arg("namespace"),
        output="screen",
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
