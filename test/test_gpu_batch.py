"""Several cameras in one GPU frame (GpuSegmenter.segment_batch): images of different sizes and encodings in one
backend call and one CUDA graph per batch composition, bit-equal to one call per image; torch_cuda batched
(uncompiled, and compiled at prepared batch sizes); JPEG frames decoded on the GPU (nvImageCodec) straight into
the batch. Run on a machine with a CUDA GPU, cuda-python and CuPy (torch, nvImageCodec for their cases);
elsewhere skipped with the reason."""

import cv2
import numpy as np
import pytest
from conftest import DEMO_PTH
from images import as_encoding

from lcsnet_seg.gpu import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"GPU path: {unavailable_reason()}")

ALL_OUTPUTS = ("labels", "color_mask", "overlay", "confidence")
CAMERAS = ((480, 640, "rgb8"), (240, 320, "bgr8"), (360, 480, "mono8"), (480, 640, "bgra8"))


@pytest.fixture(scope="module")
def info():
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import ModelInfo

    return ModelInfo(classes=load_class_set(), input_size=(384, 512))


@pytest.fixture(scope="module")
def frames():
    from lcsnet_seg.model.scene import generate_scene

    return [(as_encoding(generate_scene(70 + i, h, w)[0], enc), enc) for i, (h, w, enc) in enumerate(CAMERAS)]


def assert_same(got, want, what=""):
    for name in ALL_OUTPUTS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{what} {name}")


@pytest.mark.parametrize("cuda_graph", [True, False], ids=["graph", "eager"])
def test_a_batch_of_cameras_is_one_frame_equal_to_one_call_each(info, frames, cuda_graph):
    pytest.importorskip("cupy")
    from cupy_backend import CupyBackend

    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    batched = GpuSegmenter(CupyBackend(info, 4), max_batch=4, cuda_graph=cuda_graph, max_graphs=8)
    single = GpuSegmenter(CupyBackend(info, 4), cuda_graph=cuda_graph, max_graphs=8)
    assert batched.chunk == 4 and single.chunk == 1
    for round_ in range(3):  # one capture per composition, then replays
        results = [r.copy() for r in batched.segment_batch(frames, ALL_OUTPUTS)]
        for i, (image, enc) in enumerate(frames):
            assert_same(results[i], single(image, enc, ALL_OUTPUTS), f"round {round_} camera {i}")
            assert results[i].labels.shape == image.shape[:2]
    # a camera missing from a tick: another composition, its own graph; the others' results unchanged
    three = [r.copy() for r in batched.segment_batch(frames[:2] + frames[3:], ALL_OUTPUTS)]
    for got, (image, enc) in zip(three, frames[:2] + frames[3:]):
        assert_same(got, single(image, enc, ALL_OUTPUTS), "three cameras")
    assert batched.captures == (2 if cuda_graph else 0) and batched.graph_problem is None
    batched.close()
    single.close()


def test_more_cameras_than_one_call_takes_run_in_chunks_without_overwriting_each_other(info, frames):
    pytest.importorskip("cupy")
    from cupy_backend import CupyBackend

    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    same = [frames[0], frames[0], frames[0], frames[0]]  # one geometry in both chunks: the first chunk's are kept
    backend = CupyBackend(info, 4)
    backend.max_batch = 2
    gpu = GpuSegmenter(backend, max_batch=8)
    assert gpu.chunk == 2
    images = [(np.ascontiguousarray(np.roll(img, 40 * k, axis=1)), enc) for k, (img, enc) in enumerate(same)]
    results = gpu.segment_batch(images, ("labels",))
    single = GpuSegmenter(CupyBackend(info, 4))
    for k, (image, enc) in enumerate(images):
        np.testing.assert_array_equal(results[k].labels, single(image, enc, ("labels",)).labels, err_msg=f"{k}")
    gpu.close()
    single.close()


@pytest.fixture
def torch_backend():
    """A backend of its own per test: closing a GpuSegmenter closes its backend."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    from lcsnet_seg.backends import create_backend

    return create_backend("torch_cuda", DEMO_PTH)[0]


def test_torch_cuda_batches_four_cameras_in_one_graph(torch_backend, frames):
    """fp16 convolutions may round differently at another batch size: labels agree but for rare near-ties."""
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    batched = GpuSegmenter(torch_backend, max_batch=4)
    single = GpuSegmenter(torch_backend)
    agree = total = 0
    for _ in range(2):
        results = [r.copy() for r in batched.segment_batch(frames, ("labels",))]
        for (image, enc), got in zip(frames, results):
            want = single(image, enc, ("labels",)).labels
            agree, total = agree + int((got.labels == want).sum()), total + want.size
    print(f"BATCH torch_cuda batch 4 vs 1: {100 * agree / total:.4f} % of labels equal")
    assert agree / total >= 0.999 and batched.captures == 1 and batched.graph_problem is None
    batched.close()
    single.close()


def test_a_compiled_model_runs_a_batch_at_the_next_prepared_size(tmp_path_factory, frames):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.backends.torch_compile import prepare_compiled_model
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    path = tmp_path_factory.mktemp("compiled_batches")
    marker = prepare_compiled_model(DEMO_PTH, path, batches=(1, 4))
    assert marker["batches"] == [1, 4]
    backend, why = create_backend("torch_cuda", DEMO_PTH, compile_dir=path)
    assert "compiled model (torch.compile at batch 1, 4" in why and backend.max_batch == 4
    assert [backend.batch_size_for(n) for n in (1, 2, 3, 4)] == [1, 4, 4, 4]
    gpu = GpuSegmenter(backend, max_batch=4)
    three = gpu.segment_batch(frames[:3], ("labels",))  # runs at batch 4, the fourth input unused
    assert [r.labels.shape for r in three] == [f[0].shape[:2] for f in frames[:3]]
    assert gpu.graph_problem is None
    gpu.close()


def _nvimgcodec_problem():
    from lcsnet_seg.gpu.decode import nvimgcodec_unavailable_reason

    return nvimgcodec_unavailable_reason(0)


@pytest.mark.parametrize("size", [(480, 640), (1080, 1920)])
def test_jpeg_frames_decoded_on_the_gpu_give_the_cpu_paths_labels(torch_backend, size):
    """JPEG -> nvImageCodec -> device buffer -> preprocess, no host round trip, against the same JPEG decoded by
    OpenCV on the CPU into the same GPU Segmenter: labels >= 99.5 % in agreement (decoders differ by a level)."""
    why = _nvimgcodec_problem()
    if why:
        pytest.skip(f"GPU JPEG decoding: {why}")
    from lcsnet_seg.image_messages import compressed_to_array
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.gpu import GpuSegmenter

    gpu = GpuSegmenter(torch_backend, max_batch=2)
    gpu.use_gpu_decoder()
    jpegs = [
        cv2.imencode(".jpg", generate_scene(90 + k, *size)[0][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        for k in range(2)
    ]
    decoded = gpu.decode_jpegs(jpegs)
    assert all(not isinstance(d, Exception) for d in decoded), decoded
    on_gpu = [r.copy() for r in gpu.segment_batch([(d, d.encoding) for d in decoded], ALL_OUTPUTS)]

    class Msg:
        format = "jpeg"

    cpu_side = []
    for data in jpegs:
        msg = Msg()
        msg.data = data
        image, enc = compressed_to_array(msg)
        cpu_side.append((image, enc))
    on_cpu = gpu.segment_batch(cpu_side, ALL_OUTPUTS)
    agree = sum(int((a.labels == b.labels).sum()) for a, b in zip(on_gpu, on_cpu))
    total = sum(b.labels.size for b in on_cpu)
    print(f"DECODE {size[1]}x{size[0]}: GPU-decoded labels {100 * agree / total:.4f} % equal to OpenCV-decoded")
    assert agree / total >= 0.995
    for got, (image, _) in zip(on_gpu, cpu_side):
        assert got.labels.shape == image.shape[:2] and got.overlay.shape == (*image.shape[:2], 3)
        assert got.overlay_order == "rgb"  # decoded as rgb8 (OpenCV's frames are bgr8: their overlay is bgr)
    gpu.close()
