"""One bag, evaluated: open it, replay its frames through a segmenter, score them, write the results.

Used by `evaluate` for a single bag and by every fleet worker for each of its bags, so a bag
scored alone and the same bag scored in a fleet go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lcsnet_seg.eval import bag_io
from lcsnet_seg.eval.replay import FrameOutput, NoOutputBag, replay_frames
from lcsnet_seg.eval.scoring import Scorer

if TYPE_CHECKING:
    from lcsnet_seg.classes import ClassSet


@dataclass(frozen=True)
class BagOptions:
    """What to read from a bag and how to score it (the evaluate options that are per bag).

    start/end: seconds from the bag's start (None: its start/end). stride: every N-th image.
    stamp_tolerance_ms: label/image header-stamp matching tolerance. samples: sample overlays kept.
    write_output_bag: write OUT/segmentation_bag (label_mask, color_mask, overlay under output_prefix).
    """

    image_topic: str
    label_topic: str | None = None
    stamp_tolerance_ms: float = 1.0
    start: float | None = None
    end: float | None = None
    stride: int = 1
    samples: int = 6
    output_prefix: str = "/lcsnet_seg"
    write_output_bag: bool = True


@dataclass
class BagScore:
    """A scored bag: the Scorer (confusion matrix, flicker counts, samples) and facts about the run."""

    scorer: Scorer
    meta: dict = field(default_factory=dict)  # backend, device, backend_reason, class_set, ...


# (frames, in_range, labels, writer, image_msgtype) -> (Scorer, meta)
Replay = Callable[..., tuple[Scorer, dict]]


def score_bag(bag: Path, options: BagOptions, out_dir: Path | None, replay: Replay) -> BagScore:
    """Open ``bag``, replay its frames through ``replay`` and return the score.

    Raises bag_io.BagError (one line naming the bag) when the bag is missing, unreadable, empty,
    or lacks the topics. ``out_dir`` receives segmentation_bag/ when options.write_output_bag.
    """
    bag = Path(bag)
    reader = bag_io.open_reader(bag)
    try:
        image_conn = bag_io.connection(reader, options.image_topic, bag_io.IMAGE_TYPES, "image")
        labels = None
        if options.label_topic:
            label_conn = bag_io.connection(reader, options.label_topic, (bag_io.IMAGE,), "label")
            labels = bag_io.LabelIndex(reader, label_conn, int(options.stamp_tolerance_ms * 1e6))
        start_ns = reader.start_time + int(options.start * 1e9) if options.start is not None else None
        stop_ns = reader.start_time + int(options.end * 1e9) if options.end is not None else None
        if start_ns is None and stop_ns is None:
            total = image_conn.msgcount  # from the bag's index: no pass over the data
        else:
            total = sum(1 for _ in reader.messages(connections=[image_conn], start=start_ns, stop=stop_ns))
        in_range = len(range(0, total, options.stride))
        if in_range == 0:
            raise bag_io.BagError(f"no {options.image_topic} messages between --start and --end in {bag}")
        writer: bag_io.BagWriter | NoOutputBag
        if options.write_output_bag:
            assert out_dir is not None, "options.write_output_bag needs an out_dir"
            out_dir.mkdir(parents=True, exist_ok=True)
            writer = bag_io.BagWriter(out_dir / "segmentation_bag", bag_io.storage_of(reader))
        else:
            writer = NoOutputBag()
        frames = bag_io.read_frames(reader, image_conn, start_ns, stop_ns, options.stride)
        try:
            scorer, meta = replay(frames, in_range, labels, writer, image_conn.msgtype)
        finally:
            writer.close()
    finally:
        reader.close()
    return BagScore(scorer, meta)


def segmenter_replay(
    segmenter, options: BagOptions, why: str = "given by the caller", progress: Callable | None = None
) -> Replay:
    """A Replay that runs every frame through ``segmenter`` as fast as it goes.

    ``segmenter``: a Segmenter, GpuSegmenter or any callable with their interface. ``progress``:
    wraps the frame iterator (tqdm-like: iterable, total=, desc=); default tqdm.
    """

    def segment(items):
        for index, frame, wanted in items:
            result = segmenter(frame.image, frame.encoding, wanted)
            yield (
                index,
                frame,
                FrameOutput({f: getattr(result, f) for f in wanted}, result.overlay_order, result.timings_ms["total"]),
            )

    def replay(frames, in_range: int, labels, writer, _image_msgtype):
        info = segmenter.info
        scorer = replay_frames(
            frames,
            in_range,
            labels,
            writer,
            segment,
            num_classes=info.num_classes,
            samples=options.samples,
            output_prefix=options.output_prefix,
            progress=progress,
        )
        backend = segmenter.backend
        return scorer, {
            "backend": backend.name,
            "device": backend.device,
            "backend_reason": why,
            "class_set": info.classes,
        }

    return replay


def bag_document(score: BagScore, bag: Path, options: BagOptions, model: Path, mode: str) -> tuple[dict, ClassSet]:
    """The metrics.json document of one scored bag, and its class set."""
    from lcsnet_seg.backends.model_files import read_model_info
    from lcsnet_seg.eval.report import metrics_document

    meta = dict(score.meta)
    classes = meta.pop("class_set", None) or read_model_info(model).classes
    doc = metrics_document(
        score.scorer,
        classes.names,
        classes.palette_rgb(),
        {
            "bag": str(bag),
            "image_topic": options.image_topic,
            "label_topic": options.label_topic,
            "model": str(model),
            "mode": mode,
            **meta,
        },
    )
    return doc, classes
