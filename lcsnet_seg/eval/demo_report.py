"""The demo's summary: what a run of the node on generated scenes measured, as summary.json and summary.md.

A figure that could not be measured is None and named under ``missing``, never shown as a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcsnet_seg.eval.metrics import ConfusionMatrix
from lcsnet_seg.stats import FRAME_STAGES, SEGMENTER_STAGES


@dataclass
class DemoRun:
    """What the demo collected: the model, frames asked for and their size, the confusion matrix against the
    generator's ground truth, round-trip latencies (ms) of the answered frames, frames without a result, the
    loop's wall time, the node's last /diagnostics values, and its exit code."""

    model: Path
    frames: int
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    confusion: ConfusionMatrix
    latencies_ms: list[float] = field(default_factory=list)
    lost: int = 0
    elapsed_s: float = 0.0
    node_values: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None


def demo_summary(run: DemoRun) -> dict:
    """Everything the run measured; a figure that could not be measured is None and named in ``missing``."""
    cm, latencies, node_values = run.confusion, run.latencies_ms, run.node_values
    scores = cm.scores()
    # What a frame costs the node: decode + the whole Segmenter call + publish. The Segmenter's inner stages
    # (preprocess, infer, postprocess; or gpu for a CUDA graph) are shown where the node reports them.
    stages = FRAME_STAGES[:3]
    shown = stages + SEGMENTER_STAGES
    stage_means = {s: float(node_values[f"{s}_ms_mean"]) for s in shown if f"{s}_ms_mean" in node_values}
    stage_sum = sum(stage_means.get(s, 0.0) for s in stages)
    missing = []
    if not latencies:
        missing.append("results: no frame came back from the node")
    if not node_values:
        missing.append("node status: the node sent no /diagnostics before the run ended")
    elif any(s not in stage_means for s in stages):
        missing.append(
            "node stage times: "
            + ", ".join(s for s in stages if s not in stage_means)
            + " not yet measured by the node"
        )
    return {
        "model": str(run.model),
        "frames": run.frames,
        "frames_without_result": run.lost,
        "image_size": list(run.image_size),
        "backend": node_values.get("backend"),
        "device": node_values.get("device"),
        "miou": None if np.isnan(scores.miou) else scores.miou,
        "pixel_accuracy": None if np.isnan(scores.pixel_accuracy) else scores.pixel_accuracy,
        "per_class_iou": {
            n: (None if np.isnan(v) else float(v)) for n, v in zip(run.class_names, scores.per_class_iou)
        },
        "end_to_end_latency_ms": (
            {"mean": float(np.mean(latencies)), "p95": float(np.percentile(latencies, 95))} if latencies else None
        ),
        "node_stage_ms_mean": stage_means,
        "node_fps": 1e3 / stage_sum if all(s in stage_means for s in stages) and stage_sum > 0 else None,
        "demo_loop_fps": len(latencies) / run.elapsed_s if latencies and run.elapsed_s > 0 else None,
        "node_exit_code": run.exit_code,
        "missing": missing,
    }


def _figure(value, fmt: str, missing: str = "not measured") -> str:
    return missing if value is None else format(value, fmt)


def write_demo_summary(out_dir: Path, summary: dict) -> None:
    """OUT/summary.json and OUT/summary.md (also printed)."""
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lat = summary["end_to_end_latency_ms"]
    lines = [
        f"# lcsnet_seg demo: segmentation_node on {summary['frames']} generated frames "
        f"({summary['image_size'][1]}x{summary['image_size'][0]})",
        "",
        f"- backend **{summary['backend'] or 'unknown'}** on {summary['device'] or 'unknown device'}",
        f"- mIoU **{_figure(summary['miou'], '.3f')}**, pixel accuracy {_figure(summary['pixel_accuracy'], '.3f')}"
        " (against the generator's ground truth)",
        "- end-to-end latency (publish → label_mask received): "
        + (f"mean {lat['mean']:.1f} ms, p95 {lat['p95']:.1f} ms" if lat else "not measured"),
        f"- node processing: {_figure(summary['node_fps'], '.1f')} FPS from its per-stage means; the demo "
        f"loop ran at {_figure(summary['demo_loop_fps'], '.1f')} frames/s, scene generation included",
        f"- frames without a result: {summary['frames_without_result']}; node exit code {summary['node_exit_code']}",
    ]
    lines += [f"- missing: {m}" for m in summary["missing"]]
    lines += ["", "| class | IoU |", "| --- | --- |"]
    lines += [f"| {n} | {'absent' if v is None else f'{v:.3f}'} |" for n, v in summary["per_class_iou"].items()]
    lines += ["", "| node stage | mean ms |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in summary["node_stage_ms_mean"].items()]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\ndemo: wrote {out_dir / 'overlays'}/, {out_dir / 'summary.md'} and {out_dir / 'summary.json'}")
