"""/diagnostics status text: the input diagnosis (nothing, or too little, arriving) names its likely cause and
the fix, only once it can know, and never blames the transport while frames arrive; idle is not a stall."""

import pytest

pytest.importorskip("diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from lcsnet_seg.ros.diagnostics import build_status  # noqa: E402
from lcsnet_seg.ros.input_watch import (  # noqa: E402
    CAMERA_TRANSPORT_SETTING,
    LOSS_WINDOW_S,
    QUIET_AFTER_S,
    InputWatch,
)

TOPIC = "/camera/image_raw"
GID = {"data": bytes(range(16))}


class Clock:
    """A time source the test moves by hand (the watch's diagnosis depends on time only)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def watch(clock):
    return InputWatch(TOPIC, clock=clock)


def info(sequence, gid=GID):
    return {"publication_sequence_number": sequence, "publisher_gid": gid}


def problem(watch, **kw):
    args = dict(publishers=1, matched=1, reliability="best_effort")
    args.update(kw)
    return watch.problem(**args)


def stream(watch, clock, frames, period=0.1, first=1, step=1):
    """``frames`` arrivals ``period`` s apart, publisher sequence numbers first, first+step, ..."""
    for k in range(frames):
        watch.arrived(info(first + k * step))
        clock.now += period


def test_nothing_is_said_in_the_first_quiet_period_after_activation(watch, clock):
    for publishers, matched in ((0, 0), (1, 0), (1, 1)):
        assert problem(watch, publishers=publishers, matched=matched) is None
    clock.now += QUIET_AFTER_S - 0.01
    assert problem(watch, publishers=0, matched=0) is None


def test_a_publisher_that_just_matched_gets_its_quiet_period(watch, clock):
    clock.now += 10
    assert problem(watch, publishers=0, matched=0) == f"no publisher on {TOPIC}: check the topic name and remapping"
    assert problem(watch) is None  # the camera was started only now: its first frame may be on its way
    clock.now += QUIET_AFTER_S + 0.1
    text = problem(watch)
    assert "no image has arrived" in text and "transport" in text and "512 KiB" in text
    assert f"start the camera driver's process with {CAMERA_TRANSPORT_SETTING}" in text and "QoS" not in text


def test_unmatched_publisher_points_at_qos(watch, clock):
    clock.now += 10
    text = problem(watch, publishers=2, matched=0)
    assert "none matches this subscription" in text and "qos_reliability=best_effort" in text


def test_frames_that_arrive_are_never_blamed_on_the_transport_however_slow(watch, clock):
    clock.now += 10
    problem(watch)  # matched from here on
    for k in range(10):  # a 0.4 Hz camera: its gaps are near the quiet period itself
        watch.arrived(info(1 + k))
        for _ in range(5):
            clock.now += 0.5
            assert problem(watch) is None, f"a warning {clock.now - 110:.1f} s into a 0.4 Hz stream"
    clock.now += 10 * 2.5  # now it has stopped for longer than several of its intervals
    assert "no image on /camera/image_raw for" in problem(watch)


def test_a_restart_after_deactivation_starts_a_new_quiet_period(watch, clock):
    clock.now += 10
    problem(watch)
    stream(watch, clock, 5)
    clock.now += 30
    assert "no image on" in problem(watch)
    watch.start()  # activate again, 3 s after deactivate: the old last frame must not count
    assert problem(watch) is None


def test_images_that_stop_name_the_transport_too(watch, clock):
    clock.now += 10
    problem(watch)
    stream(watch, clock, 10)
    clock.now += 12.0
    text = problem(watch)
    assert "no image on /camera/image_raw for 12 s" in text and CAMERA_TRANSPORT_SETTING in text


def test_partial_loss_from_sequence_gaps_is_a_warning_with_the_fix(watch, clock):
    """A 10 Hz camera of which 1 frame in 6 gets through (as without the large-image profile)."""
    clock.now += 10
    problem(watch)
    lost = 0
    for k in range(10):
        lost += watch.arrived(info(1 + 6 * k))
        clock.now += 0.6
    assert lost == 45
    received, missing = watch.loss()
    assert received > 0 and missing == 5 * received
    text = problem(watch)
    assert text.startswith(f"only {received} of {received + missing} frames published on {TOPIC}")
    assert "% lost before it" in text and CAMERA_TRANSPORT_SETTING in text


def test_a_whole_stream_is_no_loss_and_a_restarted_publisher_is_not_a_gap(watch, clock):
    clock.now += 10
    problem(watch)
    stream(watch, clock, 30)
    for k in range(30):  # the camera restarted: a new publisher (another gid) counting from 1 again
        watch.arrived(info(1 + k, {"data": b"\x02" * 16}))
        clock.now += 0.1
    assert watch.loss()[1] == 0 and problem(watch) is None


def test_loss_share_is_over_the_recent_window_only(watch, clock):
    clock.now += 10
    problem(watch)
    stream(watch, clock, 10, step=5)  # heavy loss ...
    assert "lost before it" in problem(watch)
    clock.now += LOSS_WINDOW_S
    stream(watch, clock, 60, first=100)  # ... then a whole stream: the warning goes
    assert problem(watch) is None


def test_lost_message_events_count_where_samples_carry_no_sequence_numbers(watch, clock):
    clock.now += 10
    problem(watch)
    for _ in range(4):
        watch.arrived(None)
        watch.lost_events(3)
        clock.now += 0.2
    assert watch.loss() == (4, 12) and "12 %" not in problem(watch) and "lost before it" in problem(watch)


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


def test_idle_says_idle_not_zero_hertz():
    s = status(idle=True, input_rate=9.8, counters={"frames_received": 120})
    values = {kv.key: kv.value for kv in s.values}
    assert s.level == DiagnosticStatus.OK and s.message.startswith("idle: no subscriber to any output")
    assert "9.8 Hz" in s.message and "0.0 Hz" not in s.message and values["idle"] == "true"
    assert status(idle=True, problem="no publisher on x").message == "no publisher on x"


def test_rate_meter_remembers_the_last_event_after_its_window():
    from lcsnet_seg.stats import RateMeter

    meter = RateMeter(window_s=1.0)
    assert meter.last() is None and meter.rate(now=0.0) == 0.0
    meter.tick(now=10.0)
    meter.tick(now=10.5)
    assert meter.rate(now=100.0) == 0.0 and meter.last() == 10.5


def test_the_profile_variable_is_the_one_this_fast_dds_reads(monkeypatch):
    """Fast DDS 2.x (Humble, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE, 3.x (Kilted) FASTDDS_...: naming the
    other one leaves a Jazzy camera with the 512 KiB segment (most 640x480 frames lost, docs/PERFORMANCE.md)."""
    import importlib.metadata

    from lcsnet_seg.ros.fastdds import FASTDDS_2, FASTDDS_3, camera_setting, profile_variable

    for distribution, expected in (("humble", FASTDDS_2), ("jazzy", FASTDDS_2), ("kilted", FASTDDS_3)):
        monkeypatch.setenv("ROS_DISTRO", distribution)
        assert profile_variable() == expected
    monkeypatch.delenv("ROS_DISTRO")
    rclpy_major = int(importlib.metadata.version("ros-rclpy").split(".")[0])  # these wheels: 7 Jazzy, 9 Kilted
    assert profile_variable() == (FASTDDS_2 if rclpy_major == 7 else FASTDDS_3)
    assert camera_setting().startswith(profile_variable() + "=$(ros2 pkg prefix lcsnet_seg)/share/lcsnet_seg/")


def test_lost_message_events_are_not_counted_again_where_sequence_gaps_counted_them(watch, clock):
    """Fast DDS reports one loss twice: as a gap in the publisher's sequence numbers and as a lost-message event."""
    clock.now += 10
    problem(watch)
    lost = watch.arrived(info(1)) + watch.arrived(info(11))
    assert lost == 9 and watch.lost_events(9) == 0
    assert watch.loss() == (2, 9)
