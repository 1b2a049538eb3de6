#!/usr/bin/env python3
"""GPU pipeline benchmark (run on a CUDA machine): fused kernels against PyTorch-op and CuPy
composites doing the same work, the bandwidth floor, and whole frames against the CPU path.

    python3 bench/gpu_pipeline.py [--iters 200] [--json out.json] [--frames-only] [--compile-dir DIR]

Kernel times are CUDA-event medians of back-to-back launches queued behind a spin kernel, so
the host's launch overhead does not leak into them; inputs rotate over several buffers so the
50 MB L2 does not serve them. Bytes moved count each input read once and each output written
once; the floor is bytes / measured device-to-device bandwidth. Targets at 1920x1080: fused
kernel >= 5x faster than the PyTorch composite and <= 3x max(floor, 10 us); GPU pre+post >= 20x
faster than CPU pre+post on the same frame.

Whole frames by mode (section "frame_modes"): the GpuSegmenter frame a caller sees (pinned staging,
H2D of the raw frame, preprocess, model, postprocess, D2H of the label mask) for eager fp32, eager
fp16, the uncompiled CUDA graph and the compiled CUDA graph, all in this run, at 640x480 and
1920x1080: median and p90 host wall time of the call ("total") and, for graphs, the GPU time of
the replay between CUDA events ("gpu"). The compiled model's cache is prepared in --compile-dir
when no marker is there, and configure time with that cache is measured in a fresh process.
Targets: compiled graph <= 0.45 ms (640x480) and <= 0.7 ms (1920x1080); uncompiled graph <= 1.0 / 1.5 ms.
The rows cupy_eager / cupy_graph run a device backend that is not torch (test/cupy_backend.py), the way a
TensorRT engine runs: captured by the GPU Segmenter with the driver API. Target: cupy_graph whole 640x480
frame <= 0.7 ms (the eager TensorRT-shaped path was 2.8 ms).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = ((480, 640), (720, 1280), (1080, 1920))
FRAME_SIZES = ((480, 640), (1080, 1920))
ROTATE = 12
SPIN = (
    r'extern "C" __global__ void spin(long long cycles) { long long t = clock64(); while (clock64() - t < cycles) {} }'
)


class Timer:
    """Median GPU time of fn(i) launched back to back on the context's stream, behind a spin kernel."""

    def __init__(self, ctx) -> None:
        from cuda.core import LaunchConfig

        self.ctx = ctx
        self.spin = ctx.kernel(SPIN, "spin")
        self.one = LaunchConfig(grid=1, block=1)

    def __call__(self, fn, iters: int) -> float:
        from cuda.core import launch

        for i in range(5):
            fn(i)
        launch(self.ctx.stream, self.one, self.spin, np.int64(60_000_000))  # ~30 ms of GPU time
        events = [self.ctx.event()]
        for i in range(iters):
            fn(i)
            events.append(self.ctx.event())
        events[-1].sync()
        return float(np.median([b - a for a, b in zip(events, events[1:])])) * 1e3  # microseconds


def measure_bandwidth(torch) -> float:
    """Device-to-device copy, bytes read + written per second (GB/s)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    end.synchronize()
    return 2 * src.numel() * 10 / (start.elapsed_time(end) / 1e3) / 1e9


def configure_probe(compile_dir: str) -> None:
    """In a fresh process: import torch, then configure as the node does (backend + segmenter) with
    the prepared cache, then the first frame (the graph capture). Prints one JSON line."""
    t0 = time.perf_counter()
    import torch  # noqa: F401  (the node imports it at configure too)

    t1 = time.perf_counter()
    from lcsnet_seg.model import DEMO_PTH
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    segmenter, why = build_segmenter(DEMO_PTH, SegmenterConfig(backend="torch_cuda", compile_dir=compile_dir))
    t2 = time.perf_counter()
    segmenter(np.full((480, 640, 3), 90, np.uint8), "rgb8", ("labels",))
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_torch_s": round(t1 - t0, 2),
                "configure_s": round(t2 - t1, 2),
                "first_frame_s": round(t3 - t2, 2),
                "why": why,
            }
        )
    )


def frame_modes(compile_dir: Path, iters: int) -> dict:
    """Whole GpuSegmenter frames (labels only) by mode; see the module docstring."""
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.backends.torch_compile import MARKER, prepare_compiled_model
    from lcsnet_seg.gpu.frames import HostCopier
    from lcsnet_seg.model import DEMO_PTH
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    out: dict = {}
    compile_dir.mkdir(parents=True, exist_ok=True)
    if not (compile_dir / MARKER).is_file():
        out["prepare"] = prepare_compiled_model(DEMO_PTH, compile_dir)
    probe = subprocess.run(
        [sys.executable, __file__, "--configure-probe", str(compile_dir)], capture_output=True, text=True, timeout=300
    )
    lines = probe.stdout.strip().splitlines()
    out["configure_probe"] = (
        json.loads(lines[-1])
        if probe.returncode == 0 and lines
        else {"error": probe.stderr.strip().splitlines()[-1:] or f"exit {probe.returncode}"}
    )
    fp32, _ = create_backend("torch_cuda", DEMO_PTH, precision="fp32")
    fp16, _ = create_backend("torch_cuda", DEMO_PTH)
    compiled, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=compile_dir)
    out["compiled_backend"] = why
    modes = {
        "eager_fp32": GpuSegmenter(fp32, cuda_graph=False),
        "eager_fp16": GpuSegmenter(fp16, cuda_graph=False),
        "graph": GpuSegmenter(fp16),
        "graph_compiled": GpuSegmenter(compiled),
    }
    # A device backend that is not torch (CuPy, test/cupy_backend.py), captured by the GPU Segmenter itself with
    # the driver API, as a TensorRT engine is: the whole frame around a model that costs next to nothing.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
    from cupy_backend import CupyBackend

    modes["cupy_eager"] = GpuSegmenter(CupyBackend(fp16.info, 1), cuda_graph=False)
    modes["cupy_graph"] = GpuSegmenter(CupyBackend(fp16.info, 1))
    rows = []
    for height, width in FRAME_SIZES:
        frames = [generate_scene(900 + k, height, width)[0] for k in range(4)]
        for name, segmenter in modes.items():
            for i in range(20):
                segmenter(frames[i % 4], "rgb8", ("labels",))
            total, gpu = [], []
            for i in range(iters):
                t = segmenter(frames[i % 4], "rgb8", ("labels",)).timings_ms
                total.append(t["total"])
                gpu.append(t.get("gpu", float("nan")))
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "mode": name,
                    "total_ms": round(float(np.median(total)), 4),
                    "total_p90_ms": round(float(np.percentile(total, 90)), 4),
                    "gpu_ms": round(float(np.median(gpu)), 4),
                    "graph_problem": segmenter.graph_problem,
                }
            )
        ctx = modes["graph"].ctx  # the host part alone: the raw frame into pinned staging
        staging, _ = ctx.pinned_array((frames[0].nbytes,), np.uint8)
        for threads in (1, 4, 8):
            copier, copies = HostCopier(threads), []
            for i in range(200):
                a = time.perf_counter()
                copier(int(staging.handle), frames[i % 4].ctypes.data, frames[0].nbytes)
                copies.append((time.perf_counter() - a) * 1e3)
            copier.close()
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "mode": f"host_copy_to_pinned_{threads}_threads",
                    "total_ms": round(float(np.median(copies[20:])), 4),
                }
            )
    out["rows"] = rows
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--frames-only", action="store_true", help="only the whole-frame modes section")
    ap.add_argument(
        "--compile-dir",
        type=Path,
        default=Path("/tmp/lcsnet_compile"),
        help="prepared compile cache for the compiled mode (prepared here when missing)",
    )
    ap.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="set torch.backends.cudnn.benchmark before any backend is built (an experiment)",
    )
    ap.add_argument("--configure-probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cudnn_benchmark:
        import torch

        torch.backends.cudnn.benchmark = True
    if args.configure_probe:
        configure_probe(args.configure_probe)
        return 0
    if args.frames_only:
        import torch

        result = {
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "iters": args.iters,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "frame_modes": frame_modes(args.compile_dir, args.iters),
        }
        print_frame_modes(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0

    import cupy as cp
    import torch
    import torch.nn.functional as F

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend
    from lcsnet_seg.gpu.kernel_args import POSTPROCESS_ARGS, PREPROCESS_ARGS
    from lcsnet_seg.gpu.postprocess import GpuPostprocess
    from lcsnet_seg.gpu.preprocess import GpuPreprocess
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.model import DEMO_ONNX, DEMO_PTH
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.postprocess import argmax_labels, as_three_channel, blend, colourise, resize_nearest
    from lcsnet_seg.preprocess import channel_sources, normalisation, preprocess
    from lcsnet_seg.segmenter.cpu import Segmenter
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    backend, _ = create_backend("torch_cuda", DEMO_PTH, precision="fp32")
    gpu = GpuSegmenter(backend, cuda_graph=False)  # eager: per-stage times
    ctx, info = gpu.ctx, gpu.info
    cpu = Segmenter(OnnxRuntimeBackend(DEMO_ONNX))
    timer = Timer(ctx)
    torch_stream = torch.cuda.ExternalStream(int(ctx.stream.handle))
    cupy_stream = cp.cuda.ExternalStream(int(ctx.stream.handle))
    bandwidth = measure_bandwidth(torch)
    device_name = torch.cuda.get_device_name()
    net_h, net_w = info.input_size
    C = info.num_classes
    scale, offset = normalisation(info)
    pre = GpuPreprocess(ctx, np.float32)
    post = GpuPostprocess(ctx, np.float32, C)
    keep: list = []

    def packed(struct, kernel, records: list[dict]) -> list:
        """One argument record per rotation, in device memory: the launch argument of each (kernel_args.py)."""
        packs = struct.records(len(records))
        for record, fields in zip(packs, records):
            kernel.fill(record, **fields)
        host, view = ctx.pinned_array((packs.nbytes,), np.uint8)
        view[:] = packs.view(np.uint8)
        dev = ctx.device_buffer(packs.nbytes)
        ctx.copy_to_device(int(dev.handle), int(host.handle), packs.nbytes)
        ctx.synchronize()
        keep.append((host, dev))
        return [np.uint64(int(dev.handle) + k * struct.dtype.itemsize) for k in range(len(records))]

    alpha_host, alpha_view = ctx.pinned_array((1,), np.float32)
    alpha_view[0] = 0.5
    alpha_dev = ctx.device_buffer(4)
    ctx.copy_to_device(int(alpha_dev.handle), int(alpha_host.handle), 4)
    palette_t = torch.as_tensor(info.classes.palette_rgb(), device="cuda")
    palette_c = cp.asarray(info.classes.palette_rgb())
    mean_t = torch.tensor(info.mean, device="cuda").view(1, 3, 1, 1) * 255
    std_t = torch.tensor(info.std, device="cuda").view(1, 3, 1, 1) * 255
    rows = []
    for height, width in SIZES:
        frame = generate_scene(77, height, width)[0]
        images = [torch.as_tensor(np.roll(frame, k * 7, axis=1), device="cuda") for k in range(ROTATE)]
        logits = [torch.randn(1, C, net_h, net_w, device="cuda") * 3 for _ in range(ROTATE)]
        net_in = torch.empty(1, 3, net_h, net_w, device="cuda")
        labels = torch.empty(height, width, dtype=torch.uint8, device="cuda")
        color = torch.empty(height, width, 3, dtype=torch.uint8, device="cuda")
        overlay = torch.empty(height, width, 3, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()

        pre_packs = packed(
            PREPROCESS_ARGS,
            pre,
            [
                dict(
                    src=images[k].data_ptr(),
                    src_w=width,
                    src_h=height,
                    src_step=width * 3,
                    channels=3,
                    channel_map=channel_sources(pixel_format("rgb8"), "rgb"),
                    dst=net_in.data_ptr(),
                    dst_w=net_w,
                    dst_h=net_h,
                    scale=scale,
                    offset=offset,
                )
                for k in range(ROTATE)
            ],
        )
        post_packs = packed(
            POSTPROCESS_ARGS,
            post,
            [
                dict(
                    logits=logits[k].data_ptr(),
                    net_w=net_w,
                    net_h=net_h,
                    img=images[k].data_ptr(),
                    img_w=width,
                    img_h=height,
                    img_step=width * 3,
                    channels=3,
                    out_w=width,
                    out_h=height,
                    palette=int(gpu._palette.handle),
                    alpha=int(alpha_dev.handle),
                    overlay_bgr=False,
                    outputs={
                        "labels": labels.data_ptr(),
                        "color_mask": color.data_ptr(),
                        "overlay": overlay.data_ptr(),
                    },
                )
                for k in range(ROTATE)
            ],
        )
        pre_config, post_config = pre.launch_config(net_w, net_h), post.launch_config(width, height)

        def fused_pre(i):
            pre.launch(pre_config, pre_packs[i % ROTATE])

        def fused_post(i):
            post.launch(post_config, post_packs[i % ROTATE])

        rows_idx = torch.as_tensor(((2 * np.arange(height) + 1) * net_h) // (2 * height), device="cuda")
        cols_idx = torch.as_tensor(((2 * np.arange(width) + 1) * net_w) // (2 * width), device="cuda")

        def torch_pre(i):
            with torch.cuda.stream(torch_stream):
                x = images[i % ROTATE].permute(2, 0, 1).unsqueeze(0).float()
                x = F.interpolate(x, size=(net_h, net_w), mode="bilinear", align_corners=False, antialias=False)
                net_in.copy_((x - mean_t) / std_t)

        def torch_post(i):
            with torch.cuda.stream(torch_stream):
                lab = logits[i % ROTATE][0].argmax(0).to(torch.uint8)
                lab = lab.index_select(0, rows_idx).index_select(1, cols_idx)
                col = palette_t[lab.long()]
                mix = images[i % ROTATE].float() * 0.5 + col.float() * 0.5
                labels.copy_(lab)
                color.copy_(col)
                overlay.copy_(torch.round(mix).to(torch.uint8))

        images_c = [cp.asarray(im) for im in images]
        logits_c = [cp.asarray(lg) for lg in logits]
        sx = (np.arange(net_w) + 0.5) * (width / net_w) - 0.5
        sy = (np.arange(net_h) + 0.5) * (height / net_h) - 0.5
        x0 = np.clip(np.floor(sx), 0, width - 1).astype(np.int64)
        y0 = np.clip(np.floor(sy), 0, height - 1).astype(np.int64)
        fx = cp.asarray(np.clip(sx - x0, 0, 1).astype(np.float32))[None, :, None]
        fy = cp.asarray(np.clip(sy - y0, 0, 1).astype(np.float32))[:, None, None]
        x0c, x1c = cp.asarray(x0), cp.asarray(np.minimum(x0 + 1, width - 1))
        y0c, y1c = cp.asarray(y0), cp.asarray(np.minimum(y0 + 1, height - 1))
        scale_c, offset_c = cp.asarray(scale), cp.asarray(offset)
        net_in_c = cp.asarray(net_in)
        rows_c, cols_c = cp.asarray(rows_idx), cp.asarray(cols_idx)
        labels_c, color_c, overlay_c = cp.asarray(labels), cp.asarray(color), cp.asarray(overlay)

        def cupy_pre(i):
            with cupy_stream:
                im = images_c[i % ROTATE].astype(cp.float32)
                top, bot = im[y0c], im[y1c]
                row = top[:, x0c] * (1 - fx) + top[:, x1c] * fx
                row2 = bot[:, x0c] * (1 - fx) + bot[:, x1c] * fx
                v = row * (1 - fy) + row2 * fy
                net_in_c[0] = (v * scale_c + offset_c).transpose(2, 0, 1)

        def cupy_post(i):
            with cupy_stream:
                lab = logits_c[i % ROTATE][0].argmax(0).astype(cp.uint8)[rows_c][:, cols_c]
                col = palette_c[lab]
                labels_c[...] = lab
                color_c[...] = col
                overlay_c[...] = cp.rint(images_c[i % ROTATE] * 0.5 + col * 0.5).astype(cp.uint8)

        t = {
            name: timer(fn, args.iters)
            for name, fn in (
                ("pre_fused", fused_pre),
                ("pre_torch", torch_pre),
                ("pre_cupy", cupy_pre),
                ("post_fused", fused_post),
                ("post_torch", torch_post),
                ("post_cupy", cupy_post),
            )
        }
        pre_bytes = height * width * 3 + 3 * net_h * net_w * 4
        post_bytes = C * net_h * net_w * 4 + height * width * 3 + height * width * 7
        floor_pre, floor_post = pre_bytes / bandwidth / 1e3, post_bytes / bandwidth / 1e3  # us

        # Whole frames: the GPU Segmenter (torch_cuda backend) against the CPU Segmenter (ONNX Runtime).
        for _ in range(5):
            gpu(frame, "rgb8")
            cpu(frame, "rgb8")
        gpu_frames = [gpu(frame, "rgb8").timings_ms for _ in range(30)]
        cpu_frames = [cpu(frame, "rgb8").timings_ms for _ in range(10)]
        med = lambda frames, k: float(np.median([f[k] for f in frames]))  # noqa: E731
        fmt = pixel_format("rgb8")
        cpu_pre_post = []
        for _ in range(10):
            a = time.perf_counter()
            preprocess(frame, fmt, info)
            b = time.perf_counter()
            lab = resize_nearest(argmax_labels(logits[0][0].cpu().numpy()), height, width)
            blend(as_three_channel(frame, fmt), colourise(lab, info.classes.palette_rgb()), 0.5)
            cpu_pre_post.append((b - a) * 1e3 + (time.perf_counter() - b) * 1e3)
        row = {
            "size": f"{width}x{height}",
            **{k: round(v, 2) for k, v in t.items()},
            "floor_pre_us": round(floor_pre, 2),
            "floor_post_us": round(floor_post, 2),
            "pre_torch_over_fused": round(t["pre_torch"] / t["pre_fused"], 1),
            "post_torch_over_fused": round(t["post_torch"] / t["post_fused"], 1),
            "pre_fused_over_target_base": round(t["pre_fused"] / max(floor_pre, 10.0), 2),
            "post_fused_over_target_base": round(t["post_fused"] / max(floor_post, 10.0), 2),
            "gpu_frame_ms": round(med(gpu_frames, "total"), 3),
            "gpu_stage_ms": {k: round(med(gpu_frames, k), 3) for k in ("preprocess", "infer", "postprocess")},
            "cpu_frame_ms": round(med(cpu_frames, "total"), 2),
            "cpu_pre_post_ms": round(float(np.median(cpu_pre_post)), 3),
            "gpu_kernels_pre_post_ms": round((t["pre_fused"] + t["post_fused"]) / 1e3, 4),
        }
        row["gpu_stages_pre_post_ms"] = round(row["gpu_stage_ms"]["preprocess"] + row["gpu_stage_ms"]["postprocess"], 3)
        row["cpu_over_gpu_kernels"] = round(row["cpu_pre_post_ms"] / row["gpu_kernels_pre_post_ms"], 1)
        row["cpu_over_gpu_stages_with_copies"] = round(row["cpu_pre_post_ms"] / row["gpu_stages_pre_post_ms"], 1)
        rows.append(row)

    result = {
        "device": device_name,
        "bandwidth_GBps": round(bandwidth, 1),
        "iters": args.iters,
        "rows": rows,
        "torch": torch.__version__,
        "cupy": cp.__version__,
        "frame_modes": frame_modes(args.compile_dir, args.iters),
    }
    print(f"device: {device_name}; measured D2D bandwidth {bandwidth:.0f} GB/s (read + write)")
    print(
        f"{'size':>10} {'pre fused':>10} {'torch':>8} {'cupy':>8} {'floor':>7} | {'post fused':>10} {'torch':>8} "
        f"{'cupy':>8} {'floor':>7}   (microseconds)"
    )
    for r in rows:
        print(
            f"{r['size']:>10} {r['pre_fused']:10.2f} {r['pre_torch']:8.2f} {r['pre_cupy']:8.2f} "
            f"{r['floor_pre_us']:7.2f} | {r['post_fused']:10.2f} {r['post_torch']:8.2f} {r['post_cupy']:8.2f} "
            f"{r['floor_post_us']:7.2f}"
        )
    print(
        f"\n{'size':>10} {'torch/fused pre':>16} {'torch/fused post':>17} {'pre/max(floor,10us)':>20} "
        f"{'post/max(floor,10us)':>21}"
    )
    for r in rows:
        print(
            f"{r['size']:>10} {r['pre_torch_over_fused']:16.1f} {r['post_torch_over_fused']:17.1f} "
            f"{r['pre_fused_over_target_base']:20.2f} {r['post_fused_over_target_base']:21.2f}"
        )
    print(
        f"\n{'size':>10} {'GPU frame ms':>13} {'(pre/infer/post)':>24} {'CPU frame ms':>13} {'CPU pre+post':>13} "
        f"{'GPU kernels':>12} {'CPU/GPU kern':>13} {'CPU/GPU w/ copies':>18}"
    )
    for r in rows:
        s = r["gpu_stage_ms"]
        print(
            f"{r['size']:>10} {r['gpu_frame_ms']:13.3f} {s['preprocess']:7.3f}/{s['infer']:7.3f}/{s['postprocess']:7.3f}"
            f" {r['cpu_frame_ms']:13.2f} {r['cpu_pre_post_ms']:13.3f} {r['gpu_kernels_pre_post_ms']:12.4f} "
            f"{r['cpu_over_gpu_kernels']:13.1f} {r['cpu_over_gpu_stages_with_copies']:18.1f}"
        )
    print_frame_modes(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def print_frame_modes(result: dict) -> None:
    modes = result["frame_modes"]
    print(
        f"\nwhole GpuSegmenter frames, labels only ({result['device']}); configure with the prepared cache: "
        f"{modes['configure_probe']}"
    )
    print(f"{'size':>10} {'mode':>24} {'total ms':>9} {'p90':>8} {'gpu ms':>8}")
    for r in modes["rows"]:
        print(
            f"{r['size']:>10} {r['mode']:>24} {r['total_ms']:9.3f} {r.get('total_p90_ms', float('nan')):8.3f} "
            f"{r.get('gpu_ms', float('nan')):8.3f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
