"""segmentation_node as its own process, as ros2 run and ros2 launch start it: SIGINT and SIGTERM in
every lifecycle state, and while frames are processed, end it with exit code 0 and a released
backend, every time (a second signal during the release included)."""

import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros_process

from conftest import scale  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from ros_harness import EXIT_S, RELIABLE, STARTUP_S, NodeProcess, RosHarness, header, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from lcsnet_seg.ros.image_codec import array_to_image  # noqa: E402

PARAMS = {"force_outputs": True}
REMAP = {"image": "/proc_test/image"}


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def unconfigured(node):
    node.wait_for_state(State.PRIMARY_STATE_UNCONFIGURED)


def inactive(node):
    unconfigured(node)
    assert node.change(Transition.TRANSITION_CONFIGURE)
    node.wait_for_state(State.PRIMARY_STATE_INACTIVE)


def active(node):
    node.wait_for_state(State.PRIMARY_STATE_ACTIVE)


def processing(node):
    active(node)
    labels = node.ros.collect(Image, node.topic("label_mask"))
    pub = node.ros.helper.create_publisher(Image, "/proc_test/image", RELIABLE)
    frame = np.full((120, 160, 3), 80, np.uint8)
    try:

        def sent_and_answered():
            pub.publish(array_to_image(Image, frame, "rgb8", header(int(time.monotonic()))))
            return len(labels) > 0

        wait_until(sent_and_answered, "label masks from the node process", timeout=STARTUP_S, period=0.05)
        for k in range(5):  # signal while frames keep coming
            pub.publish(array_to_image(Image, frame, "rgb8", header(k)))
    finally:
        node.ros.helper.destroy_publisher(pub)


STATES = {
    "unconfigured": (False, unconfigured),
    "inactive": (False, inactive),
    "active": (True, active),
    "processing": (True, processing),
}


def assert_clean_exit(node, log: str) -> None:
    assert node.process.returncode == 0, f"exit code {node.process.returncode}; log:\n{log[-2000:]}"
    assert "Traceback" not in log, log[-2000:]
    assert "stopped: frames ended, backend released" in log, log[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("state_name", list(STATES))
def test_a_stop_signal_in_every_state_ends_cleanly(ros, tmp_path, state_name, signum):
    autostart, reach = STATES[state_name]
    with NodeProcess(ros, tmp_path / f"{state_name}_{signum}.log", {"autostart": autostart, **PARAMS}, REMAP) as node:
        reach(node)
        assert_clean_exit(node, node.signal_and_wait(signum))


def test_a_second_signal_during_the_release_is_ignored(ros, tmp_path):
    with NodeProcess(ros, tmp_path / "twice.log", {"autostart": True, **PARAMS}, REMAP) as node:
        processing(node)
        assert_clean_exit(node, node.signal_and_wait(signal.SIGINT, twice=True))


def test_sigint_in_a_row_always_ends_with_exit_0(ros, tmp_path):
    """Issue: once in 12 Ctrl-C on ros2 launch the node died with -2. LCSNET_TEST_SCALE=1: 50 in a row."""
    rounds = scale(50, 5)
    codes = []
    for i in range(rounds):
        with NodeProcess(ros, tmp_path / f"row_{i}.log", {"autostart": True, **PARAMS}, REMAP) as node:
            processing(node) if i % 2 else active(node)
            log = node.signal_and_wait(signal.SIGINT)
            codes.append(node.process.returncode)
            assert_clean_exit(node, log)
    assert codes == [0] * rounds


def test_signals_that_keep_coming_while_the_process_exits_are_ignored(ros, tmp_path):
    """A terminal's Ctrl-C reaches ros2 launch and the node at once, and launch forwards one more: a SIGINT that
    arrives after the node has released everything, while Python finalises, must not kill it (-2)."""
    for i in range(scale(10, 3)):
        with NodeProcess(ros, tmp_path / f"storm_{i}.log", {"autostart": True, **PARAMS}, REMAP) as node:
            active(node)
            node.process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + EXIT_S
            while node.process.poll() is None and time.monotonic() < deadline:
                try:
                    node.process.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    break
                time.sleep(0.002)
            node.process.wait(timeout=EXIT_S)
            assert_clean_exit(node, node.log.read_text())
