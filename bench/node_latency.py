#!/usr/bin/env python3
"""Node latency and throughput as deployed, against two floors measured on the same frames in the same run:

  segmenter  the bare Segmenter (the node's own factory: same model, backend and device), labels only;
  relay      a bare rclpy node in its own process republishing each Image unchanged (the transport's cost).

    python bench/node_latency.py [--model M] [--backend B] [--frames 40] [--seconds 5] [--sizes 480x640,1080x1920]

segmentation_node runs as its own process (as `ros2 run` starts it), the relay in another, and this
process publishes the camera frames and receives the outputs, so every frame crosses processes as on
a robot. All processes use the packaged Fast DDS profile (config/fastdds_large_images.xml).
Latency: publish -> ~/label_mask received, one frame at a time (median). Throughput: frames offered
for --seconds at the Segmenter's own rate (capped at --max-rate), outputs received per second. Targets:
  node latency - segmenter latency  <= 1.5 x relay latency
  node throughput                   >= 0.9 x min(segmenter FPS, relay FPS, offered rate)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "77")


def relay_main() -> int:
    """--role relay: republish /bench/relay_in on /bench/relayed, nothing else."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("lcsnet_bench_relay")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(Image, "/bench/relayed", reliable)
    node.create_subscription(Image, "/bench/relay_in", pub.publish, sensor)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, Exception):  # noqa: BLE001 - stopped by the bench with SIGINT
        pass
    finally:
        rclpy.try_shutdown()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=("bench", "relay"), default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help="model for the node (default: the packaged demo ONNX)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--compile-dir", default="", help="torch_cuda: a directory prepared by convert --stages compile")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sizes", default="480x640,720x1280", help="HxW list")
    ap.add_argument(
        "--max-rate",
        type=float,
        default=100.0,
        help="cap on the offered frame rate, Hz (a fast camera); a GPU Segmenter's own rate (~1 kHz) "
        "would flood any Python subscriber, the relay included",
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.role == "relay":
        return relay_main()

    from lcsnet_seg.ros.node_process import ros_environment, start_node, stop_node

    ros_environment()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from lcsnet_seg.model import DEMO_ONNX
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.ros.image_codec import array_to_image
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    model = args.model or str(DEMO_ONNX)
    segmenter, why = build_segmenter(model, SegmenterConfig(backend=args.backend, compile_dir=args.compile_dir or None))
    backend = segmenter.backend
    print(f"bench: backend {backend.name} on {segmenter.device} ({why})", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="lcsnet_bench_"))
    node = start_node(
        logs / "node.log",
        {
            "model_path": model,
            "backend": args.backend,
            "force_outputs": True,
            "publish_color_mask": False,
            "publish_overlay": False,
            "compile_dir": args.compile_dir,
        },
        {"image": "/bench/image"},
    )
    relay = subprocess.Popen([sys.executable, __file__, "--role", "relay"], start_new_session=True)
    rclpy.init()
    bench = rclpy.create_node("lcsnet_bench")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    to_node = bench.create_publisher(Image, "/bench/image", reliable)
    to_relay = bench.create_publisher(Image, "/bench/relay_in", reliable)
    arrivals: dict[str, dict[int, float]] = {"node": {}, "relay": {}}
    cv = threading.Condition()

    def sink(kind):
        def callback(msg):
            with cv:
                arrivals[kind][msg.header.stamp.sec] = time.perf_counter()
                cv.notify_all()

        return callback

    bench.create_subscription(Image, "/lcsnet_seg/label_mask", sink("node"), reliable)
    bench.create_subscription(Image, "/bench/relayed", sink("relay"), reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(bench)
    threading.Thread(target=executor.spin, daemon=True).start()

    def round_trip(kind, publisher, msg, stamp, tries=5, wait_s=2.0) -> float | None:
        for _ in range(tries):
            sent = time.perf_counter()
            publisher.publish(msg)
            with cv:
                if cv.wait_for(lambda: stamp in arrivals[kind], timeout=wait_s):
                    return (arrivals[kind][stamp] - sent) * 1e3
        return None

    def throughput(kind, publisher, messages, rate_hz) -> float:
        base = 10_000_000 * (2 if kind == "node" else 1)
        arrivals[kind].clear()
        period, start, i = 1.0 / rate_hz, time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            msg = messages[i % len(messages)]
            msg.header.stamp.sec = base + i
            publisher.publish(msg)
            i += 1
            time.sleep(max(0.0, start + i * period - time.perf_counter()))  # the camera's frame rate
        with cv:  # the last frames' outputs, with a deadline
            cv.wait_for(lambda: base + i - 1 in arrivals[kind], timeout=2.0)
            stamps = sorted(t for s, t in arrivals[kind].items() if s >= base)
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0

    rows = []
    try:
        # Both paths answer before timing starts (a GPU node compiles or captures on its first frames).
        warm = array_to_image(Image, np.zeros((48, 64, 3), np.uint8), "rgb8", Header(frame_id="camera"))
        warm.header.stamp.sec = 1
        for kind, pub in (("relay", to_relay), ("node", to_node)):
            if round_trip(kind, pub, warm, 1, tries=240, wait_s=0.5) is None:
                raise SystemExit(f"bench: no answer from the {kind}; node log: {logs / 'node.log'}")
        stamp = 2
        for size in args.sizes.split(","):
            height, width = (int(v) for v in size.split("x"))
            frames = [generate_scene(6_000_000 + i, height, width)[0] for i in range(6)]
            messages = [array_to_image(Image, f, "rgb8", Header(frame_id="camera")) for f in frames]
            for i in range(3):  # the node's first frames at a new size allocate (and on a GPU capture)
                messages[i].header.stamp.sec = stamp
                round_trip("node", to_node, messages[i], stamp, tries=20)
                stamp += 1
            lat = {"segmenter": [], "relay": [], "node": []}
            for i in range(args.frames):
                msg = messages[i % len(messages)]
                t = time.perf_counter()
                segmenter(frames[i % len(frames)], "rgb8", outputs=("labels",))
                seg_ms = (time.perf_counter() - t) * 1e3
                msg.header.stamp.sec = stamp
                relay_ms = round_trip("relay", to_relay, msg, stamp)
                msg.header.stamp.sec = stamp + 1
                node_ms = round_trip("node", to_node, msg, stamp + 1)
                stamp += 2
                if relay_ms is not None and node_ms is not None:
                    lat["segmenter"].append(seg_ms)
                    lat["relay"].append(relay_ms)
                    lat["node"].append(node_ms)
            if not lat["node"]:
                print(f"bench: no frame at {size} came back through both paths; skipped", flush=True)
                continue
            med = {k: float(np.median(v)) for k, v in lat.items()}
            seg_fps = 1e3 / med["segmenter"]
            offered = min(seg_fps, args.max_rate)
            relay_fps = throughput("relay", to_relay, messages, rate_hz=offered)
            node_fps = throughput("node", to_node, messages, rate_hz=offered)
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "frames": len(lat["node"]),
                    **{f"{k}_ms": v for k, v in med.items()},
                    "added_ms": med["node"] - med["segmenter"],
                    "segmenter_fps": seg_fps,
                    "offered_fps": offered,
                    "relay_fps": relay_fps,
                    "node_fps": node_fps,
                }
            )
    finally:
        executor.shutdown()
        bench.destroy_node()
        rclpy.try_shutdown()
        node_code = stop_node(node)
        stop_node(relay)
        segmenter.close()
    configured = [line for line in (logs / "node.log").read_text().splitlines() if "configured in" in line]
    print(f"\nbackend {backend.name}, model {model}; node exit code {node_code}; node log {logs / 'node.log'}")
    print("node: " + (configured[0].split("]: ", 1)[-1] if configured else "no configure line in its log"))
    print(
        f"{'size':>9} {'segmenter ms':>13} {'relay ms':>9} {'node ms':>8} {'added ms':>9} {'added/relay':>12} "
        f"{'seg FPS':>8} {'relay FPS':>10} {'node FPS':>9} {'node/floor':>11}"
    )
    for r in rows:
        floor = min(r["segmenter_fps"], r["relay_fps"], r["offered_fps"])
        r["added_over_relay"] = r["added_ms"] / r["relay_ms"]
        r["node_over_floor"] = r["node_fps"] / floor if floor > 0 else None
        print(
            f"{r['size']:>9} {r['segmenter_ms']:13.2f} {r['relay_ms']:9.2f} {r['node_ms']:8.2f} {r['added_ms']:9.2f} "
            f"{r['added_over_relay']:12.2f} {r['segmenter_fps']:8.1f} {r['relay_fps']:10.1f} {r['node_fps']:9.1f} "
            + (f"{r['node_over_floor']:11.2f}" if r["node_over_floor"] is not None else f"{'n/a':>11}")
        )
    print(f"\nmedians over up to {args.frames} frames; targets: added/relay <= 1.5, node/floor >= 0.90")
    if args.json:
        args.json.write_text(json.dumps({"backend": backend.name, "model": model, "rows": rows}, indent=2) + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
