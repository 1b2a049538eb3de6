"""A small harness for tests with real rclpy: an executor spinning in a thread, a helper node,
and helpers to call services and wait for messages."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import rclpy
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


def call(client, request, timeout: float = 10.0):
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
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def make_node(self, **params):
        from lcsnet_seg.ros.node import SegmentationNode

        params.setdefault("autostart", False)
        node = SegmentationNode(context=self.context,
                                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def collect(self, msg_type, topic: str, qos=RELIABLE) -> list:
        received: list = []
        self.helper.create_subscription(msg_type, topic, received.append, qos)
        return received

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self._thread.join(timeout=5)
        for node in self.nodes:
            node.stop_processing()
            node.release()
            node.destroy_node()
        self.helper.destroy_node()
        rclpy.shutdown(context=self.context)


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


__all__ = ["RosHarness", "SimpleNamespace", "call", "settled", "wait_for", "wait_until", "header", "first_with_stamp", "send_until_answered",
           "RELIABLE"]
