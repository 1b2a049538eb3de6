"""Several images in one Segmenter call (segment_batch: one per camera): the same results as one call each, in as
few backend calls as the backend's batch allows, for images of different sizes and encodings."""

import numpy as np
import pytest
from images import as_encoding

from lcsnet_seg.model.scene import generate_scene
from lcsnet_seg.segmenter.cpu import Segmenter

OUTPUTS = ("labels", "color_mask", "overlay", "confidence")
# a camera of each kind: sizes and encodings differ within one batch
CAMERAS = ((240, 320, "rgb8"), (480, 640, "bgr8"), (200, 260, "mono8"), (300, 400, "rgba8"))


@pytest.fixture(scope="module")
def frames():
    return [(as_encoding(generate_scene(30 + i, h, w)[0], enc), enc) for i, (h, w, enc) in enumerate(CAMERAS)]


class CountingBackend:
    """Wraps a backend and records the batch size of every infer call."""

    def __init__(self, backend) -> None:
        self._backend, self.calls = backend, []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def infer(self, batch):
        self.calls.append(len(batch))
        return self._backend.infer(batch)


@pytest.fixture(scope="module")
def dynamic_batch_onnx(tmp_path_factory, demo_torch_model):
    """The demo model exported with a dynamic batch dimension (convert --max-batch)."""
    from lcsnet_seg.backends import read_model_info
    from lcsnet_seg.convert.export import export_onnx
    from lcsnet_seg.model import DEMO_PTH

    model, info = demo_torch_model, read_model_info(DEMO_PTH)
    path = tmp_path_factory.mktemp("batch") / "demo_batch.onnx"
    export_onnx(model, info, path, dynamic_batch=True)
    return path


def assert_same(batch_results, single_results):
    for i, (got, want) in enumerate(zip(batch_results, single_results)):
        np.testing.assert_array_equal(got.labels, want.labels, err_msg=f"camera {i}")
        np.testing.assert_array_equal(got.color_mask, want.color_mask, err_msg=f"camera {i}")
        np.testing.assert_array_equal(got.overlay, want.overlay, err_msg=f"camera {i}")
        np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-5, err_msg=f"camera {i}")


@pytest.fixture(scope="module")
def fixed_batch_onnx(tmp_path_factory, demo_torch_model):
    """The demo model exported with a fixed batch of one (as most ONNX files from elsewhere)."""
    from lcsnet_seg.backends import read_model_info
    from lcsnet_seg.convert.export import export_onnx
    from lcsnet_seg.model import DEMO_PTH

    path = tmp_path_factory.mktemp("batch") / "demo_one.onnx"
    export_onnx(demo_torch_model, read_model_info(DEMO_PTH), path)
    return path


def test_a_fixed_batch_model_takes_the_cameras_one_after_the_other(fixed_batch_onnx, frames):
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(fixed_batch_onnx)
    assert backend.max_batch == 1
    counting = CountingBackend(backend)
    segmenter = Segmenter(counting)
    results = segmenter.segment_batch(frames, OUTPUTS)
    assert counting.calls == [1, 1, 1, 1]
    single = [segmenter(image, enc, OUTPUTS) for image, enc in frames]
    assert_same(results, single)
    for (image, _), result in zip(frames, results):
        assert result.labels.shape == image.shape[:2]
        assert result.timings_ms["total"] >= result.timings_ms["infer"] > 0


def test_a_dynamic_batch_model_takes_every_camera_in_one_call(dynamic_batch_onnx, frames):
    from lcsnet_seg.backends.onnxruntime import DYNAMIC_MAX_BATCH, OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(dynamic_batch_onnx)
    assert backend.max_batch == DYNAMIC_MAX_BATCH and backend.output_spec.shape[0] == 1  # no max_batch recorded
    counting = CountingBackend(backend)
    segmenter = Segmenter(counting)
    results = segmenter.segment_batch(frames, OUTPUTS)
    assert counting.calls == [len(frames)]
    single = [segmenter(image, enc, OUTPUTS) for image, enc in frames]
    assert counting.calls[1:] == [1] * len(frames)
    assert_same(results, single)
    for (image, enc), result in zip(frames, results):
        assert result.labels.shape == image.shape[:2]
        assert result.overlay_order == ("bgr" if enc.startswith("bgr") else "rgb")


def test_a_batch_larger_than_the_model_takes_runs_in_chunks(dynamic_batch_onnx, frames):
    from lcsnet_seg.backends.onnxruntime import OnnxRuntimeBackend

    counting = CountingBackend(OnnxRuntimeBackend(dynamic_batch_onnx))
    counting.max_batch = 3  # as a model exported for at most three cameras
    results = Segmenter(counting).segment_batch(frames, ("labels",))
    assert counting.calls == [3, 1] and [r.labels.shape for r in results] == [f[0].shape[:2] for f in frames]


def test_the_demo_model_takes_the_batch_its_metadata_records(ort_backend, frames):
    assert ort_backend.info.max_batch == 8 and ort_backend.max_batch == 8  # convert --max-batch 8
    counting = CountingBackend(ort_backend)
    Segmenter(counting).segment_batch(frames, ("labels",))
    assert counting.calls == [len(frames)]


def test_results_own_their_arrays(segmenter, frames):
    first = segmenter.segment_batch(frames[:2], ("labels",))
    kept = [r.labels.copy() for r in first]
    segmenter.segment_batch(frames[2:], ("labels",))
    for result, labels in zip(first, kept):
        np.testing.assert_array_equal(result.labels, labels)


def test_a_bad_image_in_a_batch_is_an_image_error_naming_it(segmenter, frames):
    from lcsnet_seg.errors import ImageError

    with pytest.raises(ImageError, match="does not fit rgb8"):
        segmenter.segment_batch([frames[0], (np.zeros((10, 10, 4), np.uint8), "rgb8")], ("labels",))
    assert len(segmenter.segment_batch([], ("labels",))) == 0


def test_a_flipped_view_is_refused_before_it_reaches_a_buffer(segmenter, frames):
    from lcsnet_seg.errors import ImageError

    image = frames[0][0]
    with pytest.raises(ImageError, match="not contiguous"):
        segmenter(image[::-1], "rgb8")
