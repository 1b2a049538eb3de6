"""/diagnostics status text: the no-images cases name their likely cause and the fix."""

import pytest

pytest.importorskip("diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from lcsnet_seg.ros.diagnostics import CAMERA_TRANSPORT_SETTING, build_status, input_problem  # noqa: E402

TOPIC = "/camera/image_raw"


def problem(**kw):
    args = dict(publishers=1, matched=1, frames_received=0, seconds_since_input=None, reliability="best_effort")
    args.update(kw)
    return input_problem(TOPIC, **args)


def test_images_arriving_is_no_problem():
    assert problem(frames_received=10, seconds_since_input=0.2) is None


def test_no_publisher_points_at_the_topic_name():
    assert problem(publishers=0, matched=0) == f"no publisher on {TOPIC}: check the topic name and remapping"


def test_unmatched_publisher_points_at_qos():
    text = problem(publishers=2, matched=0)
    assert "none matches this subscription" in text and "qos_reliability=best_effort" in text


def test_matched_publisher_without_images_points_at_the_transport_and_its_fix():
    text = problem(publishers=1, matched=1, frames_received=0)
    assert "no image has arrived" in text and "transport" in text and "512 KiB" in text
    assert f"start the camera driver's process with {CAMERA_TRANSPORT_SETTING}" in text
    assert "QoS" not in text


def test_images_that_stop_name_the_transport_too():
    text = problem(frames_received=50, seconds_since_input=12.0)
    assert "no image on /camera/image_raw for 12 s" in text and CAMERA_TRANSPORT_SETTING in text


def status(**kw):
    args = dict(
        topic=TOPIC,
        backend="onnxruntime",
        device="cpu",
        model="m.onnx",
        counters={"frames_received": 0},
        recent={},
        input_rate=0.0,
        output_rate=0.0,
        latency={},
        problem=None,
    )
    args.update(kw)
    return build_status("lcsnet_seg", **args)


def test_status_before_any_frame_says_which_stages_are_not_timed():
    s = status()
    values = {kv.key: kv.value for kv in s.values}
    assert s.level == DiagnosticStatus.OK and "infer_ms_mean" not in values
    assert values["stages_not_yet_timed"] == "decode, segment, publish, latency"


def test_status_with_some_stages_timed():
    values = {kv.key: kv.value for kv in status(latency={"segment": (2.5, 3.0), "gpu": (0.4, 0.5)}).values}
    assert values["segment_ms_mean"] == "2.500" and values["gpu_ms_p95"] == "0.500"
    assert values["stages_not_yet_timed"] == "decode, publish, latency"  # inner stages are never "missing"


def test_problem_and_recent_failures_set_the_level():
    assert status(problem="no publisher on x").level == DiagnosticStatus.WARN
    assert status(recent={"frames_failed": 1}).level == DiagnosticStatus.ERROR
    assert status(recent={"frames_bad": 2}).level == DiagnosticStatus.WARN


def test_images_that_stopped_long_ago_still_give_a_sentence():
    text = problem(frames_received=50, seconds_since_input=None)
    assert "no image on /camera/image_raw for a while" in text


def test_rate_meter_remembers_the_last_event_after_its_window():
    from lcsnet_seg.stats import RateMeter

    meter = RateMeter(window_s=1.0)
    assert meter.last() is None and meter.rate(now=0.0) == 0.0
    meter.tick(now=10.0)
    meter.tick(now=10.5)
    assert meter.rate(now=100.0) == 0.0 and meter.last() == 10.5
