"""evaluate: replay a rosbag2 recording through the segmenter, score it, write an output bag and a report.

    ros2 run lcsnet_seg evaluate BAG --image-topic /camera/image_raw --label-topic /camera/labels --out-dir eval/
    ros2 run lcsnet_seg evaluate BAG --image-topic /camera/image_raw --out-dir eval/ --node --rate 1.0

Default: the Segmenter runs as fast as it can on every frame. With --node, the bag's frames are
published at --rate x real time into a segmentation_node started for the purpose, and the node's
outputs are recorded: the node is evaluated as deployed (dropped frames count).

Writes OUT/metrics.json (miou, per_class_iou, pixel_accuracy, frequency_weighted_iou, fps,
latency_ms, frames, complete, warnings), OUT/report.md with confusion_matrix.png, per_class_iou.png
and sample_NN.png, and OUT/segmentation_bag/ (label_mask, color_mask, overlay with the input stamps,
same storage as the input). Exit codes: 0 complete; 1 error; 2 bad arguments; 3 finished but
incomplete (frames unreadable or without output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsnet_seg.errors import LcsnetError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", type=Path, help="rosbag2 folder (sqlite3 or mcap)")
    ap.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    ap.add_argument("--label-topic", help="ground-truth mono8 class-id images, matched by header stamp")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None, help="ONNX or engine (default: the packaged demo model)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--stamp-tolerance-ms", type=float, default=1.0, help="label/image stamp matching tolerance")
    ap.add_argument("--start", type=float, default=None, help="seconds from the bag's start")
    ap.add_argument("--end", type=float, default=None, help="seconds from the bag's start")
    ap.add_argument("--stride", type=int, default=1, help="use every N-th image")
    ap.add_argument("--samples", type=int, default=6, help="sample overlays in the report")
    ap.add_argument("--output-prefix", default="/lcsnet_seg", help="topic prefix in the output bag")
    ap.add_argument("--node", action="store_true", help="evaluate through a running segmentation_node (rclpy)")
    ap.add_argument("--rate", type=float, default=1.0, help="--node: playback speed (1.0 = real time)")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.stride < 1 or args.rate <= 0 or args.stamp_tolerance_ms < 0:
        print("evaluate: --stride must be >= 1, --rate > 0 and --stamp-tolerance-ms >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except LcsnetError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run(args) -> int:
    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.eval.report import metrics_document, write_report
    from lcsnet_seg.model import DEMO_ONNX

    model = args.model or DEMO_ONNX
    reader = bag_io.open_reader(args.bag)
    try:
        image_conn = bag_io.connection(reader, args.image_topic, bag_io.IMAGE_TYPES, "image")
        labels = None
        if args.label_topic:
            label_conn = bag_io.connection(reader, args.label_topic, (bag_io.IMAGE,), "label")
            labels = bag_io.LabelIndex(reader, label_conn, int(args.stamp_tolerance_ms * 1e6))
        start_ns = reader.start_time + int(args.start * 1e9) if args.start is not None else None
        stop_ns = reader.start_time + int(args.end * 1e9) if args.end is not None else None
        if start_ns is None and stop_ns is None:
            total = image_conn.msgcount  # from the bag's index: no pass over the data
        else:
            total = sum(1 for _ in reader.messages(connections=[image_conn], start=start_ns, stop=stop_ns))
        in_range = len(range(0, total, args.stride))
        if in_range == 0:
            raise bag_io.BagError(f"no {args.image_topic} messages between --start and --end in {args.bag}")
        args.out_dir.mkdir(parents=True, exist_ok=True)
        writer = bag_io.BagWriter(args.out_dir / "segmentation_bag", bag_io.storage_of(reader))
        frames = bag_io.read_frames(reader, image_conn, start_ns, stop_ns, args.stride)
        try:
            if args.node:
                from lcsnet_seg.ros.bag_replay import replay_through_node

                scorer, meta = replay_through_node(args, model, frames, in_range, labels, writer,
                                                   image_conn.msgtype)
            else:
                scorer, meta = replay_segmenter(args, model, frames, in_range, labels, writer,
                                                segmenter=getattr(args, "segmenter", None))
        finally:
            writer.close()
    finally:
        reader.close()
    from lcsnet_seg.classes import load_class_set

    classes = meta.pop("class_set", None) or load_class_set()
    doc = metrics_document(scorer, classes.names, classes.palette_rgb(), {
        "bag": str(args.bag), "image_topic": args.image_topic, "label_topic": args.label_topic,
        "model": str(model), "mode": "node" if args.node else "segmenter", **meta})
    report = write_report(args.out_dir, doc, scorer, classes.palette_rgb())
    print(f"evaluate: mIoU {doc['miou']:.4f}" if doc["miou"] is not None else "evaluate: no frame scored", end="")
    print(f", {doc['fps']:.1f} FPS" if doc["fps"] else "", end="")
    print(f"; {'complete' if doc['complete'] else 'INCOMPLETE'}; wrote {report}, {args.out_dir / 'metrics.json'} "
          f"and {args.out_dir / 'segmentation_bag'}")
    return EXIT_OK if doc["complete"] else EXIT_INCOMPLETE


def replay_segmenter(args, model, frames, in_range: int, labels, writer, segmenter=None):
    """Every frame through the Segmenter (or ``segmenter``, any callable with its interface) as fast as it goes."""
    from tqdm import tqdm

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.eval.scoring import Scorer, sample_positions
    from lcsnet_seg.postprocess import as_three_channel
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.pipeline import Segmenter

    why = "given by the caller"
    if segmenter is None:
        backend, why = create_backend(args.backend, model)
        segmenter = Segmenter(backend)
    backend = segmenter.backend
    info = segmenter.info
    scorer = Scorer(info.num_classes, sample_positions(in_range, args.samples))
    scorer.counts["frames_in_range"] = in_range
    prefix = args.output_prefix.rstrip("/")
    for index, frame in enumerate(tqdm(frames, total=in_range, desc="evaluating", unit="frame")):
        if frame.error:
            scorer.counts["frames_bad_image"] += 1
            scorer.warn(f"image at stamp {frame.stamp}: {frame.error}")
            continue
        result = segmenter(frame.image, frame.encoding)
        scorer.counts["frames_segmented"] += 1
        scorer.latencies_ms.append(result.timings_ms["total"])
        writer.write_image(f"{prefix}/label_mask", frame.log_time, frame.header, result.labels, "mono8")
        writer.write_image(f"{prefix}/color_mask", frame.log_time, frame.header, result.color_mask, "rgb8")
        writer.write_image(f"{prefix}/overlay", frame.log_time, frame.header, result.overlay,
                           f"{result.overlay_order}8")
        truth = labels.find(frame.stamp) if labels is not None else None
        if labels is not None:
            scorer.score(index, frame.stamp, result.labels, truth)
        fmt = pixel_format(frame.encoding)
        rgb = as_three_channel(frame.image, fmt)
        overlay = result.overlay
        if fmt.output_order == "bgr":
            rgb, overlay = rgb[..., ::-1], overlay[..., ::-1]
        scorer.keep_sample(index, rgb, overlay, truth)
    return scorer, {"backend": backend.name, "device": backend.device, "backend_reason": why,
                    "class_set": info.classes}


if __name__ == "__main__":
    sys.exit(main())
