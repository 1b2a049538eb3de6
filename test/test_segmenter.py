import numpy as np
import pytest

from lcsnet_seg.errors import ConfigError, ImageError, ModelFileError
from lcsnet_seg.model.scene import generate_scene


@pytest.fixture(scope="module")
def scene():
    return generate_scene(7, 240, 320)


def test_outputs_shapes_and_timings(segmenter, scene):
    image, _ = scene
    result = segmenter(image, "rgb8", outputs=("labels", "color_mask", "overlay", "confidence"))
    assert result.labels.shape == (240, 320) and result.labels.dtype == np.uint8
    assert result.color_mask.shape == (240, 320, 3) and result.overlay.shape == (240, 320, 3)
    assert result.confidence.dtype == np.float32 and 0 < result.confidence.min() <= result.confidence.max() <= 1
    assert set(result.timings_ms) == {"preprocess", "infer", "postprocess", "total"}
    assert all(v >= 0 for v in result.timings_ms.values())
    palette = segmenter.info.classes.palette_rgb()
    np.testing.assert_array_equal(result.color_mask, palette[result.labels])


def test_labels_of_a_network_known_by_hand(ort_backend):
    """An oracle that is not the code under test: a per-pixel linear classifier (test/cupy_backend.py's host twin)
    on single-colour images, where each pixel's class is the argmax of W x normalised colour + b, worked out here."""
    from cupy_backend import HostPoolBackend

    from lcsnet_seg.segmenter.cpu import Segmenter

    backend = HostPoolBackend(ort_backend.info, stride=4)
    segmenter = Segmenter(backend)
    mean, std = np.asarray(ort_backend.info.mean), np.asarray(ort_backend.info.std)
    for colour in ([200, 30, 30], [20, 180, 40], [10, 10, 220], [128, 128, 128], [250, 250, 250]):
        image = np.empty((90, 120, 3), np.uint8)
        image[:] = colour
        expected = int(np.argmax(backend.weight @ ((np.asarray(colour) / 255.0 - mean) / std) + backend.bias))
        result = segmenter(image, "rgb8", ("labels", "color_mask"))
        assert result.labels.shape == (90, 120) and set(np.unique(result.labels)) == {expected}, colour
        assert (result.color_mask == ort_backend.info.classes.palette_rgb()[expected]).all()


def test_bgr_input_gives_the_same_labels_and_a_bgr_overlay(segmenter, scene):
    image, _ = scene
    rgb = segmenter(image, "rgb8")
    bgr = segmenter(np.ascontiguousarray(image[..., ::-1]), "bgr8")
    np.testing.assert_array_equal(rgb.labels, bgr.labels)
    assert bgr.overlay_order == "bgr"
    np.testing.assert_array_equal(rgb.overlay, bgr.overlay[..., ::-1])


def test_overlay_alpha_zero_returns_the_image(segmenter, scene):
    image, _ = scene
    old = segmenter.overlay_alpha
    try:
        segmenter.overlay_alpha = 0.0
        np.testing.assert_array_equal(segmenter(image, "rgb8").overlay, image)
    finally:
        segmenter.overlay_alpha = old


def test_network_output_size(ort_backend, scene):
    from lcsnet_seg.segmenter.cpu import Segmenter

    result = Segmenter(ort_backend, output_size="network")(scene[0], "rgb8")
    assert result.labels.shape == ort_backend.info.input_size
    assert result.overlay.shape == (*ort_backend.info.input_size, 3)


@pytest.mark.parametrize(
    "image, fmt, message",
    [
        (np.zeros((4, 4, 3), np.float32), "rgb8", "dtype is float32"),
        (np.zeros((4, 4, 4), np.uint8), "rgb8", "does not fit rgb8"),
        (np.zeros((4, 4), np.uint8), "bgr8", "does not fit bgr8"),
        (np.zeros((0, 4, 3), np.uint8), "rgb8", "empty"),
        (np.zeros((4, 8, 3), np.uint8)[:, ::2], "rgb8", "not contiguous"),
        (np.zeros((4, 4, 3), np.uint8)[..., ::-1], "rgb8", "not contiguous"),
        (np.zeros((4, 4, 3), np.uint8), "yuv422", "not supported"),
        ([[1, 2, 3]], "rgb8", "numpy array"),
    ],
)
def test_bad_images_give_clear_errors(segmenter, image, fmt, message):
    with pytest.raises(ImageError, match=message) as err:
        segmenter(image, fmt)
    assert "\n" not in str(err.value)


def test_unknown_output_and_bad_alpha(ort_backend, segmenter):
    from lcsnet_seg.segmenter.cpu import Segmenter

    with pytest.raises(ConfigError, match="unknown outputs"):
        segmenter(np.zeros((4, 4, 3), np.uint8), "rgb8", outputs=("labels", "heatmap"))
    with pytest.raises(ConfigError, match="overlay_alpha"):
        Segmenter(ort_backend, overlay_alpha=1.5)


def test_missing_and_corrupt_model_files(tmp_path):
    from lcsnet_seg.backends import create_backend

    with pytest.raises(ModelFileError, match="not found"):
        create_backend("onnxruntime", tmp_path / "missing.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        create_backend("auto", empty)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(ModelFileError, match="is not a readable ONNX model") as err:
        create_backend("auto", garbage)
    assert "\n" not in str(err.value)


def test_one_factory_builds_a_segmenter_that_keeps_the_contract(demo_onnx):
    """build_segmenter is what the node, evaluate and the benches use; its result keeps FrameSegmenter."""
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter
    from lcsnet_seg.segmenter.contract import FrameSegmenter

    segmenter, why = build_segmenter(demo_onnx, SegmenterConfig(backend="auto"))
    try:
        assert isinstance(segmenter, FrameSegmenter) and "ONNX" in why
        assert segmenter.device == "cpu" and segmenter.results_reused is False
        image = np.full((48, 64, 3), 120, np.uint8)
        result = segmenter(image, "rgb8", outputs=("labels", "confidence"))
        assert result.color_mask is None and result.confidence is not None and "total" in result.timings_ms
        kept = result.copy()
        result.labels[:] = 255  # the copy owns its arrays
        assert kept.labels.max() < 8 and kept.confidence is not result.confidence
    finally:
        segmenter.close()


def test_factory_releases_the_backend_when_the_segmenter_cannot_be_built(demo_onnx, monkeypatch):
    import lcsnet_seg.backends as backends
    import lcsnet_seg.segmenter.cpu as cpu
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    made = []
    real = backends.create_backend
    monkeypatch.setattr(backends, "create_backend", lambda *a, **k: made.append(real(*a, **k)) or made[-1])

    def refuse(self, *args, **kwargs):
        raise ConfigError("no Segmenter today")

    monkeypatch.setattr(cpu.Segmenter, "__init__", refuse)
    with pytest.raises(ConfigError, match="no Segmenter today"):
        build_segmenter(demo_onnx, SegmenterConfig(backend="onnxruntime"))
    backend, _ = made[0]
    assert backend._session is None  # closed: the ONNX Runtime session is gone


def test_closing_a_segmenter_releases_its_backend(demo_onnx):
    from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

    segmenter, _ = build_segmenter(demo_onnx, SegmenterConfig(backend="onnxruntime"))
    segmenter(np.zeros((32, 32, 3), np.uint8), "rgb8")
    segmenter.close()
    assert segmenter.backend._session is None
    with pytest.raises(ConfigError, match="output_size"):  # a bad setting is refused before any model is loaded
        SegmenterConfig(output_size="sideways")
