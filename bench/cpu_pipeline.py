#!/usr/bin/env python3
"""CPU pipeline benchmark: per-stage ms and FPS of the Segmenter at 640x480 and 1280x720,
ONNX Runtime against PyTorch eager on the same demo weights, measured in one run.

    .venv/bin/python bench/cpu_pipeline.py [--frames 30]

The ratio column is PyTorch time / ONNX Runtime time (above 1: ONNX Runtime is faster). Both run
the same preprocess and postprocess; only inference differs. This machine is shared and noisy, so
the baseline is measured in the same run, interleaved frame by frame.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "lcsnet_seg" / "model" / "weights"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    import torch

    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend
    from lcsnet_seg.backends.pytorch import TorchBackend
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.pipeline import Segmenter

    torch.set_num_threads(os.cpu_count() or 1)
    ort_backend = OnnxRuntimeBackend(WEIGHTS / "lcsnet_demo.onnx")
    torch_backend = TorchBackend.from_checkpoint(WEIGHTS / "lcsnet_demo.pth", info=ort_backend.info)
    runners = {"onnxruntime": Segmenter(ort_backend), "pytorch": Segmenter(torch_backend)}
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; "
          f"model input {ort_backend.info.input_size}")
    rows = []
    for height, width in ((480, 640), (720, 1280)):
        frames = [generate_scene(5_000_000 + i, height, width)[0] for i in range(8)]
        times: dict[str, dict[str, list[float]]] = {name: {} for name in runners}
        for i in range(args.warmup + args.frames):
            for name, seg in runners.items():  # interleaved: both see the same machine load
                result = seg(frames[i % len(frames)], "rgb8")
                if i >= args.warmup:
                    for stage, ms in result.timings_ms.items():
                        times[name].setdefault(stage, []).append(ms)
        med = {n: {s: float(np.median(v)) for s, v in t.items()} for n, t in times.items()}
        for name in runners:
            m = med[name]
            rows.append((f"{width}x{height}", name, m["preprocess"], m["infer"], m["postprocess"], m["total"],
                         1e3 / m["total"], med["pytorch"]["total"] / m["total"]))
    print(f"\n{'size':>9} {'backend':>12} {'pre ms':>8} {'infer ms':>9} {'post ms':>8} {'total ms':>9} "
          f"{'FPS':>6} {'pytorch/this':>13}")
    for size, name, pre, inf, post, total, fps, ratio in rows:
        print(f"{size:>9} {name:>12} {pre:8.2f} {inf:9.2f} {post:8.2f} {total:9.2f} {fps:6.1f} {ratio:13.2f}")
    print("\n(medians over", args.frames, "frames; ratio = PyTorch eager total / this backend's total)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
