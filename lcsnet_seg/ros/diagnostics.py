"""The node's /diagnostics status: rates, counters and per-stage latency."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STAGES = ("decode", "preprocess", "infer", "postprocess", "publish", "latency")


def build_status(node_name: str, *, topic: str, backend: str, device: str, model: str, counters: dict[str, int],
                 input_rate: float, output_rate: float, latency: dict[str, tuple[float, float]],
                 seconds_since_input: float | None, publishers_on_topic: int) -> DiagnosticStatus:
    status = DiagnosticStatus()
    status.name = f"{node_name}: semantic segmentation"
    status.hardware_id = device
    level, message = DiagnosticStatus.OK, f"segmenting {topic} at {output_rate:.1f} Hz"
    if seconds_since_input is None or seconds_since_input > 3.0:
        level = DiagnosticStatus.WARN
        message = (f"no publisher on {topic}: check the topic name and remapping" if publishers_on_topic == 0 else
                   f"no images on {topic} for a while ({publishers_on_topic} publisher(s)): check QoS compatibility")
    elif counters.get("frames_failed_recent", 0):
        level, message = DiagnosticStatus.ERROR, "frames failed in the pipeline: see the node log"
    elif counters.get("frames_bad_recent", 0):
        level, message = DiagnosticStatus.WARN, "bad input images were dropped: see the node log"
    status.level, status.message = level, message
    values = {"input_topic": topic, "backend": backend, "device": device, "model": model,
              "input_rate_hz": f"{input_rate:.2f}", "output_rate_hz": f"{output_rate:.2f}"}
    values.update({k: str(v) for k, v in counters.items() if not k.endswith("_recent")})
    for stage in STAGES:
        if stage in latency:
            mean, p95 = latency[stage]
            values[f"{stage}_ms_mean"] = f"{mean:.3f}"
            values[f"{stage}_ms_p95"] = f"{p95:.3f}"
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


def diagnostic_array(stamp, status: DiagnosticStatus) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
