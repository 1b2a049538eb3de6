"""The README's main job, scaled down: the node as its own process on a generated camera stream."""

import json

import pytest

pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros_process


def test_demo_runs_the_node_and_writes_its_results(tmp_path, demo_onnx, monkeypatch):
    from lcsnet_seg.tools.demo import main

    # The demo sets the Fast DDS profile in its own process environment; keep it out of later tests.
    for variable in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        monkeypatch.delenv(variable, raising=False)

    assert main(["--model", str(demo_onnx), "--out-dir", str(tmp_path), "--frames", "2", "--save", "2"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_without_result"] == 0 and summary["node_exit_code"] == 0
    # A short run ends before the node's periodic /diagnostics: it must still say what ran, and how fast.
    assert summary["backend"] == "onnxruntime" and summary["device"] == "cpu"
    assert summary["missing"] == [] and summary["node_fps"] > 0 and "segment" in summary["node_stage_ms_mean"]
    assert summary["miou"] > 0.6
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert "stopped: frames ended, backend released" in (tmp_path / "node.log").read_text()
    assert "active: segmenting /camera/image_raw" in (tmp_path / "node.log").read_text()
