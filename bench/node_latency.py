#!/usr/bin/env python3
"""Node latency and throughput against two floors measured on the same frames in the same run:

  segmenter  the bare Segmenter called directly (labels only), per frame;
  relay      a bare rclpy node republishing each Image unchanged (the transport's own cost).

    .venv/bin/python bench/node_latency.py [--frames 40] [--seconds 5]

All nodes share one process and one executor, as in the issue's relay measurement. Latency:
publish -> ~/label_mask received, one frame at a time. Throughput: frames offered for --seconds
at the Segmenter's own rate, to the relay and then to the node, outputs received per second.
The publisher, the executor threads and ONNX Runtime's threads share the machine's cores, as a
camera driver would on a robot. Targets:
  node latency - segmenter latency  <= 1.5 x relay latency
  node throughput                   >= 0.9 x min(segmenter FPS, relay FPS)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "77")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.ros.image_codec import array_to_image
    from lcsnet_seg.ros.node import SegmentationNode

    rclpy.init()
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    seg_node = SegmentationNode(cli_args=["--ros-args", "-r", "image:=/bench/image"],
                                parameter_overrides=[Parameter("autostart", value=False)])
    assert seg_node.trigger_configure().name == "SUCCESS" and seg_node.trigger_activate().name == "SUCCESS"
    segmenter = seg_node._segmenter
    bench = rclpy.create_node("lcsnet_bench")
    relay = rclpy.create_node("lcsnet_bench_relay")
    relay_pub = relay.create_publisher(Image, "/bench/relayed", reliable)
    relay.create_subscription(Image, "/bench/relay_in", relay_pub.publish, sensor)
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
    executor = MultiThreadedExecutor(num_threads=3)
    for n in (seg_node, bench, relay):
        executor.add_node(n)
    threading.Thread(target=executor.spin, daemon=True).start()
    while to_node.get_subscription_count() == 0 or to_relay.get_subscription_count() == 0:
        time.sleep(0.05)

    def round_trip(kind, publisher, msg, stamp) -> float | None:
        for _ in range(5):
            sent = time.perf_counter()
            publisher.publish(msg)
            with cv:
                if cv.wait_for(lambda: stamp in arrivals[kind], timeout=2.0):
                    return (arrivals[kind][stamp] - sent) * 1e3
        return None

    def throughput(kind, publisher, messages, rate_hz) -> float:
        arrivals[kind].clear()
        period, start, i = 1.0 / rate_hz, time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            msg = messages[i % len(messages)]
            msg.header.stamp.sec = 10_000_000 + i
            publisher.publish(msg)
            i += 1
            time.sleep(max(0.0, start + i * period - time.perf_counter()))
        time.sleep(0.5)
        with cv:
            stamps = sorted(t for s, t in arrivals[kind].items() if s >= 10_000_000)
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0

    rows = []
    stamp = 1
    for height, width in ((480, 640), (720, 1280)):
        frames = [generate_scene(6_000_000 + i, height, width)[0] for i in range(6)]
        messages = [array_to_image(Image, f, "rgb8", Header(frame_id="camera")) for f in frames]
        lat = {"segmenter": [], "relay": [], "node": []}
        for i in range(args.frames + 3):
            msg = messages[i % len(messages)]
            t = time.perf_counter()
            segmenter(frames[i % len(frames)], "rgb8", outputs=("labels",))
            seg_ms = (time.perf_counter() - t) * 1e3
            msg.header.stamp.sec = stamp
            relay_ms = round_trip("relay", to_relay, msg, stamp)
            stamp += 1
            msg.header.stamp.sec = stamp
            node_ms = round_trip("node", to_node, msg, stamp)
            stamp += 1
            if i >= 3 and relay_ms is not None and node_ms is not None:
                lat["segmenter"].append(seg_ms)
                lat["relay"].append(relay_ms)
                lat["node"].append(node_ms)
        med = {k: float(np.median(v)) for k, v in lat.items()}
        seg_fps = 1e3 / med["segmenter"]
        # Both paths are offered the same load, the Segmenter's own rate: can each sustain it?
        relay_fps = throughput("relay", to_relay, messages, rate_hz=seg_fps)
        node_fps = throughput("node", to_node, messages, rate_hz=seg_fps)
        added = med["node"] - med["segmenter"]
        rows.append((f"{width}x{height}", med, added, seg_fps, relay_fps, node_fps))

    print(f"\n{'size':>9} {'segmenter ms':>13} {'relay ms':>9} {'node ms':>8} {'added ms':>9} {'added/relay':>12} "
          f"{'seg FPS':>8} {'relay FPS':>10} {'node FPS':>9} {'node/floor':>11}")
    for size, med, added, seg_fps, relay_fps, node_fps in rows:
        floor = min(seg_fps, relay_fps)
        print(f"{size:>9} {med['segmenter']:13.2f} {med['relay']:9.2f} {med['node']:8.2f} {added:9.2f} "
              f"{added / med['relay']:12.2f} {seg_fps:8.1f} {relay_fps:10.1f} {node_fps:9.1f} {node_fps / floor:11.2f}")
    print(f"\nmedians over {args.frames} frames; targets: added/relay <= 1.5, node/floor >= 0.90")
    executor.shutdown()
    seg_node.stop_processing()
    seg_node.release()
    for n in (seg_node, bench, relay):
        n.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
