"""Tests of particleseg.metrics: pixel scores, particle matching, count error."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from particleseg.metrics import (
    ParticleMatch,
    count_error,
    dice_score,
    iou_score,
    match_particles,
    pixel_accuracy,
)


def small_label_maps(shape=None, max_label=5):
    shapes = st.tuples(st.integers(1, 10), st.integers(1, 10)) if shape is None else st.just(shape)
    return shapes.flatmap(
        lambda s: arrays(np.int32, s, elements=st.integers(0, max_label))
    )


def paired_label_maps():
    return st.tuples(st.integers(1, 10), st.integers(1, 10)).flatmap(
        lambda s: st.tuples(small_label_maps(s), small_label_maps(s))
    )


def _brute_force_ious(truth, pred):
    ious = {}
    for t in np.unique(truth[truth > 0]):
        for p in np.unique(pred[pred > 0]):
            a, b = truth == t, pred == p
            ious[t, p] = np.count_nonzero(a & b) / np.count_nonzero(a | b)
    return ious


# --------------------------------------------------------------------------
# Pixel scores


def test_pixel_scores_values():
    y_true = np.array([[0, 1, 1, 1, 0, 0]])
    y_pred = np.array([[0, 0, 1, 1, 1, 0]])
    assert iou_score(y_true, y_pred) == pytest.approx(2 / 4)
    assert dice_score(y_true, y_pred) == pytest.approx(4 / 6)
    assert pixel_accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_pixel_scores_treat_every_positive_value_as_foreground():
    instances = np.array([[0, 3, 3, 9, 0]])
    classes = np.array([[0, 2, 1, 2, 0]], dtype=np.uint8)
    mask = np.array([[False, True, True, True, False]])
    for score in (iou_score, dice_score, pixel_accuracy):
        assert score(instances, classes) == 1.0
        assert score(mask, instances) == 1.0
    assert iou_score(mask, np.array([[0, 0, 0, 5, 5]])) == pytest.approx(1 / 4)


def test_pixel_scores_of_empty_maps():
    empty = np.zeros((3, 3), dtype=bool)
    full = np.ones((3, 3), dtype=bool)
    assert iou_score(empty, empty) == 1.0
    assert dice_score(empty, empty) == 1.0
    assert pixel_accuracy(empty, empty) == 1.0
    assert iou_score(empty, full) == 0.0
    assert dice_score(full, empty) == 0.0
    assert pixel_accuracy(full, empty) == 0.0


@given(paired_label_maps())
def test_pixel_score_properties(pair):
    a, b = pair
    iou = iou_score(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == iou_score(b, a)
    assert dice_score(a, b) == pytest.approx(2 * iou / (1 + iou))
    assert iou_score(a, a) == 1.0
    expected_accuracy = np.mean((a > 0) == (b > 0))
    assert pixel_accuracy(a, b) == pytest.approx(expected_accuracy)
    assert isinstance(iou, float)


@pytest.mark.parametrize("score", [iou_score, dice_score, pixel_accuracy])
@pytest.mark.parametrize(
    "y_true, y_pred, error, match",
    [
        (np.zeros((3, 3), int), np.zeros((3, 4), int), ValueError,
         r"y_pred has shape \(3, 4\) but y_true has shape \(3, 3\)"),
        (np.zeros((3, 3), float), np.zeros((3, 3), int), TypeError,
         r"y_true must be a boolean mask, a class map or an instance map \(bool or integer dtype\); "
         r"got dtype float64\. For probabilities, threshold them first"),
        (np.zeros((3, 3), int), np.full((3, 3), np.nan), TypeError, r"y_pred must be a boolean mask, .* got dtype float64"),
        (np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int), ValueError,
         r"y_true must be a 2-D map \(H, W\); got shape \(2, 3, 3\)\. To process a stack"),
        (np.zeros((0, 3), int), np.zeros((0, 3), int), ValueError, r"y_true is empty \(shape \(0, 3\)\)"),
        (np.zeros((3, 3), int), -np.ones((3, 3), int), ValueError, r"y_pred contains negative values \(minimum -1\)"),
        (None, np.zeros((3, 3), int), TypeError, r"y_true must be a numpy array; got None"),
    ],
)
def test_pixel_scores_reject_bad_input(score, y_true, y_pred, error, match):
    with pytest.raises(error, match=match):
        score(y_true, y_pred)


# --------------------------------------------------------------------------
# match_particles: examples


def test_match_counts_and_pairs():
    truth = np.array([[1, 1, 0, 2, 2, 0, 3]])
    pred = np.array([[5, 5, 0, 7, 0, 0, 0]])
    match = match_particles(truth, pred)
    assert isinstance(match, ParticleMatch)
    assert (match.tp, match.fp, match.fn) == (2, 0, 1)
    assert (match.n_true, match.n_pred) == (3, 2)
    assert match.precision == 1.0
    assert match.recall == pytest.approx(2 / 3)
    assert match.f1 == pytest.approx(0.8)
    np.testing.assert_array_equal(match.pairs, [[1, 5], [2, 7]])
    np.testing.assert_allclose(match.ious, [1.0, 0.5])
    assert match.iou_threshold == 0.5


def test_match_threshold_is_inclusive():
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 0, 0]])  # IoU exactly 0.5
    assert match_particles(truth, pred).tp == 1
    assert match_particles(truth, pred, iou_threshold=0.51).tp == 0


def test_match_split_particle_is_one_miss_and_two_false_detections():
    truth = np.array([[4, 4, 4, 4, 4, 4]])
    pred = np.array([[1, 1, 1, 2, 2, 2]])  # each half has IoU 0.5
    match = match_particles(truth, pred, iou_threshold=0.6)
    assert (match.tp, match.fp, match.fn) == (0, 2, 1)
    assert (match.precision, match.recall, match.f1) == (0.0, 0.0, 0.0)
    assert match.pairs.shape == (0, 2) and match.ious.shape == (0,)


def test_match_is_one_to_one_and_maximises_the_number_of_pairs():
    # Greedy matching by largest IoU would take (1, 9) at 0.67 and leave
    # particle 2 alone; the Hungarian matching finds two pairs.
    truth = np.array([[1] * 10 + [2] * 2])
    pred = np.array([[8] * 2 + [9] * 10])
    ious = _brute_force_ious(truth, pred)
    assert ious[1, 9] == pytest.approx(8 / 12) and ious[1, 8] == ious[2, 9] == pytest.approx(0.2)
    match = match_particles(truth, pred, iou_threshold=0.2)
    assert match.tp == 2
    np.testing.assert_array_equal(match.pairs, [[1, 8], [2, 9]])
    np.testing.assert_allclose(match.ious, [0.2, 0.2])
    assert match_particles(truth, pred).tp == 1


def test_match_of_empty_maps():
    empty = np.zeros((4, 4), dtype=np.int32)
    some = empty.copy()
    some[1:3, 1:3] = 1
    both_empty = match_particles(empty, empty)
    assert (both_empty.tp, both_empty.fp, both_empty.fn) == (0, 0, 0)
    assert (both_empty.precision, both_empty.recall, both_empty.f1) == (1.0, 1.0, 1.0)
    nothing_found = match_particles(some, empty)
    assert (nothing_found.fn, nothing_found.precision, nothing_found.recall, nothing_found.f1) == (1, 0.0, 0.0, 0.0)
    nothing_there = match_particles(empty, some)
    assert (nothing_there.fp, nothing_there.precision, nothing_there.recall, nothing_there.f1) == (1, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64, np.uint64])
def test_match_accepts_any_integer_labels_and_huge_ids(dtype):
    truth = np.array([[1, 1, 0, 2, 2]], dtype=dtype)
    pred = np.array([[0, 0, 0, 200, 200]], dtype=dtype)
    assert match_particles(truth, pred).tp == 1
    huge = np.array([[0, 0, 0, 2**40, 2**40]], dtype=np.int64)
    match = match_particles(truth.astype(np.int64), huge)
    assert match.tp == 1 and match.pairs.tolist() == [[2, 2**40]]


def test_match_result_is_immutable():
    match = match_particles(np.ones((2, 2), int), np.ones((2, 2), int))
    with pytest.raises(dataclasses.FrozenInstanceError):
        match.tp = 5


def test_match_is_fast_for_500_particles():
    truth = np.zeros((1000, 1000), dtype=np.int32)
    for k in range(500):
        row, col = divmod(k, 20)
        truth[row * 40:row * 40 + 38, col * 50:col * 50 + 47] = k + 1
    pred = np.roll(truth, 3, axis=1) * 7  # shifted, other ids
    start = time.perf_counter()
    match = match_particles(truth, pred)
    elapsed = time.perf_counter() - start
    assert match.tp == 500 and match.f1 == 1.0
    assert elapsed < 1.0  # about 0.03 s on one core


@pytest.mark.parametrize(
    "true_labels, pred_labels, kwargs, error, match",
    [
        (np.zeros((3, 3), int), np.zeros((4, 3), int), {}, ValueError,
         r"pred_labels has shape \(4, 3\) but true_labels has shape \(3, 3\)"),
        (np.zeros((3, 3)), np.zeros((3, 3), int), {}, TypeError,
         r"true_labels must be an integer instance map; got dtype float64"),
        (np.zeros((3, 3), int), np.zeros((3, 3), bool), {}, TypeError,
         r"pred_labels must be an integer instance map; got dtype bool\. For a boolean mask, label it first"),
        (np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int), {}, ValueError,
         r"true_labels must be a 2-D instance map \(H, W\); got shape \(2, 3, 3\)"),
        (np.zeros((3, 0), int), np.zeros((3, 0), int), {}, ValueError, r"true_labels is empty"),
        (np.zeros((3, 3), int), np.full((3, 3), -2), {}, ValueError,
         r"pred_labels contains negative labels \(minimum -2\)"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"iou_threshold": 0}, ValueError,
         r"iou_threshold must lie in \(0, 1\] \(0\.5 is usual\); got 0"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"iou_threshold": 1.5}, ValueError,
         r"iou_threshold must lie in \(0, 1\] .*; got 1\.5"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"iou_threshold": "0.5"}, TypeError,
         r"iou_threshold must be a number in \(0, 1\]; got '0\.5'"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"iou_threshold": True}, TypeError,
         r"iou_threshold must be a number in \(0, 1\]; got True"),
    ],
)
def test_match_rejects_bad_input(true_labels, pred_labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        match_particles(true_labels, pred_labels, **kwargs)


# --------------------------------------------------------------------------
# match_particles: properties


@given(small_label_maps(max_label=8), st.randoms(use_true_random=False))
def test_match_with_relabelled_self_is_perfect(labels, random):
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(9, dtype=np.int64)
    lookup[ids] = random.sample(range(1, 1000), len(ids))
    match = match_particles(labels, lookup[labels])
    assert match.tp == len(ids) and match.fp == match.fn == 0
    assert match.f1 == 1.0
    np.testing.assert_array_equal(match.pairs[:, 0], ids)
    np.testing.assert_array_equal(match.pairs[:, 1], lookup[ids])
    np.testing.assert_array_equal(match.ious, np.ones(len(ids)))


@given(paired_label_maps(), st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]))
def test_match_agrees_with_brute_force(pair, threshold):
    truth, pred = pair
    match = match_particles(truth, pred, iou_threshold=threshold)
    ious = _brute_force_ious(truth, pred)
    n_true, n_pred = len(np.unique(truth[truth > 0])), len(np.unique(pred[pred > 0]))
    assert (match.n_true, match.n_pred) == (n_true, n_pred)
    # Every pair is a real candidate with its true IoU, and no particle is
    # used twice.
    for (t, p), iou in zip(match.pairs.tolist(), match.ious):
        assert iou == pytest.approx(ious[t, p]) and iou >= threshold
    assert len(set(match.pairs[:, 0])) == len(set(match.pairs[:, 1])) == match.tp
    # Oracle for the number of pairs: a maximum bipartite matching.
    t_ids, p_ids = np.unique(truth[truth > 0]), np.unique(pred[pred > 0])
    graph = np.array([[ious[t, p] >= threshold for p in p_ids] for t in t_ids], dtype=np.int8)
    if graph.size:
        best = np.count_nonzero(maximum_bipartite_matching(csr_matrix(graph), perm_type="column") >= 0)
    else:
        best = 0
    assert match.tp == best
    # Swapping truth and prediction swaps misses and false detections.
    swapped = match_particles(pred, truth, iou_threshold=threshold)
    assert (swapped.tp, swapped.fp, swapped.fn) == (match.tp, match.fn, match.fp)
    assert swapped.f1 == pytest.approx(match.f1)


# --------------------------------------------------------------------------
# count_error


def test_count_error_values():
    assert count_error(40, 44) == pytest.approx(0.1)
    assert count_error(40, 36) == pytest.approx(0.1)
    assert count_error(7, 7) == 0.0
    assert count_error(np.int64(10), np.int32(0)) == 1.0
    assert isinstance(count_error(10, 5), float)


def test_count_error_without_true_particles():
    assert count_error(0, 0) == 0.0
    assert count_error(0, 2) == float("inf")


@pytest.mark.parametrize(
    "n_true, n_pred, error, match",
    [
        (-1, 3, ValueError, r"n_true must be 0 or more particles; got -1"),
        (3, -2, ValueError, r"n_pred must be 0 or more particles; got -2"),
        (3.5, 3, TypeError, r"n_true must be a whole number of particles \(int\); got 3\.5"),
        (3, None, TypeError, r"n_pred must be a whole number of particles \(int\); got None"),
        (True, 3, TypeError, r"n_true must be a whole number of particles \(int\); got True"),
        (np.zeros((2, 2), int), 3, TypeError, r"n_true must be a whole number of particles \(int\); got array"),
    ],
)
def test_count_error_rejects_bad_input(n_true, n_pred, error, match):
    with pytest.raises(error, match=match):
        count_error(n_true, n_pred)
