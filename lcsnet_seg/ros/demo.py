"""The demo's run: the segmentation node on a generated indoor camera stream, as its own process (as on a robot).

Publishes generated camera frames on /camera/image_raw, receives ~/label_mask and ~/overlay, writes
OUT/overlays/frame_NNN.png (camera image | overlay | ground-truth colours in the model's own palette) and
OUT/node.log, and collects mIoU against the generator's ground truth, end-to-end latency and the node's own
per-stage times (from /diagnostics). Frames are sent one at a time (each after the previous result arrived),
so none is dropped and each latency is a clean round trip. The command line is tools/demo.py; the summary it
writes, eval/demo_report.py.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from lcsnet_seg.eval.demo_report import DemoRun
from lcsnet_seg.outputs import BY_TOPIC
from lcsnet_seg.ros.names import NODE_NAME, status_name

DEMO_SEED = 3_000_000_000  # outside the training range
CAMERA_TOPIC = "/camera/image_raw"
DEMO_OUTPUTS = (BY_TOPIC["label_mask"].topic, BY_TOPIC["overlay"].topic)  # the outputs the demo shows


def run_demo(args) -> DemoRun:
    """Run the node on generated frames (``args``: the demo command's options: model, backend, out_dir, frames,
    height, width, save, timeout); write OUT/overlays/ and OUT/node.log; return what was measured. Raises
    LcsnetError (one line, with the node's log tail) when the node does not come up."""
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
            raise LcsnetError(f"{exc}; its log ({node_log}):\n{harness.log_tail()}") from None
        classes = read_model_info(args.model).classes  # the model's own names and palette colour the truth too
        palette = classes.palette_rgb()
        run = DemoRun(args.model, args.frames, (args.height, args.width), classes.names, ConfusionMatrix(len(classes)))
        started = time.perf_counter()
        for i in tqdm(range(args.frames), desc="segmenting", unit="frame"):
            image, truth = generate_scene(DEMO_SEED + i, args.height, args.width)
            stamp_ns = (i + 1) * 1_000_000_000
            latency = harness.round_trip(frame_message(image, i + 1), stamp_ns, tries=3, wait_s=10.0)
            if latency is None:
                run.lost += 1
                continue
            run.latencies_ms.append(latency)
            label_out, overlay_out = harness.pop("label_mask", stamp_ns), harness.pop("overlay", stamp_ns)
            assert label_out is not None and overlay_out is not None  # round_trip waited for every output
            label_msg, overlay_msg = label_out[2], overlay_out[2]
            labels = decode_image(label_msg)
            run.confusion.update(truth, labels)
            if i < args.save:
                overlay = decode_image(overlay_msg)
                panel = np.concatenate([image, overlay, palette[truth]], axis=1)
                cv2.imwrite(str(overlays / f"frame_{i:03d}.png"), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        run.elapsed_s = time.perf_counter() - started
        # The node's own figures come with /diagnostics every diagnostics_period: wait (with a deadline) for
        # one that has seen this run's frames, so even a short run reports the backend and its stage times.
        run.node_values = _wait_for_status(diagnostics, harness.arrived, len(run.latencies_ms), timeout=15.0)
    run.exit_code = harness.exit_code
    return run


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
