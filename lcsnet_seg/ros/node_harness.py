"""segmentation_node as its own process, driven from this one: start, match, warm up, publish, collect, stop.

Used by the demo and by evaluate --node. Outputs are kept by header stamp (nanoseconds) as
(arrival time from time.perf_counter, serialized message, message deserialized with the rosbags
typestore: ``data`` is a numpy array), so a late answer can never pass for another frame's.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

from lcsnet_seg.errors import LcsnetError
from lcsnet_seg.eval import bag_io
from lcsnet_seg.ros.names import NODE_NAME, output_topic
from lcsnet_seg.ros.node_process import ros_environment, start_node, stop_node

if TYPE_CHECKING:
    from rosbags.typesys.stores.latest import sensor_msgs__msg__Image

# (arrival time from time.perf_counter, serialized message, the message deserialized by rosbags)
Received: TypeAlias = "tuple[float, bytes, sensor_msgs__msg__Image]"


class NodeHarness:
    """Context manager. ``outputs``: OutputSpec topics to collect (label_mask, overlay, ...);
    ``input_topic``: where frames are published (the node's ``image`` or ``image/compressed`` is
    remapped there by the caller's ``remappings``); ``compressed``: publish CompressedImage;
    ``node_name``: the name the node runs under (its outputs are /<node_name>/<topic>).

    ``cameras``: the node's ``cameras`` parameter (the caller sets it too); then ``input_topic`` holds
    ``{camera}``, each camera's frames go to its own topic (``publish(raw, camera)``), and the outputs are
    collected per camera under ``"<camera>/<topic>"`` (key()) from /<node_name>/<camera>/<topic>."""

    def __init__(
        self,
        log_path: Path,
        parameters: dict[str, object],
        remappings: dict[str, str],
        *,
        input_topic: str,
        outputs: tuple[str, ...],
        compressed: bool = False,
        player_name: str = "lcsnet_player",
        depth: int = 50,
        node_name: str = NODE_NAME,
        cameras: tuple[str, ...] = (),
    ) -> None:
        self.log_path, self.parameters, self.remappings = log_path, parameters, remappings
        self.input_topic, self.outputs, self.compressed = input_topic, tuple(outputs), compressed
        self.player_name, self.depth, self.node_name = player_name, depth, node_name
        self.cameras = tuple(cameras) or ("",)
        self.keys = tuple(self.key(t, c) for c in self.cameras for t in self.outputs)  # every output collected
        self.received: dict[str, dict[int, Received]] = {k: {} for k in self.keys}
        self.arrived = threading.Condition()
        self.exit_code: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def process(self) -> subprocess.Popen:
        """The node's process; there only inside the ``with``."""
        if self._process is None:
            raise LcsnetError("segmentation_node is not started: use the harness in a `with` block")
        return self._process

    # -- lifetime ----------------------------------------------------------------------------------
    def __enter__(self) -> NodeHarness:
        ros_environment()
        self._store = bag_io.typestore()
        self._process = start_node(self.log_path, self.parameters, self.remappings, self.node_name)
        try:
            self._start_player()
        except BaseException:
            self.exit_code = stop_node(self.process)
            raise
        return self

    def _start_player(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        rclpy.init()
        self.node = rclpy.create_node(self.player_name)
        self.reliable = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.depth, reliability=ReliabilityPolicy.RELIABLE
        )
        kind = CompressedImage if self.compressed else Image
        self.publishers = {
            c: self.node.create_publisher(kind, self.input_topic.format(camera=c), self.reliable) for c in self.cameras
        }
        self.publisher = self.publishers[self.cameras[0]]
        for camera in self.cameras:
            for topic in self.outputs:
                self.node.create_subscription(
                    Image,
                    output_topic(topic, self.node_name, camera),
                    self._keep(self.key(topic, camera)),
                    self.reliable,
                    raw=True,
                )
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        threading.Thread(target=self._executor.spin, daemon=True).start()

    def __exit__(self, *_exc) -> None:
        import rclpy

        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        self.exit_code = stop_node(self.process)

    @staticmethod
    def key(topic: str, camera: str = "") -> str:
        """Where an output of ``camera`` is collected in ``received``: the topic, or "<camera>/<topic>"."""
        return f"{camera}/{topic}" if camera else topic

    def _keep(self, topic: str):
        def callback(raw: bytes) -> None:
            msg = cast("sensor_msgs__msg__Image", self._store.deserialize_cdr(raw, bag_io.IMAGE))
            with self.arrived:
                self.received[topic][bag_io.stamp_ns(msg.header)] = (time.perf_counter(), raw, msg)
                self.arrived.notify_all()

        return callback

    def subscribe(self, msg_type, topic: str, callback, qos=10) -> None:
        """Another subscription on the harness's node (e.g. /diagnostics); call inside the ``with``."""
        self.node.create_subscription(msg_type, topic, callback, qos)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text()[-chars:] if self.log_path.exists() else ""

    def _check_alive(self, waiting_for: str) -> None:
        if self.process.poll() is not None:
            raise LcsnetError(
                f"segmentation_node exited (code {self.process.returncode}) while waiting for "
                f"{waiting_for}; see {self.log_path}"
            )

    # -- matching, warm-up, publishing ---------------------------------------------------------------
    def wait_until_matched(self, timeout: float) -> None:
        """Until the node subscribes to the input topic and publishes every collected output."""
        what = f"the node to subscribe to {self.input_topic} and publish {', '.join(self.outputs)}"
        deadline = time.monotonic() + timeout
        while any(p.get_subscription_count() == 0 for p in self.publishers.values()) or any(
            self.node.count_publishers(output_topic(t, self.node_name, c)) == 0
            for c in self.cameras
            for t in self.outputs
        ):
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise LcsnetError(f"no answer within {timeout:.0f} s from {what}; see {self.log_path}")
            time.sleep(0.1)

    def has(self, stamp_ns: int, topics: tuple[str, ...] | None = None) -> bool:
        """Whether every output in ``topics`` (keys; default: all of them) has an answer for ``stamp_ns``."""
        return all(stamp_ns in self.received[t] for t in (topics or self.keys))

    def round_trip(
        self, raw: bytes, stamp_ns: int, *, tries: int, wait_s: float, topics: tuple[str, ...] | None = None
    ) -> float | None:
        """Publish ``raw`` (a serialized image with header stamp ``stamp_ns``) until its outputs arrive
        (a best-effort link may drop a frame); at most ``tries`` times, ``wait_s`` each. Returns the
        latency of the answered publish in ms, or None."""
        for _ in range(tries):
            self._check_alive(f"the outputs of the frame stamped {stamp_ns} ns")
            sent = time.perf_counter()
            for publisher in self.publishers.values():
                publisher.publish(raw)
            with self.arrived:
                if self.arrived.wait_for(lambda: self.has(stamp_ns, topics), timeout=wait_s):
                    return (time.perf_counter() - sent) * 1e3
        return None

    def warm_up(self, raw: bytes, stamp_ns: int, timeout: float, topics: tuple[str, ...] | None = None) -> None:
        """Publish a frame until the node answers it (subscriptions match only after a while), then forget
        every output so far. ``stamp_ns`` must be no real frame's, so late answers cannot be mistaken."""
        if self.round_trip(raw, stamp_ns, tries=max(1, int(timeout / 0.5)), wait_s=0.5, topics=topics) is None:
            raise LcsnetError(
                f"segmentation_node did not answer a warm-up frame within {timeout:.0f} s; see {self.log_path}"
            )
        self.clear()

    def publish(self, raw, camera: str = "") -> None:
        self.publishers[camera or self.cameras[0]].publish(raw)

    def wait_for(self, stamps, topic: str, timeout: float) -> bool:
        """Until ``topic`` has an output for every stamp in ``stamps``, or ``timeout`` s; True if all came."""
        with self.arrived:
            return self.arrived.wait_for(lambda: all(s in self.received[topic] for s in stamps), timeout=timeout)

    def output(self, topic: str, stamp_ns: int) -> Received | None:
        with self.arrived:
            return self.received[topic].get(stamp_ns)

    def pop(self, topic: str, stamp_ns: int) -> Received | None:
        with self.arrived:
            return self.received[topic].pop(stamp_ns, None)

    def clear(self) -> None:
        with self.arrived:
            for table in self.received.values():
                table.clear()
