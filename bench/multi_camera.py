#!/usr/bin/env python3
"""Several cameras in one node (one batch per tick) against one node per camera, on the same device, in one run.

    python bench/multi_camera.py [--backend torch_cuda] [--model M] [--cameras 1,2,4,8] [--rate 30] [--seconds 6]
                                 [--size 480x640] [--ticks] [--compile-dir D] [--json out.json]

Nodes: segmentation_node as its own process (as `ros2 run` starts it) with ``cameras: [cam0, ..]``, and, for
each N > 1, N single-camera nodes side by side on the same GPU. This process publishes every camera's frame at
--rate, all cameras at once each period (a rig triggered together), and receives each ~/<cam>/label_mask.
Per run: answered fraction (outputs received / frames sent), latency publish -> label_mask received (median and
p95, per camera: the worst camera's shown), the node processes' CPU use (cores, from /proc over the run) and,
from each node's /diagnostics, the Segmenter's GPU time per tick (``gpu_ms_mean``: the CUDA graph, copies
included; eager: its stages) and the frames per tick: GPU ms per frame = gpu_ms_mean / batch_size_mean.

--ticks (GPU): the tick alone, in this process: GpuSegmenter.segment_batch of N frames (uploads, preprocess,
model, postprocess, label downloads; wall time), CUDA graph of the uncompiled model and, with --compile-dir
(prepared for the batches here when its marker is missing), of the compiled one.

Targets (issue "Many cameras"): tick <= 0.8 ms at 4 cameras, <= 1.3 ms at 8 (H200, 640x480, compiled graph);
8 cameras at 30 Hz: >= 99 % answered, p95 latency <= 2 x the single camera's, <= 1 core more CPU than one
camera; 4 cameras: >= 2 x fewer GPU ms per frame than 4 single-camera nodes; CPU (onnxruntime), 2 cameras:
per frame no slower than two separate nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "78")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EAGER = ("preprocess", "infer", "postprocess")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its waited-for children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS


def frames(n: int, h: int, w: int) -> list[np.ndarray]:
    from lcsnet_seg.model.scene import generate_scene

    return [generate_scene(500 + i, h, w)[0] for i in range(n)]


# -- the tick alone (in process) --------------------------------------------------------------------------------
def ticks(args, counts: list[int]) -> dict:
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    h, w = args.size
    images = frames(max(counts), h, w)
    out: dict = {}
    modes = {"uncompiled_graph": None}
    if args.compile_dir:
        from lcsnet_seg.backends.torch_compile import MARKER, prepare_compiled_model

        compile_dir = Path(args.compile_dir)
        compile_dir.mkdir(parents=True, exist_ok=True)
        if not (compile_dir / MARKER).is_file():
            out["prepare"] = prepare_compiled_model(args.model, compile_dir, batches=tuple(counts))
        modes["compiled_graph"] = compile_dir
    for mode, compile_dir in modes.items():
        backend, why = create_backend("torch_cuda", args.model, compile_dir=compile_dir)
        segmenter = GpuSegmenter(backend, max_batch=max(counts), max_graphs=len(counts) + 1)
        rows = {}
        for n in counts:
            batch = [(image, "rgb8") for image in images[:n]]
            for _ in range(20):
                segmenter.segment_batch(batch, ("labels",))
            walls, gpus = [], []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                result = segmenter.segment_batch(batch, ("labels",))
                walls.append((time.perf_counter() - t0) * 1e3)
                gpus.append(result[0].timings_ms.get("gpu", float("nan")))
            rows[n] = {
                "tick_ms_median": round(float(np.median(walls)), 4),
                "tick_ms_p95": round(float(np.percentile(walls, 95)), 4),
                "gpu_ms_median": round(float(np.median(gpus)), 4),
                "per_frame_ms": round(float(np.median(walls)) / n, 4),
                "runs_at_batch": backend.batch_size_for(n),
            }
            print(f"[ticks] {mode:16s} {n} camera(s): {rows[n]}", flush=True)
        out[mode] = {"backend": why, "rows": rows, "captures": segmenter.captures}
        segmenter.close()
    return out


# -- nodes as processes -----------------------------------------------------------------------------------------
class Player:
    """One rclpy node in this process: a publisher per camera topic, a label_mask subscription per output topic;
    frames are published serialized, their stamp patched in place (sec = frame number, nanosec = camera)."""

    def __init__(self, cameras: list[str], outputs: dict[str, str], size) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from lcsnet_seg.ros.image_codec import array_to_image

        rclpy.init()
        self.node = rclpy.create_node(f"lcsnet_bench_player_{os.getpid()}")
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras = cameras
        self.pubs = {c: self.node.create_publisher(Image, f"/bench_mc/{c}/image", qos) for c in cameras}
        self.raw = {}
        for camera, image in zip(cameras, frames(len(cameras), *size)):
            header = Header()
            header.frame_id = camera
            self.raw[camera] = bytearray(serialize_message(array_to_image(Image, image, "rgb8", header)))
        self.sent: dict[tuple[int, int], float] = {}
        self.got: dict[tuple[int, int], float] = {}
        self.lock = threading.Lock()
        for camera in cameras:
            self.node.create_subscription(Image, outputs[camera], self._keep, qos, raw=True)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _keep(self, raw: bytes) -> None:
        sec, nanosec = struct.unpack_from("<iI", raw, 4)  # CDR: encapsulation, then the header's stamp
        with self.lock:
            self.got.setdefault((sec, nanosec), time.perf_counter())

    def matched(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.pubs.values()):
                return True
            time.sleep(0.1)
        return False

    def publish_all(self, k: int) -> None:
        for i, camera in enumerate(self.cameras):
            raw = self.raw[camera]
            struct.pack_into("<iI", raw, 4, k, i)
            with self.lock:
                self.sent[(k, i)] = time.perf_counter()
            self.pubs[camera].publish(bytes(raw))

    def warm(self, timeout: float) -> bool:
        """Publish until every camera has been answered once (stamps sec < 0, never counted)."""
        deadline, k = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            self.publish_all(k)
            time.sleep(0.2)
            with self.lock:
                if all(any(key[1] == i and key[0] < 0 for key in self.got) for i in range(len(self.cameras))):
                    return True
            k -= 1
        return False

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def node_diagnostics(player: Player, names: list[str], timeout: float = 5.0) -> dict[str, dict]:
    """The newest node-level /diagnostics values of each node in ``names``."""
    from diagnostic_msgs.msg import DiagnosticArray

    from lcsnet_seg.ros.names import status_name

    wanted = {status_name(n): n for n in names}
    found: dict[str, dict] = {}

    def keep(msg) -> None:
        for status in msg.status:
            if status.name in wanted:
                found[wanted[status.name]] = {kv.key: kv.value for kv in status.values}

    sub = player.node.create_subscription(DiagnosticArray, "/diagnostics", keep, 50)
    deadline = time.monotonic() + timeout
    while len(found) < len(names) and time.monotonic() < deadline:
        time.sleep(0.1)
    player.node.destroy_subscription(sub)
    return found


def run_nodes(args, n: int, separate: bool, log_dir: Path) -> dict:
    """N cameras into one node (``separate`` False) or into N single-camera nodes; the figures of one run."""
    from lcsnet_seg.ros.names import output_topic
    from lcsnet_seg.ros.node_process import ros_environment, start_node, stop_node

    ros_environment()
    cameras = [f"cam{i}" for i in range(n)]
    base = {"model_path": args.model, "backend": args.backend, "force_outputs": True, "diagnostics_period": 1.0}
    base.update({f"publish_{o}": False for o in ("color_mask", "overlay")})
    base.update(args.node_param)
    tag = f"{'sep' if separate else 'one'}{n}_{os.getpid()}"
    if separate:
        names = [f"lcsnet_mc_{tag}_{c}" for c in cameras]
        procs = [
            start_node(log_dir / f"{name}.log", base, {"image": f"/bench_mc/{c}/image"}, name)
            for name, c in zip(names, cameras)
        ]
        outputs = {c: output_topic("label_mask", name) for name, c in zip(names, cameras)}
    else:
        names = [f"lcsnet_mc_{tag}"]
        remap = {f"{c}/image": f"/bench_mc/{c}/image" for c in cameras}
        procs = [start_node(log_dir / f"{names[0]}.log", {**base, "cameras": cameras}, remap, names[0])]
        outputs = {c: output_topic("label_mask", names[0], c) for c in cameras}
    player = Player(cameras, outputs, args.size)
    try:
        if not player.matched(args.startup) or not player.warm(args.startup):
            logs = "; ".join((log_dir / f"{name}.log").read_text()[-400:] for name in names)
            raise RuntimeError(f"{n} camera(s), {'separate' if separate else 'one node'}: no answer. {logs}")
        time.sleep(1.0)
        cpu0, t0 = sum(cpu_seconds(p.pid) for p in procs), time.perf_counter()
        period, k, start = 1.0 / args.rate, 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            player.publish_all(k)
            k += 1
            time.sleep(max(0.0, start + k * period - time.perf_counter()))
            if args.dump_stacks and k == int(args.rate * args.seconds / 2):
                for p in procs:  # where the node's threads are, mid-run (segmentation_node dumps them on SIGUSR1)
                    os.kill(p.pid, signal.SIGUSR1)
        cpu1, t1 = sum(cpu_seconds(p.pid) for p in procs), time.perf_counter()
        time.sleep(1.0)  # the last answers
        diagnostics = node_diagnostics(player, names)
    finally:
        player.close()
        codes = [stop_node(p) for p in procs]
    with player.lock:
        sent = {key: at for key, at in player.sent.items() if key[0] >= 0}
        got = dict(player.got)
    per_camera = {}
    for i, camera in enumerate(cameras):
        lat = [(got[key] - at) * 1e3 for key, at in sent.items() if key[1] == i and key in got]
        total = sum(1 for key in sent if key[1] == i)
        per_camera[camera] = {
            "answered": round(len(lat) / max(total, 1), 4),
            "latency_ms_median": round(float(np.median(lat)), 2) if lat else None,
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
        }
    # the GPU time of a tick: one CUDA graph ("gpu"), or the eager stages; none on the CPU
    gpu = [
        float(d["gpu_ms_mean"]) if "gpu_ms_mean" in d else sum(float(d.get(f"{s}_ms_mean", 0)) for s in EAGER)
        for d in diagnostics.values()
    ]
    batch = [float(d.get("batch_size_mean", "1")) for d in diagnostics.values()]
    segment = [float(d.get("segment_ms_mean", "nan")) for d in diagnostics.values()]
    per_frame = [g / b for g, b in zip(gpu, batch) if g > 0 and args.backend != "onnxruntime"]
    row = {
        "cameras": n,
        "nodes": len(procs),
        "frames_sent": len(sent),
        "answered": round(sum(1 for key in sent if key in got) / max(len(sent), 1), 4),
        "latency_ms_median_worst_camera": max((c["latency_ms_median"] or 0) for c in per_camera.values()),
        "latency_ms_p95_worst_camera": max((c["latency_ms_p95"] or 0) for c in per_camera.values()),
        "cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 3),
        "gpu_ms_per_tick": [round(g, 4) for g in gpu],
        "batch_size_mean": [round(b, 2) for b in batch],
        "segment_ms_per_tick": [round(s, 4) for s in segment],
        "gpu_ms_per_frame": round(float(np.mean(per_frame)), 4) if per_frame else None,
        "segment_ms_per_frame": round(float(np.mean([s / b for s, b in zip(segment, batch)])), 4) if segment else None,
        "exit_codes": codes,
        "node_counters": [
            {
                k: d.get(k)
                for k in ("frames_received", "frames_processed", "frames_dropped", "frames_lost", "tick_ms_mean")
            }
            for d in diagnostics.values()
        ],
        "per_camera": per_camera,
    }
    print(
        f"[nodes] {'separate' if separate else 'one node'} {n} camera(s): "
        + json.dumps({k: v for k, v in row.items() if k != "per_camera"}),
        flush=True,
    )
    return row


def main() -> int:
    from lcsnet_seg.model import DEMO_ONNX, DEMO_PTH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch_cuda", help="torch_cuda (GPU) or onnxruntime (CPU)")
    ap.add_argument("--model", default=None, help="default: the demo .pth (torch_cuda) or ONNX (onnxruntime)")
    ap.add_argument("--cameras", default="1,2,4,8", help="camera counts, comma-separated")
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second per camera")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    ap.add_argument("--size", default="480x640", help="camera frames HxW")
    ap.add_argument("--startup", type=float, default=90.0, help="seconds a node may take to answer first")
    ap.add_argument("--ticks", action="store_true", help="also time the tick alone in this process (GPU)")
    ap.add_argument("--nodes", action=argparse.BooleanOptionalAction, default=True, help="run the node processes")
    ap.add_argument(
        "--separate", action=argparse.BooleanOptionalAction, default=True, help="also N single-camera nodes per N"
    )
    ap.add_argument("--compile-dir", default=None, help="--ticks: a compiled model (prepared here if need be)")
    ap.add_argument("--iters", type=int, default=300, help="--ticks: timed ticks per count")
    ap.add_argument(
        "--node-param", action="append", default=[], metavar="NAME=VALUE", help="a node parameter (YAML value)"
    )
    ap.add_argument("--dump-stacks", action="store_true", help="SIGUSR1 to the nodes mid-run: stacks in their logs")
    ap.add_argument("--logs", type=Path, default=None, help="where the node logs go (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import yaml

    args.node_param = dict((k, yaml.safe_load(v)) for k, v in (p.split("=", 1) for p in args.node_param))
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    args.model = args.model or str(DEMO_PTH if args.backend.startswith("torch") else DEMO_ONNX)
    counts = [int(c) for c in args.cameras.split(",")]
    out: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.ticks:
        out["ticks"] = ticks(args, counts)
    if args.nodes:
        log_dir = args.logs or Path(tempfile.mkdtemp(prefix="lcsnet_mc_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        runs: dict = {"one_node": {}, "separate_nodes": {}}
        for n in counts:
            runs["one_node"][n] = run_nodes(args, n, False, log_dir)
            if n > 1 and args.separate:
                runs["separate_nodes"][n] = run_nodes(args, n, True, log_dir)
        single = runs["one_node"].get(1)
        ratios = {}
        for n, row in runs["one_node"].items():
            entry = {}
            sep = runs["separate_nodes"].get(n)
            if sep and row["gpu_ms_per_frame"] and sep["gpu_ms_per_frame"]:
                entry["separate_over_one_gpu_ms_per_frame"] = round(
                    sep["gpu_ms_per_frame"] / row["gpu_ms_per_frame"], 2
                )
            if sep and row["segment_ms_per_frame"] and sep["segment_ms_per_frame"]:
                entry["separate_over_one_segment_ms_per_frame"] = round(
                    sep["segment_ms_per_frame"] / row["segment_ms_per_frame"], 2
                )
            if single and single["latency_ms_p95_worst_camera"]:
                entry["p95_over_single_camera_p95"] = round(
                    row["latency_ms_p95_worst_camera"] / single["latency_ms_p95_worst_camera"], 2
                )
                entry["cpu_cores_over_single_camera"] = round(row["cpu_cores"] - single["cpu_cores"], 3)
            ratios[n] = entry
            print(f"[ratio] {n} camera(s): {entry}", flush=True)
        out.update(runs, ratios=ratios, logs=str(log_dir))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
