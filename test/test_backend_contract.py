"""The backend contract (lcsnet_seg/backends/base.py): every backend, same tests.

Parametrised over all backends; those that cannot run on this machine are skipped with the reason
(torch_cuda needs a CUDA GPU; tensorrt needs TensorRT, which no machine of this project has yet).
"""

import numpy as np
import pytest

from lcsnet_seg.model import DEMO_ONNX, DEMO_PTH


def _tensorrt_engine(tmp_path_factory):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    from lcsnet_seg.convert.build_engine import EngineOptions, build_engine
    from lcsnet_seg.model_info import read_onnx_model_info

    out = tmp_path_factory.mktemp("engine") / "demo.engine"
    build_engine(DEMO_ONNX, out, read_onnx_model_info(DEMO_ONNX), EngineOptions(precision="fp32"))
    return out


@pytest.fixture(scope="module", params=["onnxruntime", "torch_cpu", "torch_cuda", "tensorrt"])
def backend(request, tmp_path_factory):
    from lcsnet_seg.backends import create_backend

    if request.param == "onnxruntime":
        made, _ = create_backend("onnxruntime", DEMO_ONNX)
    elif request.param == "torch_cpu":
        pytest.importorskip("torch")
        from lcsnet_seg.backends.pytorch import TorchBackend

        made = TorchBackend.from_checkpoint(DEMO_PTH)
    elif request.param == "torch_cuda":
        torch = pytest.importorskip("torch")
        from lcsnet_seg.gpu import unavailable_reason

        if unavailable_reason() or not torch.cuda.is_available():
            pytest.skip(f"torch_cuda needs a CUDA GPU: {unavailable_reason() or 'PyTorch has no CUDA device'}")
        made, _ = create_backend("torch_cuda", DEMO_PTH)
    else:
        made, _ = create_backend("tensorrt", _tensorrt_engine(tmp_path_factory))
    yield made
    made.close()
    made.close()  # idempotent


@pytest.fixture(scope="module")
def scene_batch(ort_backend):
    """(preprocessed scene, logits of the PyTorch reference model on the demo weights): no backend involved."""
    torch = pytest.importorskip("torch")
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.model.checkpoint import load_model
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.preprocess import preprocess

    batch = preprocess(generate_scene(123, 480, 640)[0], pixel_format("rgb8"), ort_backend.info)
    model, _, _ = load_model(DEMO_PTH)
    with torch.no_grad():
        reference = model(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()
    return batch, reference


def test_specs_describe_an_image_segmenter(backend, scene_batch):
    h, w = backend.info.input_size
    assert backend.input_spec.shape == (1, 3, h, w)
    # the output spec is what the backend really returns (the demo LCSNet: logits at its input size; a user's
    # SegFormer-like model: at 1/4, test_user_models.py), never assumed from the input size
    returned = logits_of(backend, scene_batch[0])
    assert backend.output_spec.shape == returned.shape and backend.output_spec.shape[1] == backend.info.num_classes
    assert backend.input_spec.dtype in (np.float32, np.float16)
    assert backend.output_spec.dtype in (np.float32, np.float16)
    assert backend.supports_host or backend.supports_device
    assert isinstance(backend.device, str) and backend.device


def test_model_info_is_the_demo_models(backend):
    """Each backend's facts against both of the demo model's files, read without any backend: the ONNX's metadata
    and the checkpoint's own entries (so the ONNX Runtime case is not compared with itself)."""
    from lcsnet_seg.backends import read_model_info

    for source in (DEMO_ONNX, DEMO_PTH):
        facts = read_model_info(source)
        assert backend.info.classes == facts.classes and backend.info.input_size == facts.input_size, source
        assert (backend.info.mean, backend.info.std, backend.info.color_order) == (
            facts.mean,
            facts.std,
            facts.color_order,
        )


def logits_of(backend, batch):
    if backend.supports_host:
        return np.asarray(backend.infer(batch), np.float32)
    from lcsnet_seg.gpu.runtime import GpuContext

    ctx = GpuContext(0)
    in_host, in_view = ctx.pinned_array(batch.shape, backend.input_spec.dtype)
    in_view[...] = batch
    out_host, out_view = ctx.pinned_array(backend.output_spec.shape, backend.output_spec.dtype)
    dev_in, dev_out = ctx.device_buffer(in_view.nbytes), ctx.device_buffer(out_view.nbytes)
    ctx.copy_to_device(int(dev_in.handle), int(in_host.handle), in_view.nbytes)
    backend.infer_device(int(dev_in.handle), int(dev_out.handle), int(ctx.stream.handle))
    ctx.copy_to_host(int(out_host.handle), int(dev_out.handle), out_view.nbytes)
    ctx.synchronize()
    return out_view.astype(np.float32)


def test_inference_matches_the_reference_logits(backend, scene_batch):
    batch, reference = scene_batch
    logits = logits_of(backend, batch)
    assert logits.shape == reference.shape and np.isfinite(logits).all()
    fp16 = np.float16 in (backend.input_spec.dtype, backend.output_spec.dtype)
    if not fp16:
        assert np.abs(logits - reference).max() < 1e-2
    assert np.mean(logits.argmax(1) == reference.argmax(1)) >= 0.999


def test_device_path_matches_host_path_where_both_exist(backend, scene_batch):
    if not (backend.supports_host and backend.supports_device):
        pytest.skip(f"{backend.name} has only one path")
    batch, _ = scene_batch
    host = np.asarray(backend.infer(batch), np.float32)
    backend.supports_host = False
    try:
        device = logits_of(backend, batch)
    finally:
        backend.supports_host = True
    assert np.abs(host - device).max() < 1e-4
