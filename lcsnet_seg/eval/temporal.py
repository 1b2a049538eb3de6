"""Temporal consistency (flicker): how often the prediction changes where the scene does not.

For two consecutive evaluated frames, a pixel is *stable* when its ground-truth class is the same
in both (and scored: not 255, within 0..num_classes-1); it *flickers* when it is stable but the
predicted class differs between the two frames. Flicker of class c = flickering pixels / stable
pixels, both counted where the ground truth is c. The counts are kept, not the ratios, so that the
flicker of several bags is their summed counts divided (exact aggregation).
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.classes import IGNORE_LABEL


class FlickerCounter:
    """Counts stable and flickering pixels per ground-truth class over consecutive frame pairs.

    Frames must be offered in order with their position in the evaluated sequence; a gap (a frame
    skipped, unreadable, without output or label) breaks the chain, so only true neighbours pair.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.stable_pixels = np.zeros(num_classes, np.int64)
        self.flicker_pixels = np.zeros(num_classes, np.int64)
        self.frame_pairs = 0
        self._previous: tuple[int, np.ndarray, np.ndarray] | None = None

    def update(self, index: int, prediction: np.ndarray, truth: np.ndarray) -> None:
        """prediction, truth: H x W integer class ids of frame ``index``. Both are copied when kept,
        because a GPU Segmenter returns views of buffers that its next call overwrites."""
        previous = self._previous
        self._previous = (index, np.array(prediction), np.array(truth))
        if previous is None or previous[0] != index - 1 or previous[2].shape != truth.shape:
            return
        _, prev_pred, prev_truth = previous
        n = self.num_classes
        stable = (truth == prev_truth) & (truth != IGNORE_LABEL) & (truth < n)
        changed = stable & (prediction != prev_pred)
        gt = truth.astype(np.int64)
        self.stable_pixels += np.bincount(gt[stable], minlength=n)[:n]
        self.flicker_pixels += np.bincount(gt[changed], minlength=n)[:n]
        self.frame_pairs += 1


def flicker_summary(class_names, stable_pixels, flicker_pixels, frame_pairs: int) -> dict:
    """The metrics.json block: counts (summable across bags) and the ratios they give.

    flicker: overall fraction of stable pixels whose prediction changed (None when no pixel was
    stable); per_class_flicker: the same per ground-truth class (None for a class never stable).
    """
    stable = np.asarray(stable_pixels, np.int64)
    flicker = np.asarray(flicker_pixels, np.int64)
    total = int(stable.sum())
    return {
        "flicker": float(flicker.sum() / total) if total else None,
        "per_class_flicker": {
            name: (float(f / s) if s else None) for name, s, f in zip(class_names, stable.tolist(), flicker.tolist())
        },
        "stable_pixels": stable.tolist(),
        "flicker_pixels": flicker.tolist(),
        "frame_pairs": int(frame_pairs),
    }
