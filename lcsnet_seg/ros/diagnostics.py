"""The node's /diagnostics status: rates, counters, per-stage latency, idleness, and what to do when images
stop (the diagnosis itself is ros/input_watch.py's)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lcsnet_seg.ros.names import status_name
from lcsnet_seg.stats import FRAME_STAGES, SEGMENTER_STAGES, Counters, RateMeter, RollingStats


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
    for stage in FRAME_STAGES + SEGMENTER_STAGES:
        if stage in latency:
            mean, p95 = latency[stage]
            values[f"{stage}_ms_mean"] = f"{mean:.3f}"
            values[f"{stage}_ms_p95"] = f"{p95:.3f}"
    missing = [s for s in FRAME_STAGES if s not in latency]
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

    def frame_lost_to(self, exc: BaseException, topic: str, logger) -> None:
        """Count a frame that raised ``exc`` and say so, throttled: a bad image (ImageError, the sender's fault)
        as frames_bad with a warning, anything else as frames_failed with an error naming where it happened."""
        import traceback

        from lcsnet_seg.errors import ImageError

        if isinstance(exc, ImageError):
            bad = self.counters.add("frames_bad")
            logger.warning(f"dropped a bad image on {topic}: {exc} ({bad} so far)", throttle_duration_sec=5.0)
            return
        failed = self.counters.add("frames_failed")
        where = traceback.extract_tb(exc.__traceback__)[-1]
        logger.error(
            f"frame failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}; {failed} so far)",
            throttle_duration_sec=5.0,
        )

    def report(self, node, cameras, backend_desc: tuple[str, str], model: str, active: bool) -> DiagnosticStatus:
        """The status of ``node`` now: its cameras' input problems (each also logged, throttled), idleness (active
        and no camera has an output anybody wants), and everything ``status`` holds."""
        problems = [p for p in (camera.problem() for camera in cameras) if p]
        for problem in problems:
            node.get_logger().warning(problem, throttle_duration_sec=30.0)
        idle = active and not any(camera.wanted for camera in cameras)
        topics = ", ".join(camera.topic for camera in cameras)
        return self.status(node.get_name(), topics, backend_desc, model, "; ".join(problems) or None, idle=idle)


def diagnostic_array(stamp, status: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
