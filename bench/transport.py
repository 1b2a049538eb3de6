#!/usr/bin/env python3
"""Camera-sized rgb8 images between two processes over Fast DDS: which transport setting loses no frames.

    .venv/bin/python bench/transport.py [--seconds 3] [--rate 30] [--pub-depth 5] [--sub-depth 1]
                                        [--configs a,b,c,d,e,f,g] [--sizes 640x480,1920x1080]

Each configuration starts two processes: a camera (publisher: sensor_msgs/Image rgb8, RELIABLE,
KEEP_LAST --pub-depth, --rate Hz for --seconds) and a subscriber (a plain rclpy node, as the
segmentation node's input is: KEEP_LAST --sub-depth, RELIABLE or BEST_EFFORT). Each process gets its
own Fast DDS setting through the environment:

  default  Fast DDS defaults (SHM with its 512 KiB segment + UDPv4)
  profile  FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_images.xml (32 MiB SHM segment + UDPv4)
  large    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (SHM + TCPv4 for data, UDPv4 for discovery)

  a: default/default  b: profile/profile  c: large/large  d: default camera/profile node
  e: default camera/large node  f: large camera/profile node  g: profile camera/large node

Every process runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (--discovery-range), ROS_DOMAIN_ID=61.
With LOCALHOST, rmw_fastrtps turns Fast DDS's builtin transports off and adds its own SHM (default
512 KiB segment) + UDPv4 after any transports an XML profile declared: FASTDDS_BUILTIN_TRANSPORTS is
then ignored, while the profile's 32 MiB segment, listed first, is used. The camera
stamps each header with the wall clock (CLOCK_REALTIME, shared by both processes) just before
publish(); the subscriber takes the wall clock on entering its callback. Latency = receive - stamp.
Lost = sent - distinct frames received. All waits (discovery, matching, draining) are conditions
with deadlines; a timeout is reported in the table's note column, never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"

SETTINGS = {
    "default": {},
    "profile": {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)},
    "large": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
}
CONFIGS = {  # name: (camera setting, subscriber setting)
    "a": ("default", "default"),
    "b": ("profile", "profile"),
    "c": ("large", "large"),
    "d": ("default", "profile"),
    "e": ("default", "large"),
    "f": ("large", "profile"),
    "g": ("profile", "large"),
}
MATCH_TIMEOUT_S = 15.0
QUIET_S = 1.5  # drain ends when nothing new arrived for this long ...
DRAIN_MAX_S = 6.0  # ... or at this deadline after the last frame was sent


# ----------------------------------------------------------------------------- child processes
def _qos(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def _say(*words) -> None:
    print(*words, flush=True)


def _wait_for(condition, timeout_s: float, spin=None) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        if spin is not None:
            spin(0.01)
        else:
            time.sleep(0.01)
    return True


def run_camera() -> int:
    """Publisher process: commands on stdin ('pub TOPIC W H N RATE DEPTH', 'go', 'close', 'quit')."""
    import array

    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_camera")
    _say("ready")
    pub = msg = None
    n = rate = 0
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "pub":
            topic, w, h, n, rate, depth = args[0], *map(int, args[1:4]), float(args[4]), int(args[5])
            pub = node.create_publisher(Image, topic, _qos("reliable", depth))
            msg = Image(height=h, width=w, encoding="rgb8", step=w * 3)
            pixels = array.array("B", bytes(range(256)) * (w * h * 3 // 256 + 1))
            msg.data = pixels[: w * h * 3]
            ok = _wait_for(lambda: pub.get_subscription_count() > 0, MATCH_TIMEOUT_S)
            _say("matched" if ok else "nomatch")
        elif cmd == "go":
            t0 = time.monotonic()
            worst_publish = 0.0
            for i in range(n):
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                msg.header.frame_id = str(i)
                before = time.monotonic()
                pub.publish(msg)
                worst_publish = max(worst_publish, time.monotonic() - before)
            _say(
                "sent",
                json.dumps({"sent": n, "send_s": time.monotonic() - t0, "worst_publish_ms": worst_publish * 1e3}),
            )
        elif cmd == "close":
            node.destroy_publisher(pub)
            pub = msg = None
            _say("closed")
        elif cmd == "quit":
            break
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_subscriber() -> int:
    """Subscriber process: 'sub TOPIC QOS DEPTH', 'waitpub', 'drain N', 'quit'; spins between commands."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_subscriber")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    state = {"sub": None, "arrivals": {}, "bad_size": 0, "expected": 0, "last": 0.0}

    def on_image(msg) -> None:
        now = time.time_ns()
        state["last"] = time.monotonic()
        if len(msg.data) != state["expected"]:
            state["bad_size"] += 1
            return
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        state["arrivals"].setdefault(int(msg.header.frame_id), (now - stamp) / 1e6)

    def spin(timeout_s: float) -> None:
        executor.spin_once(timeout_sec=timeout_s)

    _say("ready")
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if not readable:
            spin(0.005)
            continue
        line = sys.stdin.readline()
        if not line:
            break
        cmd, *args = line.split()
        if cmd == "sub":
            topic, reliability, depth, w, h = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
            state.update(arrivals={}, bad_size=0, expected=w * h * 3, last=0.0)
            state["sub"] = node.create_subscription(Image, topic, on_image, _qos(reliability, depth))
            _say("subscribed")
        elif cmd == "waitpub":
            ok = _wait_for(lambda: state["sub"].get_publisher_count() > 0, MATCH_TIMEOUT_S, spin)
            _say("matched" if ok else "nomatch")
        elif cmd == "drain":
            n = int(args[0])
            start = time.monotonic()
            _wait_for(
                lambda: (
                    len(state["arrivals"]) >= n
                    or time.monotonic() - max(state["last"], start) > QUIET_S
                    or time.monotonic() - start > DRAIN_MAX_S
                ),
                DRAIN_MAX_S + 1,
                spin,
            )
            node.destroy_subscription(state["sub"])
            state["sub"] = None
            _say(
                "result", json.dumps({"latencies_ms": list(state["arrivals"].values()), "bad_size": state["bad_size"]})
            )
        elif cmd == "quit":
            break
    node.destroy_node()
    rclpy.shutdown()
    return 0


# ----------------------------------------------------------------------------- orchestration
class Child:
    def __init__(self, role: str, setting: str, discovery_range: str):
        env = dict(os.environ)
        for key in (
            "FASTDDS_DEFAULT_PROFILES_FILE",
            "FASTRTPS_DEFAULT_PROFILES_FILE",
            "FASTDDS_BUILTIN_TRANSPORTS",
            "RMW_FASTRTPS_USE_QOS_FROM_XML",
            "ROS_LOCALHOST_ONLY",
        ):
            env.pop(key, None)
        env.update(
            SETTINGS[setting],
            ROS_AUTOMATIC_DISCOVERY_RANGE=discovery_range,
            ROS_DOMAIN_ID="61",
            RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
            PYTHONUNBUFFERED="1",
        )
        self.role = role
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, so a chatty child never blocks on a pipe
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--role", role],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.pending = b""

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, timeout_s: float) -> tuple[str, str]:
        """Next line from the child, as (word, rest); ('timeout'|'died', detail) when none comes."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", f"{self.role}: no answer within {timeout_s:.0f} s"
            if b"\n" not in self.pending:
                readable, _, _ = select.select([self.proc.stdout], [], [], left)
                if not readable:
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    self.stderr.seek(0)
                    return "died", f"{self.role} exited: {self.stderr.read()[-400:]}"
                self.pending += chunk
                continue
            line, _, self.pending = self.pending.partition(b"\n")
            word, _, rest = line.decode().strip().partition(" ")
            if word in ("ready", "matched", "nomatch", "sent", "result", "subscribed", "closed"):
                return word, rest

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_config(name: str, sizes, args) -> list[dict]:
    cam_setting, sub_setting = CONFIGS[name]
    camera, subscriber = (
        Child("camera", cam_setting, args.discovery_range),
        Child("subscriber", sub_setting, args.discovery_range),
    )
    rows = []
    try:
        for child in (camera, subscriber):
            word, detail = child.expect(60)
            if word != "ready":
                raise RuntimeError(detail)
        for w, h in sizes:
            for reliability in ("reliable", "best_effort"):
                row = {
                    "config": name,
                    "camera": cam_setting,
                    "subscriber": sub_setting,
                    "size": f"{w}x{h}",
                    "sub_qos": reliability,
                    "note": "",
                }
                rows.append(row)
                topic = f"/bench_transport/{name}_{w}x{h}_{reliability}"
                n = int(round(args.seconds * args.rate))
                subscriber.send(f"sub {topic} {reliability} {args.sub_depth} {w} {h}")
                subscriber.expect(10)
                camera.send(f"pub {topic} {w} {h} {n} {args.rate} {args.pub_depth}")
                cam_match, _ = camera.expect(MATCH_TIMEOUT_S + 10)
                subscriber.send("waitpub")
                sub_match, _ = subscriber.expect(MATCH_TIMEOUT_S + 10)
                if cam_match != "matched" or sub_match != "matched":
                    row["note"] = f"not matched (camera: {cam_match}, subscriber: {sub_match})"
                camera.send("go")
                word, detail = camera.expect(args.seconds * 10 + 30)
                sent = (
                    json.loads(detail)
                    if word == "sent"
                    else {"sent": n, "send_s": float("nan"), "worst_publish_ms": float("nan")}
                )
                if word != "sent":
                    row["note"] += f" camera: {detail}"
                subscriber.send(f"drain {n}")
                word, detail = subscriber.expect(DRAIN_MAX_S + 20)
                result = json.loads(detail) if word == "result" else {"latencies_ms": [], "bad_size": 0}
                camera.send("close")
                camera.expect(10)
                lat = result["latencies_ms"]
                row.update(
                    sent=sent["sent"],
                    received=len(lat),
                    lost=sent["sent"] - len(lat),
                    mean_ms=sum(lat) / len(lat) if lat else None,
                    p95_ms=percentile(lat, 0.95) if lat else None,
                    send_hz=(sent["sent"] - 1) / sent["send_s"] if sent["send_s"] else None,
                    worst_publish_ms=sent["worst_publish_ms"],
                )
                if result["bad_size"]:
                    row["note"] += f" {result['bad_size']} truncated"
                print(format_row(row), flush=True)
    finally:
        camera.stop()
        subscriber.stop()
    return rows


HEADER = (
    "cfg",
    "camera",
    "subscriber",
    "size",
    "sub QoS",
    "sent",
    "recv",
    "lost",
    "lost %",
    "mean ms",
    "p95 ms",
    "send Hz",
    "max publish ms",
    "note",
)


def format_row(row: dict) -> str:
    def ms(v):
        return "—" if v is None else f"{v:.1f}"

    lost_pct = f"{100 * row['lost'] / row['sent']:.0f}%" if row.get("sent") else "—"
    cells = (
        row["config"],
        row["camera"],
        row["subscriber"],
        row["size"],
        row["sub_qos"],
        str(row.get("sent", "—")),
        str(row.get("received", "—")),
        str(row.get("lost", "—")),
        lost_pct,
        ms(row.get("mean_ms")),
        ms(row.get("p95_ms")),
        ms(row.get("send_hz")),
        ms(row.get("worst_publish_ms")),
        row["note"].strip(),
    )
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=("camera", "subscriber"), help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of frames per case")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    ap.add_argument("--pub-depth", type=int, default=5, help="camera KEEP_LAST depth (reliable)")
    ap.add_argument("--sub-depth", type=int, default=1, help="subscriber KEEP_LAST depth (node default: 1)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="subset of a,b,c,d,e,f,g")
    ap.add_argument("--sizes", default="640x480,1920x1080")
    ap.add_argument(
        "--discovery-range",
        default="LOCALHOST",
        choices=("LOCALHOST", "SUBNET"),
        help="ROS_AUTOMATIC_DISCOVERY_RANGE of both processes (LOCALHOST: rmw_fastrtps replaces "
        "Fast DDS's builtin transports with its own SHM + UDPv4, so LARGE_DATA has no effect)",
    )
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if args.role == "camera":
        return run_camera()
    if args.role == "subscriber":
        return run_subscriber()

    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
    print(
        f"# camera: RELIABLE KEEP_LAST {args.pub_depth}, {args.rate:g} Hz for {args.seconds:g} s; "
        f"subscriber: KEEP_LAST {args.sub_depth}; ROS_AUTOMATIC_DISCOVERY_RANGE={args.discovery_range}; "
        f"ROS_DOMAIN_ID=61; one camera and one subscriber process per configuration",
        flush=True,
    )
    rows = []
    started = time.monotonic()
    for name in args.configs.split(","):
        try:
            rows += run_config(name, sizes, args)
        except RuntimeError as exc:
            print(f"| {name} | failed: {exc} |", flush=True)
    print(f"\n# {time.monotonic() - started:.0f} s in all\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + " --- |" * len(HEADER))
    for row in rows:
        print(format_row(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
