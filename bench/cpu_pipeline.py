#!/usr/bin/env python3
"""CPU pipeline benchmark: per-stage ms and FPS of the Segmenter at 640x480 and 1280x720:
ONNX Runtime fp32, fp16 and int8 (the quantize stage's files) and PyTorch eager, same demo weights, one run.

    .venv/bin/python bench/cpu_pipeline.py [--frames 30]

The ratio column is ONNX Runtime fp32 time / this row's time (above 1: faster than fp32). All rows
run the same preprocess and postprocess; only inference differs. This machine is shared and noisy,
so the baseline is measured in the same run, interleaved frame by frame. The fp16 and int8 files
are made by convert's quantize functions (int8 calibrated on 16 generated scenes) and their
accuracy against fp32 is printed: argmax agreement, and mIoU on 8 held-out generated scenes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
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
    from lcsnet_seg.segmenter.cpu import Segmenter

    torch.set_num_threads(os.cpu_count() or 1)
    work = Path(tempfile.mkdtemp(prefix="lcsnet_bench_"))
    files = quantized_files(WEIGHTS / "lcsnet_demo.onnx", work)
    ort_backend = OnnxRuntimeBackend(files["fp32"])
    torch_backend = TorchBackend.from_checkpoint(WEIGHTS / "lcsnet_demo.pth", info=ort_backend.info)
    runners = {
        "ort fp32": Segmenter(ort_backend),
        "ort fp16": Segmenter(OnnxRuntimeBackend(files["fp16"])),
        "ort int8": Segmenter(OnnxRuntimeBackend(files["int8"])),
        "pytorch": Segmenter(torch_backend),
    }
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; "
        f"model input {ort_backend.info.input_size}"
    )
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
            rows.append(
                (
                    f"{width}x{height}",
                    name,
                    m["preprocess"],
                    m["infer"],
                    m["postprocess"],
                    m["total"],
                    1e3 / m["total"],
                    med["ort fp32"]["total"] / m["total"],
                )
            )
    print(
        f"\n{'size':>9} {'backend':>12} {'pre ms':>8} {'infer ms':>9} {'post ms':>8} {'total ms':>9} "
        f"{'FPS':>6} {'fp32/this':>10}"
    )
    for size, name, pre, inf, post, total, fps, ratio in rows:
        print(f"{size:>9} {name:>12} {pre:8.2f} {inf:9.2f} {post:8.2f} {total:9.2f} {fps:6.1f} {ratio:10.2f}")
    print("\n(medians over", args.frames, "frames; ratio = ONNX Runtime fp32 total / this row's total)")
    accuracy(files, ort_backend.info)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def quantized_files(fp32: Path, work: Path) -> dict[str, Path]:
    """The demo ONNX and its fp16 / int8 versions, made as convert's quantize stage makes them."""
    from lcsnet_seg.convert.parity import scene_batches
    from lcsnet_seg.convert.quantize import to_fp16, to_int8
    from lcsnet_seg.model_info import read_onnx_model_info

    info = read_onnx_model_info(fp32)
    to_fp16(fp32, work / "demo.fp16.onnx")
    to_int8(fp32, work / "demo.int8.onnx", scene_batches(16, *info.input_size, info, first_seed=1_800_000_000))
    return {"fp32": fp32, "fp16": work / "demo.fp16.onnx", "int8": work / "demo.int8.onnx"}


def accuracy(files: dict[str, Path], info) -> None:
    """The accuracy bars of the quantize stage, on these files."""
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend
    from lcsnet_seg.convert.parity import miou_drop

    fp32 = OnnxRuntimeBackend(files["fp32"], providers=["CPUExecutionProvider"]).infer
    for precision in ("fp16", "int8"):
        other = OnnxRuntimeBackend(files[precision], providers=["CPUExecutionProvider"]).infer
        print(miou_drop(f"fp32 vs {precision}", fp32, other, 8, info).line())


if __name__ == "__main__":
    raise SystemExit(main())
