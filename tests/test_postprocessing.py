"""Tests of particleseg.postprocessing: masks, labels and counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage import measure
from strategies import class_maps, instance_maps, probability_maps

from particleseg.annotation import annotate_borders
from particleseg.metrics import match_particles
from particleseg.postprocessing import (
    count_particles,
    foreground_mask,
    label_particles,
    particle_mask,
)

# --------------------------------------------------------------------------
# Helpers


def _probabilities(classes, confidence=0.9):
    """Class probabilities (3, H, W) whose argmax is ``classes``."""
    proba = np.full((3, *classes.shape), (1 - confidence) / 2, dtype=np.float32)
    for k in range(3):
        proba[k][classes == k] = confidence
    return proba


def _assert_consecutive(labels):
    present = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(present, np.arange(1, labels.max() + 1))


def _map_to_truth(recovered, truth, classes):
    """Give each recovered particle the true id of its core.

    Checks on the way that every recovered particle holds the core of exactly
    one true particle, and that the cores are labelled as in ``truth``.
    """
    core = classes == 1
    mapping = np.zeros(int(recovered.max()) + 1, dtype=truth.dtype)
    mapping[recovered[core]] = truth[core]
    np.testing.assert_array_equal(mapping[recovered[core]], truth[core])
    return mapping[recovered]


def _corner_pixels(width):
    """How many pixels of one corner of a rectangle can go to a neighbour.

    A border pixel of rectangle A at offsets (a, b), 1 <= a, b <= width, from
    the corner of A's core is sqrt(a² + b²) from A's core, while any other
    particle's core is at least width + 1 away (it lies beyond A's edge and
    is itself shrunk by the border width). Growing to the nearest core can
    therefore mislabel only corner pixels with a² + b² >= (width + 1)²
    (equality: a tie). There are none for width 1 and 2, one for width 3.
    """
    return sum(
        a * a + b * b >= (width + 1) ** 2
        for a in range(1, width + 1)
        for b in range(1, width + 1)
    )


def _touching_squares(n=3, side=10):
    truth = np.zeros((side + 2, n * side + 2), dtype=np.int32)
    for k in range(n):
        truth[1:side + 1, 1 + k * side:1 + (k + 1) * side] = k + 1
    return truth


# --------------------------------------------------------------------------
# Examples a user sees


def test_three_touching_squares_count_three():
    truth = _touching_squares(3, 10)
    assert measure.label(truth > 0).max() == 1  # one blob without borders
    assert count_particles(annotate_borders(truth)) == 3


def test_three_touching_squares_are_recovered_exactly():
    truth = _touching_squares(3, 10)
    labels = label_particles(annotate_borders(truth))
    np.testing.assert_array_equal(labels, truth)
    assert labels.dtype == np.int32


def test_ring_with_particle_in_its_hole_counts_two():
    truth = np.zeros((15, 15), dtype=np.int32)
    truth[1:14, 1:14] = 1
    truth[5:10, 5:10] = 0
    truth[6:9, 6:9] = 2  # inside the hole, not touching the ring
    assert count_particles(annotate_borders(truth)) == 2
    np.testing.assert_array_equal(label_particles(annotate_borders(truth)), truth)


def test_ring_filled_by_a_touching_particle_counts_two():
    truth = np.zeros((11, 11), dtype=np.int32)
    truth[1:10, 1:10] = 7
    truth[4:7, 4:7] = 3  # fills the hole: touches the ring all round
    classes = annotate_borders(truth)
    assert count_particles(classes) == 2
    assert count_particles(classes, connectivity=2) == 2


def test_particle_mask_and_foreground_mask_of_class_map():
    classes = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(particle_mask(classes), [[0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(foreground_mask(classes), [[0, 1, 1], [1, 1, 0]])


def test_masks_of_probabilities_use_the_threshold():
    proba = np.zeros((3, 1, 3), dtype=np.float32)
    proba[:, 0, 0] = [0.2, 0.7, 0.1]  # core at 0.5, not at 0.8
    proba[:, 0, 1] = [0.6, 0.3, 0.1]  # background
    proba[:, 0, 2] = [0.3, 0.2, 0.5]  # border: foreground 0.7
    np.testing.assert_array_equal(particle_mask(proba), [[True, False, False]])
    np.testing.assert_array_equal(particle_mask(proba, threshold=0.8), [[False, False, False]])
    np.testing.assert_array_equal(foreground_mask(proba), [[True, False, True]])
    np.testing.assert_array_equal(foreground_mask(proba, threshold=0.8), [[True, False, False]])


def test_probabilities_and_class_map_give_the_same_labels():
    truth = _touching_squares(3, 10)
    classes = annotate_borders(truth)
    np.testing.assert_array_equal(
        label_particles(_probabilities(classes)), label_particles(classes)
    )


def test_grow_false_labels_only_the_cores():
    truth = _touching_squares(2, 6)
    classes = annotate_borders(truth)
    cores = label_particles(classes, grow=False, min_size=0)
    np.testing.assert_array_equal(cores > 0, classes == 1)
    assert cores.max() == 2
    grown = label_particles(classes)
    assert np.count_nonzero(grown) == np.count_nonzero(truth) > np.count_nonzero(cores)


def test_min_size_drops_small_particles_and_renumbers():
    classes = np.zeros((10, 10), dtype=np.uint8)
    classes[1:3, 1:3] = 1  # 4 pixels
    classes[5:6, 5:8] = 1  # 3 pixels
    assert count_particles(classes, min_size=4) == 1
    assert count_particles(classes, min_size=3) == 2
    assert count_particles(classes, min_size=0) == 2
    labels = label_particles(classes, min_size=4)
    np.testing.assert_array_equal(np.unique(labels), [0, 1])
    assert labels[1, 1] == 1 and labels[5, 5] == 0


def test_connectivity_joins_diagonal_cores():
    classes = np.zeros((6, 6), dtype=np.uint8)
    classes[0:3, 0:3] = 1
    classes[3:6, 3:6] = 1  # touches the first square at a corner only
    assert count_particles(classes, connectivity=1) == 2
    assert count_particles(classes, connectivity=2) == 1


def test_watershed_splits_a_neck_that_components_keep():
    rows, cols = np.mgrid[0:24, 0:40]
    disk1 = (rows - 12) ** 2 + (cols - 10) ** 2 <= 64
    disk2 = (rows - 12) ** 2 + (cols - 29) ** 2 <= 64
    neck = (rows == 12) & (cols >= 10) & (cols <= 29)
    classes = (disk1 | disk2 | neck).astype(np.uint8)
    assert count_particles(classes) == 1
    assert count_particles(classes, method="watershed") == 2


@pytest.mark.parametrize("method", ["components", "watershed"])
def test_diagonal_cores_stay_apart_with_connectivity_one(method):
    # Regression: the watershed labelled its markers with 8-connectivity and
    # so merged two cores that touch only at a corner.
    classes = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(
        label_particles(classes, min_size=0, method=method), [[1, 0, 0], [0, 2, 0]]
    )
    assert count_particles(classes, min_size=0, method=method, connectivity=2) == 1


def test_watershed_keeps_a_small_core_next_to_a_large_one():
    # Regression: h-maxima found no marker in the small core at the right
    # edge, and the watershed dropped that particle.
    classes = np.ones((2, 15), dtype=np.uint8)
    classes[0, 12] = classes[1, 13] = 0
    labels = label_particles(classes, min_size=0, method="watershed")
    assert labels.max() == 2
    assert (labels[0, 13:] == 2).all() and labels[1, 14] == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"threshold": 0.0}, ValueError, r"threshold must lie strictly between 0 and 1; got 0\.0"),
        ({"threshold": 1}, ValueError, r"threshold must lie strictly between 0 and 1; got 1"),
        ({"threshold": True}, TypeError, r"threshold must be a number in \(0, 1\); got True"),
        ({"threshold": "0.5"}, TypeError, r"threshold must be a number in \(0, 1\); got '0\.5'"),
        ({"min_size": -1}, ValueError, r"min_size must be 0 or more pixels; got -1"),
        ({"min_size": 2.5}, TypeError, r"min_size must be a whole number of pixels; got 2\.5"),
        ({"method": "magic"}, ValueError, r"method must be one of \('components', 'watershed'\); got 'magic'"),
        ({"connectivity": 3}, ValueError, r"connectivity must be 1 .* or 2 .*; got 3"),
    ],
)
def test_label_particles_rejects_bad_parameters(kwargs, error, match):
    classes = annotate_borders(_touching_squares(2, 6))
    with pytest.raises(error, match=match):
        label_particles(classes, **kwargs)


@pytest.mark.parametrize(
    "pred, error, match",
    [
        (np.full((4, 4), 3, np.uint8), ValueError,
         r"pred must be a class map with values 0 \(background\), 1 \(particle\) and 2 "
         r"\(border\); got values from 3 to 3\. If these are instance labels"),
        (np.zeros((4, 4), np.float64), TypeError,
         r"pred must be an integer class map; got dtype float64"),
        (np.zeros((4, 4), bool), TypeError, r"pred must be an integer class map; got dtype bool"),
        (np.zeros((2, 4, 4), np.float32), ValueError,
         r"pred must be a class map \(H, W\) or class probabilities \(3, H, W\); got shape \(2, 4, 4\)"),
        (np.zeros((3, 4, 4), np.uint8), TypeError,
         r"pred of shape \(3, H, W\) must hold float probabilities; got dtype uint8"),
        (np.full((3, 2, 2), np.nan, np.float32), ValueError,
         r"pred contains NaN or infinite probabilities"),
        (np.zeros((3, 0, 4), np.float32), ValueError, r"pred is empty \(shape \(3, 0, 4\)\)"),
        (np.zeros((0, 4), np.uint8), ValueError, r"pred is empty \(shape \(0, 4\)\)"),
        (np.zeros((2, 3, 4, 4), np.uint8), ValueError,
         r"pred must be a class map .*; got shape \(2, 3, 4, 4\)\. To process a stack"),
        (np.array([[-1, 0]]), ValueError, r"pred must be a class map .* got values from -1 to 0"),
        (None, TypeError, r"pred must be a numpy array; got None"),
    ],
)
@pytest.mark.parametrize("function", [label_particles, count_particles, particle_mask, foreground_mask])
def test_postprocessing_rejects_bad_predictions(function, pred, error, match):
    with pytest.raises(error, match=match):
        function(pred)


# --------------------------------------------------------------------------
# Properties


@given(instance_maps())
def test_count_recovers_every_particle(example):
    """Touching, edge-cut and nested particles all count: annotate, then count."""
    classes = annotate_borders(example.labels, example.width)
    assert count_particles(classes) == example.n_particles
    # The cores come apart even under 8-connectivity (oracle: skimage).
    assert measure.label(classes == 1, connectivity=2).max() == example.n_particles
    assert count_particles(classes, connectivity=2) == example.n_particles


@given(instance_maps(), st.randoms(use_true_random=False))
def test_relabelling_changes_nothing(example, random):
    labels = example.labels
    ids = np.unique(labels[labels > 0])
    new_ids = random.sample(range(1, 100_000), len(ids))
    lookup = np.zeros(labels.max() + 1, dtype=np.int64)
    lookup[ids] = new_ids
    relabelled = lookup[labels]
    classes = annotate_borders(labels, example.width)
    np.testing.assert_array_equal(annotate_borders(relabelled, example.width), classes)
    np.testing.assert_array_equal(
        label_particles(annotate_borders(relabelled, example.width)), label_particles(classes)
    )


@given(
    instance_maps(),
    st.sampled_from(["flipud", "fliplr", "rot90", "rot180", "rot270", "transpose"]),
)
def test_flips_and_rotations_change_no_count(example, move):
    transform = {
        "flipud": np.flipud,
        "fliplr": np.fliplr,
        "rot90": np.rot90,
        "rot180": lambda a: np.rot90(a, 2),
        "rot270": lambda a: np.rot90(a, 3),
        "transpose": np.transpose,
    }[move]
    labels, width = example.labels, example.width
    moved = np.ascontiguousarray(transform(labels))
    # The border annotation itself commutes with the symmetries of the grid.
    np.testing.assert_array_equal(
        annotate_borders(moved, width), transform(annotate_borders(labels, width))
    )
    assert count_particles(annotate_borders(moved, width)) == example.n_particles


@given(instance_maps(), st.tuples(*[st.integers(0, 6)] * 4))
def test_translation_changes_no_count(example, pads):
    top, bottom, left, right = pads
    moved = np.pad(example.labels, ((top, bottom), (left, right)))
    assert count_particles(annotate_borders(moved, example.width)) == example.n_particles


@given(st.data(), st.integers(0, 3), st.booleans())
def test_disjoint_union_adds_counts(data, gap, side_by_side):
    width = data.draw(st.integers(1, 2))
    first = data.draw(instance_maps(width=width, max_side=32))
    second = data.draw(instance_maps(width=width, max_side=32))
    a, b = first.labels, second.labels.copy()
    b[b > 0] += a.max()  # distinct ids
    axis = 1 if side_by_side else 0
    other = 1 - axis
    size = max(a.shape[other], b.shape[other])

    def fit(x):
        pad = [(0, 0), (0, 0)]
        pad[other] = (0, size - x.shape[other])
        return np.pad(x, pad)

    gap_shape = (size, gap) if side_by_side else (gap, size)
    union = np.concatenate([fit(a), np.zeros(gap_shape, np.int32), fit(b)], axis=axis)
    # gap 0 puts particles of the two maps in contact: still separate particles.
    assert count_particles(annotate_borders(union, width)) == first.n_particles + second.n_particles


@given(
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
    st.sampled_from([np.uint8, np.uint16, np.int32, np.int64]),
    st.integers(1, 4),
)
def test_all_background_counts_zero(shape, dtype, width):
    classes = annotate_borders(np.zeros(shape, dtype=dtype), width)
    assert not classes.any()
    assert count_particles(classes) == 0
    assert count_particles(_probabilities(classes)) == 0
    assert not label_particles(classes, min_size=0).any()


@given(
    class_maps(),
    st.sampled_from(["components", "watershed"]),
    st.sampled_from([1, 2]),
    st.booleans(),
    st.integers(0, 5),
)
def test_label_particles_never_labels_background(classes, method, connectivity, grow, min_size):
    labels = label_particles(
        classes, min_size=min_size, method=method, connectivity=connectivity, grow=grow
    )
    assert labels.shape == classes.shape and labels.dtype == np.int32
    assert not labels[classes == 0].any()
    if not grow:
        assert not labels[classes == 2].any()
    _assert_consecutive(labels)
    if min_size > 0 and labels.max() > 0:
        assert np.bincount(labels.ravel())[1:].min() >= min_size


@given(class_maps(), st.sampled_from([1, 2]))
def test_label_particles_matches_skimage_on_cores(classes, connectivity):
    """Oracle: without growing, the labels are skimage's labels of the cores."""
    expected = measure.label(classes == 1, connectivity=connectivity)
    labels = label_particles(classes, min_size=0, grow=False, connectivity=connectivity)
    np.testing.assert_array_equal(labels, expected)
    # Growing only adds border pixels to the cores: same number of particles,
    # each containing its whole core.
    grown = label_particles(classes, min_size=0, connectivity=connectivity)
    assert grown.max() == expected.max()
    np.testing.assert_array_equal(grown[classes == 1], expected[classes == 1])


@given(probability_maps(), st.floats(0.05, 0.95), st.sampled_from(["components", "watershed"]))
def test_label_particles_on_probabilities_never_labels_background(proba, threshold, method):
    labels = label_particles(proba, threshold=threshold, min_size=0, method=method)
    background = ~(foreground_mask(proba, threshold) | particle_mask(proba, threshold))
    assert not labels[background].any()
    _assert_consecutive(labels)


@given(class_maps(), st.sampled_from([1, 2]))
def test_watershed_loses_no_core(classes, connectivity):
    """The watershed may split a core, but never drops one (oracle: skimage)."""
    cores = measure.label(classes == 1, connectivity=connectivity)
    labels = label_particles(classes, min_size=0, method="watershed", connectivity=connectivity)
    for k in range(1, cores.max() + 1):
        assert labels[cores == k].all()
    assert labels.max() >= cores.max()


@given(instance_maps(rings=False))
def test_watershed_counts_rectangles(example):
    classes = annotate_borders(example.labels, example.width)
    assert count_particles(classes, method="watershed") == example.n_particles


@given(instance_maps(rings=False))
def test_areas_of_rectangles_are_recovered(example):
    """Rectangles come back exactly for border width 1 and 2.

    Growing labels back over the border assigns each border pixel to the
    core it reaches first through the foreground. For width >= 3 the outermost corner pixels of a
    rectangle are nearer to a touching neighbour's core than to their own, so
    at most ``_corner_pixels(width)`` pixels per corner change hands (one for
    width 3); nothing else may move.
    """
    truth, width = example.labels, example.width
    classes = annotate_borders(truth, width)
    recovered = _map_to_truth(label_particles(classes), truth, classes)
    moved = recovered != truth
    assert not moved[classes != 2].any()  # cores and background never move
    assert moved.sum() <= 4 * _corner_pixels(width) * example.n_particles
    if width <= 2:
        np.testing.assert_array_equal(recovered, truth)
        true_areas = np.bincount(truth.ravel())
        assert np.array_equal(np.bincount(recovered.ravel(), minlength=true_areas.size), true_areas)


@given(instance_maps())
def test_particles_with_rings_are_recovered_at_iou_one_half(example):
    """With rings, areas are recovered up to the corners of the holes.

    A particle filling the hole of a ring loses its corner pixels to the ring
    (or the reverse): the ring's core reaches diagonally into the hole's
    corners, as near to those pixels as the inner particle's own core. That is
    a loss of information in the class map, not of the recipe, and it moves
    only border pixels. Every particle still matches its original at
    IoU >= 0.5, so the instance F1 is 1.
    """
    truth, width = example.labels, example.width
    classes = annotate_borders(truth, width)
    labels = label_particles(classes)
    recovered = _map_to_truth(labels, truth, classes)
    assert not (recovered != truth)[classes != 2].any()
    match = match_particles(truth, labels)
    assert match.f1 == 1.0
    assert match.tp == example.n_particles


# --------------------------------------------------------------------------
# Real data


@pytest.mark.emps
def test_emps_round_trip_recovers_particles(emps):
    """annotate_borders then label_particles recovers >= 98 % of EMPS particles."""
    _, y, _ = emps
    tp = fp = fn = 0
    for truth in y:
        match = match_particles(truth, label_particles(annotate_borders(truth)))
        tp, fp, fn = tp + match.tp, fp + match.fp, fn + match.fn
    f1 = 2 * tp / (2 * tp + fp + fn)
    recall = tp / (tp + fn)
    assert f1 >= 0.98
    assert recall >= 0.98
