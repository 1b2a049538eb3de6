"""GPU kernels and the GPU Segmenter against the CPU reference. Run on a machine with a CUDA GPU
and cuda-python; elsewhere every test here is skipped with the reason."""

import ctypes
import threading

import numpy as np
import pytest
from images import ENCODINGS, as_encoding

from lcsnet_seg.gpu import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"GPU path: {unavailable_reason()}")

SIZES = [(480, 640), (720, 1280), (1080, 1920), (333, 517)]


@pytest.fixture(scope="module")
def ctx():
    from lcsnet_seg.gpu.runtime import GpuContext

    return GpuContext(0)


@pytest.fixture(scope="module")
def info():
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    return ModelInfo(classes=load_class_set(), input_size=(384, 512))


def image_of(encoding, h, w, rng, pad=0):
    channels = {"mono8": 1, "rgba8": 4, "bgra8": 4}.get(encoding, 3)
    rows = rng.integers(0, 256, (h, w * channels + pad), dtype=np.uint8)
    view = rows[:, : w * channels].reshape(h, w, channels)
    return view if channels > 1 or pad else view[..., 0]


def launch_one(ctx, kernel, struct, keep, **fields):
    """One image through ``kernel`` (GpuPreprocess/GpuPostprocess): its argument record filled, copied to the
    device and launched, as FrameBuffers does for a frame."""
    records = struct.records(1)
    kernel.fill(records[0], **fields)
    host, view = ctx.pinned_array((records.nbytes,), np.uint8)
    view[:] = records.view(np.uint8)
    dev = ctx.device_buffer(records.nbytes)
    ctx.copy_to_device(int(dev.handle), int(host.handle), records.nbytes)
    keep.append((host, dev))
    return np.uint64(int(dev.handle))


def run_preprocess(ctx, image, fmt, info, dtype):
    from lcsnet_seg.gpu.kernel_args import PREPROCESS_ARGS
    from lcsnet_seg.gpu.preprocess import GpuPreprocess
    from lcsnet_seg.preprocess import channel_sources, normalisation

    h, w = info.input_size
    image3 = image if image.ndim == 3 else image[..., None]
    span = image3.strides[0] * (image3.shape[0] - 1) + image3.shape[1] * image3.shape[2]
    src = ctx.device_buffer(span)
    host, view = ctx.pinned_array((span,), np.uint8)
    ctypes.memmove(int(host.handle), image3.ctypes.data, span)  # the image as laid out, row padding included
    ctx.copy_to_device(int(src.handle), int(host.handle), span)
    dst = ctx.device_buffer(3 * h * w * np.dtype(dtype).itemsize)
    scale, offset = normalisation(info)
    kernel, keep = GpuPreprocess(ctx, dtype), []
    args = launch_one(
        ctx,
        kernel,
        PREPROCESS_ARGS,
        keep,
        src=int(src.handle),
        src_w=image3.shape[1],
        src_h=image3.shape[0],
        src_step=image3.strides[0],
        channels=image3.shape[2],
        channel_map=channel_sources(fmt, info.color_order),
        dst=int(dst.handle),
        dst_w=w,
        dst_h=h,
        scale=scale,
        offset=offset,
    )
    kernel.launch(kernel.launch_config(w, h), args)
    out_host, out = ctx.pinned_array((1, 3, h, w), dtype)
    ctx.copy_to_host(int(out_host.handle), int(dst.handle), out.nbytes)
    ctx.synchronize()
    return out.astype(np.float32)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", SIZES + [(480, 640, "padded")])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_preprocess_matches_cpu_reference(ctx, info, encoding, size, dtype):
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.preprocess import preprocess

    rng = np.random.default_rng(hash((encoding, size)) % 2**32)
    image = image_of(encoding, size[0], size[1], rng, pad=24 if len(size) == 3 else 0)
    fmt = pixel_format(encoding)
    ref = preprocess(image, fmt, info)
    got = run_preprocess(ctx, image, fmt, info, dtype)
    tolerance = 1e-3 if dtype == np.float32 else 1e-2
    assert np.abs(got - ref).max() <= tolerance


def run_postprocess(ctx, logits, image, fmt, out_hw, alpha, palette, conf=True):
    from lcsnet_seg.gpu.kernel_args import POSTPROCESS_ARGS
    from lcsnet_seg.gpu.postprocess import GpuPostprocess

    c, h, w = logits.shape
    keep = []

    def upload(array):
        host, view = ctx.pinned_array(array.shape, array.dtype)
        view[...] = array
        buf = ctx.device_buffer(array.nbytes)
        ctx.copy_to_device(int(buf.handle), int(host.handle), array.nbytes)
        keep.append((host, buf))
        return buf

    lg, img, pal = upload(np.ascontiguousarray(logits)), upload(np.ascontiguousarray(image)), upload(palette)
    alpha_dev = upload(np.array([alpha], np.float32))
    oh, ow = out_hw
    outs = {}
    for name, shape, dtype in (
        ("labels", (oh, ow), np.uint8),
        ("color", (oh, ow, 3), np.uint8),
        ("overlay", (oh, ow, 3), np.uint8),
        ("conf", (oh, ow), np.float32),
    ):
        outs[name] = (ctx.device_buffer(int(np.prod(shape)) * np.dtype(dtype).itemsize),) + ctx.pinned_array(
            shape, dtype
        )
    image3 = image if image.ndim == 3 else image[..., None]
    kernel = GpuPostprocess(ctx, logits.dtype, c)
    args = launch_one(
        ctx,
        kernel,
        POSTPROCESS_ARGS,
        keep,
        logits=int(lg.handle),
        net_w=w,
        net_h=h,
        img=int(img.handle),
        img_w=image3.shape[1],
        img_h=image3.shape[0],
        img_step=image3.shape[1] * image3.shape[2],
        channels=image3.shape[2],
        out_w=ow,
        out_h=oh,
        palette=int(pal.handle),
        alpha=int(alpha_dev.handle),
        overlay_bgr=fmt.output_order == "bgr",
        outputs={
            "labels": int(outs["labels"][0].handle),
            "color_mask": int(outs["color"][0].handle),
            "overlay": int(outs["overlay"][0].handle),
            "confidence": int(outs["conf"][0].handle) if conf else 0,
        },
    )
    kernel.launch(kernel.launch_config(ow, oh), args)
    for buf, host, view in outs.values():
        ctx.copy_to_host(int(host.handle), int(buf.handle), view.nbytes)
    ctx.synchronize()
    return {k: np.array(v[2]) for k, v in outs.items()}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("logit_hw", [(384, 512), (96, 128), (48, 64)], ids=["logits_1_1", "logits_1_4", "logits_1_8"])
def test_postprocess_matches_cpu_reference(ctx, info, encoding, size, dtype, logit_hw):
    """Logits at the network input size and at 1/4 and 1/8 of it (SegFormer, DDRNet): argmax at logit resolution,
    nearest to the output size, exactly as the CPU reference."""
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.postprocess import argmax_labels, as_three_channel, blend, colourise, max_softmax, resize_nearest

    rng = np.random.default_rng(7)
    fmt = pixel_format(encoding)
    logits = rng.normal(0, 3, (8, *logit_hw)).astype(dtype)  # continuous values: no ties
    image = np.ascontiguousarray(image_of(encoding, size[0], size[1], rng))
    palette = info.classes.palette_rgb()
    alpha = 0.37
    got = run_postprocess(ctx, logits, image, fmt, size[:2], alpha, palette)
    logits32 = logits.astype(np.float32)
    labels = resize_nearest(argmax_labels(logits32), *size[:2])
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_array_equal(got["color"], colourise(labels, palette, "rgb"))
    overlay = blend(as_three_channel(image, fmt), colourise(labels, palette, fmt.output_order), alpha)
    assert np.abs(got["overlay"].astype(int) - overlay).max() <= 1
    np.testing.assert_allclose(got["conf"], resize_nearest(max_softmax(logits32), *size[:2]), atol=1e-4)


def test_postprocess_at_network_size_overlays_a_resized_image(ctx, info):
    import cv2

    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.postprocess import argmax_labels, blend, colourise

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (8, 384, 512)).astype(np.float32)
    image = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 2)
    palette = info.classes.palette_rgb()
    got = run_postprocess(ctx, logits, image, pixel_format("rgb8"), (384, 512), 0.5, palette)
    labels = argmax_labels(logits)
    np.testing.assert_array_equal(got["labels"], labels)
    base = cv2.resize(image, (512, 384), interpolation=cv2.INTER_LINEAR)
    assert np.abs(got["overlay"].astype(int) - blend(base, colourise(labels, palette), 0.5)).max() <= 1


@pytest.fixture(scope="module")
def torch_cuda_backend():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model import DEMO_PTH

    backend, why = create_backend("auto", DEMO_PTH)
    assert backend.name == "torch_cuda" and backend.supports_device, why
    return backend


@pytest.mark.parametrize("cuda_graph", [False, True])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_gpu_segmenter_end_to_end_matches_cpu_segmenter(torch_cuda_backend, segmenter, encoding, cuda_graph):

    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import EAGER_TIMINGS, GRAPH_TIMINGS, GpuSegmenter

    gpu = GpuSegmenter(torch_cuda_backend, cuda_graph=cuda_graph)
    agree = total = 0
    for seed in range(3):
        rgb, _ = generate_scene(9_000 + seed, 480, 640)
        image = as_encoding(rgb, encoding)
        image = np.ascontiguousarray(image)
        result = gpu(image, encoding, outputs=("labels", "color_mask", "overlay", "confidence"))
        reference = segmenter(image, encoding)
        agree += int(np.count_nonzero(result.labels == reference.labels))
        total += reference.labels.size
        assert result.overlay.shape == reference.overlay.shape and result.overlay_order == reference.overlay_order
        assert set(result.timings_ms) == set(GRAPH_TIMINGS if cuda_graph else EAGER_TIMINGS)
    assert gpu.graph_problem is None and gpu.captures == (1 if cuda_graph else 0)
    # ONNX Runtime (CPU, fp32) vs PyTorch CUDA (fp16, batch norm folded) on the same weights
    assert agree / total >= 0.995


def test_gpu_buffers_are_reused_per_geometry_and_bounded(torch_cuda_backend):
    """Eager frames keep the buffers of each frame geometry (image size, encoding, outputs) for the next frame of
    that geometry, at most max_graphs of them, least recently used freed first."""
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    gpu = GpuSegmenter(torch_cuda_backend, cuda_graph=False, max_graphs=2)
    a = np.zeros((240, 320, 3), np.uint8)
    gpu(a, "rgb8")
    [first] = gpu._frames.values()
    gpu(a + 1, "rgb8")
    assert list(gpu._frames.values()) == [first]  # the same size: the same buffers
    gpu(np.zeros((200, 300, 3), np.uint8), "rgb8")
    assert len(gpu._frames) == 2 and first in gpu._frames.values()
    gpu(np.zeros((100, 120, 3), np.uint8), "rgb8")  # a third geometry: the least recently used (first) goes
    assert len(gpu._frames) == 2 and first not in gpu._frames.values() and first.image_dev is None
    gpu.close()


def test_gpu_configure_cleanup_cycles_leak_no_gpu_memory(torch_cuda_backend):
    """The GPU half of lifecycle cycling: build the backend and the GPU Segmenter, run a frame,
    close both, as configure/cleanup does; device memory in use must not grow."""
    import gc

    import torch
    from conftest import gpu_bytes_in_use, scale

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model import DEMO_PTH
    from lcsnet_seg.segmenter import make_segmenter

    frame = np.full((480, 640, 3), 100, np.uint8)

    def used_bytes():
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return gpu_bytes_in_use()

    def cycle():
        backend, _ = create_backend("torch_cuda", DEMO_PTH)
        segmenter = make_segmenter(backend)
        segmenter(frame, "rgb8")
        segmenter.close()

    for _ in range(3):
        cycle()
    before = used_bytes()
    rounds = scale(100, 10)
    for _ in range(rounds):
        cycle()
    after = used_bytes()
    print(f'RELIABILITY gpu_cycles {{"rounds": {rounds}, "gpu_used_mb": [{before / 2**20:.1f}, {after / 2**20:.1f}]}}')
    assert after - before <= 2 * 2**20, f"GPU memory grew by {(after - before) / 2**20:.1f} MiB over {rounds} cycles"


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_gpu_segmenter_built_on_one_thread_runs_and_closes_on_others(segmenter, cuda_graph):
    """The node's shape: configure on the executor thread, frames on the worker, cleanup on the
    executor again. A CUDA context is current per thread: each must make it current itself."""
    from conftest import DEMO_PTH

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter import SegmenterConfig, make_segmenter

    built = {}

    def run(name, fn):
        def body():
            try:
                built[name] = fn()
            except Exception as exc:  # reported below with the thread it happened on
                built[name] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=body, name=name)
        thread.start()
        thread.join(300)
        assert not thread.is_alive(), f"{name} thread hung"
        assert not isinstance(built[name], str), f"{name} thread: {built[name]}"
        return built[name]

    gpu = run(
        "configure",
        lambda: make_segmenter(create_backend("torch_cuda", DEMO_PTH)[0], SegmenterConfig(cuda_graph=cuda_graph)),
    )
    rgb = generate_scene(4_242, 480, 640)[0]
    frames = run("worker", lambda: [np.array(gpu(rgb, "rgb8", outputs=("labels", "overlay")).labels) for _ in range(3)])
    for labels in frames[1:]:
        np.testing.assert_array_equal(labels, frames[0])
    assert np.mean(frames[0] == segmenter(rgb, "rgb8").labels) >= 0.995
    assert gpu.graph_problem is None
    run("cleanup", lambda: gpu.close() or True)
