import numpy as np
import pytest

from lcsnet_seg.classes import load_class_set
from lcsnet_seg.image_formats import pixel_format
from lcsnet_seg.model_info import ModelInfo
from lcsnet_seg.preprocess import preprocess

MEAN, STD = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)


def info(h=2, w=2, order="rgb"):
    return ModelInfo(classes=load_class_set(), input_size=(h, w), mean=MEAN, std=STD, color_order=order)


def by_hand(pixel_value, channel):
    return (pixel_value / 255.0 - MEAN[channel]) / STD[channel]


def test_identity_size_hand_computed():
    image = np.array([[[0, 51, 255], [255, 0, 102]], [[10, 20, 30], [40, 50, 60]]], np.uint8)
    out = preprocess(image, pixel_format("rgb8"), info())
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    for c in range(3):
        expected = np.vectorize(lambda v: by_hand(v, c))(image[..., c].astype(float))
        np.testing.assert_allclose(out[0, c], expected, rtol=0, atol=1e-6)


def test_downscale_by_two_averages_each_2x2_block():
    # Half-pixel centres: output (0, 0) samples input (0.5, 0.5), the mean of the top-left 2x2 block.
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :2] = [10, 20, 30]
    image[:2, 2:] = [50, 60, 70]
    image[2:, :2] = [100, 110, 120]
    image[2:, 2:] = [200, 210, 220]
    image[0, 0] = [14, 24, 34]  # block mean shifts by exactly 1
    out = preprocess(image, pixel_format("rgb8"), info())
    assert out[0, 0, 0, 0] == pytest.approx(by_hand(11, 0), abs=1e-6)
    assert out[0, 1, 1, 1] == pytest.approx(by_hand(210, 1), abs=1e-6)


def test_upscale_interpolates_between_pixel_centres():
    image = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)  # 1 x 2
    out = preprocess(image, pixel_format("rgb8"), info(1, 4))
    # dst x = 0..3 -> src x = (x + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1)
    expected = [by_hand(v, 0) for v in (0, 63.75, 191.25, 255)]
    np.testing.assert_allclose(out[0, 0, 0], expected, atol=1e-5)


@pytest.mark.parametrize("fmt, model_order", [("bgr8", "rgb"), ("rgb8", "bgr"), ("bgra8", "rgb"), ("rgba8", "bgr")])
def test_color_order_swaps_channels(fmt, model_order):
    rgb = np.array([[[30, 60, 90]]], np.uint8)
    swap = fmt.startswith("bgr")
    pixel = rgb[..., ::-1] if swap else rgb
    if fmt.endswith("a8"):
        pixel = np.concatenate([pixel, np.full((1, 1, 1), 77, np.uint8)], axis=2)
    out = preprocess(np.ascontiguousarray(pixel), pixel_format(fmt), info(1, 1, model_order))
    first = (30, 60, 90) if model_order == "rgb" else (90, 60, 30)
    assert out[0, :, 0, 0] == pytest.approx([by_hand(v, c) for c, v in enumerate(first)], abs=1e-6)


def test_mono_feeds_all_three_channels():
    out = preprocess(np.full((3, 3), 128, np.uint8), pixel_format("mono8"), info())
    assert out[0, :, 0, 0] == pytest.approx([by_hand(128, c) for c in range(3)], abs=1e-6)


def test_padded_rows_are_accepted_without_copy_of_the_caller_data():
    from lcsnet_seg.image_formats import check_image

    buffer = np.zeros((2, 8), np.uint8)  # 2 rows of 2 rgb pixels + 2 bytes of padding
    buffer[:, :6] = np.arange(12).reshape(2, 6)
    view = buffer[:, :6].reshape(2, 2, 3)
    assert not view.flags.c_contiguous
    checked = check_image(view, pixel_format("rgb8"))  # what preprocess (and the GPU staging) reads
    assert np.shares_memory(checked, buffer) and checked.strides[0] == 8  # a view of the caller's rows, padding kept
    ref = preprocess(np.ascontiguousarray(view), pixel_format("rgb8"), info())
    np.testing.assert_array_equal(preprocess(view, pixel_format("rgb8"), info()), ref)
    assert (buffer[:, 6:] == 0).all()  # the padding is neither read into the result nor written


def test_writes_into_given_buffer():
    out = np.full((1, 3, 2, 2), np.nan, np.float32)
    result = preprocess(np.zeros((5, 7, 3), np.uint8), pixel_format("rgb8"), info(), out=out)
    assert result is out and np.isfinite(out).all()
