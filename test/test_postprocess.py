import numpy as np
import pytest

from lcsnet_seg.image_formats import pixel_format
from lcsnet_seg.postprocess import argmax_labels, as_three_channel, blend, colourise, max_softmax, resize_nearest


def test_argmax_on_constructed_logits_first_max_wins_ties():
    logits = np.zeros((4, 2, 3), np.float32)
    logits[2, 0, 0] = 5  # class 2
    logits[3, 0, 1] = -1  # all others 0: class 0 wins (first of the tied maxima)
    logits[1, 0, 2] = logits[3, 0, 2] = 7  # tie between 1 and 3: first (1)
    logits[:, 1, :] = -10
    logits[3, 1, :] = -9.5  # class 3 along the second row
    expected = np.array([[2, 0, 1], [3, 3, 3]], np.uint8)
    labels = argmax_labels(logits)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)


def test_argmax_matches_numpy_on_random_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 37, 53)).astype(np.float32)
    np.testing.assert_array_equal(argmax_labels(logits), logits.argmax(0))


def test_max_softmax_confidence():
    logits = np.zeros((3, 1, 2), np.float32)
    logits[0, 0, 1] = np.log(2.0)  # probs (2, 1, 1) / 4 -> 0.5
    conf = max_softmax(logits)
    np.testing.assert_allclose(conf[0], [1 / 3, 0.5], rtol=1e-6)


def test_nearest_resize_uses_half_pixel_centres():
    labels = np.arange(4, dtype=np.uint8).reshape(1, 4)
    # 4 -> 6: src = floor((x + 0.5) * 4 / 6) = floor(0.33, 1.0, 1.67, 2.33, 3.0, 3.67) = 0, 1, 1, 2, 3, 3
    np.testing.assert_array_equal(resize_nearest(labels, 1, 6)[0], [0, 1, 1, 2, 3, 3])
    # 4 -> 2: src = floor((x + 0.5) * 2) = 1, 3
    np.testing.assert_array_equal(resize_nearest(labels, 1, 2)[0], [1, 3])
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = resize_nearest(grid, 6, 2)  # rows 0,0,1,1,2,2; cols 1,3
    np.testing.assert_array_equal(out[:, 0], [1, 1, 5, 5, 9, 9])


def test_colourise_in_both_orders():
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = [10, 20, 30]
    palette[2] = [200, 100, 0]
    labels = np.array([[1, 2], [0, 1]], np.uint8)
    rgb = colourise(labels, palette, "rgb")
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(rgb[0, 1], [200, 100, 0])
    np.testing.assert_array_equal(colourise(labels, palette, "bgr")[0, 1], [0, 100, 200])


def test_blend_hand_computed():
    image = np.full((1, 2, 3), 100, np.uint8)
    colours = np.array([[[0, 200, 255], [100, 100, 100]]], np.uint8)
    out = blend(image, colours, 0.25)  # 0.75 * 100 + 0.25 * c
    np.testing.assert_array_equal(out[0, 0], [75, 125, 139])  # 138.75 rounds to 139
    np.testing.assert_array_equal(out[0, 1], [100, 100, 100])
    np.testing.assert_array_equal(blend(image, colours, 0.0), image)
    np.testing.assert_array_equal(blend(image, colours, 1.0), colours)


@pytest.mark.parametrize("fmt", ["mono8", "rgba8", "bgra8", "rgb8"])
def test_three_channel_base(fmt):
    f = pixel_format(fmt)
    image = np.arange(2 * 2 * f.channels, dtype=np.uint8).reshape(2, 2, f.channels)
    base = as_three_channel(image if f.channels > 1 else image[..., 0], f)
    assert base.shape == (2, 2, 3) and base.dtype == np.uint8
    if f.channels == 1:  # grey in all three channels
        np.testing.assert_array_equal(base, np.repeat(image, 3, axis=2))
    else:  # the colour channels as they are (the overlay keeps the input's colour order), alpha dropped
        np.testing.assert_array_equal(base, image[..., :3])
