"""The node's output publishers: ~/label_mask, ~/color_mask, ~/overlay, ~/confidence, ~/camera_info."""

from __future__ import annotations

from collections.abc import Callable

from sensor_msgs.msg import CameraInfo, Image

from lcsnet_seg.outputs import OUTPUTS, OutputSpec
from lcsnet_seg.ros.camera_info import scaled_camera_info
from lcsnet_seg.ros.image_codec import array_to_image


class OutputPublishers:
    """Lifecycle publishers for every output (created at configure, destroyed at cleanup)."""

    def __init__(self, node, qos, event_callbacks, camera_info: bool) -> None:
        self._node = node
        self._pubs = {
            o.topic: node.create_lifecycle_publisher(Image, f"~/{o.topic}", qos, event_callbacks=event_callbacks)
            for o in OUTPUTS
        }
        self._camera_info = node.create_lifecycle_publisher(CameraInfo, "~/camera_info", qos) if camera_info else None

    def wanted(self, enabled: Callable[[str], bool], force: bool) -> list[OutputSpec]:
        """The outputs to compute for the next frame: enabled, and subscribed to (or ``force``)."""
        return [
            o
            for o in OUTPUTS
            if enabled(o.parameter)
            and o.topic in self._pubs
            and (force or self._pubs[o.topic].get_subscription_count() > 0)
        ]

    def publish(self, header, wanted: list[OutputSpec], result, camera_info: CameraInfo | None) -> None:
        """Publish ``result``'s arrays with the input's ``header`` (stamp and frame_id unchanged)."""
        for output in wanted:
            self._pubs[output.topic].publish(
                array_to_image(Image, getattr(result, output.field), output.encoding_for(result.overlay_order), header)
            )
        if self._camera_info is not None and camera_info is not None:
            self._camera_info.publish(scaled_camera_info(camera_info, header, *result.labels.shape[:2]))

    def destroy(self) -> None:
        destroy = getattr(self._node, "destroy_lifecycle_publisher", self._node.destroy_publisher)
        for pub in list(self._pubs.values()) + ([self._camera_info] if self._camera_info else []):
            destroy(pub)
        self._pubs.clear()
        self._camera_info = None
