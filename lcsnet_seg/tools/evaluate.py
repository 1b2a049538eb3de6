"""evaluate: replay rosbag2 recordings through the segmenter, score them, write metrics, reports and output bags.

    ros2 run lcsnet_seg evaluate BAG --image-topic /camera/image_raw --label-topic /camera/labels --out-dir eval/
    ros2 run lcsnet_seg evaluate BAG --image-topic /camera/image_raw --out-dir eval/ --node --rate 1.0
    ros2 run lcsnet_seg evaluate bags/ 'more/run_*' --image-topic ... --label-topic ... --out-dir fleet/ --workers 4

One bag (a bag folder named directly): scored in this process. Default: the Segmenter runs as
fast as it can on every frame. With --node, the bag's frames are published at --rate x real time
into a segmentation_node started for the purpose, and the node's outputs are recorded: the node is
evaluated as deployed (dropped frames count).

Several bags (several paths, a folder holding bag folders, or a quoted glob): a fleet, scored on
Ray by long-lived workers that load the model once (a local Ray instance, or --address a cluster;
one GPU per worker for a GPU backend). OUT/metrics.json and OUT/report.md hold the fleet, from the
summed confusion matrices and flicker counts; OUT/bags/NAME/ holds each bag's own results. A bag
that cannot be scored is reported with its reason while the others are scored.

Writes OUT/metrics.json (miou, per_class_iou, pixel_accuracy, frequency_weighted_iou, fps,
latency_ms, frames, complete, warnings, temporal_consistency), OUT/report.md with
confusion_matrix.png, per_class_iou.png and sample_NN.png, and, for one bag, OUT/segmentation_bag/
(label_mask, color_mask, overlay with the input stamps, same storage as the input).

Several cameras of one bag: --image-topic once per camera (and --label-topic once per camera, in the
same order, or not at all). Frames of all cameras are taken in log-time order and grouped into ticks
(header stamps within --sync-ms of the tick's first frame); each tick is one batched Segmenter call
(with --node: published together into one node with a camera each). metrics.json holds all cameras
together (summed confusion matrices, latency per tick) and each camera under "cameras"; the output
bag has each camera's outputs under OUTPUT_PREFIX/<camera>/. A camera is named by its topic's first
path component (/front/image_raw: front), or by its whole topic where that repeats.
--decoder (CompressedImage topics): where JPEG frames are decoded; metrics.json says which ran
("decoder"; --node: the node's own choice) and how many frames the GPU decoder left to the CPU
("decode_fallbacks"; --node: in the node's /diagnostics).
Exit codes: 0 complete; 1 error; 2 bad arguments; 3 finished but incomplete (frames unreadable or
without output); 4 some bags could not be scored (the others were).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsnet_seg.errors import LcsnetError
from lcsnet_seg.tools.exit_codes import EXIT_BAGS_FAILED, EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="evaluate", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "bags",
        nargs="+",
        metavar="BAG",
        help="rosbag2 folder (sqlite3 or mcap), a folder holding bag folders, or a quoted glob",
    )
    ap.add_argument(
        "--image-topic",
        required=True,
        action="append",
        help="sensor_msgs/Image or CompressedImage topic; several times: several cameras of one bag, each "
        "scored on its own and all together, a tick's frames segmented in one batch (camera names: README)",
    )
    ap.add_argument(
        "--label-topic",
        action="append",
        help="ground-truth mono8 class-id images, matched by header stamp; several cameras: once per "
        "--image-topic, in the same order (or not at all)",
    )
    ap.add_argument(
        "--sync-ms",
        type=float,
        default=None,
        help="several cameras: frames whose header stamps lie within this of a tick's first frame are "
        "segmented together (default: half the shortest median frame period of the cameras)",
    )
    ap.add_argument(
        "--decoder",
        default="auto",
        choices=("auto", "cpu", "gpu"),
        help="CompressedImage topics: where JPEG frames are decoded; auto: on the GPU (nvImageCodec) where the "
        "GPU path runs and nvImageCodec is installed, else the CPU; gpu: the GPU or an error; cpu: OpenCV",
    )
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument(
        "--model", type=Path, default=None, help="ONNX, engine or LCSNet .pth (default: the packaged demo model)"
    )
    ap.add_argument("--backend", default="auto", help="auto | onnxruntime | torch_cuda | tensorrt | torch_cpu")
    ap.add_argument(
        "--device",
        type=int,
        default=0,
        help="CUDA device of a GPU backend (one bag; fleet workers use the GPU Ray gives them)",
    )
    ap.add_argument("--stamp-tolerance-ms", type=float, default=1.0, help="label/image stamp matching tolerance")
    ap.add_argument("--start", type=float, default=None, help="seconds from the bag's start")
    ap.add_argument("--end", type=float, default=None, help="seconds from the bag's start")
    ap.add_argument("--stride", type=int, default=1, help="use every N-th image")
    ap.add_argument("--samples", type=int, default=6, help="sample overlays in each report")
    ap.add_argument("--output-prefix", default="/lcsnet_seg", help="topic prefix in the output bag")
    ap.add_argument(
        "--output-bag",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write segmentation_bag/ (default: yes for one bag, no for a fleet)",
    )
    ap.add_argument(
        "--compare",
        metavar="OTHER_RESULTS",
        default=None,
        help="another evaluate run's --out-dir or metrics.json: per-class IoU differences",
    )
    ap.add_argument("--node", action="store_true", help="evaluate through a running segmentation_node (rclpy; one bag)")
    ap.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="--node: playback speed (1.0 = real time; frames the node drops count as without output); 0: "
        "lockstep, each frame sent once the node answered the one before (nothing dropped, whatever the load)",
    )
    fleet = ap.add_argument_group("fleet (several bags, on Ray)")
    fleet.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers (default: --workers-per-gpu per GPU for a GPU backend, else one per two CPUs)",
    )
    fleet.add_argument(
        "--workers-per-gpu",
        type=int,
        default=1,
        help="GPU backend: workers sharing one GPU (each reads, decodes and scores its bag on the "
        "CPU, so one worker leaves the GPU mostly idle; default 1)",
    )
    fleet.add_argument("--address", default=None, help="an existing Ray cluster (default: a local instance)")
    fleet.add_argument(
        "--ship",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send this package's code and the model file to the workers through Ray (default: yes with --address)",
    )
    fleet.add_argument(
        "--bag-timeout",
        type=float,
        default=None,
        help="seconds a bag may take before its worker is replaced (retried once)",
    )
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.label_topic and len(args.label_topic) != len(args.image_topic):
        print(
            f"evaluate: {len(args.image_topic)} --image-topic but {len(args.label_topic)} --label-topic; give one "
            "--label-topic per --image-topic, in the same order, or none",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.sync_ms is not None and args.sync_ms < 0:
        print("evaluate: --sync-ms must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.stride < 1 or args.rate < 0 or args.stamp_tolerance_ms < 0:
        print("evaluate: --stride must be >= 1, --rate >= 0 and --stamp-tolerance-ms >= 0", file=sys.stderr)
        return EXIT_USAGE
    if (
        (args.workers is not None and args.workers < 1)
        or args.workers_per_gpu < 1
        or (args.bag_timeout is not None and args.bag_timeout <= 0)
    ):
        print("evaluate: --workers and --workers-per-gpu must be >= 1 and --bag-timeout > 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except LcsnetError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return EXIT_ERROR


def selection_specs(args) -> list[str]:
    return [str(b) for b in args.bags]


def topics(args) -> tuple[list[str], list[str | None]]:
    """The image topics, and a label topic (or None) for each, from --image-topic / --label-topic (one string
    each when argparse did not collect them into lists: a caller's own Namespace)."""
    images = [args.image_topic] if isinstance(args.image_topic, str) else list(args.image_topic)
    labels = args.label_topic
    labels = [labels] if isinstance(labels, str) else list(labels or [None] * len(images))
    return images, labels


def bag_options(args, fleet: bool):
    from lcsnet_seg.eval.bag_eval import BagOptions, CameraTopics, camera_names

    images, labels = topics(args)
    cameras: tuple[CameraTopics, ...] = ()
    if len(images) > 1:
        cameras = tuple(CameraTopics(n, i, lab) for n, i, lab in zip(camera_names(images), images, labels))
    return BagOptions(
        image_topic=images[0],
        label_topic=labels[0],
        cameras=cameras,
        sync_ms=getattr(args, "sync_ms", None),
        stamp_tolerance_ms=args.stamp_tolerance_ms,
        start=args.start,
        end=args.end,
        stride=args.stride,
        samples=args.samples,
        output_prefix=args.output_prefix,
        write_output_bag=(not fleet) if args.output_bag is None else args.output_bag,
    )


def run(args, segmenter=None) -> int:
    """Evaluate what ``args`` asks for. ``segmenter``: run this one (any FrameSegmenter) instead of building one
    from --model/--backend (a single bag, in this process; tests and scripts pass their own)."""
    from lcsnet_seg.errors import ConfigError
    from lcsnet_seg.eval.fleet import resolve_bags
    from lcsnet_seg.model import DEMO_ONNX

    model = args.model or DEMO_ONNX
    selection = resolve_bags(selection_specs(args))
    if not selection.fleet:
        return run_one(args, selection.bags[0], model, segmenter)
    if len(topics(args)[0]) > 1:
        print(
            "evaluate: several --image-topic are the cameras of one bag; a fleet of bags takes one --image-topic",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.node:
        raise ConfigError(
            "--node evaluates one bag at a time (it replays at real time); score several bags without --node"
        )
    if not model.exists():
        raise ConfigError(f"model {model} not found; pass --model an .onnx, .engine or .pth file")
    from lcsnet_seg.eval.fleet_run import evaluate_fleet

    doc = evaluate_fleet(
        selection.bags,
        args.out_dir,
        model=model,
        backend=args.backend,
        decoder=getattr(args, "decoder", "auto"),
        options=bag_options(args, fleet=True),
        workers=args.workers,
        address=args.address,
        compare_with=args.compare,
        bag_timeout_s=args.bag_timeout,
        skipped=selection.skipped,
        ship=args.ship,
        workers_per_gpu=args.workers_per_gpu,
    )
    print(
        f"evaluate: {doc['bags_scored']} of {doc['bags_total']} bags scored"
        + (f", fleet mIoU {doc['miou']:.4f}" if doc["miou"] is not None else "")
        + (
            f", flicker {doc['temporal_consistency']['flicker']:.4f}"
            if doc["temporal_consistency"]["flicker"] is not None
            else ""
        )
        + f"; {'complete' if doc['complete'] else 'INCOMPLETE'}; wrote {args.out_dir / 'report.md'} and "
        f"{args.out_dir / 'metrics.json'}"
    )
    for path in selection.skipped:
        print(f"evaluate: skipped {path}: it holds no rosbag2 files", file=sys.stderr)
    if doc["bags_failed"]:
        return EXIT_BAGS_FAILED
    return EXIT_OK if doc["complete"] else EXIT_INCOMPLETE


def run_one(args, bag: Path, model: Path, segmenter=None) -> int:
    """One bag in this process (no Ray: nothing to spread, and --node and a given segmenter work here)."""
    from functools import partial

    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.eval.bag_eval import (
        Replay,
        bag_document,
        decoder_for,
        decodes_jpegs,
        image_msgtypes,
        score_bag,
        segmenter_replay,
    )
    from lcsnet_seg.eval.fleet import compare, load_results
    from lcsnet_seg.eval.report import write_report
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    options = bag_options(args, fleet=False)
    other = load_results(args.compare) if args.compare else None
    msgtypes = image_msgtypes(bag, [c.image_topic for c in options.camera_topics()])
    decoder = decoder_for(msgtypes, getattr(args, "decoder", "auto"))
    replay: Replay
    if args.node:
        from lcsnet_seg.ros.bag_replay import replay_through_node

        args.out_dir.mkdir(parents=True, exist_ok=True)
        replay = partial(
            replay_through_node,
            model=model,
            backend=args.backend,
            out_dir=args.out_dir,
            samples=args.samples,
            rate=args.rate,
            decoder=decoder,
        )
        keep_jpeg = all(t == bag_io.COMPRESSED for t in msgtypes)  # the bag's JPEG data to the node's decoder
    else:
        why = "given by the caller"
        if segmenter is None:
            config = SegmenterConfig(backend=args.backend, device=args.device, decoder=decoder)
            segmenter, why = build_segmenter(model, config)
        replay = segmenter_replay(segmenter, options, why)
        keep_jpeg = decodes_jpegs(segmenter)
    score = score_bag(bag, options, args.out_dir, replay, keep_jpeg=keep_jpeg)
    doc, classes = bag_document(score, bag, options, model, "node" if args.node else "segmenter")
    if other is not None:
        doc["compare"] = compare(doc, other, str(args.compare))
    report = write_report(args.out_dir, doc, score.scorer, classes.palette_rgb(), score.cameras)
    flicker = doc["temporal_consistency"]["flicker"]
    if score.cameras:
        print(f"evaluate: {len(score.cameras)} cameras, {doc['ticks']} ticks; all cameras: ", end="")
        print(f"mIoU {doc['miou']:.4f}" if doc["miou"] is not None else "no frame scored", end="")
    else:
        print(f"evaluate: mIoU {doc['miou']:.4f}" if doc["miou"] is not None else "evaluate: no frame scored", end="")
    print(f", flicker {flicker:.4f}" if flicker is not None else "", end="")
    print(f", {doc['fps']:.1f} FPS" if doc["fps"] else "", end="")
    print(
        f"; {'complete' if doc['complete'] else 'INCOMPLETE'}; wrote {report}, {args.out_dir / 'metrics.json'}"
        + (f" and {args.out_dir / 'segmentation_bag'}" if options.write_output_bag else "")
    )
    return EXIT_OK if doc["complete"] else EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
