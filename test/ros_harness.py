"""A small harness for tests with real rclpy: an executor spinning in a thread, a helper node,
and helpers to call services and wait for messages."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import rclpy
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def wait_for(predicate, timeout: float = 10.0, period: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


def wait_until(predicate, what: str, timeout: float = 30.0, period: float = 0.01) -> None:
    """Wait for ``predicate`` with a deadline; on time-out fail with what was waited for."""
    if not wait_for(predicate, timeout, period):
        raise AssertionError(f"waited {timeout:.0f} s for {what}, in vain")


def settled(read, quiet_s: float):
    """A predicate for wait_for/wait_until: true once ``read()`` has not changed for ``quiet_s`` seconds."""
    state = {"value": object(), "since": time.monotonic()}

    def check() -> bool:
        value, now = read(), time.monotonic()
        if value != state["value"]:
            state["value"], state["since"] = value, now
        return now - state["since"] >= quiet_s

    return check


def call(client, request, timeout: float = 30.0):
    assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
    future = client.call_async(request)
    assert wait_for(future.done, timeout), f"service {client.srv_name} did not answer"
    return future.result()


class RosHarness:
    def __init__(self) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.helper = rclpy.create_node("lcsnet_test_helper", context=self.context)
        self.executor.add_node(self.helper)
        self.nodes = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        """The executor's spin, kept alive. A test that destroys a client, publisher or subscription of the
        helper while the executor builds its wait set makes that spin_once raise InvalidHandle ("destruction
        was requested"); with a plain executor.spin that ended the thread, and every later service call of
        the module went unanswered (seen once in five loaded runs). The next spin_once starts a fresh wait."""
        from rclpy.impl.implementation_singleton import rclpy_implementation

        while not self._closing.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except rclpy_implementation.InvalidHandle:
                continue
            except Exception:
                if self._closing.is_set() or not self.context.ok():
                    return
                raise

    def make_node(self, **params):
        from lcsnet_seg.ros.node import SegmentationNode

        params.setdefault("autostart", False)
        node = SegmentationNode(
            context=self.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def collect(self, msg_type, topic: str, qos=RELIABLE) -> list:
        received: list = []
        self.helper.create_subscription(msg_type, topic, received.append, qos)
        return received

    def statuses(self, node_name: str) -> list:
        """Every /diagnostics status of ``node_name`` from now on, as (level, message, values)."""
        from diagnostic_msgs.msg import DiagnosticArray

        from lcsnet_seg.ros.names import status_name

        seen: list = []

        def keep(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name == status_name(node_name):
                    seen.append((status.level, status.message, {kv.key: kv.value for kv in status.values}))

        self.helper.create_subscription(DiagnosticArray, "/diagnostics", keep, 50)
        return seen

    def set_remote_parameter(self, node_name: str, name: str, value) -> None:
        """Set a parameter of a node in another process through its set_parameters service."""
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()]
        result = call(self.helper.create_client(SetParameters, f"{node_name}/set_parameters"), request).results[0]
        assert result.successful, f"{node_name} refused {name}={value!r}: {result.reason}"

    def close(self) -> None:
        self._closing.set()
        self.executor.shutdown(timeout_sec=5)
        self._thread.join(timeout=5)
        for node in self.nodes:
            node.stop_processing()
            node.release()
            node.destroy_node()
        self.helper.destroy_node()
        rclpy.shutdown(context=self.context)


STARTUP_S = 120.0  # a loaded machine, or a GPU backend's first configure, can take long
EXIT_S = 30.0


class NodeProcess:
    """segmentation_node started as its own process (lcsnet_seg.ros.node_process.start_node), driven
    through its lifecycle services from the harness's helper node. Each runs under a name of its own
    (``self.name``; outputs under ``/<name>/``), so no other segmentation_node in the domain (one an
    earlier test left, or another test run's) can answer for it. Use it in a ``with`` block."""

    def __init__(self, ros: RosHarness, log: Path, parameters: dict, remappings: dict) -> None:
        from lcsnet_seg.ros.node_process import start_node

        self.ros, self.log = ros, log
        self.name = f"lcsnet_seg_test_{uuid.uuid4().hex[:8]}"
        self.process = start_node(log, parameters, remappings, self.name)

    def topic(self, output: str, camera: str = "") -> str:
        from lcsnet_seg.ros.names import output_topic

        return output_topic(output, self.name, camera)

    def _ask(self, srv_type, service: str, request, deadline_s: float):
        """One call of the node's ``service``, retried with short time-outs until ``deadline_s``: a request
        sent before the new process's server matched the client is lost, and asking again is what a ROS
        tool does."""
        name = f"/{self.name}/{service}"
        client = self.ros.helper.create_client(srv_type, name)
        deadline = time.monotonic() + deadline_s
        seen = asked = 0
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                if not client.wait_for_service(timeout_sec=1.0):
                    continue
                seen += 1
                future = client.call_async(request)
                asked += 1
                if wait_for(future.done, timeout=2.0):
                    return future.result()
                client.remove_pending_request(future)
            raise AssertionError(
                f"{name} did not answer within {deadline_s:.0f} s: the service was "
                f"{'seen' if seen else 'never seen'}, {asked} requests sent, node exit code "
                f"{self.process.poll()}. {self.diagnosis()}"
            )
        finally:
            self.ros.helper.destroy_client(client)

    def diagnosis(self) -> str:
        """What a failed wait needs: the nodes the harness sees in the domain, and the node process's log
        with its threads' stacks (segmentation_node dumps them on SIGUSR1)."""
        size = self.log.stat().st_size if self.log.exists() else 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            wait_for(lambda: self.log.exists() and self.log.stat().st_size > size, timeout=5.0)
        nodes = sorted(
            "/".join(p.strip("/") for p in ns_name[::-1]) for ns_name in self.ros.helper.get_node_names_and_namespaces()
        )
        return (
            f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID')}; nodes seen: {', '.join(nodes) or 'none'}; "
            f"the node's log (stacks at the end):\n{self.log.read_text()[-6000:] if self.log.exists() else ''}"
        )

    def state(self) -> int:
        return self._ask(GetState, "get_state", GetState.Request(), STARTUP_S).current_state.id

    def change(self, transition: int) -> bool:
        """One change_state request (a transition must not be asked twice: the second would be refused once the
        first has run), sent after get_state answered, so the service is matched; a slow configure (a GPU
        backend) gets the whole deadline."""
        self.state()
        client = self.ros.helper.create_client(ChangeState, f"/{self.name}/change_state")
        request = ChangeState.Request()
        request.transition.id = transition
        try:
            wait_until(lambda: client.wait_for_service(timeout_sec=1.0), "the change_state service", STARTUP_S)
            future = client.call_async(request)
            wait_until(
                lambda: future.done() or self.process.poll() is not None,
                f"transition {transition} of the node process",
                STARTUP_S,
            )
            assert future.done(), f"the node exited during transition {transition}: {self.log.read_text()[-2000:]}"
            if not future.result().success:
                print(f"transition {transition} refused by {self.name}: {self.log.read_text()[-2000:]}")
            return future.result().success
        finally:
            self.ros.helper.destroy_client(client)

    def wait_for_state(self, wanted: int) -> None:
        last: list[int] = []

        def reached() -> bool:
            if self.process.poll() is not None:
                return True
            last[:] = [self.state()]
            return last[0] == wanted

        if not wait_for(reached, timeout=STARTUP_S):
            raise AssertionError(
                f"waited {STARTUP_S:.0f} s for {self.name} to reach lifecycle state {wanted}, in vain: it "
                f"answered {last[0] if last else 'nothing'}. {self.diagnosis()}"
            )
        assert self.process.poll() is None, f"the node exited early: {self.log.read_text()[-2000:]}"

    def signal_and_wait(self, signum: int, twice: bool = False) -> str:
        self.process.send_signal(signum)
        if twice:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired as timeout:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the node did not exit within {EXIT_S} s of {signal.Signals(signum).name}; "
                f"its log:\n{self.log.read_text()[-2000:]}"
            ) from timeout
        return self.log.read_text()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc) -> None:
        """Never leave a node process behind, whatever the test did."""
        from lcsnet_seg.ros.node_process import stop_node

        stop_node(self.process)


def header(sec: int, frame_id: str = "camera_optical"):
    from std_msgs.msg import Header

    h = Header()
    h.stamp.sec, h.stamp.nanosec, h.frame_id = sec, 1000 + sec, frame_id
    return h


def first_with_stamp(messages: list, sec: int):
    return next((m for m in list(messages) if m.header.stamp.sec == sec), None)


def send_until_answered(publisher, msg, outputs: list, sec: int, tries: int = 3, timeout: float = 8.0):
    """Publish ``msg`` (best effort may drop it) until an output with its stamp arrives."""
    for _ in range(tries):
        publisher.publish(msg)
        if wait_for(lambda: first_with_stamp(outputs, sec) is not None, timeout):
            return first_with_stamp(outputs, sec)
    return None


__all__ = [
    "RosHarness",
    "NodeProcess",
    "SimpleNamespace",
    "call",
    "settled",
    "wait_for",
    "wait_until",
    "header",
    "first_with_stamp",
    "send_until_answered",
    "RELIABLE",
]
