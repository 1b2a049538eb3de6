"""The node's input diagnosis with real rclpy, as a user meets it: no warning while a camera's frames arrive,
whether the camera started before or after the node and across deactivate/activate; frames lost before the node
are a warning with the fix; a node nobody listens to says it is idle."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros_process

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_harness import NodeProcess, RosHarness, header, wait_for, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402
from lcsnet_seg.ros.input_watch import CAMERA_TRANSPORT_SETTING, QUIET_AFTER_S  # noqa: E402

INPUT_WORDS = ("no publisher", "no image", "lost before it", "transport", "QoS")


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


class Camera:
    """A camera driver's stand-in in this process: 160x120 rgb8 (small enough for any transport) at ``hz``, on
    a thread, with sensor-data QoS, as a driver publishes."""

    def __init__(self, ros, topic: str, hz: float = 10.0) -> None:
        self.ros, self.period = ros, 1.0 / hz
        self.publisher = ros.helper.create_publisher(Image, topic, qos_profile_sensor_data)
        self.frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sent += 1
            self.publisher.publish(array_to_image(Image, self.frame, "rgb8", header(self.sent)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.ros.helper.destroy_publisher(self.publisher)


def input_warnings(statuses, log: str, camera_late: bool = False) -> list[str]:
    """The input warnings a user would see. With ``camera_late`` (the camera started after the node), "no
    publisher" is right for as long as the node has not discovered the camera (on a loaded machine that can
    outlast the quiet period), so only the wrong ones count: a transport or QoS blame, a loss that is none."""
    words = tuple(w for w in INPUT_WORDS if not (camera_late and w == "no publisher"))
    found = [m for level, m, _ in statuses if level != DiagnosticStatus.OK and any(w in m for w in words)]
    found += [line for line in log.splitlines() if "WARN" in line and any(w in line for w in words)]
    return [f for f in found if not (camera_late and f.startswith("no publisher"))]


def frames_received(statuses) -> int:
    return max((int(v.get("frames_received", 0)) for _, _, v in statuses), default=0)


PARAMS = {"autostart": True, "diagnostics_period": 0.2, "force_outputs": True}


def test_a_camera_started_before_the_node_is_never_warned_about(ros, tmp_path):
    camera = Camera(ros, "/diag_before/image")
    try:
        with NodeProcess(ros, tmp_path / "before.log", PARAMS, {"image": "/diag_before/image"}) as node:
            statuses = ros.statuses(node.name)
            node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
            wait_until(lambda: frames_received(statuses) >= 20, "20 camera frames counted in /diagnostics", 60)
            settle = time.monotonic() + QUIET_AFTER_S + 1.0
            wait_until(lambda: time.monotonic() > settle and len(statuses) > 5, "statuses past the quiet period", 60)
            # deactivate, wait as a user would, activate again: the frames before must not make it "quiet for 3 s"
            assert node.change(Transition.TRANSITION_DEACTIVATE)
            paused = time.monotonic() + QUIET_AFTER_S
            wait_for(lambda: time.monotonic() > paused, timeout=QUIET_AFTER_S + 1)
            count = len(statuses)
            assert node.change(Transition.TRANSITION_ACTIVATE)
            wait_until(lambda: len(statuses) > count + 10, "ten statuses after the second activation", 60)
            assert input_warnings(statuses, node.log.read_text()) == []
    finally:
        camera.stop()


def test_a_camera_started_after_the_node_is_never_warned_about(ros, tmp_path):
    with NodeProcess(ros, tmp_path / "after.log", PARAMS, {"image": "/diag_after/image"}) as node:
        statuses = ros.statuses(node.name)
        node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
        camera = Camera(ros, "/diag_after/image")  # within the quiet period after activation
        try:
            wait_until(lambda: frames_received(statuses) >= 30, "30 camera frames counted in /diagnostics", 60)
            wait_until(lambda: len(statuses) > 20, "twenty statuses", 60)
            assert input_warnings(statuses, node.log.read_text(), camera_late=True) == []
        finally:
            camera.stop()


def test_frames_lost_before_the_node_are_a_warning_with_the_fix(ros):
    """Sequence numbers of a publisher jump when frames never reach the node: here the node's executor is kept
    busy while 30 frames are published into its one-deep queue, so it can take only the newest."""
    from rclpy.parameter import Parameter

    from lcsnet_seg.ros.node import SegmentationNode

    node = SegmentationNode(
        context=ros.context,
        parameter_overrides=[Parameter("autostart", value=False), Parameter("diagnostics_period", value=0.2)],
    )
    ros.executor.add_node(node)
    ros.nodes.append(node)
    statuses = ros.statuses(node.get_name())
    assert node.trigger_configure().name == "SUCCESS" and node.trigger_activate().name == "SUCCESS"
    publisher = ros.helper.create_publisher(Image, "/image", qos_profile_sensor_data)
    frame = np.zeros((60, 80, 3), np.uint8)
    try:
        wait_until(lambda: publisher.get_subscription_count() > 0, "the node to subscribe to /image")
        # a publisher's first frame shows no gap (the node may have subscribed long after it began): one first
        publisher.publish(array_to_image(Image, frame, "rgb8", header(499)))
        wait_until(lambda: node.counters["frames_received"] == 1, "the first frame to reach the node")
        busy, release = threading.Event(), threading.Event()

        def hold():  # the node's callbacks share one mutually exclusive group: while this runs, none is taken
            timer.cancel()
            busy.set()
            release.wait(10)

        timer = node.create_timer(0.01, hold)
        wait_until(busy.is_set, "the node's executor to be held")
        for k in range(30):
            publisher.publish(array_to_image(Image, frame, "rgb8", header(500 + k)))
        release.set()
        publisher.publish(array_to_image(Image, frame, "rgb8", header(600)))
        wait_until(lambda: node.counters["frames_lost"] >= 29, "29 frames counted as lost", 20)
        wait_until(
            lambda: any(level == DiagnosticStatus.WARN and "lost before it" in m for level, m, _ in statuses),
            "a WARN status about frames lost before the node",
            20,
        )
        text = next(m for level, m, _ in statuses if "lost before it" in m)
        assert CAMERA_TRANSPORT_SETTING in text and text.startswith("only ")
        assert node.counters["frames_received"] <= 4
    finally:
        ros.helper.destroy_publisher(publisher)


def test_a_node_nobody_listens_to_says_idle(ros, tmp_path):
    camera = Camera(ros, "/diag_idle/image")
    try:
        params = {"autostart": True, "diagnostics_period": 0.2}
        with NodeProcess(ros, tmp_path / "idle.log", params, {"image": "/diag_idle/image"}) as node:
            statuses = ros.statuses(node.name)
            node.wait_for_state(State.PRIMARY_STATE_ACTIVE)
            wait_until(lambda: frames_received(statuses) >= 10, "10 camera frames counted in /diagnostics", 60)
            level, message, values = statuses[-1]
            assert level == DiagnosticStatus.OK and message.startswith("idle: no subscriber to any output")
            assert values["idle"] == "true" and int(values["frames_processed"]) == 0
    finally:
        camera.stop()
