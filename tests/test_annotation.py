"""Tests of particleseg.annotation: annotate_borders and BorderAnnotator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage as ndi
from sklearn.base import clone
from estimator_checks import data_free_checks
from strategies import instance_maps

from particleseg.annotation import (
    BACKGROUND,
    BORDER,
    DEFAULT_BORDER_WIDTH,
    PARTICLE,
    BorderAnnotator,
    annotate_borders,
)


def _two_touching_squares():
    labels = np.zeros((6, 10), dtype=np.int32)
    labels[1:5, 1:5] = 1
    labels[1:5, 5:9] = 2
    return labels


def _brute_force_classes(labels, width):
    """Oracle: a particle pixel is border when some pixel within city-block
    distance ``width`` (clipped to the image) carries another label."""
    height, wide = labels.shape
    classes = np.zeros(labels.shape, dtype=np.uint8)
    for r in range(height):
        for c in range(wide):
            if labels[r, c] == 0:
                continue
            border = False
            for dr in range(-width, width + 1):
                for dc in range(-(width - abs(dr)), width - abs(dr) + 1):
                    rr = min(max(r + dr, 0), height - 1)
                    cc = min(max(c + dc, 0), wide - 1)
                    border |= labels[rr, cc] != labels[r, c]
            classes[r, c] = BORDER if border else PARTICLE
    return classes


# --------------------------------------------------------------------------
# annotate_borders: examples


def test_class_values_and_default_width():
    assert (BACKGROUND, PARTICLE, BORDER) == (0, 1, 2)
    assert DEFAULT_BORDER_WIDTH == 1


def test_two_touching_squares_get_a_border_between_them():
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 2, 2, 2, 2, 0],
            [0, 2, 1, 1, 2, 2, 1, 1, 2, 0],
            [0, 2, 1, 1, 2, 2, 1, 1, 2, 0],
            [0, 2, 2, 2, 2, 2, 2, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    classes = annotate_borders(_two_touching_squares())
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, expected)


def test_width_two_is_a_diamond():
    labels = np.zeros((9, 9), dtype=np.int32)
    labels[4, 4] = 1  # a single background pixel inside a particle
    labels = np.where(labels == 1, 0, 5)
    classes = annotate_borders(labels, width=2)
    # Border: city-block distance <= 2 from the hole, a diamond around it.
    rows, cols = np.mgrid[0:9, 0:9]
    distance = np.abs(rows - 4) + np.abs(cols - 4)
    expected = np.where(distance == 0, 0, np.where(distance <= 2, 2, 1))
    np.testing.assert_array_equal(classes, expected)


def test_image_edge_is_not_a_boundary():
    classes = annotate_borders(np.full((5, 7), 3, dtype=np.uint16))
    np.testing.assert_array_equal(classes, np.ones((5, 7)))
    # A particle cut by the left edge keeps its core up to the edge.
    labels = np.zeros((5, 5), dtype=np.int32)
    labels[1:4, 0:3] = 1
    np.testing.assert_array_equal(annotate_borders(labels)[2], [1, 1, 2, 0, 0])


def test_thin_particle_is_all_border():
    labels = np.zeros((7, 7), dtype=np.int32)
    labels[1:6, 1:3] = 4  # two pixels wide: no core at width 1
    classes = annotate_borders(labels)
    assert not (classes == PARTICLE).any()
    np.testing.assert_array_equal(classes == BORDER, labels > 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.uint64])
def test_any_integer_dtype_gives_the_same_classes(dtype):
    labels = _two_touching_squares()
    np.testing.assert_array_equal(
        annotate_borders(labels.astype(dtype)), annotate_borders(labels)
    )


def test_input_is_not_modified():
    labels = _two_touching_squares()
    before = labels.copy()
    annotate_borders(labels, width=2)
    np.testing.assert_array_equal(labels, before)


def test_nested_lists_are_accepted():
    np.testing.assert_array_equal(
        annotate_borders(_two_touching_squares().tolist()), annotate_borders(_two_touching_squares())
    )


# --------------------------------------------------------------------------
# annotate_borders: bad input


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (np.zeros((4, 4), np.float64), TypeError,
         r"instances must be an integer instance map; got dtype float64\. Convert it with "
         r"instances\.astype\(np\.int32\)"),
        (np.full((4, 4), np.nan), TypeError, r"instances must be an integer instance map; got dtype float64"),
        (np.zeros((4, 4), bool), TypeError,
         r"instances must be an integer instance map; got dtype bool\. For a boolean mask, label it first"),
        (np.zeros((2, 4, 4), np.int32), ValueError,
         r"instances must be a 2-D instance map \(H, W\); got shape \(2, 4, 4\)\. To process a stack"),
        (np.zeros(4, np.int32), ValueError, r"instances must be a 2-D instance map \(H, W\); got shape \(4,\)"),
        (np.zeros((0, 4), np.int32), ValueError,
         r"instances is empty \(shape \(0, 4\)\); expected at least one pixel"),
        (np.array([[0, -3], [1, 2]]), ValueError,
         r"instances contains negative labels \(minimum -3\); an instance map has 0 for background"),
        (None, TypeError, r"instances must be a numpy array; got None"),
        ("labels.png", TypeError, r"instances must be a numpy array; got the string 'labels\.png'"),
        ([[1, 2], [3]], TypeError, r"instances must be a numpy array; got list that cannot be converted"),
        (np.array([[1, "a"]], dtype=object), TypeError, r"instances must be a numeric numpy array; got an object array"),
    ],
)
def test_annotate_borders_rejects_bad_instance_maps(labels, error, match):
    with pytest.raises(error, match=match):
        annotate_borders(labels)


@pytest.mark.parametrize(
    "width, error, match",
    [
        (0, ValueError, r"width must be at least 1 pixel; got 0"),
        (-2, ValueError, r"width must be at least 1 pixel; got -2"),
        (1.5, TypeError, r"width must be a positive integer \(pixels\); got 1\.5"),
        (True, TypeError, r"width must be a positive integer \(pixels\); got True"),
        ("1", TypeError, r"width must be a positive integer \(pixels\); got '1'"),
    ],
)
def test_annotate_borders_rejects_bad_widths(width, error, match):
    with pytest.raises(error, match=match):
        annotate_borders(_two_touching_squares(), width=width)


def test_numpy_integer_width_is_accepted():
    np.testing.assert_array_equal(
        annotate_borders(_two_touching_squares(), np.int64(2)),
        annotate_borders(_two_touching_squares(), 2),
    )


# --------------------------------------------------------------------------
# annotate_borders: properties


@given(instance_maps(max_side=24))
def test_annotate_borders_matches_brute_force(example):
    np.testing.assert_array_equal(
        annotate_borders(example.labels, example.width),
        _brute_force_classes(example.labels, example.width),
    )


@given(instance_maps(), st.integers(1, 4))
def test_foreground_is_kept_and_cores_lie_inside_their_particle(example, width):
    labels = example.labels
    classes = annotate_borders(labels, width)
    np.testing.assert_array_equal(classes > 0, labels > 0)
    # A core pixel's whole diamond of radius `width` carries its own label
    # (checked by eroding each particle separately, edge repeated).
    footprint = ndi.iterate_structure(ndi.generate_binary_structure(2, 1), width)
    for k in np.unique(labels[labels > 0]):
        padded = np.pad(labels == k, width, mode="edge")
        core = ndi.binary_erosion(padded, footprint)[width:-width, width:-width]
        np.testing.assert_array_equal(core, (classes == PARTICLE) & (labels == k))


# --------------------------------------------------------------------------
# BorderAnnotator


def test_annotator_transforms_like_the_function():
    labels = _two_touching_squares()
    annotator = BorderAnnotator(width=2).fit([labels])
    np.testing.assert_array_equal(annotator.transform(labels), annotate_borders(labels, 2))
    out = annotator.transform([labels, labels.T])
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_array_equal(out[1], annotate_borders(labels.T, 2))
    stack = np.stack([labels, labels])
    out = BorderAnnotator().fit_transform(stack)
    assert len(out) == 2
    np.testing.assert_array_equal(out[0], annotate_borders(labels))


def test_annotator_fit_returns_self_and_learns_nothing():
    annotator = BorderAnnotator()
    assert annotator.fit([_two_touching_squares()]) is annotator
    assert [k for k in vars(annotator) if k.endswith("_")] == []


def test_annotator_fit_checks_the_instance_maps():
    with pytest.raises(ValueError, match=r"X\[0\] contains negative labels"):
        BorderAnnotator().fit([-_two_touching_squares()])


def test_annotator_checks_width_in_fit_not_init():
    annotator = BorderAnnotator(width=0)  # __init__ stores, does not validate
    assert annotator.width == 0
    with pytest.raises(ValueError, match=r"width must be at least 1 pixel; got 0"):
        annotator.fit([_two_touching_squares()])
    with pytest.raises(TypeError, match=r"width must be a positive integer \(pixels\); got 'wide'"):
        BorderAnnotator(width="wide").fit_transform([_two_touching_squares()])


def test_annotator_transform_rejects_bad_maps():
    with pytest.raises(TypeError, match=r"instances must be an integer instance map; got dtype float32"):
        BorderAnnotator().transform([np.zeros((4, 4), np.float32)])


def test_annotator_get_params_clone_round_trip():
    annotator = BorderAnnotator(width=3)
    assert annotator.get_params() == {"width": 3}
    cloned = clone(annotator)
    assert cloned is not annotator
    assert cloned.get_params() == {"width": 3}
    assert cloned.set_params(width=2) is cloned and cloned.width == 2
    assert annotator.width == 3
    assert repr(BorderAnnotator(width=2)) == "BorderAnnotator(width=2)"


def test_annotator_pickle_round_trip():
    labels = _two_touching_squares()
    annotator = BorderAnnotator(width=2).fit([labels])
    restored = pickle.loads(pickle.dumps(annotator))
    assert restored.get_params() == annotator.get_params()
    np.testing.assert_array_equal(restored.transform(labels), annotator.transform(labels))


def test_annotator_tags():
    tags = BorderAnnotator().__sklearn_tags__()
    assert tags.requires_fit is False
    assert tags.input_tags.two_d_array is False


@data_free_checks
def test_annotator_passes_data_free_sklearn_checks(check):
    # parametrize_with_checks would skip every check (the annotator takes
    # instance maps, not 2-D tables), so call the data-free ones directly.
    check("BorderAnnotator", BorderAnnotator())
