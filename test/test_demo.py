"""The README's main job, scaled down: the node as its own process on a generated camera stream."""

import json

import pytest

pytest.importorskip("rclpy")


def test_demo_runs_the_node_and_writes_its_results(tmp_path, demo_onnx, monkeypatch):
    from lcsnet_seg.ros.demo import main

    # The demo sets the Fast DDS profile in its own process environment; keep it out of later tests.
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)

    assert main(["--model", str(demo_onnx), "--out-dir", str(tmp_path), "--frames", "3", "--save", "2"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_without_result"] == 0 and summary["node_exit_code"] == 0
    assert summary["backend"] == "onnxruntime"
    assert summary["miou"] > 0.6
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert "active: segmenting /camera/image_raw" in (tmp_path / "node.log").read_text()
