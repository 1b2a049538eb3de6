"""Every summary, report and diagnostics path writes what it has when figures are missing or zero
(no frame timed yet, no stage means, no FPS, one frame only) and says what is missing."""

import json

import numpy as np
import pytest

from lcsnet_seg.eval.demo_report import DemoRun, demo_summary, write_demo_summary
from lcsnet_seg.eval.metrics import ConfusionMatrix
from lcsnet_seg.eval.report import latency_line, metrics_document, write_report
from lcsnet_seg.eval.scoring import Scorer

NAMES = ["wall", "floor"]
ALL_STAGES = {f"{s}_ms_mean": "1.0" for s in ("decode", "segment", "publish")}


def demo_run(cm, latencies, lost, elapsed, node_values, exit_code) -> DemoRun:
    return DemoRun("m.onnx", 3, (48, 64), tuple(NAMES), cm, list(latencies), lost, elapsed, node_values, exit_code)


@pytest.mark.parametrize(
    "node_values, latencies, missing_words",
    [
        ({}, [], ["no frame came back", "sent no /diagnostics"]),  # nothing at all
        ({"backend": "onnxruntime", "device": "cpu"}, [12.0], ["not yet measured"]),  # status before any frame
        ({**ALL_STAGES, "backend": "onnxruntime", "decode_ms_mean": "0"}, [5.0], []),  # one frame, a zero stage
        ({"segment_ms_mean": "0", "decode_ms_mean": "0", "publish_ms_mean": "0"}, [5.0, 6.0], []),  # zeros: no FPS
    ],
)
def test_demo_summary_with_missing_figures(tmp_path, node_values, latencies, missing_words):
    cm = ConfusionMatrix(2)
    if latencies:
        cm.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    summary = demo_summary(demo_run(cm, latencies, 0, 1.0, node_values, 0))
    write_demo_summary(tmp_path, summary)
    written = json.loads((tmp_path / "summary.json").read_text())
    text = (tmp_path / "summary.md").read_text()
    for word in missing_words:
        assert any(word in m for m in written["missing"]), (word, written["missing"])
        assert word in text
    if not latencies:
        assert written["end_to_end_latency_ms"] is None and written["miou"] is None
        assert "mIoU **not measured**" in text
    if all(float(node_values.get(k, 0)) == 0 for k in ALL_STAGES):
        assert written["node_fps"] is None and "not measured FPS" in text
    if node_values.get("backend") is None:
        assert "backend **unknown**" in text


def test_demo_summary_complete_run_has_nothing_missing(tmp_path):
    cm = ConfusionMatrix(2)
    cm.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    summary = demo_summary(
        demo_run(cm, [10.0, 20.0], 0, 2.0, {**ALL_STAGES, "backend": "onnxruntime", "device": "cpu"}, 0)
    )
    assert summary["missing"] == [] and summary["node_fps"] == pytest.approx(1e3 / 3)
    assert summary["demo_loop_fps"] == pytest.approx(1.0)


def test_latency_line_says_which_figure_is_missing():
    none = {"mean": None, "p50": None, "p95": None, "p99": None}
    some = {"mean": 2.0, "p50": 2.0, "p95": 2.0, "p99": 2.0}
    assert (
        latency_line(none, None)
        == "latency not measured (no frame came back); FPS not measured (fewer than two outputs)"
    )
    assert latency_line(some, None).endswith("FPS not measured (fewer than two outputs)")
    assert latency_line(some, 12.34).endswith("; 12.3 FPS")


@pytest.mark.parametrize("latencies, fps, scored", [([], None, False), ([3.0], None, True), ([3.0, 4.0], 9.0, True)])
def test_evaluation_report_with_missing_figures(tmp_path, latencies, fps, scored):
    scorer = Scorer(2)
    scorer.counts["frames_in_range"] = 2
    scorer.latencies_ms.extend(latencies)
    scorer.counts["frames_segmented"] = len(latencies)
    if scored:
        scorer.score(0, 0, np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    extra = {"bag": "b", "mode": "node"} if fps is None and latencies else {"bag": "b", "mode": "node", "fps": fps}
    doc = metrics_document(scorer, NAMES, np.zeros((256, 3), np.uint8), extra)
    report = write_report(tmp_path, doc, scorer, np.zeros((256, 3), np.uint8)).read_text()
    if not latencies:
        assert "latency not measured" in report
    # a rate the replay measured is kept, also when it could not measure one (None); without one, the Segmenter's
    # back-to-back frames give 1000 / mean latency; with no latency at all there is none
    expected = extra["fps"] if "fps" in extra else (1e3 / np.mean(latencies) if latencies else None)
    assert doc["fps"] == pytest.approx(expected) if expected is not None else doc["fps"] is None
    assert ("FPS not measured" in report) == (expected is None)
    if not scored:
        assert (
            "no frame could be scored" in report and json.loads((tmp_path / "metrics.json").read_text())["miou"] is None
        )
