#!/usr/bin/env python3
"""JPEG decoding benchmark (run on a CUDA machine with nvImageCodec): OpenCV on the CPU against
lcsnet_seg.gpu.decode.GpuJpegDecoder, measured in the same run.

    python3 bench/gpu_decode.py [--iters 50] [--warmup 5] [--json out.json] [--hardware]

Frames: generated indoor scenes (lcsnet_seg.model.scene) encoded at JPEG quality 90, 640x480 and 1920x1080.
Rows, each a median (and p90) of host wall time over --iters runs after --warmup runs:
- ``cv2_1thread``: cv2.imdecode(IMREAD_UNCHANGED) with cv2.setNumThreads(1) (as the CPU path decodes)
- ``cv2_default``: the same with OpenCV's default thread count
- ``gpu_one``: one frame in one decode call, then the stream synchronised (the pixels are in device memory)
- ``gpu_batch4`` (1920x1080 only): four frames in one decode call, synchronised; also per frame
Ratios are cv2_1thread's median over each row's (per frame for the batch). ``--hardware`` lets nvImageCodec use
the nvJPEG hardware engine too (a second set of GPU rows, ``hw_``).

JPEG to labels (``--labels``, default on; the demo .pth on torch_cuda, CUDA graph; ``--compile-dir`` for the
compiled model), the whole frame as the node runs it, host wall time until the labels are in host memory:
- ``cpu_decode_to_labels``: OpenCV decode (1 thread) then the GPU Segmenter's frame
- ``gpu_decode_to_labels``: the GPU Segmenter's decode_jpegs then its frame (the pixels never leave the GPU)
- ``gpu_decode_to_labels_batch4`` (1920x1080): four frames decoded in one call and segmented in one batch
Targets: 1080p JPEG to labels <= 3 ms and >= 4 x faster than OpenCV decode plus the GPU frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = ((480, 640), (1080, 1920))


def timed(fn, iters: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3)}


def gpu_rows(decoder, ctx, frames: dict, iters: int, warmup: int, prefix: str) -> dict:
    rows = {}
    for (height, width), datas in frames.items():

        def one(data=datas[0]):
            [image] = decoder.decode([data])
            if isinstance(image, Exception):
                raise image
            ctx.synchronize()

        rows[f"{prefix}gpu_one {width}x{height}"] = timed(one, iters, warmup)
        if height == 1080:

            def batch(datas=datas):
                images = decoder.decode(datas)
                bad = [image for image in images if isinstance(image, Exception)]
                if bad:
                    raise bad[0]
                ctx.synchronize()

            row = timed(batch, iters, warmup)
            row["per_frame_ms"] = round(row["median_ms"] / len(datas), 3)
            rows[f"{prefix}gpu_batch4 {width}x{height}"] = row
    return rows


def label_rows(rows: dict, frames: dict, args) -> str:
    """The JPEG-to-labels rows (see the module docstring); returns the backend line. For the ``to_labels`` rows the
    ratio column is cpu_decode_to_labels over the row."""
    import cv2

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model import DEMO_PTH
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    backend, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=args.compile_dir)
    segmenter = GpuSegmenter(backend, max_batch=4, max_graphs=8)
    segmenter.use_gpu_decoder()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for (height, width), datas in frames.items():
            buf = np.frombuffer(datas[0], np.uint8)

            def on_cpu(buf=buf):
                segmenter(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), "bgr8", ("labels",))

            def on_gpu(data=datas[0]):
                [image] = segmenter.decode_jpegs([data])
                if isinstance(image, Exception):
                    raise image
                segmenter.segment_batch([(image, image.encoding)], ("labels",))

            rows[f"cpu_decode_to_labels {width}x{height}"] = timed(on_cpu, args.iters, args.warmup)
            rows[f"gpu_decode_to_labels {width}x{height}"] = timed(on_gpu, args.iters, args.warmup)
            if height == 1080:

                def batch(datas=datas):
                    images = segmenter.decode_jpegs(datas)
                    bad = [image for image in images if isinstance(image, Exception)]
                    if bad:
                        raise bad[0]
                    segmenter.segment_batch([(image, image.encoding) for image in images], ("labels",))

                row = timed(batch, args.iters, args.warmup)
                row["per_frame_ms"] = round(row["median_ms"] / len(datas), 3)
                rows[f"gpu_decode_to_labels_batch4 {width}x{height}"] = row
    finally:
        cv2.setNumThreads(threads)
        segmenter.close()
    return why


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--hardware", action="store_true", help="also time with the nvJPEG hardware engine allowed")
    parser.add_argument("--labels", action=argparse.BooleanOptionalAction, default=True, help="JPEG to labels rows")
    parser.add_argument("--compile-dir", type=Path, default=None, help="--labels: a prepared torch.compile cache")
    args = parser.parse_args()

    import cv2

    from lcsnet_seg.gpu.decode import GpuJpegDecoder, nvimgcodec_unavailable_reason
    from lcsnet_seg.gpu.runtime import GpuContext
    from lcsnet_seg.model.scene import generate_scene

    why = nvimgcodec_unavailable_reason()
    if why:
        print(f"gpu_decode: {why}", file=sys.stderr)
        return 2
    frames: dict[tuple[int, int], list[bytes]] = {}
    for height, width in SIZES:
        datas = []
        for seed in range(4):
            rgb, _ = generate_scene(700 + seed, height, width)
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
            datas.append(data.tobytes())
        frames[(height, width)] = datas

    rows: dict[str, dict] = {}
    default_threads = cv2.getNumThreads()
    for threads, name in ((1, "cv2_1thread"), (default_threads, "cv2_default")):
        cv2.setNumThreads(threads)
        for (height, width), datas in frames.items():
            buf = np.frombuffer(datas[0], np.uint8)
            rows[f"{name} {width}x{height}"] = timed(
                lambda buf=buf: cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), args.iters, args.warmup
            )
    cv2.setNumThreads(default_threads)

    ctx = GpuContext(0)
    decoder = GpuJpegDecoder(0, int(ctx.stream.handle))
    try:
        rows.update(gpu_rows(decoder, ctx, frames, args.iters, args.warmup, ""))
    finally:
        decoder.close()
    if args.hardware:
        hardware = GpuJpegDecoder(0, int(ctx.stream.handle), hardware=True)
        try:
            rows.update(gpu_rows(hardware, ctx, frames, args.iters, args.warmup, "hw_"))
        finally:
            hardware.close()

    labels_note = label_rows(rows, frames, args) if args.labels else None
    for key, row in rows.items():
        size = key.split()[1]
        base = rows[f"cpu_decode_to_labels {size}" if "to_labels" in key else f"cv2_1thread {size}"]["median_ms"]
        row["cv2_1thread_over_this"] = round(base / row.get("per_frame_ms", row["median_ms"]), 2)

    result = {
        "device": ctx.name,
        "iters": args.iters,
        "warmup": args.warmup,
        "opencv": cv2.__version__,
        "opencv_default_threads": default_threads,
        "jpeg_bytes": {f"{w}x{h}": len(d[0]) for (h, w), d in frames.items()},
        "rows": rows,
        "labels_backend": labels_note,
    }
    try:
        from nvidia import nvimgcodec

        result["nvimgcodec"] = nvimgcodec.__version__
    except ImportError:
        pass
    print(f"device: {result['device']}; nvImageCodec {result.get('nvimgcodec')}; OpenCV {cv2.__version__}")
    print(f"{'row':>30} {'median ms':>10} {'p90 ms':>8} {'per frame':>10} {'cv2 1 thread / this':>20}")
    for key, row in rows.items():
        per_frame = row.get("per_frame_ms", row["median_ms"])
        print(
            f"{key:>30} {row['median_ms']:10.3f} {row['p90_ms']:8.3f} {per_frame:10.3f} "
            f"{row['cv2_1thread_over_this']:20.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
