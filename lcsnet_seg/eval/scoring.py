"""Scoring predictions against ground truth from a bag, with counted warnings instead of silent gaps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lcsnet_seg.eval.metrics import ConfusionMatrix
from lcsnet_seg.eval.temporal import FlickerCounter


@dataclass
class Sample:
    image_rgb: np.ndarray
    overlay_rgb: np.ndarray
    truth: np.ndarray | None


@dataclass
class Scorer:
    num_classes: int
    sample_indices: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cm = ConfusionMatrix(self.num_classes)
        self.flicker = FlickerCounter(self.num_classes)
        self.counts = dict(
            frames_in_range=0,
            frames_segmented=0,
            frames_scored=0,
            frames_without_label=0,
            frames_bad_image=0,
            frames_without_output=0,
            labels_wrong_size=0,
        )
        self.warnings: list[str] = []
        self.latencies_ms: list[float] = []
        self.samples: list[Sample] = []

    def warn(self, text: str, limit: int = 20) -> None:
        if len(self.warnings) < limit:
            self.warnings.append(text)
        elif len(self.warnings) == limit:
            self.warnings.append("... further warnings not listed; see the counters")

    def score(self, index: int, stamp: int, prediction: np.ndarray, truth: np.ndarray | None) -> None:
        """Score frame ``index`` (its position in the evaluated sequence: consecutive indices are
        neighbouring frames for the flicker measure)."""
        if truth is None:
            self.counts["frames_without_label"] += 1
            return
        if truth.shape != prediction.shape:
            self.counts["labels_wrong_size"] += 1
            self.warn(
                f"label image at stamp {stamp} is {truth.shape[1]}x{truth.shape[0]} but the image is "
                f"{prediction.shape[1]}x{prediction.shape[0]}: frame not scored"
            )
            return
        before = self.cm.invalid_gt_pixels
        self.cm.update(truth, prediction)
        if self.cm.invalid_gt_pixels > before:
            self.warn(
                f"label image at stamp {stamp} has {self.cm.invalid_gt_pixels - before} pixels with class ids "
                f"outside 0..{self.num_classes - 1} (and not 255): those pixels are not scored"
            )
        self.flicker.update(index, prediction, truth)
        self.counts["frames_scored"] += 1

    def keep_sample(self, index: int, image_rgb: np.ndarray, overlay_rgb: np.ndarray, truth) -> None:
        """Arrays are copied: a GPU Segmenter's results are views of buffers its next call overwrites."""
        if index in self.sample_indices:
            self.samples.append(
                Sample(np.array(image_rgb), np.array(overlay_rgb), None if truth is None else np.array(truth))
            )


def merged_scorer(scorers: dict[str, Scorer], latencies_ms: list[float]) -> Scorer:
    """Several cameras' scores as one: confusion matrices, flicker counts and frame counts summed (each camera's
    flicker pairs its own consecutive frames), warnings named by camera, ``latencies_ms`` (a tick's each); no
    samples (each camera keeps its own)."""
    first = next(iter(scorers.values()))
    total = Scorer(first.num_classes)
    for name, scorer in scorers.items():
        total.cm.matrix += scorer.cm.matrix
        total.cm.invalid_gt_pixels += scorer.cm.invalid_gt_pixels
        total.flicker.stable_pixels += scorer.flicker.stable_pixels
        total.flicker.flicker_pixels += scorer.flicker.flicker_pixels
        total.flicker.frame_pairs += scorer.flicker.frame_pairs
        for key, value in scorer.counts.items():
            total.counts[key] = total.counts.get(key, 0) + value
        for text in scorer.warnings:
            total.warn(f"camera {name}: {text}")
    total.latencies_ms = list(latencies_ms)
    return total


def sample_positions(total: int, count: int) -> set[int]:
    if total <= 0 or count <= 0:
        return set()
    return {int(round(x)) for x in np.linspace(0, total - 1, min(count, total))}


def latency_summary(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"mean": None, "p50": None, "p95": None, "p99": None}
    arr = np.asarray(latencies_ms)
    return {
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
    }
