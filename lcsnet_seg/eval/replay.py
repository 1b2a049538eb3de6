"""The one replay loop: frames -> a segment step -> scores, samples, the output bag, counted gaps.

Both evaluate modes use it: in process (a Segmenter, bag_eval.segmenter_replay) and through the
node as its own process (ros/bag_replay.py). A ``segment`` step takes the readable frames as
(index, frame, wanted fields) and yields (index, frame, FrameOutput or None when the frame got no
output), in order. The loop consumes each output before it asks for the next, so a segmenter
whose results live in reused buffers (the GPU Segmenter) may yield them as they are: what is kept
beyond the frame (scored labels, samples) is copied by the Scorer, and the output bag serializes
at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from lcsnet_seg.eval.scoring import Scorer, sample_positions
from lcsnet_seg.outputs import OUTPUTS

if TYPE_CHECKING:
    from lcsnet_seg.eval.bag_io import Frame

# The outputs an output bag records: the image outputs a viewer shows (confidence, 32FC1, is not recorded).
RECORDED = tuple(o for o in OUTPUTS if o.encoding != "32FC1")
LABELS = "labels"


@dataclass
class FrameOutput:
    """One frame's outputs. arrays: result field -> array (labels always); overlay_order: "rgb" | "bgr"
    (the overlay's colour order); latency_ms: what the frame cost; raw: output topic -> serialized
    sensor_msgs/Image, written to the output bag as is (the node's own messages) instead of ``arrays``."""

    arrays: dict[str, np.ndarray]
    overlay_order: str = "rgb"
    latency_ms: float = 0.0
    raw: dict[str, bytes] | None = field(default=None)


class NoOutputBag:
    """Stands in for a BagWriter when no output bag is wanted."""

    def write_image(self, *_args) -> None:
        pass

    def write_raw(self, *_args) -> None:
        pass

    def close(self) -> None:
        pass


# (index, a readable bag_io.Frame, the result fields wanted); strings: Frame is imported for type checking only
Item: TypeAlias = "tuple[int, Frame, tuple[str, ...]]"
Segment: TypeAlias = "Callable[[Iterable[Item]], Iterator[tuple[int, Frame, FrameOutput | None]]]"


def replay_frames(
    frames: Iterable,
    in_range: int,
    labels,
    writer,
    segment: Segment,
    *,
    num_classes: int,
    samples: int,
    output_prefix: str,
    progress: Callable | None = None,
    desc: str = "evaluating",
) -> Scorer:
    """Replay ``frames`` (bag_io.Frame, ``in_range`` of them) through ``segment`` and score them.

    labels: a bag_io.LabelIndex or None; writer: a bag_io.BagWriter or NoOutputBag; output_prefix:
    the output bag's topic prefix; progress: wraps the frame iterator (tqdm-like; default tqdm).
    Returns the Scorer (counts: frames_bad_image, frames_segmented, frames_without_output, ...).
    """
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.postprocess import as_three_channel

    if progress is None:
        from tqdm import tqdm

        progress = tqdm
    scorer = Scorer(num_classes, sample_positions(in_range, samples))
    scorer.counts["frames_in_range"] = in_range
    prefix = output_prefix.rstrip("/")
    writing = not isinstance(writer, NoOutputBag)
    recorded = tuple(o.field for o in RECORDED)

    def readable(bar) -> Iterator[Item]:
        for index, frame in enumerate(bar):
            if frame.error:
                scorer.counts["frames_bad_image"] += 1
                scorer.warn(f"image at stamp {frame.stamp}: {frame.error}")
                continue
            yield index, frame, recorded if writing or index in scorer.sample_indices else (LABELS,)

    bar = progress(frames, total=in_range, desc=desc, unit="frame")
    for index, frame, out in segment(readable(bar)):
        if out is None:
            scorer.counts["frames_without_output"] += 1
            continue
        scorer.counts["frames_segmented"] += 1
        scorer.latencies_ms.append(out.latency_ms)
        if writing:
            for spec in RECORDED:
                topic = f"{prefix}/{spec.topic}"
                if out.raw is not None:
                    if spec.topic in out.raw:
                        from lcsnet_seg.eval.bag_io import IMAGE

                        writer.write_raw(topic, IMAGE, frame.log_time, out.raw[spec.topic])
                elif spec.field in out.arrays:
                    writer.write_image(
                        topic,
                        frame.log_time,
                        frame.header,
                        out.arrays[spec.field],
                        spec.encoding_for(out.overlay_order),
                    )
        truth = labels.find(frame.stamp) if labels is not None else None
        if labels is not None:
            scorer.score(index, frame.stamp, out.arrays[LABELS], truth)  # copies what it keeps
        overlay = out.arrays.get("overlay")
        if index in scorer.sample_indices and overlay is not None:
            assert frame.image is not None and frame.encoding is not None  # readable: decoded, no error
            fmt = pixel_format(frame.encoding)
            rgb = as_three_channel(frame.image, fmt)
            if fmt.output_order == "bgr":
                rgb = rgb[..., ::-1]
            if out.overlay_order == "bgr":
                overlay = overlay[..., ::-1]
            scorer.keep_sample(index, rgb, overlay, truth)  # copies: GPU results are reused buffers
    if hasattr(bar, "close"):
        bar.close()
    return scorer
