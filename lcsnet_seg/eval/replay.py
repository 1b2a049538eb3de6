"""The one replay loop: frames -> a segment step -> scores, samples, the output bag, counted gaps.

Both evaluate modes use it: in process (a Segmenter, bag_eval.segmenter_replay) and through the
node as its own process (ros/bag_replay.py). A ``segment`` step takes the readable frames as
(index, frame, wanted fields) and yields (index, frame, FrameOutput or None when the frame got no
output), in order. The loop consumes each output before it asks for the next, so a segmenter
whose results live in reused buffers (the GPU Segmenter) may yield them as they are: what is kept
beyond the frame (scored labels, samples) is copied by the Scorer, and the output bag serializes
at once.

Several cameras of one bag go through the same loop (replay_cameras; replay_frames is its one-camera
form): frames of all cameras in log-time order, a Scorer per camera, and the step groups them into
ticks (``ticks``) that it segments together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

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
    sensor_msgs/Image, written to the output bag as is (the node's own messages) instead of ``arrays``;
    tick: the tick of several cameras' frames it was segmented in."""

    arrays: dict[str, np.ndarray]
    overlay_order: str = "rgb"
    latency_ms: float = 0.0
    raw: dict[str, bytes] | None = field(default=None)
    tick: int | None = None  # several cameras: the tick the frame was segmented in (replay.ticks)


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
# several cameras: (camera position, index in that camera's sequence, frame, wanted), and the step's answers likewise
CameraItem: TypeAlias = "tuple[int, int, Frame, tuple[str, ...]]"
CameraSegment: TypeAlias = "Callable[[Iterable[CameraItem]], Iterator[tuple[int, int, Frame, FrameOutput | None]]]"


@dataclass
class CameraReplay:
    """One camera of a replay. name: "" for a bag's single camera; in_range: its frames to replay; labels: a
    bag_io.LabelIndex or None; output_prefix: the topic prefix of its outputs in the output bag."""

    name: str
    in_range: int
    labels: Any
    output_prefix: str


@dataclass
class Replayed:
    """What a replay of several cameras scored: a Scorer per camera, in order, and each tick's latency (the
    most any of its frames cost: the frames of one tick are segmented together)."""

    scorers: list[Scorer]
    tick_latencies_ms: list[float]


def ticks(items: Iterable[CameraItem], window_ns: int) -> Iterator[list[CameraItem]]:
    """Frames (in log-time order) grouped into ticks: a tick takes the frames of different cameras whose header
    stamps lie within ``window_ns`` of its first frame's; a second frame of a camera, or one outside the window,
    starts the next tick. A camera without a frame in a tick is absent from it."""
    tick: list[CameraItem] = []
    for item in items:
        camera, _, frame, _ = item
        if tick and (any(c == camera for c, *_ in tick) or abs(frame.stamp - tick[0][2].stamp) > window_ns):
            yield tick
            tick = []
        tick.append(item)
    if tick:
        yield tick


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
    One camera of replay_cameras.
    """

    def one_camera(items: Iterable[CameraItem]) -> Iterator[tuple[int, int, Frame, FrameOutput | None]]:
        for index, frame, out in segment((index, frame, wanted) for _, index, frame, wanted in items):
            yield 0, index, frame, out

    replayed = replay_cameras(
        ((0, frame) for frame in frames),
        [CameraReplay("", in_range, labels, output_prefix)],
        writer,
        one_camera,
        num_classes=num_classes,
        samples=samples,
        progress=progress,
        desc=desc,
    )
    return replayed.scorers[0]


def replay_cameras(
    frames: Iterable,
    cameras: Sequence[CameraReplay],
    writer,
    segment: CameraSegment,
    *,
    num_classes: int,
    samples: int,
    progress: Callable | None = None,
    desc: str = "evaluating",
) -> Replayed:
    """Replay ``frames`` ((camera position, bag_io.Frame) in log-time order) of ``cameras`` through ``segment``
    and score each camera on its own Scorer (its samples, its flicker along its own frames).

    A step may set a frame's ``error`` and answer None (a frame it could not decode): counted as unreadable.
    FrameOutput.tick: the tick a frame was segmented in (tick latencies: the most of its frames' latencies).
    """
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.postprocess import as_three_channel

    if progress is None:
        from tqdm import tqdm

        progress = tqdm
    scorers = [Scorer(num_classes, sample_positions(c.in_range, samples)) for c in cameras]
    for scorer, replayed_camera in zip(scorers, cameras):
        scorer.counts["frames_in_range"] = replayed_camera.in_range
    prefixes = [c.output_prefix.rstrip("/") for c in cameras]
    writing = not isinstance(writer, NoOutputBag)
    recorded = tuple(o.field for o in RECORDED)
    tick_latency: dict[int, float] = {}

    def bad_image(scorer: Scorer, frame, error: str) -> None:
        scorer.counts["frames_bad_image"] += 1
        scorer.warn(f"image at stamp {frame.stamp}: {error}")

    def readable(bar) -> Iterator[CameraItem]:
        seen = [0] * len(cameras)
        for camera, frame in bar:
            index = seen[camera]
            seen[camera] += 1
            scorer = scorers[camera]
            if frame.error:
                bad_image(scorer, frame, frame.error)
                continue
            yield camera, index, frame, recorded if writing or index in scorer.sample_indices else (LABELS,)

    bar = progress(frames, total=sum(c.in_range for c in cameras), desc=desc, unit="frame")
    for camera, index, frame, out in segment(readable(bar)):
        scorer, prefix = scorers[camera], prefixes[camera]
        if out is None:
            if frame.error:
                bad_image(scorer, frame, frame.error)
            else:
                scorer.counts["frames_without_output"] += 1
            continue
        scorer.counts["frames_segmented"] += 1
        scorer.latencies_ms.append(out.latency_ms)
        if out.tick is not None:
            tick_latency[out.tick] = max(tick_latency.get(out.tick, 0.0), out.latency_ms)
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
        labels = cameras[camera].labels
        truth = labels.find(frame.stamp) if labels is not None else None
        if labels is not None:
            scorer.score(index, frame.stamp, out.arrays[LABELS], truth)  # copies what it keeps
        overlay = out.arrays.get("overlay")
        if index in scorer.sample_indices and overlay is not None:
            if frame.image is None:  # a JPEG frame decoded on the GPU: the sample's picture from the CPU decoder
                frame.decode_jpeg()
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
    return Replayed(scorers, [tick_latency[t] for t in sorted(tick_latency)])
