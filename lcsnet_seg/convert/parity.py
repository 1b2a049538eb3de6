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
    return _parity(name, ((reference(batch), candidate(batch)) for batch in batches))


def _parity(name: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Parity:
    """Parity over (reference logits, candidate logits) pairs."""
    worst, agree, total, count = 0.0, 0, 0, 0
    for ref, out in pairs:
        ref, out = np.asarray(ref, np.float32), np.asarray(out, np.float32)
        worst = max(worst, float(np.abs(ref - out).max()))
        agree += int(np.count_nonzero(ref.argmax(1) == out.argmax(1)))
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
        count += 1
    return Parity(name, count, worst, agree / total if total else float("nan"))


@dataclass
class BatchParity:
    """The candidate run on stacks of ``batch`` images (the same images as the batch-1 comparison), each result
    compared with the reference on that image alone (``max_abs_logit_diff``, ``argmax_agreement``) and with the
    candidate itself on that image alone (``alone_*``: an image's result must not depend on its batch).
    ``error``: the candidate could not run a batch (first line of its error)."""

    name: str
    batch: int
    images: int
    max_abs_logit_diff: float = float("nan")
    argmax_agreement: float = float("nan")
    alone_max_abs_logit_diff: float = float("nan")
    alone_argmax_agreement: float = float("nan")
    error: str | None = None

    def line(self) -> str:
        if self.error is not None:
            return f"{self.name}, parity at batch {self.batch}: does not run ({self.error})"
        return (
            f"{self.name}, parity at batch {self.batch}: images {self.images}  max |dlogit| "
            f"{self.max_abs_logit_diff:.2e}  argmax agreement {100 * self.argmax_agreement:.4f} %; each image "
            f"as alone: max |dlogit| {self.alone_max_abs_logit_diff:.2e}  argmax agreement "
            f"{100 * self.alone_argmax_agreement:.4f} %"
        )

    def problem(self, minimum_percent: float, judge_reference: bool = True) -> str | None:
        """One line saying why the batch fails (None when it holds): it does not run, an image's labels change with
        the other images of its batch, or (``judge_reference``) the batch disagrees with the reference."""
        fix = "fix the model, or convert with --max-batch 1 (one image per inference)"
        if self.error is not None:
            return (
                f"{self.name} does not run at batch {self.batch} ({self.error}): the ONNX claims a dynamic batch but "
                f"fixes it inside (a reshape to batch 1?); {fix}"
            )
        if not 100 * self.alone_argmax_agreement >= minimum_percent:
            return (
                f"{self.name} at batch {self.batch}: an image's labels depend on the other images of its batch "
                f"(argmax agreement with the image alone {100 * self.alone_argmax_agreement:.2f} %, below "
                f"{minimum_percent:.2f} %): the ONNX claims a dynamic batch but mixes its images (BatchNorm in "
                f"training mode, an op across the batch, a reshape that bakes the batch); {fix}"
            )
        if judge_reference and not 100 * self.argmax_agreement >= minimum_percent:
            return (
                f"{self.name} at batch {self.batch}: argmax agreement with the reference "
                f"{100 * self.argmax_agreement:.2f} %, below {minimum_percent:.2f} %; {fix}"
            )
        return None


def compare_batched(
    name: str,
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    batches: Iterable[np.ndarray],
    batch: int,
) -> tuple[Parity, BatchParity]:
    """``compare`` on each 1 x 3 x H x W batch, and the candidate on those images stacked ``batch`` at a time
    (consecutive images; a last, short group is filled up with the images before it). Needs at least ``batch``
    images: a batch of copies of one image could not show images mixing."""
    images = [np.asarray(b, np.float32) for b in batches]
    if len(images) < batch:
        raise ValueError(f"parity at batch {batch} needs at least {batch} images, got {len(images)}")
    references = [np.asarray(reference(x), np.float32) for x in images]
    alone = [np.asarray(candidate(x), np.float32) for x in images]
    single = _parity(name, zip(references, alone))
    result = BatchParity(name, batch, len(images))
    starts = list(range(0, len(images) - batch + 1, batch))
    if starts[-1] + batch < len(images):
        starts.append(len(images) - batch)
    worst = [0.0, 0.0]
    agree, total = [0, 0], 0
    for start in starts:
        try:
            stacked = np.asarray(candidate(np.concatenate(images[start : start + batch])), np.float32)
        except Exception as exc:  # noqa: BLE001 - the runtime's own error types (ONNX Runtime: Fail, InvalidArgument)
            result.error = error_line(exc)
            return single, result
        if stacked.shape[0] != batch:
            result.error = f"{stacked.shape[0]} results for a batch of {batch}"
            return single, result
        for i in range(batch):
            out = stacked[i : i + 1]
            for k, truth in enumerate((references[start + i], alone[start + i])):
                if out.shape != truth.shape:
                    result.error = f"logits {out.shape[1:]} in a batch, {truth.shape[1:]} alone"
                    return single, result
                worst[k] = max(worst[k], float(np.abs(truth - out).max()))
                agree[k] += int(np.count_nonzero(truth.argmax(1) == out.argmax(1)))
            total += out.shape[2] * out.shape[3]
    result.max_abs_logit_diff, result.alone_max_abs_logit_diff = worst
    result.argmax_agreement, result.alone_argmax_agreement = (a / total for a in agree)
    return single, result


def error_line(exc: BaseException, limit: int = 240) -> str:
    """A runtime error in one line of at most ``limit`` characters: its start and its end (where ONNX Runtime says
    which shapes did not fit)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else f"{text[: limit // 2 - 3]} ... {text[-(limit // 2 - 2) :]}"


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
