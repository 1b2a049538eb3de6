"""demo: segment generated indoor scenes with a model and write overlays and a summary.

    demo --model out/demo/model/lcsnet_demo.sim.onnx --out-dir out/demo --frames 48

Writes OUT/overlays/frame_NNN.png (camera image | overlay | ground truth colours), and
OUT/summary.json and OUT/summary.md with mIoU, per-class IoU, pixel accuracy, per-stage times and FPS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from lcsnet_seg.errors import LcsnetError
from lcsnet_seg.model import DEMO_ONNX

DEMO_SEED = 3_000_000_000  # outside the training range


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="ONNX model (default: the packaged demo model)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out-dir", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--save", type=int, default=8, help="how many overlay images to write")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from tqdm import tqdm

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.eval.metrics import ConfusionMatrix
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.pipeline import Segmenter

    try:
        backend, why = create_backend(args.backend, args.model or DEMO_ONNX)
    except LcsnetError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    segmenter = Segmenter(backend, overlay_alpha=0.5)
    info = segmenter.info
    print(f"demo: backend {backend.name} on {backend.device} ({why}); model input {info.input_size}")
    overlays = args.out_dir / "overlays"
    overlays.mkdir(parents=True, exist_ok=True)
    palette = info.classes.palette_rgb()
    cm = ConfusionMatrix(info.num_classes)
    stage_ms: dict[str, list[float]] = {}
    for i in tqdm(range(args.frames), desc="segmenting", unit="frame"):
        image, truth = generate_scene(DEMO_SEED + i, args.height, args.width)
        result = segmenter(image, "rgb8")
        cm.update(truth, result.labels)
        if i >= 1:  # frame 0 warms up the session
            for k, v in result.timings_ms.items():
                stage_ms.setdefault(k, []).append(v)
        if i < args.save:
            panel = np.concatenate([image, result.overlay, palette[truth]], axis=1)
            cv2.imwrite(str(overlays / f"frame_{i:03d}.png"), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    scores = cm.scores()
    summary = {
        "model": str(args.model or DEMO_ONNX),
        "backend": backend.name,
        "device": backend.device,
        "frames": args.frames,
        "image_size": [args.height, args.width],
        "miou": scores.miou,
        "pixel_accuracy": scores.pixel_accuracy,
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in
                          zip(info.classes.names, scores.per_class_iou)},
        "stage_ms_mean": {k: float(np.mean(v)) for k, v in stage_ms.items()},
        # Segmenter throughput (preprocess + inference + postprocess); scene generation is not counted.
        "fps": 1e3 / float(np.mean(stage_ms["total"])) if stage_ms else float("nan"),
    }
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# lcsnet_seg demo: {args.frames} generated scenes at {args.width}x{args.height}", "",
             f"backend **{backend.name}** on {backend.device}; mIoU **{scores.miou:.3f}**, pixel accuracy "
             f"{scores.pixel_accuracy:.3f}, **{summary['fps']:.1f} FPS** (Segmenter: preprocess + inference "
             "+ postprocess)", "", "| class | IoU |", "| --- | --- |"]
    lines += [f"| {n} | {'absent' if v is None else f'{v:.3f}'} |" for n, v in summary["per_class_iou"].items()]
    lines += ["", "| stage | mean ms |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in summary["stage_ms_mean"].items()]
    (args.out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\ndemo: wrote {overlays}/ and {args.out_dir / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
