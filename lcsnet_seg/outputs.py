"""The outputs, defined once: topic, Segmenter result field, message encoding, enabling parameter (with
its default and description). The Segmenters' output names, the node's publishers and its publish_*
parameters, the parameter YAML check and the evaluation replay all read this table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputSpec:
    """topic: published as ~/<topic>; field: the SegmentationResult attribute (and the name a Segmenter
    is asked for); encoding: sensor_msgs/Image encoding ("{order}8" takes the overlay's colour order);
    parameter: the bool parameter that enables it; on_by_default: its default; what: the description;
    channels and dtype: one pixel of it (the GPU Segmenter sizes its output buffers from these)."""

    topic: str
    field: str
    encoding: str
    on_by_default: bool
    what: str
    channels: int
    dtype: type

    @property
    def parameter(self) -> str:
        return f"publish_{self.topic}"

    def encoding_for(self, color_order: str) -> str:
        return self.encoding.format(order=color_order)


OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("label_mask", "labels", "mono8", True, "mono8 class ids", 1, np.uint8),
    OutputSpec("color_mask", "color_mask", "rgb8", True, "rgb8 palette colours", 3, np.uint8),
    OutputSpec("overlay", "overlay", "{order}8", True, "the image blended with the colours", 3, np.uint8),
    OutputSpec("confidence", "confidence", "32FC1", False, "32FC1, max softmax", 1, np.float32),
)
BY_TOPIC = {o.topic: o for o in OUTPUTS}
