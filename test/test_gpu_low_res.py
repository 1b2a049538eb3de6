"""The GPU path with a user's own model: logits at 1/1, 1/4 and 1/8 of the input, and CUDA graphs for a device
backend that is not torch (a CuPy one, standing where a TensorRT engine stands: the GPU Segmenter captures it
with the driver API). Run on a machine with a CUDA GPU, cuda-python and CuPy (torch for the .pth cases);
elsewhere skipped with the reason."""

import numpy as np
import pytest

from lcsnet_seg.gpu import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"GPU path: {unavailable_reason()}")

STRIDES = (1, 4, 8)
ALL_OUTPUTS = ("labels", "color_mask", "overlay", "confidence")


@pytest.fixture(scope="module")
def info():
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    return ModelInfo(classes=load_class_set(), input_size=(384, 512))


def cupy_backend(info, stride):
    pytest.importorskip("cupy")
    from cupy_backend import CupyBackend

    return CupyBackend(info, stride)


def images(size, count=3, seed=0):
    from lcsnet_seg.model.scene import generate_scene

    return [generate_scene(seed + k, *size)[0] for k in range(count)]


@pytest.mark.parametrize("stride", STRIDES, ids=[f"logits_1_{s}" for s in STRIDES])
def test_a_non_torch_backend_runs_as_a_cuda_graph_that_replays_bit_exactly(info, stride):
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    graph = GpuSegmenter(cupy_backend(info, stride), overlay_alpha=0.3)
    eager = GpuSegmenter(cupy_backend(info, stride), overlay_alpha=0.3, cuda_graph=False)
    assert graph.graphs and graph.graph_problem is None
    for image in images((480, 640)):
        for encoding, pixels in (("rgb8", image), ("bgr8", np.ascontiguousarray(image[..., ::-1]))):
            got, want = graph(pixels, encoding, ALL_OUTPUTS), eager(pixels, encoding, ALL_OUTPUTS)
            for name in ("labels", "color_mask", "overlay", "confidence"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
            assert set(got.timings_ms) == {"total", "gpu"} and set(want.timings_ms) == {
                "preprocess",
                "infer",
                "postprocess",
                "total",
            }
    graph.overlay_alpha = eager.overlay_alpha = 0.8  # the alpha travels in device memory: no new capture
    image = images((480, 640), 1, seed=50)[0]
    np.testing.assert_array_equal(graph(image, "rgb8", ALL_OUTPUTS).overlay, eager(image, "rgb8", ALL_OUTPUTS).overlay)
    assert graph.captures == 2 and eager.captures == 0  # rgb8 and bgr8: two geometries
    graph.close()
    eager.close()


@pytest.mark.parametrize("stride", STRIDES, ids=[f"logits_1_{s}" for s in STRIDES])
@pytest.mark.parametrize("size", [(480, 640), (1080, 1920)])
def test_low_resolution_logits_give_the_cpu_references_labels(info, stride, size):
    """The GPU kernels (argmax at logit resolution, nearest to the output) against the CPU reference on the same
    network: the labels agree but for argmax ties that the GPU's and CPU's preprocessing roundings can split."""
    from cupy_backend import HostPoolBackend

    from lcsnet_seg.segmenter.cpu import Segmenter
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    gpu = GpuSegmenter(cupy_backend(info, stride))
    assert gpu.network.logit_h == 384 // stride and gpu.network.logit_w == 512 // stride
    cpu = Segmenter(HostPoolBackend(info, stride))
    agree = total = 0
    for image in images(size, 2, seed=20):
        got, want = gpu(image, "rgb8", ("labels",)).labels, cpu(image, "rgb8", ("labels",)).labels
        assert got.shape == want.shape == size
        agree += int(np.count_nonzero(got == want))
        total += got.size
    print(f"AGREEMENT GPU vs CPU Segmenter, logits 1/{stride}, {size[1]}x{size[0]}: {agree / total:.5f}")
    assert agree / total >= 0.999
    gpu.close()


@pytest.mark.parametrize("stride", STRIDES, ids=[f"logits_1_{s}" for s in STRIDES])
def test_a_users_pth_on_torch_cuda_agrees_with_its_onnx_on_the_cpu(tmp_path, stride):
    """A user's checkpoint (its own mean/std and input size) on the GPU path, compiled-free torch_cuda fp16 as a
    CUDA graph, against its own ONNX on ONNX Runtime (fp32, CPU)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    import user_models

    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter
    from lcsnet_seg.tools import convert

    pth = user_models.save_checkpoint(tmp_path / "user.pth", stride)
    assert convert.main([str(pth), "--out-dir", str(tmp_path), "--stages", "onnx", "--parity-images", "1"]) == 0
    gpu, why = build_segmenter(pth, SegmenterConfig(backend="torch_cuda"))
    cpu, _ = build_segmenter(tmp_path / "user.onnx", SegmenterConfig(backend="onnxruntime"))
    assert gpu.backend.output_spec.shape[2:] == (96 // stride, 128 // stride), why
    agree = total = 0
    for image in images((480, 640), 3, seed=70):
        got, want = gpu(image, "rgb8", ("labels",)).labels, cpu(image, "rgb8", ("labels",)).labels
        agree += int(np.count_nonzero(got == want))
        total += got.size
    print(
        f"AGREEMENT user .pth torch_cuda fp16 graph vs its ONNX on ONNX Runtime, logits 1/{stride}: {agree / total:.5f}"
    )
    assert agree / total >= 0.995 and gpu.graph_problem is None
    gpu.close()
    cpu.close()


def test_evaluate_on_torch_cuda_gives_the_labels_of_onnxruntime_for_a_users_model(tmp_path):
    """The issue's proof, on the GPU machine: the same user model (logits at 1/4) scored by evaluate as its .pth on
    torch_cuda and as its ONNX on onnxruntime; the output bags' label masks agree."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    import json

    import user_models
    from test_user_models import output_labels

    from lcsnet_seg.tools import convert, evaluate, make_demo_bag

    pth = user_models.save_checkpoint(tmp_path / "user.pth", 4)
    assert convert.main([str(pth), "--out-dir", str(tmp_path), "--stages", "onnx", "--parity-images", "1"]) == 0
    bag = tmp_path / "bag"
    assert make_demo_bag.main([str(bag), "--frames", "6", "--height", "480", "--width", "640"]) == 0
    topics = [str(bag), "--image-topic", "/camera/image_raw", "--label-topic", "/camera/labels"]
    for name, model, backend in (("cuda", pth, "torch_cuda"), ("ort", tmp_path / "user.onnx", "onnxruntime")):
        args = [*topics, "--model", str(model), "--backend", backend, "--out-dir", str(tmp_path / name)]
        assert evaluate.main(args) == 0
    assert json.loads((tmp_path / "cuda" / "metrics.json").read_text())["backend"] == "torch_cuda"
    a, b = np.concatenate(output_labels(tmp_path / "cuda")), np.concatenate(output_labels(tmp_path / "ort"))
    print(f"AGREEMENT evaluate torch_cuda (.pth) vs onnxruntime (its ONNX), logits 1/4: {np.mean(a == b):.5f}")
    assert a.shape == (6 * 480, 640) and np.mean(a == b) >= 0.995
