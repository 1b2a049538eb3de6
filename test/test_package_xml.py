"""package.xml declares what the code imports (rosdep keys), and nothing it does not."""

import ast
import sys
import xml.etree.ElementTree as ET

from conftest import REPO

# Import name -> rosdep key.
ROSDEP_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "sensor_msgs": "sensor_msgs",
    "std_msgs": "std_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    "psutil": "python3-psutil",
}
# No rosdep key: installed with pip; package.xml must say so in its comment.
PIP_ONLY = {
    "onnx",
    "onnxruntime",
    "onnxsim",
    "onnxconverter_common",
    "rosbags",
    "torch",
    "tensorrt",
    "cuda",
    "transformers",
    "ray",
    "pynvml",
    "cupy",
    "nvidia",
}
# this package, the test folder's own helper modules, and the user's models.py the foreign-model tests write
LOCAL = {"lcsnet_seg", "models"} | {p.stem for p in (REPO / "test").glob("*.py")}


def imported(folder: str) -> set[str]:
    names = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "importorskip"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in LOCAL}


def declared() -> dict[str, set[str]]:
    root = ET.parse(REPO / "package.xml").getroot()
    tags = {}
    for tag in ("depend", "exec_depend", "build_depend", "test_depend"):
        tags[tag] = {e.text.strip() for e in root.findall(tag)}
    return tags


def test_every_runtime_import_is_declared():
    tags = declared()
    runtime = tags["depend"] | tags["exec_depend"]
    for name in sorted(imported("lcsnet_seg") | imported("launch")):
        if name in PIP_ONLY:
            continue
        assert name in ROSDEP_KEYS, f"{name} is imported but has no rosdep key here: add it to ROSDEP_KEYS or PIP_ONLY"
        assert ROSDEP_KEYS[name] in runtime, f"{name} is imported: declare <depend>{ROSDEP_KEYS[name]}</depend>"


def test_every_test_import_is_declared():
    tags = declared()
    available = tags["depend"] | tags["exec_depend"] | tags["test_depend"]
    for name in sorted(imported("test") - PIP_ONLY):
        assert ROSDEP_KEYS.get(name) in available, f"test code imports {name}: declare <test_depend>"


def test_nothing_declared_that_is_not_imported():
    used = {ROSDEP_KEYS[n] for n in imported("lcsnet_seg") | imported("launch") | imported("test") if n in ROSDEP_KEYS}
    tags = declared()
    unused = (tags["depend"] | tags["exec_depend"] | tags["test_depend"]) - used
    assert not unused, f"declared in package.xml but imported nowhere: {sorted(unused)}"


def test_pip_only_packages_are_named_in_package_xml():
    text = (REPO / "package.xml").read_text()
    for name in sorted(imported("lcsnet_seg") & PIP_ONLY):
        assert name in text, f"{name} is installed with pip: name it in package.xml's comment"
