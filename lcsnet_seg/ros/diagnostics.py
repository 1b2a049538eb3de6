"""The node's /diagnostics status: rates, counters, per-stage latency, idleness, and what to do when images
stop (the diagnosis itself is ros/input_watch.py's); with several cameras, one status more per camera (its own
counters, rates, latency and last error), so a camera that stops or sends bad frames is named."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lcsnet_seg.ros.names import camera_status_name, status_name
from lcsnet_seg.stats import FRAME_STAGES, SEGMENTER_STAGES, Counters, RateMeter, RollingStats

# dropped: replaced by a newer frame before the worker took it; lost: never reached the node (sequence gaps,
# lost-message events)
FRAME_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_lost", "frames_bad", "frames_failed")
# decode_fallbacks: JPEG frames the GPU decoder refused, decoded on the CPU instead
COUNTERS = (*FRAME_COUNTERS, "decode_fallbacks")


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
    name: str | None = None,
    last_error: str | None = None,
    extra: dict[str, str] | None = None,
) -> DiagnosticStatus:
    """The status message (``name``: its name, the node's status by default; ``last_error``: the newest frame
    error, said as a value). ``counters``: totals; ``recent``: counts since the last status; ``latency``:
    {stage: (mean ms, p95 ms)} for the stages measured so far (any may be missing); ``problem``: see
    InputWatch.problem; ``idle``: no output is wanted (nobody subscribes and force_outputs is off), so
    frames are received but deliberately not segmented."""
    status = DiagnosticStatus()
    status.name = name or status_name(node_name)
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
        **(extra or {}),
    }
    values.update({k: str(v) for k, v in counters.items()})
    if last_error:
        values["last_error"] = last_error
    for stage in FRAME_STAGES + SEGMENTER_STAGES:
        if stage in latency:
            mean, p95 = latency[stage]
            values[f"{stage}_ms_mean"] = f"{mean:.3f}"
            values[f"{stage}_ms_p95"] = f"{p95:.3f}"
    if "batch" in latency:  # frames per Segmenter call (several cameras), the stage times above being the call's
        values["batch_size_mean"] = f"{latency['batch'][0]:.2f}"
    if "tick" in latency:  # the frame worker's whole tick: decoding, segmenting and publishing every camera's frame
        values["tick_ms_mean"], values["tick_ms_p95"] = (f"{v:.3f}" for v in latency["tick"])
    missing = [s for s in FRAME_STAGES if s not in latency]
    if missing:
        values["stages_not_yet_timed"] = ", ".join(missing)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


class Health:
    """Counters, input and output rates and stage times of a node or of one of its cameras, and its newest error."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.input_rate, self.output_rate, self.stats = RateMeter(), RateMeter(), RollingStats()
        self.last_error: str | None = None

    def status(
        self,
        node_name: str,
        topic: str,
        backend_desc: tuple[str, str],
        model: str,
        problem: str | None,
        idle: bool = False,
        name: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> DiagnosticStatus:
        """The status now; counts since the last status restart from here. ``extra``: more values to say."""
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
            name=name,
            last_error=self.last_error,
            extra=extra,
        )


class NodeHealth(Health):
    """What /diagnostics says about a running node: its totals (Health) and each named camera's (``of(camera)``)."""

    def __init__(self, counters: Counters) -> None:
        super().__init__(counters)
        self._cameras: dict[str, Health] = {}

    def of(self, camera) -> Health:
        """``camera``'s own health (made at its first event)."""
        health = self._cameras.get(camera.name)
        if health is None:
            health = self._cameras.setdefault(camera.name, Health(Counters(*COUNTERS)))
        return health

    def count(self, camera, name: str, count: int = 1) -> int:
        """Count an event of ``camera`` in its counters and the node's; returns the camera's total."""
        self.counters.add(name, count)
        return self.of(camera).counters.add(name, count)

    def received(self, camera) -> None:
        self.count(camera, "frames_received")
        self.input_rate.tick()
        self.of(camera).input_rate.tick()

    def processed(
        self, camera, decode_ms: float, timings_ms: dict, publish_ms: float, latency_ms: float, batch: int = 1
    ) -> None:
        """A frame of ``camera`` published: its stage times (those of the batch of ``batch`` frames it was in)."""
        self.count(camera, "frames_processed")
        for health in (self, self.of(camera)):
            health.output_rate.tick()
            health.stats.add_frame(decode_ms, timings_ms, publish_ms, latency_ms)
            health.stats.add("batch", batch)

    def forget(self) -> None:
        """Cleanup: the stage times and the cameras' own records go (the node's totals stay)."""
        self.stats.clear()
        self._cameras.clear()

    def frame_lost_to(self, exc: BaseException, camera, logger) -> None:
        """Count a frame of ``camera`` that raised ``exc`` and say so, throttled: a bad image (ImageError, the
        sender's fault) as frames_bad with a warning, anything else as frames_failed with an error naming where it
        happened. The camera's status keeps the line as its last error."""
        import traceback

        from lcsnet_seg.errors import ImageError

        topic = camera.topic
        if isinstance(exc, ImageError):
            bad = self.count(camera, "frames_bad")
            self.of(camera).last_error = f"bad image: {exc}"
            logger.warning(f"dropped a bad image on {topic}: {exc} ({bad} so far)", throttle_duration_sec=5.0)
            return
        failed = self.count(camera, "frames_failed")
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self.of(camera).last_error = f"{type(exc).__name__}: {exc}"
        logger.error(
            f"frame on {topic} failed: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}; "
            f"{failed} so far)",
            throttle_duration_sec=5.0,
        )

    def report(
        self, node, cameras, backend_desc: tuple[str, str], model: str, active: bool, extra: dict[str, str]
    ) -> list[DiagnosticStatus]:
        """The statuses of ``node`` now: the node's (its cameras' input problems, each also logged, throttled;
        idleness: active and no camera has an output anybody wants; the totals), then one per named camera."""
        problems = {camera.name: camera.problem() for camera in cameras}
        for problem in filter(None, problems.values()):
            node.get_logger().warning(problem, throttle_duration_sec=30.0)
        idle = active and not any(camera.wanted for camera in cameras)
        topics = ", ".join(camera.topic for camera in cameras)
        joined = "; ".join(filter(None, problems.values())) or None
        statuses = [self.status(node.get_name(), topics, backend_desc, model, joined, idle=idle, extra=extra)]
        for camera in cameras:
            if camera.name:
                name = camera_status_name(node.get_name(), camera.name)
                health = self.of(camera)
                statuses.append(
                    health.status(
                        node.get_name(),
                        camera.topic,
                        backend_desc,
                        model,
                        problems[camera.name],
                        idle=active and not camera.wanted,
                        name=name,
                    )
                )
        return statuses


def diagnostic_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg
