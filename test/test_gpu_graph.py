"""Whole frames as CUDA graphs (torch_cuda backend), the compiled model, and their memory.
Run on a machine with a CUDA GPU, PyTorch and cuda-python; elsewhere skipped with the reason."""

import numpy as np
import pytest
from conftest import DEMO_PTH
from images import ENCODINGS, as_encoding

from lcsnet_seg.gpu import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"GPU path: {unavailable_reason()}")

ALL_OUTPUTS = ("labels", "color_mask", "overlay", "confidence")


@pytest.fixture(scope="module")
def backend():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    from lcsnet_seg.backends import create_backend

    made, why = create_backend("torch_cuda", DEMO_PTH)
    assert "uncompiled model (no compile dir given)" in why
    return made


@pytest.fixture(scope="module")
def compile_dir(tmp_path_factory, backend):
    from lcsnet_seg.backends.torch_compile import MARKER, prepare_compiled_model

    path = tmp_path_factory.mktemp("compiled")
    marker = prepare_compiled_model(DEMO_PTH, path, device=0)
    assert (path / MARKER).is_file() and marker["dtype"] == "fp16" and marker["input_shape"] == [1, 3, 384, 512]
    print(f"COMPILE prepare {marker['compile_seconds']} s on {marker['gpu']}")
    return path


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_graph_replays_give_what_eager_gives(backend, encoding):
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    graph, eager = GpuSegmenter(backend, overlay_alpha=0.3), GpuSegmenter(backend, overlay_alpha=0.3, cuda_graph=False)
    for seed in range(3):  # one capture, then replays on new images
        image = as_encoding(generate_scene(300 + seed, 480, 640)[0], encoding)
        got, want = graph(image, encoding, ALL_OUTPUTS), eager(image, encoding, ALL_OUTPUTS)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.color_mask, want.color_mask)
        np.testing.assert_array_equal(got.overlay, want.overlay)
        np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-6)
        assert set(got.timings_ms) == {"total", "gpu"} and 0 < got.timings_ms["gpu"] <= got.timings_ms["total"]
    assert graph.captures == 1 and graph.graph_problem is None


def test_overlay_alpha_changes_without_a_new_capture(backend):
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    image = generate_scene(17, 480, 640)[0]
    graph, eager = GpuSegmenter(backend), GpuSegmenter(backend, cuda_graph=False)
    for alpha in (0.5, 0.0, 0.85):
        graph.overlay_alpha = eager.overlay_alpha = alpha
        np.testing.assert_array_equal(graph(image).overlay, eager(image).overlay)
    assert graph.captures == 1


@pytest.mark.parametrize("size", [(480, 640), (1080, 1920)])
def test_graph_labels_agree_with_the_fp32_cpu_reference(backend, segmenter, size):
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    gpu = GpuSegmenter(backend)
    agree = total = 0
    for seed in range(4):
        image = generate_scene(5_000 + seed, *size)[0]
        agree += int(np.count_nonzero(gpu(image, "rgb8", ("labels",)).labels == segmenter(image, "rgb8").labels))
        total += image.shape[0] * image.shape[1]
    print(f"AGREEMENT uncompiled graph fp16 vs ONNX Runtime fp32 at {size[1]}x{size[0]}: {agree / total:.5f}")
    assert agree / total >= 0.995


def test_compiled_graph_agrees_with_the_fp32_cpu_reference(compile_dir, segmenter):
    import time

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter import make_segmenter

    start = time.perf_counter()
    compiled, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=compile_dir)
    gpu = make_segmenter(compiled)
    print(f"COMPILE configure with the prepared cache (same process): {time.perf_counter() - start:.1f} s")
    assert "; compiled model" in why, why
    agree = total = 0
    for seed in range(4):
        for size in ((480, 640), (1080, 1920)):
            image = generate_scene(6_000 + seed, *size)[0]
            labels = gpu(image, "rgb8", ("labels",)).labels
            agree += int(np.count_nonzero(labels == segmenter(image, "rgb8").labels))
            total += labels.size
    print(f"AGREEMENT compiled graph fp16 vs ONNX Runtime fp32: {agree / total:.5f}")
    assert agree / total >= 0.995 and gpu.captures == 2 and gpu.graph_problem is None
    gpu.close()


def test_without_a_prepared_cache_the_model_runs_uncompiled_and_says_why(tmp_path, compile_dir):
    import json

    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.backends.torch_compile import MARKER

    empty, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=tmp_path)
    assert "uncompiled model" in why and MARKER in why and "\n" not in why
    empty.close()
    stale = tmp_path / "stale"
    stale.mkdir()
    marker = json.loads((compile_dir / MARKER).read_text())
    (stale / MARKER).write_text(json.dumps({**marker, "torch": "0.0"}))
    old, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=stale)
    assert "uncompiled model" in why and "torch ('0.0')" in why
    old.close()


def test_graph_cache_is_bounded_and_1000_frames_with_size_changes_leak_no_gpu_memory(backend):
    import gc

    import torch
    from conftest import gpu_bytes_in_use

    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    sizes = [(480, 640), (720, 1280), (1080, 1920), (333, 517), (240, 320), (600, 800)]
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes}
    gpu = GpuSegmenter(backend, max_graphs=4)

    def used():
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return torch.cuda.memory_allocated(), gpu_bytes_in_use()

    before = None
    for i in range(1000):
        if i == 300:  # every size seen once, graphs already evicted: the steady state
            before = used()
        size = sizes[(i // 50) % len(sizes)]
        outputs = ("labels", "overlay") if i % 2 else ("labels",)
        gpu(images[size], "rgb8", outputs)
        assert gpu.graph_count <= 4
    after = used()
    print(
        f"MEMORY graphs: {gpu.captures} captures; torch allocated {before[0] / 2**20:.1f} -> {after[0] / 2**20:.1f} "
        f"MiB; device used {before[1] / 2**20:.1f} -> {after[1] / 2**20:.1f} MiB"
    )
    assert gpu.captures > 8  # evictions did happen
    assert after[0] - before[0] <= 2**20
    assert after[1] - before[1] <= 8 * 2**20
