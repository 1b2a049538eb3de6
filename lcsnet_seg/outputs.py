"""The node's outputs, defined once: topic, Segmenter result field, message encoding, enabling parameter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputSpec:
    """topic: published as ~/<topic>; field: the SegmentationResult attribute (and the name a Segmenter
    is asked for); encoding: sensor_msgs/Image encoding ("{order}8" takes the overlay's colour order);
    parameter: the bool parameter that enables it."""

    topic: str
    field: str
    encoding: str
    parameter: str

    def encoding_for(self, colour_order: str) -> str:
        return self.encoding.format(order=colour_order)


OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("label_mask", "labels", "mono8", "publish_label_mask"),
    OutputSpec("color_mask", "color_mask", "rgb8", "publish_color_mask"),
    OutputSpec("overlay", "overlay", "{order}8", "publish_overlay"),
    OutputSpec("confidence", "confidence", "32FC1", "publish_confidence"),
)
BY_TOPIC = {o.topic: o for o in OUTPUTS}
