"""metrics.json, report.md and its plots (confusion matrix, per-class IoU, sample overlays)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lcsnet_seg.eval.scoring import Scorer, latency_summary
from lcsnet_seg.eval.temporal import flicker_summary


def metrics_document(scorer: Scorer, class_names, palette, extra: dict) -> dict:
    scores = scorer.cm.scores()
    complete = (
        scorer.counts["frames_without_output"] == 0
        and scorer.counts["frames_bad_image"] == 0
        and scorer.counts["frames_segmented"] == scorer.counts["frames_in_range"]
    )
    latency = latency_summary(scorer.latencies_ms)
    return {
        **extra,
        "complete": complete,
        "classes": list(class_names),
        "miou": None if np.isnan(scores.miou) else scores.miou,
        "per_class_iou": {
            n: (float(v) if present else None)
            for n, v, present in zip(class_names, scores.per_class_iou, scores.present)
        },
        "class_present_in_ground_truth": {n: bool(p) for n, p in zip(class_names, scores.present)},
        "pixel_accuracy": None if np.isnan(scores.pixel_accuracy) else scores.pixel_accuracy,
        "frequency_weighted_iou": None if np.isnan(scores.frequency_weighted_iou) else scores.frequency_weighted_iou,
        "confusion_matrix": scorer.cm.matrix.tolist(),
        "invalid_label_pixels": scorer.cm.invalid_gt_pixels,
        "latency_ms": latency,
        # segmenter mode: 1 / mean latency; node mode passes the measured output rate in ``extra``
        "fps": extra.get("fps", (1e3 / latency["mean"]) if latency["mean"] else None),
        "frames": dict(scorer.counts),
        "warnings": scorer.warnings,
        "temporal_consistency": flicker_summary(
            class_names, scorer.flicker.stable_pixels, scorer.flicker.flicker_pixels, scorer.flicker.frame_pairs
        ),
    }


def latency_line(latency: dict, fps: float | None) -> str:
    """One line of latency and throughput that says which figure is missing instead of failing on it."""
    if latency.get("mean") is None:
        text = "latency not measured (no frame came back)"
    else:
        text = (
            f"latency mean {latency['mean']:.2f} ms, p50 {latency['p50']:.2f}, p95 {latency['p95']:.2f}, "
            f"p99 {latency['p99']:.2f} ms"
        )
    return text + ("; FPS not measured (fewer than two outputs)" if fps is None else f"; {fps:.1f} FPS")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(path: Path, confusion_matrix, names, title="confusion matrix (rows normalised)") -> None:
    plt = pyplot()
    matrix = np.asarray(confusion_matrix, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = matrix / matrix.sum(1, keepdims=True)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(np.nan_to_num(rows), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i].sum() and rows[i, j] >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{rows[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_class_values(
    path: Path, values, names, palette, ylabel: str, title: str, missing: str, top: float = 1.1
) -> None:
    """One bar per class in its palette colour; ``missing`` is written where a value is None."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    colours = [tuple(c / 255 for c in palette[i]) for i in range(len(names))]
    ax.bar(range(len(names)), [v if v is not None else 0 for v in values], color=colours, edgecolor="black")
    for i, v in enumerate(values):
        ax.text(i, (v or 0) + 0.02 * top, missing if v is None else f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, top)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, doc: dict, scorer: Scorer, palette: np.ndarray, cameras: dict | None = None) -> Path:
    """metrics.json and report.md (with its plots and samples) in ``out_dir``. ``cameras``: several cameras of
    one bag: {name: that camera's Scorer} (``doc`` then holds each one's document under "cameras"): the report
    has a section of all cameras together, then one per camera (its plots and samples named after it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    names = doc["classes"]
    if not cameras:
        lines = [f"# Segmentation evaluation: {doc.get('bag')}", "", *_run_lines(doc)]
        lines += _score_lines(out_dir, doc, scorer, palette, "", "##")
        lines += compare_lines(doc.get("compare"), out_dir, names, palette)
        if doc["warnings"]:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in doc["warnings"]]
    else:
        lines = [
            f"# Segmentation evaluation: {doc.get('bag')}, {len(cameras)} cameras",
            "",
            f"- mode **{doc.get('mode')}**, backend {doc.get('backend')} on {doc.get('device')}, model "
            f"`{doc.get('model')}`; frames of the cameras whose stamps lie within {doc.get('sync_ms', 0):.1f} ms "
            f"segmented together: {doc.get('ticks')} ticks",
        ]
        lines += _decoder_lines(doc)
        lines += [
            "",
            "## All cameras",
            "",
            "Summed confusion matrices and frame counts; latency per tick (all cameras of a tick together).",
            "",
            *_count_lines(doc),
        ]
        lines += _score_lines(out_dir, doc, scorer, palette, "all_", "###")
        lines += compare_lines(doc.get("compare"), out_dir, names, palette)
        for name, camera_scorer in cameras.items():
            camera = doc["cameras"][name]
            lines += [
                "",
                f"## Camera {name}",
                "",
                f"- image topic `{camera.get('image_topic')}`, labels `{camera.get('label_topic')}`",
                *_decoder_lines(camera),
                *_count_lines(camera),
            ]
            lines += _score_lines(out_dir, camera, camera_scorer, palette, f"{name}_", "###")
        if doc["warnings"]:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in doc["warnings"]]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _decoder_lines(doc: dict) -> list[str]:
    """A compressed topic's line on its JPEG decoding (nothing for raw images)."""
    if "decoder" not in doc and "decode_fallbacks" not in doc:
        return []
    where = {"gpu": "on the GPU (nvImageCodec)", "cpu": "on the CPU (OpenCV)"}.get(doc.get("decoder", ""), "")
    text = f"- JPEG frames decoded {where}" if where else "- JPEG frames"
    if "decode_fallbacks" in doc:  # --node: the node counts them in its own /diagnostics
        text += f", {doc['decode_fallbacks']} decoded on the CPU instead (decode_fallbacks)"
    return [text + (f"; {doc['decoder_note']}" if doc.get("decoder_note") else "")]


def _run_lines(doc: dict) -> list[str]:
    return [
        f"- image topic `{doc.get('image_topic')}`, labels `{doc.get('label_topic')}`; "
        f"mode **{doc.get('mode')}**, "
        f"backend {doc.get('backend')} on {doc.get('device')}, model `{doc.get('model')}`",
        *_decoder_lines(doc),
        *_count_lines(doc),
    ]


def _count_lines(doc: dict) -> list[str]:
    frames = doc["frames"]
    return [
        f"- **{'complete' if doc['complete'] else 'INCOMPLETE'}**: {frames['frames_segmented']} of "
        f"{frames['frames_in_range']} frames segmented, {frames['frames_scored']} scored, "
        f"{frames['frames_without_label']} without ground truth, {frames['frames_bad_image']} unreadable, "
        f"{frames['frames_without_output']} without output, {frames['labels_wrong_size']} with wrong-size labels",
    ]


def _score_lines(out_dir: Path, doc: dict, scorer: Scorer, palette: np.ndarray, prefix: str, level: str) -> list[str]:
    """mIoU, latency, the per-class table, the plots (files named ``prefix``...), samples and flicker."""
    names = doc["classes"]
    matrix_png, iou_png = f"{prefix}confusion_matrix.png", f"{prefix}per_class_iou.png"
    plot_confusion_matrix(out_dir / matrix_png, doc["confusion_matrix"], names)
    ious = [doc["per_class_iou"][n] for n in names]
    plot_class_values(
        out_dir / iou_png,
        ious,
        names,
        palette,
        "IoU",
        f"per-class IoU (mIoU {doc['miou']:.3f})" if doc["miou"] is not None else "per-class IoU (no mIoU)",
        "absent",
    )

    import cv2

    sample_files = []
    for k, sample in enumerate(scorer.samples):
        panels = [sample.image_rgb, sample.overlay_rgb]
        if sample.truth is not None and sample.truth.shape == sample.image_rgb.shape[:2]:
            panels.append(palette[sample.truth])
        path = out_dir / f"{prefix}sample_{k:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))
        sample_files.append(path.name)

    lines = []
    if doc["miou"] is not None:
        lines.append(
            f"- **mIoU {doc['miou']:.4f}**, pixel accuracy {doc['pixel_accuracy']:.4f}, "
            f"frequency-weighted IoU {doc['frequency_weighted_iou']:.4f}"
        )
    else:
        lines.append("- no frame could be scored: no mIoU")
    lines.append(f"- {latency_line(doc['latency_ms'], doc['fps'])}")
    lines += ["", "| class | IoU |", "| --- | --- |"]
    lines += [f"| {n} | {'absent from ground truth' if v is None else f'{v:.4f}'} |" for n, v in zip(names, ious)]
    lines += ["", f"![confusion matrix]({matrix_png})", "", f"![per-class IoU]({iou_png})", ""]
    if sample_files or not prefix:
        lines += ["Samples (image | overlay | ground truth):", ""] + [f"![{f}]({f})" for f in sample_files]
    lines += flicker_lines(doc.get("temporal_consistency"), names, level)
    return lines


def flicker_lines(block: dict | None, names, level: str = "##") -> list[str]:
    """Markdown for the temporal-consistency block of a metrics document (single bag or fleet); ``level``: its
    heading's."""
    lines = ["", f"{level} Temporal consistency", ""]
    if not block or block["flicker"] is None:
        return lines + [
            "No flicker figure: it needs consecutive frames with ground truth "
            "(a label topic, and at least two neighbouring frames scored)."
        ]
    lines += [
        f"- **flicker {block['flicker']:.4f}**: fraction of pixels whose predicted class changes between "
        f"consecutive frames where the ground truth does not ({block['frame_pairs']} frame pairs, "
        f"{sum(block['stable_pixels'])} stable pixels)",
        "",
        "| class | flicker | stable pixels |",
        "| --- | --- | --- |",
    ]
    for name, stable in zip(names, block["stable_pixels"]):
        value = block["per_class_flicker"][name]
        lines.append(f"| {name} | {'never stable' if value is None else f'{value:.4f}'} | {stable} |")
    return lines


def compare_lines(block: dict | None, out_dir: Path, names, palette) -> list[str]:
    """Markdown (and compare_iou.png) for a --compare block: this run minus the other, per class."""
    if not block:
        return []
    deltas = [block["per_class_iou_delta"][n] for n in names]
    shown = [abs(d) for d in deltas if d is not None]
    plot_class_values(
        out_dir / "compare_iou.png",
        [d if d is None else abs(d) for d in deltas],
        names,
        palette,
        "|IoU difference|",
        "per-class IoU difference (table gives the sign)",
        "n/a",
        top=max(shown + [0.05]) * 1.25,
    )

    def signed(value):
        return "n/a" if value is None else f"{value:+.4f}"

    lines = [
        "",
        "## Compared with another run",
        "",
        f"Against `{block['other']}` (model `{block.get('other_model')}`): mIoU {signed(block['miou_delta'])}, "
        f"flicker {signed(block['flicker_delta'])} "
        "(this run minus the other; IoU up is better, flicker down is better).",
        "",
        "| class | IoU here minus there | IoU there |",
        "| --- | --- | --- |",
    ]
    for name in names:
        there = block["other_per_class_iou"].get(name)
        lines.append(
            f"| {name} | {signed(block['per_class_iou_delta'][name])} | "
            f"{'absent' if there is None else f'{there:.4f}'} |"
        )
    lines += ["", "![compare](compare_iou.png)"]
    per_bag = block["per_bag_miou_delta"]
    if len(per_bag) > 1:
        lines += ["", "| bag | mIoU here minus there |", "| --- | --- |"]
        lines += [f"| {b} | {signed(d)} |" for b, d in sorted(per_bag.items(), key=lambda kv: kv[1] or 0)]
    for key, text in (("bags_only_here", "only in this run"), ("bags_only_there", "only in the other run")):
        if block[key]:
            lines.append(f"- bags {text}: {', '.join(block[key])}")
    return lines
