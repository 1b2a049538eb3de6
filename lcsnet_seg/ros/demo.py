"""demo: the segmentation node on a generated indoor camera stream.

    demo --model out/demo/model/lcsnet_demo.sim.onnx --out-dir out/demo --frames 48

Starts ``segmentation_node`` as its own process (as on a robot), publishes generated camera
frames on /camera/image_raw, receives ~/label_mask and ~/overlay, and writes
OUT/overlays/frame_NNN.png (camera image | overlay | ground-truth colours) and OUT/summary.json +
OUT/summary.md: mIoU against the generator's ground truth, end-to-end latency, throughput and the
node's own per-stage times (from /diagnostics). Frames are sent one at a time (each after the
previous result arrived), so none is dropped and each latency is a clean round trip.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from lcsnet_seg.model import DEMO_ONNX
from lcsnet_seg.outputs import BY_TOPIC
from lcsnet_seg.ros.names import NODE_NAME, status_name

DEMO_SEED = 3_000_000_000  # outside the training range
CAMERA_TOPIC = "/camera/image_raw"
DEMO_OUTPUTS = (BY_TOPIC["label_mask"].topic, BY_TOPIC["overlay"].topic)  # the outputs the demo shows


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEMO_ONNX, help="model for the node (default: the packaged demo)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out-dir", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--save", type=int, default=8, help="how many overlay images to write")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node to come up")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tqdm import tqdm

    from lcsnet_seg.backends.model_files import read_model_info
    from lcsnet_seg.errors import LcsnetError
    from lcsnet_seg.eval.metrics import ConfusionMatrix
    from lcsnet_seg.image_messages import decode_image
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.ros.image_codec import array_to_image
    from lcsnet_seg.ros.node_harness import NodeHarness

    args.out_dir.mkdir(parents=True, exist_ok=True)
    overlays = args.out_dir / "overlays"
    overlays.mkdir(exist_ok=True)
    node_log = args.out_dir / "node.log"
    diagnostics: list[DiagnosticArray] = []
    harness = NodeHarness(
        node_log,
        {"model_path": args.model, "backend": args.backend, "diagnostics_period": 0.5},
        {"image": CAMERA_TOPIC},
        input_topic=CAMERA_TOPIC,
        outputs=DEMO_OUTPUTS,
        player_name="lcsnet_demo_camera",
        depth=10,
    )
    with harness:

        def keep_status(msg):
            with harness.arrived:
                diagnostics.append(msg)
                harness.arrived.notify_all()

        harness.subscribe(DiagnosticArray, "/diagnostics", keep_status)

        def frame_message(image, stamp_sec):
            header = Header(frame_id="camera_optical")
            header.stamp.sec = stamp_sec
            return array_to_image(Image, image, "rgb8", header)

        try:
            harness.wait_until_matched(args.timeout)
            print(
                f"demo: segmentation_node is active (pid {harness.process.pid}); sending {args.frames} frames "
                f"on {CAMERA_TOPIC}"
            )
            # Warm-up: until the node's subscription has matched this publisher, frames are not delivered.
            harness.warm_up(
                frame_message(generate_scene(DEMO_SEED - 1, args.height, args.width)[0], 0), 0, timeout=args.timeout
            )
        except LcsnetError as exc:
            print(f"demo: {exc}; its log ({node_log}):\n{harness.log_tail()}", file=sys.stderr)
            return 1
        classes = read_model_info(args.model).classes  # the model's own names and palette colour the truth too
        palette = classes.palette_rgb()
        cm = ConfusionMatrix(len(classes))
        latencies, lost = [], 0
        started = time.perf_counter()
        for i in tqdm(range(args.frames), desc="segmenting", unit="frame"):
            image, truth = generate_scene(DEMO_SEED + i, args.height, args.width)
            stamp_ns = (i + 1) * 1_000_000_000
            latency = harness.round_trip(frame_message(image, i + 1), stamp_ns, tries=3, wait_s=10.0)
            if latency is None:
                lost += 1
                continue
            latencies.append(latency)
            label_out, overlay_out = harness.pop("label_mask", stamp_ns), harness.pop("overlay", stamp_ns)
            assert label_out is not None and overlay_out is not None  # round_trip waited for every output
            label_msg, overlay_msg = label_out[2], overlay_out[2]
            labels = decode_image(label_msg)
            cm.update(truth, labels)
            if i < args.save:
                overlay = decode_image(overlay_msg)
                panel = np.concatenate([image, overlay, palette[truth]], axis=1)
                cv2.imwrite(str(overlays / f"frame_{i:03d}.png"), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        elapsed = time.perf_counter() - started
        # The node's own figures come with /diagnostics every diagnostics_period: wait (with a deadline) for
        # one that has seen this run's frames, so even a short run reports the backend and its stage times.
        node_values = _wait_for_status(diagnostics, harness.arrived, len(latencies), timeout=15.0)
    summary = _summary(args, cm, classes.names, latencies, lost, elapsed, node_values, harness.exit_code)
    _write(args.out_dir, summary)
    if not latencies:
        print(f"demo: no results came back from the node; see {node_log}", file=sys.stderr)
        return 1
    return 0 if lost == 0 else 1


def _status_values(msg) -> dict[str, str] | None:
    """The demo node's own status (exactly its name: another segmentation_node may report beside it)."""
    for status in msg.status:
        if status.name == status_name(NODE_NAME):
            return {kv.key: kv.value for kv in status.values}
    return None


def _wait_for_status(diagnostics: list, arrived: threading.Condition, frames: int, timeout: float) -> dict[str, str]:
    """The newest node status that counts at least ``frames`` processed frames; waits up to ``timeout`` s
    for it, then settles for the newest status there is ({} when the node sent none)."""

    def newest() -> dict[str, str]:
        for msg in reversed(list(diagnostics)):
            values = _status_values(msg)
            if values is not None:
                return values
        return {}

    def done() -> bool:
        return int(newest().get("frames_processed", -1)) >= frames

    with arrived:
        arrived.wait_for(done, timeout=timeout)
    return newest()


def _summary(args, cm, names, latencies, lost, elapsed, node_values, exit_code) -> dict:
    """Everything the run measured; a figure that could not be measured is None and named in ``missing``."""
    scores = cm.scores()
    # What a frame costs the node: decode + the whole Segmenter call + publish. The Segmenter's inner stages
    # (preprocess, infer, postprocess; or gpu for a CUDA graph) are shown where the node reports them.
    stages = ("decode", "segment", "publish")
    shown = stages + ("preprocess", "infer", "postprocess", "gpu")
    stage_means = {s: float(node_values[f"{s}_ms_mean"]) for s in shown if f"{s}_ms_mean" in node_values}
    stage_sum = sum(stage_means.get(s, 0.0) for s in stages)
    missing = []
    if not latencies:
        missing.append("results: no frame came back from the node")
    if not node_values:
        missing.append("node status: the node sent no /diagnostics before the run ended")
    elif any(s not in stage_means for s in stages):
        missing.append(
            "node stage times: "
            + ", ".join(s for s in stages if s not in stage_means)
            + " not yet measured by the node"
        )
    return {
        "model": str(args.model),
        "frames": args.frames,
        "frames_without_result": lost,
        "image_size": [args.height, args.width],
        "backend": node_values.get("backend"),
        "device": node_values.get("device"),
        "miou": None if np.isnan(scores.miou) else scores.miou,
        "pixel_accuracy": None if np.isnan(scores.pixel_accuracy) else scores.pixel_accuracy,
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, scores.per_class_iou)},
        "end_to_end_latency_ms": (
            {"mean": float(np.mean(latencies)), "p95": float(np.percentile(latencies, 95))} if latencies else None
        ),
        "node_stage_ms_mean": stage_means,
        "node_fps": 1e3 / stage_sum if all(s in stage_means for s in stages) and stage_sum > 0 else None,
        "demo_loop_fps": len(latencies) / elapsed if latencies and elapsed > 0 else None,
        "node_exit_code": exit_code,
        "missing": missing,
    }


def _figure(value, fmt: str, missing: str = "not measured") -> str:
    return missing if value is None else format(value, fmt)


def _write(out_dir: Path, summary: dict) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lat = summary["end_to_end_latency_ms"]
    lines = [
        f"# lcsnet_seg demo: segmentation_node on {summary['frames']} generated frames "
        f"({summary['image_size'][1]}x{summary['image_size'][0]})",
        "",
        f"- backend **{summary['backend'] or 'unknown'}** on {summary['device'] or 'unknown device'}",
        f"- mIoU **{_figure(summary['miou'], '.3f')}**, pixel accuracy {_figure(summary['pixel_accuracy'], '.3f')}"
        " (against the generator's ground truth)",
        "- end-to-end latency (publish → label_mask received): "
        + (f"mean {lat['mean']:.1f} ms, p95 {lat['p95']:.1f} ms" if lat else "not measured"),
        f"- node processing: {_figure(summary['node_fps'], '.1f')} FPS from its per-stage means; the demo "
        f"loop ran at {_figure(summary['demo_loop_fps'], '.1f')} frames/s, scene generation included",
        f"- frames without a result: {summary['frames_without_result']}; node exit code {summary['node_exit_code']}",
    ]
    lines += [f"- missing: {m}" for m in summary["missing"]]
    lines += ["", "| class | IoU |", "| --- | --- |"]
    lines += [f"| {n} | {'absent' if v is None else f'{v:.3f}'} |" for n, v in summary["per_class_iou"].items()]
    lines += ["", "| node stage | mean ms |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in summary["node_stage_ms_mean"].items()]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\ndemo: wrote {out_dir / 'overlays'}/, {out_dir / 'summary.md'} and {out_dir / 'summary.json'}")


if __name__ == "__main__":
    sys.exit(main())
