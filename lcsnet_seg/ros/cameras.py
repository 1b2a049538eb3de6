"""One camera of the node: its input (``image`` or ``image/compressed``, ``camera_info``), what reaches it
(InputWatch), and its output publishers (``~/label_mask``, ...), which outputs are wanted, and publishing.

With no ``cameras`` parameter the node has one camera without a name: inputs ``image``, outputs
``~/label_mask`` etc. A camera named ``front`` reads ``front/image`` and publishes ``~/front/label_mask``:
relative names, so in the node's namespace and remappable.

Which outputs are wanted (enabled, and subscribed to or forced) is decided when it can change, not per
frame: when the output settings change and when a subscriber comes or goes (publisher matched events);
the frame path reads the result. Where rclpy has no matched events (Humble), it is decided per frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from lcsnet_seg.outputs import OUTPUTS, OutputSpec
from lcsnet_seg.ros import qos
from lcsnet_seg.ros.camera_info import scaled_camera_info
from lcsnet_seg.ros.config import NodeConfig, OutputSettings
from lcsnet_seg.ros.image_codec import array_to_image
from lcsnet_seg.ros.input_watch import InputWatch


class Camera:
    """``name``: "" for the node's single default camera; ``index``: its place in the cameras parameter."""

    def __init__(self, node, name: str, config: NodeConfig, index: int = 0) -> None:
        self.node, self.name, self.config, self.index = node, name, config, index
        prefix = f"{name}/" if name else ""
        self.input_name = f"{prefix}image/compressed" if config.compressed else f"{prefix}image"
        self.info_name = f"{prefix}camera_info"
        self.output_names = {o.topic: f"~/{prefix}{o.topic}" for o in OUTPUTS}
        self.topic = qos.resolved(node, self.input_name)  # the fully resolved input topic
        self.watch = InputWatch(self.topic)
        self.camera_info: CameraInfo | None = None
        self._subs: list = []
        self._settings = config.outputs
        self._wanted: tuple[OutputSpec, ...] = ()
        self._lock = threading.Lock()
        self._events_decide = True
        events = self._publisher_events(node)
        out_qos = qos.profile(config.output_qos_reliability, 1)
        self._pubs = {
            o.topic: node.create_lifecycle_publisher(Image, self.output_names[o.topic], out_qos, event_callbacks=events)
            for o in OUTPUTS
        }
        self._info_pub = (
            node.create_lifecycle_publisher(CameraInfo, f"~/{prefix}camera_info", out_qos)
            if config.use_camera_info
            else None
        )
        self.refresh()

    def _publisher_events(self, node):
        incompatible = node.on_incompatible_output_qos
        try:  # Iron and newer: decide what is wanted when a subscriber comes or goes
            return qos.PublisherEventCallbacks(incompatible_qos=incompatible, matched=lambda _info: self.refresh())
        except TypeError:  # Humble: no matched events; decided per frame instead
            self._events_decide = False
            return qos.PublisherEventCallbacks(incompatible_qos=incompatible)

    # -- what is wanted -----------------------------------------------------------------------------------
    def apply(self, settings: OutputSettings) -> None:
        """New output settings (the parameter callback): decide again."""
        with self._lock:
            self._settings = settings
        self.refresh()

    def refresh(self) -> None:
        with self._lock:
            settings, pubs = self._settings, getattr(self, "_pubs", {})
            self._wanted = tuple(
                o
                for o in OUTPUTS
                if o.topic in settings.enabled
                and o.topic in pubs
                and (settings.force or pubs[o.topic].get_subscription_count() > 0)
            )

    @property
    def wanted(self) -> tuple[OutputSpec, ...]:
        """The outputs to compute for this camera's next frame (empty: none; the frame is not even decoded)."""
        if not self._events_decide:
            self.refresh()
        return self._wanted

    # -- input --------------------------------------------------------------------------------------------
    def subscribe(self, on_image: Callable, on_incompatible_qos: Callable, on_message_lost: Callable) -> None:
        """Subscribe to the input (and camera_info). The callbacks get this camera first: ``on_image(camera, msg,
        message_info)``, ``on_incompatible_qos(camera, info)``, ``on_message_lost(camera, info)``."""
        config, node = self.config, self.node
        profile = qos.profile(config.qos_reliability, config.qos_depth)
        kind = CompressedImage if config.compressed else Image
        self.watch = InputWatch(self.topic)  # a new activation: nothing seen yet
        events = qos.SubscriptionEventCallbacks(
            incompatible_qos=lambda info: on_incompatible_qos(self, info),
            message_lost=lambda info: on_message_lost(self, info),
        )

        def callback(msg, message_info) -> None:  # two parameters: rclpy passes the MessageInfo too
            on_image(self, msg, message_info)

        self._subs = [node.create_subscription(kind, self.input_name, callback, profile, event_callbacks=events)]
        if config.use_camera_info:
            self._subs.append(node.create_subscription(CameraInfo, self.info_name, self._keep_info, profile))

    def _keep_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def problem(self) -> str | None:
        """What InputWatch says about this camera's input (None while all is well or before it can tell)."""
        if not self._subs:
            return None
        return self.watch.problem(
            publishers=self.node.count_publishers(self.topic),
            matched=self._subs[0].get_publisher_count(),
            reliability=self.config.qos_reliability,
        )

    def unsubscribe(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    # -- output -------------------------------------------------------------------------------------------
    def publish(self, header, wanted: tuple[OutputSpec, ...], result) -> None:
        """Publish ``result``'s arrays with the input's ``header`` (stamp and frame_id unchanged)."""
        for output in wanted:
            self._pubs[output.topic].publish(
                array_to_image(Image, getattr(result, output.field), output.encoding_for(result.overlay_order), header)
            )
        if self._info_pub is not None and self.camera_info is not None:
            self._info_pub.publish(scaled_camera_info(self.camera_info, header, *result.labels.shape[:2]))

    def destroy(self) -> None:
        """Unsubscribe and destroy the publishers (cleanup)."""
        self.unsubscribe()
        destroy = getattr(self.node, "destroy_lifecycle_publisher", self.node.destroy_publisher)
        for pub in list(self._pubs.values()) + ([self._info_pub] if self._info_pub else []):
            destroy(pub)
        self._pubs, self._info_pub, self.camera_info = {}, None, None
        self._wanted = ()
