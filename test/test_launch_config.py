"""The YAML parameter file, the launch file and the RViz config agree with the node's parameters and topics.

launch_ros, ros2cli and rviz2 are not installable here: the launch file is checked by reading its
source (its arguments and the parameters it sets), not by running it.
"""

import ast
import re

import yaml
from conftest import REPO

from lcsnet_seg.ros.params import BY_NAME, PARAMETERS, check_value

CONFIG = REPO / "config" / "lcsnet_seg.yaml"
LAUNCH = REPO / "launch" / "lcsnet_seg.launch.py"
RVIZ = REPO / "config" / "lcsnet_seg.rviz"


def test_yaml_lists_every_parameter_with_its_default():
    doc = yaml.safe_load(CONFIG.read_text())
    params = doc["/**"]["ros__parameters"]
    commented = set(re.findall(r"^\s*#\s*(\w+):", CONFIG.read_text(), flags=re.M))
    for spec in PARAMETERS:
        if spec.default is None:
            assert spec.name in commented, f"{spec.name} (unset by default) should appear commented out"
            assert spec.name not in params
        else:
            assert params.get(spec.name) == spec.default, spec.name
    assert set(params) <= set(BY_NAME), f"unknown keys: {set(params) - set(BY_NAME)}"


def test_every_parameter_has_a_comment_in_the_yaml():
    lines = CONFIG.read_text().splitlines()
    for spec in PARAMETERS:
        line = next(l for l in lines if re.match(rf"^\s*#?\s*{spec.name}:", l))
        assert "#" in line.split(":", 1)[1] or line.strip().startswith("#"), spec.name


def test_defaults_pass_their_own_validation():
    for spec in PARAMETERS:
        assert check_value(spec, spec.default) is None, spec.name


def launch_tree():
    return ast.parse(LAUNCH.read_text())


def test_launch_file_arguments_and_parameters_match_the_node():
    tree = launch_tree()
    arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    names = [elt.elts[0].value for elt in arguments.value.elts]
    assert names == [
        "model_path",
        "backend",
        "image_topic",
        "input_transport",
        "camera_info_topic",
        "cameras",
        "namespace",
        "params_file",
        "autostart",
        "use_sim_time",
        "fastdds_profile",
    ]
    node_call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LifecycleNode"
    )
    kwargs = {k.arg: k.value for k in node_call.keywords}
    assert ast.literal_eval(kwargs["package"]) == "lcsnet_seg"
    assert ast.literal_eval(kwargs["executable"]) == "segmentation_node"
    assert ast.literal_eval(kwargs["name"]) == "lcsnet_seg"
    node_parameters = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Assign) and n.targets[0].id == "NODE_PARAMETERS"
    )
    keys = {ast.literal_eval(k) for k in node_parameters.value.keys}
    assert keys == {"model_path", "backend", "input_transport", "cameras", "autostart"} and keys <= set(BY_NAME)
    # a node parameter left empty on the command line keeps params_file's value: every such default is ""
    defaults = {elt.elts[0].value: elt.elts[1] for elt in arguments.value.elts}
    assert all(ast.literal_eval(defaults[k]) == "" for k in keys)
    remapped = {ast.literal_eval(e.elts[0]) for e in kwargs["remappings"].elts}
    assert remapped == {"image", "image/compressed", "camera_info"}
    # The node's own process gets the large-image transport (docs/PERFORMANCE.md, transport measurements).
    env_keys = [ast.unparse(k) for k in kwargs["additional_env"].keys]
    assert env_keys == ["profile_variable()"]  # the variable this machine's Fast DDS reads (ros/fastdds.py)
    assert "fastdds_large_images.xml" in LAUNCH.read_text() and (REPO / "config" / "fastdds_large_images.xml").exists()


def test_an_install_lays_out_share_and_the_executables_as_ros_expects(tmp_path):
    """What pip (and colcon, through setup.py) installs: package.xml, the launch and config files under
    share/lcsnet_seg, the ament index marker, and every executable as a console script, in lib/lcsnet_seg (where
    `ros2 run` looks; setup.cfg sends them there for colcon) and in bin, whichever way pip installed them."""
    import configparser
    import os
    import shutil
    import subprocess
    import sys

    source, prefix = tmp_path / "source", tmp_path / "prefix"  # a copy: the build leaves no files in the checkout
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "package.xml"):
        shutil.copy(REPO / name, source / name)
    for folder in ("lcsnet_seg", "launch", "config", "resource"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--prefix", str(prefix)]
    subprocess.run([*pip, "."], cwd=source, check=True, capture_output=True, timeout=300)
    share = prefix / "share" / "lcsnet_seg"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "lcsnet_seg").is_file()
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml"), ("config", "*.rviz"), ("config", "*.xml")):
        shipped = {p.name for p in (REPO / folder).glob(pattern)}
        assert shipped and shipped <= {p.name for p in (share / folder).iterdir()}, folder
    # pip from a wheel writes <prefix>/bin, the legacy `setup.py install` (Python 3.10's setuptools without `wheel`)
    # follows setup.cfg and writes <prefix>/lib/lcsnet_seg: the link script makes both places hold every executable
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(site)}
    subprocess.run([str(REPO / "scripts" / "link_ros_executables.sh"), str(prefix)], env=env, check=True, timeout=60)
    names = {"segmentation_node", "convert", "evaluate", "make_demo_bag", "demo"}
    for folder in (prefix / "bin", prefix / "lib" / "lcsnet_seg"):
        runnable = {p.name for p in folder.iterdir() if p.is_file() and os.access(p, os.X_OK)}  # follows links
        assert names <= runnable, (folder, sorted(runnable))
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/lcsnet_seg" == cfg["develop"]["script_dir"]


def test_rviz_config_shows_the_node_topics():
    doc = yaml.safe_load(RVIZ.read_text())
    displays = doc["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Topic"]["Reliability Policy"] for d in displays}
    assert topics == {
        "/camera/image_raw": "Best Effort",
        "/lcsnet_seg/overlay": "Reliable",
        "/lcsnet_seg/color_mask": "Reliable",
    }
    launch_default_image = next(
        e
        for e in ast.walk(launch_tree())
        if isinstance(e, ast.Tuple)
        and e.elts
        and isinstance(e.elts[0], ast.Constant)
        and e.elts[0].value == "image_topic"
    )
    assert launch_default_image.elts[1].value == "/camera/image_raw"
    assert all(d["Class"] == "rviz_default_plugins/Image" for d in displays)
