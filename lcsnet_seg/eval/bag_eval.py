"""One bag, evaluated: open it, replay its frames through a segmenter, score them, write the results.

Used by `evaluate` for a single bag and by every fleet worker for each of its bags, so a bag
scored alone and the same bag scored in a fleet go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lcsnet_seg.errors import ImageError
from lcsnet_seg.eval import bag_io
from lcsnet_seg.eval.replay import CameraReplay, FrameOutput, NoOutputBag, Replayed, replay_cameras, ticks
from lcsnet_seg.eval.scoring import Scorer, merged_scorer
from lcsnet_seg.outputs import OUTPUTS

if TYPE_CHECKING:
    from lcsnet_seg.classes import ClassSet


@dataclass(frozen=True)
class CameraTopics:
    """One camera of a bag: its name (camera_names), its image topic and its ground-truth topic (or None)."""

    name: str
    image_topic: str
    label_topic: str | None = None


@dataclass(frozen=True)
class BagOptions:
    """What to read from a bag and how to score it (the evaluate options that are per bag).

    start/end: seconds from the bag's start (None: its start/end). stride: every N-th image (of each camera).
    stamp_tolerance_ms: label/image header-stamp matching tolerance. samples: sample overlays kept (per camera).
    write_output_bag: write OUT/segmentation_bag (label_mask, color_mask, overlay under output_prefix).
    cameras: several cameras of the bag (evaluate's --image-topic given more than once; image_topic and
    label_topic are then the first camera's), each scored on its own and all together, their outputs under
    output_prefix/<camera>/; empty: the one camera of image_topic. sync_ms: several cameras: frames whose
    header stamps lie within this of a tick's first frame are segmented together in that tick (None: half
    the shortest median frame period among the cameras).
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
    cameras: tuple[CameraTopics, ...] = ()
    sync_ms: float | None = None

    def camera_topics(self) -> tuple[CameraTopics, ...]:
        """The cameras to replay: ``cameras``, or the single one ("" its name) of image_topic."""
        return self.cameras or (CameraTopics("", self.image_topic, self.label_topic),)


def camera_names(topics) -> list[str]:
    """A camera name per image topic: its first path component ("/front/image_raw" -> "front"); where two
    topics give the same one, each of those is named by its whole topic instead ("/cam/image_raw" and
    "/cam/image_raw/compressed" -> "cam_image_raw", "cam_image_raw_compressed"); "_2", "_3" ... where that
    still repeats. Characters other than letters, digits and "_" become "_"; a name starting with a digit gets
    "cam_" before it, so every name is a relative ROS name (the node's ``cameras`` parameter takes them)."""

    def clean(text: str) -> str:
        name = "".join(c if c.isalnum() and c.isascii() or c == "_" else "_" for c in text).strip("_") or "camera"
        return f"cam_{name}" if name[0].isdigit() else name

    parts = [[p for p in t.split("/") if p] for t in topics]
    first = [clean(p[0] if p else "") for p in parts]
    names = [clean("_".join(p)) if first.count(f) > 1 else f for p, f in zip(parts, first)]
    out: list[str] = []
    for name in names:
        unique, k = name, 1
        while unique in out:
            k += 1
            unique = f"{name}_{k}"
        out.append(unique)
    return out


@dataclass
class BagScore:
    """A scored bag: the Scorer (confusion matrix, flicker counts, samples) and facts about the run. Several
    cameras: ``scorer`` holds them all (summed matrices and counts, latency per tick), ``cameras`` each one's."""

    scorer: Scorer
    meta: dict = field(default_factory=dict)  # backend, device, backend_reason, class_set, ...
    cameras: dict[str, Scorer] = field(default_factory=dict)


@dataclass
class BagStreams:
    """What a Replay replays: frames ((camera position, bag_io.Frame) in log-time order), the cameras, the output
    bag (a bag_io.BagWriter or NoOutputBag), each camera's image message type, and the tick window (ns)."""

    frames: Iterable
    cameras: list[CameraReplay]
    writer: object
    msgtypes: list[str]
    sync_ns: int


# BagStreams -> (Replayed, meta); meta may hold "cameras": {name: facts of that camera alone}
Replay = Callable[[BagStreams], tuple[Replayed, dict]]


def score_bag(
    bag: Path, options: BagOptions, out_dir: Path | None, replay: Replay, keep_jpeg: bool = False
) -> BagScore:
    """Open ``bag``, replay its frames through ``replay`` and return the score.

    Raises bag_io.BagError (one line naming the bag) when the bag is missing, unreadable, empty,
    or lacks the topics. ``out_dir`` receives segmentation_bag/ when options.write_output_bag.
    keep_jpeg: JPEG frames reach the replay undecoded (bag_io.read_frames), for a GPU decoder.
    """
    bag = Path(bag)
    topics = options.camera_topics()
    several = len(topics) > 1
    reader = bag_io.open_reader(bag)
    try:
        conns = [bag_io.connection(reader, c.image_topic, bag_io.IMAGE_TYPES, "image") for c in topics]
        labels = []
        for camera in topics:
            label_index = None
            if camera.label_topic:
                label_conn = bag_io.connection(reader, camera.label_topic, (bag_io.IMAGE,), "label")
                label_index = bag_io.LabelIndex(reader, label_conn, int(options.stamp_tolerance_ms * 1e6))
            labels.append(label_index)
        start_ns = reader.start_time + int(options.start * 1e9) if options.start is not None else None
        stop_ns = reader.start_time + int(options.end * 1e9) if options.end is not None else None
        times: list[list[int]] = [[] for _ in conns]
        if start_ns is None and stop_ns is None and not several:
            totals = [conns[0].msgcount]  # from the bag's index: no pass over the data
        else:
            position = {c.id: i for i, c in enumerate(conns)}
            for conn, log_time, _ in reader.messages(connections=conns, start=start_ns, stop=stop_ns):
                times[position[conn.id]].append(log_time)
            totals = [len(t) for t in times]
        in_range = [len(range(0, total, options.stride)) for total in totals]
        for camera, count in zip(topics, in_range):
            if count == 0:
                raise bag_io.BagError(f"no {camera.image_topic} messages between --start and --end in {bag}")
        writer: bag_io.BagWriter | NoOutputBag
        if options.write_output_bag:
            assert out_dir is not None, "options.write_output_bag needs an out_dir"
            out_dir.mkdir(parents=True, exist_ok=True)
            writer = bag_io.BagWriter(out_dir / "segmentation_bag", bag_io.storage_of(reader))
        else:
            writer = NoOutputBag()
        prefix = options.output_prefix.rstrip("/")
        cameras = [
            CameraReplay(c.name, n, index, f"{prefix}/{c.name}" if several else options.output_prefix)
            for c, n, index in zip(topics, in_range, labels)
        ]
        frames = bag_io.read_camera_frames(reader, conns, start_ns, stop_ns, options.stride, keep_jpeg)
        streams = BagStreams(frames, cameras, writer, [c.msgtype for c in conns], sync_window_ns(options, times))
        try:
            replayed, meta = replay(streams)
        finally:
            writer.close()
    finally:
        reader.close()
    if not several:
        return BagScore(replayed.scorers[0], meta)
    per_camera = {c.name: scorer for c, scorer in zip(topics, replayed.scorers)}
    meta = {**meta, "sync_ms": streams.sync_ns / 1e6, "ticks": len(replayed.tick_latencies_ms)}
    return BagScore(merged_scorer(per_camera, replayed.tick_latencies_ms), meta, per_camera)


def sync_window_ns(options: BagOptions, log_times: list[list[int]]) -> int:
    """The tick window: options.sync_ms, else half the shortest median period between a camera's recorded
    frames (receive times); unbounded where no camera has two frames (a tick then holds one frame of each)."""
    if options.sync_ms is not None:
        return int(options.sync_ms * 1e6)
    periods = [float(np.median(np.diff(t))) for t in log_times if len(t) > 1]
    periods = [p for p in periods if p > 0]
    return int(min(periods) / 2) if periods else 2**62


def image_msgtypes(bag: Path, topics) -> list[str | None]:
    """The message type of each image topic in ``bag`` (None for a topic it lacks, or for all where the bag
    cannot be read: score_bag then says why in its own words)."""
    try:
        reader = bag_io.open_reader(bag)
    except bag_io.BagError:
        return [None for _ in topics]
    try:
        types = bag_io.topic_types(reader)
    finally:
        reader.close()
    return [types.get(t) for t in topics]


def decoder_for(msgtypes, decoder: str) -> str:
    """SegmenterConfig.decoder for image topics of ``msgtypes``: ``decoder`` where one carries CompressedImage,
    else cpu (nothing to decode: no GPU decoder to set up, and decoder gpu asks nothing of the machine)."""
    return decoder if bag_io.COMPRESSED in msgtypes else "cpu"


def decodes_jpegs(segmenter) -> bool:
    """Whether ``segmenter`` decodes JPEG frames itself (the GPU Segmenter with its nvImageCodec decoder)."""
    return getattr(segmenter, "jpeg_decoder", None) is not None


def segmenter_replay(
    segmenter, options: BagOptions, why: str = "given by the caller", progress: Callable | None = None
) -> Replay:
    """A Replay that runs every frame through ``segmenter`` as fast as it goes.

    ``segmenter``: a Segmenter, GpuSegmenter or any callable with their interface. ``progress``:
    wraps the frame iterator (tqdm-like: iterable, total=, desc=); default tqdm. One camera: a call per
    frame. Several: the frames of a tick (replay.ticks) in one ``segment_batch`` call. JPEG frames left
    undecoded (score_bag keep_jpeg) are decoded by ``segmenter.decode_jpegs``, a tick's in one call; those it
    refuses on the CPU (counted as decode_fallbacks).
    """

    def replay(streams: BagStreams):
        several = len(streams.cameras) > 1
        fallbacks = [0] * len(streams.cameras)

        def on_gpu(tick) -> dict[int, Any]:
            """The tick's undecoded JPEG frames decoded by the segmenter, by position; refused ones left out."""
            jpegs = [k for k, (_, _, frame, _) in enumerate(tick) if frame.image is None and frame.jpeg is not None]
            if not jpegs:
                return {}
            try:
                decoded = segmenter.decode_jpegs([tick[k][2].jpeg for k in jpegs])
            except Exception as exc:  # noqa: BLE001 - the whole call failed: every frame goes to the CPU decoder
                decoded = [exc] * len(jpegs)
            images: dict[int, Any] = {}
            for k, image in zip(jpegs, decoded):
                if isinstance(image, BaseException):
                    fallbacks[tick[k][0]] += 1
                else:
                    images[k] = image
            return images

        def alone(image, encoding, outputs):
            try:
                return segmenter(image, encoding, outputs)
            except ImageError as exc:
                return exc

        def segment(items):
            for number, tick in enumerate(ticks(items, streams.sync_ns)):
                device = on_gpu(tick)
                ready = []
                for k, (camera, index, frame, wanted) in enumerate(tick):
                    if k in device:
                        ready.append((camera, index, frame, wanted, device[k], device[k].encoding))
                        continue
                    try:
                        frame.decode_jpeg()  # a JPEG frame the GPU decoder refused (else nothing to do)
                    except ImageError as exc:
                        frame.error = str(exc)
                        yield camera, index, frame, None
                        continue
                    ready.append((camera, index, frame, wanted, frame.image, frame.encoding))
                if not ready:
                    continue
                if several:
                    fields = {f for *_, wanted, _, _ in ready for f in wanted}
                    outputs = tuple(o.field for o in OUTPUTS if o.field in fields)
                    try:
                        results = segmenter.segment_batch([(image, encoding) for *_, image, encoding in ready], outputs)
                    except ImageError:  # one bad image fails the call: the others one by one
                        results = [alone(image, encoding, outputs) for *_, image, encoding in ready]
                else:
                    _, _, _, wanted, image, encoding = ready[0]
                    results = [segmenter(image, encoding, wanted)]
                for (camera, index, frame, wanted, _, _), result in zip(ready, results):
                    if isinstance(result, BaseException):
                        frame.error = str(result)
                        yield camera, index, frame, None
                        continue
                    arrays = {f: getattr(result, f) for f in wanted}
                    yield (
                        camera,
                        index,
                        frame,
                        FrameOutput(arrays, result.overlay_order, result.timings_ms["total"], tick=number),
                    )

        info = segmenter.info
        replayed = replay_cameras(
            streams.frames,
            streams.cameras,
            streams.writer,
            segment,
            num_classes=info.num_classes,
            samples=options.samples,
            progress=progress,
        )
        backend = segmenter.backend
        meta = {
            "backend": backend.name,
            "device": backend.device,
            "backend_reason": why,
            "class_set": info.classes,
        }
        if bag_io.COMPRESSED in streams.msgtypes:
            meta.update(decoder_facts(segmenter, sum(fallbacks)))
        if several:
            meta["cameras"] = {
                c.name: ({"decode_fallbacks": n} if streams.msgtypes[i] == bag_io.COMPRESSED else {})
                for i, (c, n) in enumerate(zip(streams.cameras, fallbacks))
            }
        return replayed, meta

    return replay


def decoder_facts(segmenter, fallbacks: int) -> dict:
    """What the metrics say of JPEG decoding: decoder gpu (nvImageCodec) or cpu (OpenCV), the frames the GPU
    decoder refused (decoded on the CPU), and why not the GPU where decoder auto fell back to the CPU."""
    facts: dict = {"decoder": "gpu" if decodes_jpegs(segmenter) else "cpu", "decode_fallbacks": fallbacks}
    note = getattr(segmenter, "decoder_note", None)
    if note:
        facts["decoder_note"] = note
    return facts


def bag_document(score: BagScore, bag: Path, options: BagOptions, model: Path, mode: str) -> tuple[dict, ClassSet]:
    """The metrics.json document of one scored bag, and its class set. Several cameras: the figures of all of
    them together (summed confusion matrices, latency per tick), and each camera's own document under
    "cameras" (by name, in order)."""
    from lcsnet_seg.backends.model_files import read_model_info
    from lcsnet_seg.eval.report import metrics_document

    meta = dict(score.meta)
    classes = meta.pop("class_set", None) or read_model_info(model).classes
    camera_meta = meta.pop("cameras", {})
    facts = {"bag": str(bag), "model": str(model), "mode": mode}
    if not score.cameras:
        extra = {
            "bag": str(bag),
            "image_topic": options.image_topic,
            "label_topic": options.label_topic,
            "model": str(model),
            "mode": mode,
            **meta,
        }
        return metrics_document(score.scorer, classes.names, classes.palette_rgb(), extra), classes
    topics = {c.name: c for c in options.camera_topics()}
    cameras = {
        name: metrics_document(
            scorer,
            classes.names,
            classes.palette_rgb(),
            {
                "camera": name,
                "image_topic": topics[name].image_topic,
                "label_topic": topics[name].label_topic,
                **camera_meta.get(name, {}),
            },
        )
        for name, scorer in score.cameras.items()
    }
    shared = {k: v for k, v in meta.items() if k != "fps"}  # the node's output rate is each camera's own
    extra = {
        **facts,
        "image_topics": [c.image_topic for c in options.camera_topics()],
        "label_topics": [c.label_topic for c in options.camera_topics()],
        **shared,
    }
    doc = metrics_document(score.scorer, classes.names, classes.palette_rgb(), extra)
    doc["cameras"] = cameras
    return doc, classes
