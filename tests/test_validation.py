"""Tests of particleseg._validation: every bad input gets a clear message."""

from __future__ import annotations

import numpy as np
import pytest

from particleseg._validation import (
    check_class_map,
    check_count,
    check_image,
    check_images,
    check_instance_map,
    check_mask,
    check_prediction,
    check_same_shape,
)

# --------------------------------------------------------------------------
# check_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_check_image_accepts_2d_numeric(dtype):
    image = np.arange(12, dtype=dtype).reshape(3, 4)
    out = check_image(image)
    assert out.dtype == dtype and out.shape == (3, 4)
    np.testing.assert_array_equal(out, image)


def test_check_image_reduces_single_channel():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4, 1)
    out = check_image(image)
    assert out.shape == (3, 4) and out.dtype == np.uint16
    np.testing.assert_array_equal(out, image[..., 0])


@pytest.mark.parametrize("channels", [3, 4])
def test_check_image_takes_equal_rgb_channels_as_they_are(channels):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rgb = np.repeat(gray[..., None], channels, axis=-1)
    if channels == 4:
        rgb[..., 3] = 255  # alpha is ignored
    out = check_image(rgb)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, gray)


def test_check_image_converts_colour_to_luminance_in_its_own_dtype():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    out = check_image(rgb)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.full((2, 2), 54))  # round(0.2125 * 255)
    rgb_float = np.zeros((1, 1, 3))
    rgb_float[..., 1] = 1.0
    assert check_image(rgb_float)[0, 0] == pytest.approx(0.7154)


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((4, 16, 16)), ValueError,
         r"image must be 2-D \(H, W\), \(H, W, 1\) or RGB \(H, W, 3\); got shape \(4, 16, 16\)\. "
         r"To process a stack of images, pass a list of 2-D images\."),
        (np.zeros((2, 3, 16, 16)), ValueError, r"image must be 2-D .*; got shape \(2, 3, 16, 16\)"),
        (np.zeros(16), ValueError, r"image must be 2-D .*; got shape \(16,\)"),
        (np.zeros((4, 4), bool), TypeError,
         r"image must have an integer \(uint8, uint16, \.\.\.\) or floating dtype; got dtype bool"),
        (np.zeros((4, 4), complex), TypeError, r"image must have an integer .* got dtype complex128"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), ValueError,
         r"image contains 1 NaN or infinite pixel\(s\); expected finite values\. Replace them first"),
        (np.array([[np.inf, -np.inf]], np.float32), ValueError, r"image contains 2 NaN or infinite pixel\(s\)"),
        (np.zeros((0, 5)), ValueError, r"image is empty \(shape \(0, 5\)\); expected at least one pixel"),
        (np.zeros((0, 5, 3), np.uint8), ValueError, r"image is empty \(shape \(0, 5\)\)"),
        (None, TypeError, r"image must be a numpy array; got None"),
        ("micrograph.tif", TypeError,
         r"image must be a numpy array; got the string 'micrograph\.tif'\. To read a file"),
        ([[1, 2], [3]], TypeError, r"image must be a numpy array; got list that cannot be converted"),
        (np.array([None, None]), TypeError, r"image must be a numeric numpy array; got an object array"),
    ],
)
def test_check_image_rejects(image, error, match):
    with pytest.raises(error, match=match):
        check_image(image)


def test_check_image_names_the_argument():
    with pytest.raises(ValueError, match=r"^micrograph must be 2-D"):
        check_image(np.zeros((2, 5, 5)), "micrograph")


# --------------------------------------------------------------------------
# check_images


def test_check_images_single_image():
    images, single = check_images(np.zeros((8, 8)))
    assert single is True and len(images) == 1 and images[0].shape == (8, 8)
    images, single = check_images(np.zeros((8, 8, 3), np.uint8))
    assert single is True and images[0].shape == (8, 8)


def test_check_images_stack_and_list():
    images, single = check_images(np.zeros((3, 8, 8), np.uint8))
    assert single is False and len(images) == 3
    images, single = check_images([np.zeros((8, 8)), np.zeros((5, 6), np.uint16)])
    assert single is False and [im.shape for im in images] == [(8, 8), (5, 6)]


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((2, 3, 8, 8)), ValueError,
         r"X must be one 2-D image \(H, W\) or a list of 2-D images; got an array of shape \(2, 3, 8, 8\)"),
        ([], ValueError, r"X is an empty list; expected at least one image"),
        (None, TypeError, r"X must be a 2-D image or a list of 2-D images; got NoneType"),
        ("a.png", TypeError, r"X must be a 2-D image or a list of 2-D images; got str"),
        (5, TypeError, r"X must be a 2-D image or a list of 2-D images; got int"),
        ([np.zeros((4, 4)), np.zeros((4, 4), bool)], TypeError, r"X\[1\] must have an integer .* got dtype bool"),
        ([np.zeros((4, 4)), np.full((4, 4), np.nan)], ValueError, r"X\[1\] contains 16 NaN or infinite"),
        ([np.zeros((2, 8, 8))], ValueError, r"X\[0\] must be 2-D .*; got shape \(2, 8, 8\)"),
    ],
)
def test_check_images_rejects(X, error, match):
    with pytest.raises(error, match=match):
        check_images(X)


# --------------------------------------------------------------------------
# check_instance_map


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.int64])
def test_check_instance_map_accepts_integers(dtype):
    labels = np.array([[0, 1], [2, 300 % np.iinfo(dtype).max]], dtype=dtype)
    np.testing.assert_array_equal(check_instance_map(labels), labels)


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (np.zeros((4, 4)), TypeError,
         r"labels must be an integer instance map; got dtype float64\. Convert it with labels\.astype"),
        (np.zeros((4, 4), bool), TypeError, r"labels must be an integer instance map; got dtype bool\. For a boolean mask"),
        (np.zeros((3, 4, 4), int), ValueError,
         r"labels must be a 2-D instance map \(H, W\); got shape \(3, 4, 4\)\. To process a stack"),
        (np.zeros((4, 0), int), ValueError, r"labels is empty \(shape \(4, 0\)\)"),
        (np.array([[0, -1]]), ValueError, r"labels contains negative labels \(minimum -1\)"),
        (None, TypeError, r"labels must be a numpy array; got None"),
    ],
)
def test_check_instance_map_rejects(labels, error, match):
    with pytest.raises(error, match=match):
        check_instance_map(labels)


# --------------------------------------------------------------------------
# check_class_map and check_prediction


def test_check_class_map_returns_uint8():
    out = check_class_map(np.array([[0, 1, 2]], dtype=np.int64))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 1, 2]])


@pytest.mark.parametrize(
    "classes, error, match",
    [
        (np.array([[0, 3]]), ValueError,
         r"classes must be a class map with values 0 \(background\), 1 \(particle\) and 2 \(border\); "
         r"got values from 0 to 3\. If these are instance labels, turn them into a class map with annotate_borders"),
        (np.array([[-1, 1]]), ValueError, r"classes must be a class map .*; got values from -1 to 1"),
        (np.zeros((2, 2), np.float32), TypeError, r"classes must be an integer class map; got dtype float32"),
        (np.zeros((2, 2, 2), np.uint8), ValueError, r"classes must be a 2-D class map \(H, W\); got shape \(2, 2, 2\)"),
        (np.zeros((0, 0), np.uint8), ValueError, r"classes is empty \(shape \(0, 0\)\)"),
    ],
)
def test_check_class_map_rejects(classes, error, match):
    with pytest.raises(error, match=match):
        check_class_map(classes)


def test_check_prediction_accepts_class_map_and_probabilities():
    assert check_prediction(np.zeros((3, 3), np.int32)).dtype == np.uint8
    proba = check_prediction(np.full((3, 2, 2), 1 / 3))
    assert proba.dtype == np.float32 and proba.shape == (3, 2, 2)


@pytest.mark.parametrize(
    "pred, error, match",
    [
        (np.zeros((4, 8, 8), np.float32), ValueError,
         r"pred must be a class map \(H, W\) or class probabilities \(3, H, W\); got shape \(4, 8, 8\)"),
        (np.zeros((8, 8, 3), np.float32), ValueError, r"got shape \(8, 8, 3\)"),
        (np.zeros((3, 8, 8), np.int64), TypeError, r"pred of shape \(3, H, W\) must hold float probabilities; got dtype int64"),
        (np.full((3, 2, 2), np.inf), ValueError, r"pred contains NaN or infinite probabilities"),
        (np.zeros((3, 2, 0)), ValueError, r"pred is empty \(shape \(3, 2, 0\)\)"),
        (np.zeros(5, np.uint8), ValueError, r"pred must be a class map .*; got shape \(5,\)\. To process a stack"),
        (np.zeros((2, 2), np.float64), TypeError, r"pred must be an integer class map; got dtype float64"),
    ],
)
def test_check_prediction_rejects(pred, error, match):
    with pytest.raises(error, match=match):
        check_prediction(pred)


# --------------------------------------------------------------------------
# check_same_shape, check_mask, check_count


def test_check_same_shape():
    check_same_shape(np.zeros((3, 4)), np.zeros((3, 4), int))  # no error
    with pytest.raises(
        ValueError,
        match=r"labels has shape \(4, 3\) but image has shape \(3, 4\); each label map must have "
        r"exactly the shape of its image",
    ):
        check_same_shape(np.zeros((3, 4)), np.zeros((4, 3), int))
    with pytest.raises(ValueError, match=r"y_pred has shape \(2, 2\) but y_true has shape \(3, 3\)"):
        check_same_shape(np.zeros((3, 3)), np.zeros((2, 2)), "y_true", "y_pred")


@pytest.mark.parametrize(
    "mask", [np.array([[False, True]]), np.array([[0, 2]], np.uint8), np.array([[0, 7]], np.int64)]
)
def test_check_mask_accepts_masks_class_and_instance_maps(mask):
    np.testing.assert_array_equal(check_mask(mask) > 0, [[False, True]])


@pytest.mark.parametrize(
    "mask, error, match",
    [
        (np.array([[0.2, 0.9]]), TypeError,
         r"mask must be a boolean mask, a class map or an instance map \(bool or integer dtype\); got "
         r"dtype float64\. For probabilities, threshold them first"),
        (np.array([["a"]]), TypeError, r"mask must be a boolean mask, .* got dtype <U1"),
        (np.zeros((2, 2, 2), bool), ValueError, r"mask must be a 2-D map \(H, W\); got shape \(2, 2, 2\)"),
        (np.zeros((0, 2), bool), ValueError, r"mask is empty \(shape \(0, 2\)\)"),
        (np.array([[0, -4]]), ValueError, r"mask contains negative values \(minimum -4\)"),
        (None, TypeError, r"mask must be a numpy array; got None"),
    ],
)
def test_check_mask_rejects(mask, error, match):
    with pytest.raises(error, match=match):
        check_mask(mask)


def test_check_count():
    assert check_count(0) == 0
    assert check_count(np.int32(12)) == 12 and isinstance(check_count(np.int32(12)), int)


@pytest.mark.parametrize(
    "count, error, match",
    [
        (-1, ValueError, r"n must be 0 or more particles; got -1"),
        (2.0, TypeError, r"n must be a whole number of particles \(int\); got 2\.0"),
        (True, TypeError, r"n must be a whole number of particles \(int\); got True"),
        (np.bool_(True), TypeError, r"n must be a whole number of particles \(int\); got .*True"),
        ("3", TypeError, r"n must be a whole number of particles \(int\); got '3'"),
        (None, TypeError, r"n must be a whole number of particles \(int\); got None"),
    ],
)
def test_check_count_rejects(count, error, match):
    with pytest.raises(error, match=match):
        check_count(count, "n")
