"""The node's /diagnostics status: rates, counters, per-stage latency, and what to do when images stop."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lcsnet_seg.ros.names import status_name
from lcsnet_seg.stats import Counters, RateMeter, RollingStats

# Always timed: decode, the whole Segmenter call, publish, receive-to-published latency. Reported when the
# Segmenter times them: its inner stages (eager GPU and CPU: preprocess, infer, postprocess; a CUDA graph: gpu).
STAGES = ("decode", "segment", "publish", "latency")
INNER_STAGES = ("preprocess", "infer", "postprocess", "gpu")
# What a camera driver's process needs so that whole camera frames reach the node (README, "On a robot"):
# the sender's shared-memory segment carries the frame (docs/PERFORMANCE.md, transport measurements).
CAMERA_TRANSPORT_SETTING = (
    "FASTDDS_DEFAULT_PROFILES_FILE=$(ros2 pkg prefix lcsnet_seg)/share/lcsnet_seg/config/fastdds_large_images.xml"
)
QUIET_AFTER_S = 3.0


def input_problem(
    topic: str,
    *,
    publishers: int,
    matched: int,
    frames_received: int,
    seconds_since_input: float | None,
    reliability: str,
) -> str | None:
    """Why no image is arriving on ``topic`` and what to do, or None while images arrive."""
    if seconds_since_input is not None and seconds_since_input <= QUIET_AFTER_S:
        return None
    if publishers == 0:
        return f"no publisher on {topic}: check the topic name and remapping"
    if matched == 0:
        return (
            f"{publishers} publisher(s) on {topic} but none matches this subscription: their QoS is incompatible "
            f"with qos_reliability={reliability}; set qos_reliability to match the camera driver"
        )
    fix = f"start the camera driver's process with {CAMERA_TRANSPORT_SETTING} (README, 'On a robot')"
    if frames_received == 0:
        return (
            f"{matched} publisher(s) matched on {topic} but no image has arrived: most likely the transport "
            f"cannot carry the frames (Fast DDS's default shared-memory segment holds 512 KiB, less than one "
            f"640x480 rgb8 image): {fix}"
        )
    quiet = "a while" if seconds_since_input is None else f"{seconds_since_input:.0f} s"
    return (
        f"no image on {topic} for {quiet} although {matched} publisher(s) are matched: the camera stopped "
        f"sending, or its frames outgrew the transport: {fix}"
    )


def build_status(
    node_name: str,
    *,
    topic: str,
    backend: str,
    device: str,
    model: str,
    counters: dict[str, int],
    recent: dict[str, int],
    input_rate: float,
    output_rate: float,
    latency: dict[str, tuple[float, float]],
    problem: str | None,
) -> DiagnosticStatus:
    """The status message. ``counters``: totals; ``recent``: counts since the last status; ``latency``:
    {stage: (mean ms, p95 ms)} for the stages measured so far (any may be missing); ``problem``: see
    input_problem."""
    status = DiagnosticStatus()
    status.name = status_name(node_name)
    status.hardware_id = device
    level, message = DiagnosticStatus.OK, f"segmenting {topic} at {output_rate:.1f} Hz"
    if problem:
        level, message = DiagnosticStatus.WARN, problem
    elif recent.get("frames_failed", 0):
        level, message = DiagnosticStatus.ERROR, "frames failed in the pipeline: see the node log"
    elif recent.get("frames_bad", 0):
        level, message = DiagnosticStatus.WARN, "bad input images were dropped: see the node log"
    status.level, status.message = level, message
    values = {
        "input_topic": topic,
        "backend": backend,
        "device": device,
        "model": model,
        "input_rate_hz": f"{input_rate:.2f}",
        "output_rate_hz": f"{output_rate:.2f}",
    }
    values.update({k: str(v) for k, v in counters.items()})
    for stage in STAGES + INNER_STAGES:
        if stage in latency:
            mean, p95 = latency[stage]
            values[f"{stage}_ms_mean"] = f"{mean:.3f}"
            values[f"{stage}_ms_p95"] = f"{p95:.3f}"
    missing = [s for s in STAGES if s not in latency]
    if missing:
        values["stages_not_yet_timed"] = ", ".join(missing)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


class NodeHealth:
    """What /diagnostics says about a running node: its frame counters, input and output rates and stage times."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.input_rate, self.output_rate, self.stats = RateMeter(), RateMeter(), RollingStats()

    def status(
        self, node_name: str, topic: str, backend_desc: tuple[str, str], model: str, problem: str | None
    ) -> DiagnosticStatus:
        """The status now; counts since the last status restart from here."""
        return build_status(
            node_name,
            topic=topic,
            backend=backend_desc[0],
            device=backend_desc[1],
            model=model,
            counters=self.counters.totals(),
            recent=self.counters.take_recent(),
            input_rate=self.input_rate.rate(),
            output_rate=self.output_rate.rate(),
            latency=self.stats.summary(),
            problem=problem,
        )


def diagnostic_array(stamp, status: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
