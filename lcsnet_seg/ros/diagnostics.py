"""The node's /diagnostics status: rates, counters, per-stage latency, idleness, and what to do when images
stop (the diagnosis itself is ros/input_watch.py's)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lcsnet_seg.ros.names import status_name
from lcsnet_seg.stats import Counters, RateMeter, RollingStats

# Always timed: decode, the whole Segmenter call, publish, receive-to-published latency. Reported when the
# Segmenter times them: its inner stages (eager GPU and CPU: preprocess, infer, postprocess; a CUDA graph: gpu).
STAGES = ("decode", "segment", "publish", "latency")
INNER_STAGES = ("preprocess", "infer", "postprocess", "gpu")


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
    idle: bool = False,
) -> DiagnosticStatus:
    """The status message. ``counters``: totals; ``recent``: counts since the last status; ``latency``:
    {stage: (mean ms, p95 ms)} for the stages measured so far (any may be missing); ``problem``: see
    InputWatch.problem; ``idle``: no output is wanted (nobody subscribes and force_outputs is off), so
    frames are received but deliberately not segmented."""
    status = DiagnosticStatus()
    status.name = status_name(node_name)
    status.hardware_id = device
    level, message = DiagnosticStatus.OK, f"segmenting {topic} at {output_rate:.1f} Hz"
    if idle:
        message = (
            f"idle: no subscriber to any output, so frames on {topic} ({input_rate:.1f} Hz) are not segmented; "
            "subscribe to an output (e.g. ~/label_mask) or set force_outputs"
        )
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
        "idle": str(idle).lower(),
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
        self,
        node_name: str,
        topic: str,
        backend_desc: tuple[str, str],
        model: str,
        problem: str | None,
        idle: bool = False,
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
            idle=idle,
        )


def diagnostic_array(stamp, status: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
