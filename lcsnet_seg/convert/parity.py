"""Parity between the PyTorch model and an exported model on the same images."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Parity:
    """max_abs_logit_diff over all logits; argmax_agreement = fraction of pixels with equal argmax."""

    name: str
    images: int
    max_abs_logit_diff: float
    argmax_agreement: float

    def line(self) -> str:
        return (
            f"{self.name:28s} images {self.images:3d}  max |dlogit| {self.max_abs_logit_diff:.2e}  "
            f"argmax agreement {100 * self.argmax_agreement:.4f} %"
        )


def compare(
    name: str,
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    batches: Iterable[np.ndarray],
) -> Parity:
    """Run both on each 1 x 3 x H x W float32 batch and collect the differences."""
    worst, agree, total, count = 0.0, 0, 0, 0
    for batch in batches:
        ref = np.asarray(reference(batch), np.float32)
        out = np.asarray(candidate(batch), np.float32)
        worst = max(worst, float(np.abs(ref - out).max()))
        agree += int(np.count_nonzero(ref.argmax(1) == out.argmax(1)))
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
        count += 1
    return Parity(name, count, worst, agree / total if total else float("nan"))


def scene_batches(count: int, height: int, width: int, info, first_seed: int = 2_000_000_000):
    """Normalised 1 x 3 x H x W batches of freshly generated scenes (seeds outside the training range)."""
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.preprocess import preprocess

    fmt = pixel_format("rgb8")
    for i in range(count):
        image, _ = generate_scene(first_seed + i, height, width)
        yield preprocess(image, fmt, info)


def folder_batches(folder, info, limit: int):
    """Normalised batches of the images in a folder (png/jpg), resized to the model input."""
    from pathlib import Path

    import cv2

    from lcsnet_seg.errors import ConfigError
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.preprocess import preprocess

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise ConfigError(f"image folder {folder} has no .png/.jpg images")
    fmt = pixel_format("bgr8")
    for path in files[:limit]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"image {path} could not be decoded")
        yield preprocess(image, fmt, info)


@dataclass
class MiouDrop:
    """mIoU of the reference and the candidate against generated ground truth, on the same scenes."""

    name: str
    images: int
    reference_miou: float
    candidate_miou: float
    argmax_agreement: float

    @property
    def drop(self) -> float:
        return self.reference_miou - self.candidate_miou

    def line(self) -> str:
        return (
            f"{self.name:28s} images {self.images:3d}  mIoU {self.reference_miou:.4f} -> {self.candidate_miou:.4f} "
            f"(drop {self.drop:+.4f})  argmax agreement {100 * self.argmax_agreement:.4f} %"
        )


def miou_drop(
    name: str,
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    count: int,
    info,
    first_seed: int = 2_100_000_000,
) -> MiouDrop:
    """Score both on ``count`` held-out generated scenes (seeds far from training and calibration).

    Labels are compared at the input size; logits at a lower resolution are upsampled (nearest),
    as the Segmenter does.
    """
    from lcsnet_seg.eval.metrics import ConfusionMatrix
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.postprocess import resize_nearest
    from lcsnet_seg.preprocess import preprocess

    h, w = info.input_size
    fmt = pixel_format("rgb8")
    matrices = [ConfusionMatrix(info.num_classes), ConfusionMatrix(info.num_classes)]
    agree = total = 0
    for i in range(count):
        image, truth = generate_scene(first_seed + i, h, w)
        batch = preprocess(image, fmt, info)
        labels = []
        for run, matrix in zip((reference, candidate), matrices):
            predicted = np.asarray(run(batch), np.float32)[0].argmax(0).astype(np.uint8)
            predicted = resize_nearest(predicted, h, w)
            matrix.update(truth, predicted)
            labels.append(predicted)
        agree += int(np.count_nonzero(labels[0] == labels[1]))
        total += labels[0].size
    return MiouDrop(
        name, count, matrices[0].scores().miou, matrices[1].scores().miou, agree / total if total else float("nan")
    )
