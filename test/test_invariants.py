"""Design invariants (../shared/DESIGN.md) that code review alone would let slip."""

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "lcsnet_seg"
ROS_MODULES = {"rclpy", "rosidl_runtime_py", "launch", "launch_ros"}


def imported_roots(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_only_the_ros_layer_imports_rclpy_or_messages():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "ros" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for root in imported_roots(path):
            if root in ROS_MODULES or root.endswith("_msgs"):
                offenders.append(f"{path.relative_to(REPO)} imports {root}")
    assert not offenders, offenders


def test_cpu_path_needs_no_torch_tensorrt_or_cuda():
    code = (
        "import sys, numpy as np\n"
        "from lcsnet_seg.backends import create_backend\n"
        "from lcsnet_seg.pipeline import Segmenter\n"
        "import lcsnet_seg.eval.bag_io, lcsnet_seg.tools.evaluate, lcsnet_seg.tools.convert\n"
        "b, _ = create_backend('auto', sys.argv[1])\n"
        "Segmenter(b)(np.zeros((48, 64, 3), np.uint8), 'rgb8')\n"
        "loaded = [m for m in ('torch', 'tensorrt', 'cuda', 'cupy', 'rclpy') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    demo = PACKAGE / "model" / "weights" / "lcsnet_demo.onnx"
    result = subprocess.run([sys.executable, "-c", code, str(demo)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
