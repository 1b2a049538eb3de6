"""Segmentation metrics from a confusion matrix (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcsnet_seg.classes import IGNORE_LABEL


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes matrix: rows = ground truth, columns = prediction.

    Ground-truth pixels equal to IGNORE_LABEL are not counted. Ground-truth values outside
    0..num_classes-1 (other than IGNORE_LABEL) are counted in ``invalid_gt_pixels`` and skipped.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        self.invalid_gt_pixels = 0

    def update(self, ground_truth: np.ndarray, prediction: np.ndarray) -> None:
        """ground_truth, prediction: same-shape integer arrays of class ids."""
        if ground_truth.shape != prediction.shape:
            raise ValueError(f"ground truth {ground_truth.shape} and prediction {prediction.shape} differ in shape")
        gt = ground_truth.ravel().astype(np.int64)
        pred = prediction.ravel().astype(np.int64)
        valid = gt != IGNORE_LABEL
        in_range = valid & (gt < self.num_classes) & (gt >= 0)
        self.invalid_gt_pixels += int(np.count_nonzero(valid & ~in_range))
        gt, pred = gt[in_range], pred[in_range]
        pred = np.where((pred >= 0) & (pred < self.num_classes), pred, 0)  # cannot happen for our argmax
        n = self.num_classes
        self.matrix += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    def scores(self) -> Scores:
        return Scores.from_matrix(self.matrix)


@dataclass
class Scores:
    """per_class_iou: NaN where the class is absent from both ground truth and prediction."""

    per_class_iou: np.ndarray
    miou: float
    pixel_accuracy: float
    frequency_weighted_iou: float
    present: np.ndarray  # bool per class: the class occurs in the ground truth

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Scores:
        tp = np.diag(matrix).astype(np.float64)
        gt_count = matrix.sum(1).astype(np.float64)
        pred_count = matrix.sum(0).astype(np.float64)
        union = gt_count + pred_count - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        present = gt_count > 0
        # mIoU over classes present in the ground truth: an absent class is "absent", not IoU 0.
        scored = iou[present]
        total = gt_count.sum()
        freq = gt_count / total if total else gt_count
        return cls(
            per_class_iou=iou,
            miou=float(np.nanmean(scored)) if scored.size else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
            frequency_weighted_iou=float(np.nansum(freq[present] * iou[present])) if total else float("nan"),
            present=present,
        )
