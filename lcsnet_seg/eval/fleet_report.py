"""The fleet's metrics.json, report.md and plots (fleet confusion matrix, per-class IoU and flicker, per-bag mIoU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lcsnet_seg.eval.report import compare_lines, flicker_lines, plot_class_values, plot_confusion_matrix, pyplot


def _f(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def plot_bag_mious(path: Path, bags: list[dict]) -> None:
    """One horizontal bar per bag, lowest mIoU at the top; failed bags drawn as empty, labelled FAILED."""
    plt = pyplot()
    ranked = sorted(bags, key=lambda b: (b["status"] == "scored", b.get("miou") or 0.0))
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.28 * len(ranked)))
    values = [b.get("miou") or 0.0 for b in ranked]
    colours = ["tab:blue" if b["status"] == "scored" else "white" for b in ranked]
    ax.barh(range(len(ranked)), values, color=colours, edgecolor="black")
    for i, b in enumerate(ranked):
        text = "FAILED" if b["status"] != "scored" else ("no mIoU" if b.get("miou") is None else f"{b['miou']:.3f}")
        ax.text(values[i] + 0.01, i, text, va="center", fontsize=7)
    ax.set_yticks(range(len(ranked)), [b["name"] for b in ranked], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("mIoU")
    ax.set_title("mIoU per bag (worst first)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_fleet_report(out_dir: Path, doc: dict, palette: np.ndarray) -> Path:
    """OUT/metrics.json and OUT/report.md with its plots; what is missing is said, not hidden."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    names = doc["classes"]
    plot_confusion_matrix(
        out_dir / "confusion_matrix.png",
        doc["confusion_matrix"],
        names,
        "fleet confusion matrix (sum over bags, rows normalised)",
    )
    ious = [doc["per_class_iou"][n] for n in names]
    plot_class_values(
        out_dir / "per_class_iou.png",
        ious,
        names,
        palette,
        "IoU",
        f"fleet per-class IoU (mIoU {_f(doc['miou'], 3)})",
        "absent",
    )
    flicker = [doc["temporal_consistency"]["per_class_flicker"][n] for n in names]
    shown = [v for v in flicker if v is not None]
    plot_class_values(
        out_dir / "per_class_flicker.png",
        flicker,
        names,
        palette,
        "flicker",
        "fleet per-class flicker (lower is steadier)",
        "n/a",
        top=max(shown + [0.05]) * 1.25,
    )
    plot_bag_mious(out_dir / "per_bag_miou.png", doc["bags"])

    frames, lat, run = doc["frames"], doc["latency_ms"], doc.get("run", {})
    lines = [
        f"# Fleet evaluation: {doc['bags_total']} bags",
        "",
        f"- model `{doc.get('model')}`, backend {doc.get('backend')} on {doc.get('device')}; image topic "
        f"`{doc.get('image_topic')}`, labels `{doc.get('label_topic')}`",
        f"- **{'complete' if doc['complete'] else 'INCOMPLETE'}**: {doc['bags_scored']} of {doc['bags_total']} "
        f"bags scored, {doc['bags_failed']} failed; {frames.get('frames_scored', 0)} frames scored of "
        f"{frames.get('frames_in_range', 0)} in range",
    ]
    if doc.get("decoder"):
        lines.append(
            f"- JPEG frames decoded on the {doc['decoder'].upper()}, {doc.get('decode_fallbacks', 0)} decoded on "
            "the CPU instead (decode_fallbacks)"
        )
    if doc["miou"] is not None:
        lines.append(
            f"- **fleet mIoU {doc['miou']:.4f}**, pixel accuracy {_f(doc['pixel_accuracy'])}, "
            f"frequency-weighted IoU {_f(doc['frequency_weighted_iou'])} (from the summed confusion matrix)"
        )
    else:
        lines.append("- no frame could be scored: no fleet mIoU")
    if run.get("wall_s") is not None:
        lines.append(
            f"- {run.get('workers')} workers on Ray ({run.get('ray_address')}): {run['wall_s']:.1f} s wall, "
            f"{_f(run.get('bags_per_minute'), 1)} bags/minute"
        )
    if lat.get("mean") is not None:
        lines.append(f"- segmenter latency per frame: mean {lat['mean']:.2f} ms, p95 {lat['p95']:.2f} ms")
    else:
        lines.append("- no latency figures: no frame was segmented")
    if doc["failed_bags"]:
        lines += ["", "## Bags not scored", ""]
        lines += [
            f"- `{b['bag']}` ({b['attempts']} attempt{'s' if b['attempts'] != 1 else ''}): {b['reason']}"
            for b in doc["failed_bags"]
        ]
    lines += ["", "## Worst bags", "", "| bag | mIoU | its worst class | flicker |", "| --- | --- | --- | --- |"]
    lines += [
        f"| [{b['name']}](bags/{b['name']}/report.md) | {_f(b['miou'])} | {b['worst_class']} "
        f"({_f(b['worst_class_iou'], 3)}) | {_f(b['flicker'])} |"
        for b in doc["worst_bags"]
    ]
    lines += [
        "",
        "## Worst classes",
        "",
        "| class | fleet IoU | mistaken most for | flicker |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {c['class']} | {_f(c['iou'])} | {c['mistaken_for'] or '-'} ({c['mistaken_fraction']:.1%} "
        f"of its pixels) | {_f(c['flicker'])} |"
        for c in doc["worst_classes"]
    ]
    lines += ["", "| class | fleet IoU |", "| --- | --- |"]
    lines += [f"| {n} | {'absent from ground truth' if v is None else f'{v:.4f}'} |" for n, v in zip(names, ious)]
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![per-class IoU](per_class_iou.png)",
        "",
        "![per-bag mIoU](per_bag_miou.png)",
    ]
    lines += flicker_lines(doc["temporal_consistency"], names) + ["", "![per-class flicker](per_class_flicker.png)"]
    lines += compare_lines(doc.get("compare"), out_dir, names, palette)
    lines += [
        "",
        "## Every bag",
        "",
        "| bag | status | mIoU | pixel accuracy | flicker | frames scored | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in doc["bags"]:
        if b["status"] == "scored":
            lines.append(
                f"| [{b['name']}]({b['results']}report.md) | scored{'' if b['complete'] else ', incomplete'} "
                f"| {_f(b['miou'])} | {_f(b['pixel_accuracy'])} | {_f(b['flicker'])} | "
                f"{b['frames_scored']}/{b['frames_in_range']} | {_f(b['wall_s'], 1)} |"
            )
        else:
            lines.append(f"| {b['name']} | **failed**: {b['reason']} | | | | | {_f(b['wall_s'], 1)} |")
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
