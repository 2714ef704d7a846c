"""Quality scores: pixel overlap, particle matching and count error.

Two kinds of score answer two questions:

* *Did the model find the right pixels?* :func:`iou_score`,
  :func:`dice_score` and :func:`pixel_accuracy` compare the particle
  foreground of two maps. The inputs may be instance maps, class maps or
  boolean masks: in every case the foreground is ``value > 0`` (for a class
  map, particle core and border together).
* *Did it find the right particles?* :func:`match_particles` pairs true and
  predicted particles one to one and reports precision, recall and F1;
  :func:`count_error` compares only the numbers of particles.

All functions work on one image; to score a data set, sum the ``tp``, ``fp``
and ``fn`` of the per-image matches before computing precision and recall.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._validation import check_count, check_instance_map, check_mask, check_same_shape

__all__ = [
    "iou_score",
    "dice_score",
    "pixel_accuracy",
    "match_particles",
    "ParticleMatch",
    "count_error",
]


def _foregrounds(y_true, y_pred):
    true = check_mask(y_true, "y_true")
    pred = check_mask(y_pred, "y_pred")
    check_same_shape(true, pred, "y_true", "y_pred")
    return true > 0, pred > 0


def iou_score(y_true, y_pred) -> float:
    """Intersection over union of the particle foregrounds of two maps.

    Parameters
    ----------
    y_true : ndarray of bool or int, shape (H, W)
        The reference: a boolean mask, a class map (0 background, 1 particle,
        2 border) or an instance map. Foreground is every pixel with a value
        greater than 0.
    y_pred : ndarray of bool or int, shape (H, W)
        The prediction, of the same kinds and shape as ``y_true``.

    Returns
    -------
    iou : float
        ``|true & pred| / |true | pred|`` between 0 and 1. Two maps without
        any foreground agree perfectly: their IoU is 1.0.

    See Also
    --------
    dice_score : The Dice coefficient, ``2 * iou / (1 + iou)``.
    match_particles : Scores per particle rather than per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.metrics import iou_score
    >>> y_true = np.array([[0, 1, 1, 0]])
    >>> y_pred = np.array([[0, 0, 2, 2]])
    >>> iou_score(y_true, y_pred)
    0.3333333333333333
    >>> iou_score(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    1.0
    """
    true, pred = _foregrounds(y_true, y_pred)
    union = np.count_nonzero(true | pred)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(true & pred) / union)


def dice_score(y_true, y_pred) -> float:
    """Dice coefficient (F1 over pixels) of the particle foregrounds of two maps.

    Parameters
    ----------
    y_true : ndarray of bool or int, shape (H, W)
        The reference: a boolean mask, a class map or an instance map;
        foreground is ``value > 0``.
    y_pred : ndarray of bool or int, shape (H, W)
        The prediction, of the same shape.

    Returns
    -------
    dice : float
        ``2 |true & pred| / (|true| + |pred|)`` between 0 and 1; 1.0 when
        neither map has foreground.

    See Also
    --------
    iou_score : Intersection over union.

    Examples
    --------
    Dice weighs the overlap twice, so it is never below the IoU:

    >>> import numpy as np
    >>> from particleseg.metrics import dice_score, iou_score
    >>> y_true = np.array([[0, 1, 1, 0]])
    >>> y_pred = np.array([[0, 0, 1, 1]])
    >>> dice_score(y_true, y_pred), iou_score(y_true, y_pred)
    (0.5, 0.3333333333333333)
    """
    true, pred = _foregrounds(y_true, y_pred)
    total = np.count_nonzero(true) + np.count_nonzero(pred)
    if total == 0:
        return 1.0
    return float(2 * np.count_nonzero(true & pred) / total)


def pixel_accuracy(y_true, y_pred) -> float:
    """Fraction of pixels on which two maps agree about particle or background.

    Parameters
    ----------
    y_true, y_pred : ndarray of bool or int, shape (H, W)
        The reference and the prediction, as for :func:`iou_score`.

    Returns
    -------
    accuracy : float
        Between 0 and 1. Beware that on images that are mostly background a
        high accuracy says little; prefer :func:`iou_score`.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.metrics import pixel_accuracy
    >>> pixel_accuracy(np.array([[0, 1, 1, 0]]), np.array([[0, 0, 1, 0]]))
    0.75
    """
    true, pred = _foregrounds(y_true, y_pred)
    return float(np.count_nonzero(true == pred) / true.size)


@dataclass(frozen=True)
class ParticleMatch:
    """The result of :func:`match_particles`.

    Attributes
    ----------
    tp : int
        True positives: matched pairs (one true and one predicted particle
        whose IoU is at least the threshold).
    fp : int
        False positives: predicted particles left without a match.
    fn : int
        False negatives: true particles left without a match.
    precision : float
        ``tp / (tp + fp)``.
    recall : float
        ``tp / (tp + fn)``.
    f1 : float
        ``2 tp / (2 tp + fp + fn)``. For all three ratios a zero denominator
        gives 1.0 when both maps are empty (nothing to find, nothing found) and
        0.0 otherwise.
    pairs : ndarray of int, shape (tp, 2)
        The matched ``(true_label, pred_label)`` pairs, in the label values of
        the inputs, sorted by true label.
    ious : ndarray of float, shape (tp,)
        The IoU of each matched pair.
    iou_threshold : float
        The threshold used.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.metrics import match_particles
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> found = np.array([[5, 5, 0, 0, 0]])
    >>> m = match_particles(truth, found)
    >>> m.tp, m.fn, m.fp, m.recall
    (1, 1, 0, 0.5)
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    pairs: np.ndarray
    ious: np.ndarray
    iou_threshold: float

    @property
    def n_true(self) -> int:
        """Number of true particles."""
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        """Number of predicted particles."""
        return self.tp + self.fp


def _ratio(numerator, denominator, both_empty):
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return float(numerator / denominator)


def _compact(labels):
    """Renumber the labels present to 0..n (0 stays 0); return them and the ids."""
    flat = labels.ravel()
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        flat = flat.astype(np.intp, copy=False)
        present = np.bincount(flat, minlength=1) > 0
        present[0] = True
        ids = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        return lookup[flat], ids
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
        inverse = inverse + 1
    return inverse.ravel(), ids


def _check_iou_threshold(iou_threshold):
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, numbers.Real):
        raise TypeError(f"iou_threshold must be a number in (0, 1]; got {iou_threshold!r}.")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(
            f"iou_threshold must lie in (0, 1] (0.5 is usual); got {iou_threshold}."
        )
    return float(iou_threshold)


def match_particles(true_labels, pred_labels, iou_threshold: float = 0.5) -> ParticleMatch:
    """Pair true and predicted particles one to one and score the detection.

    The IoU of every true particle with every predicted particle is computed
    from their contingency table. Pairs with an IoU of at least
    ``iou_threshold`` are candidates; the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) then picks the largest set
    of candidate pairs in which no particle appears twice, and among those the
    one with the largest total IoU. With the usual threshold 0.5 or more a
    particle has at most one candidate partner, so the matching is unique.

    Parameters
    ----------
    true_labels : ndarray of int, shape (H, W)
        The true instance map: 0 background, ``k > 0`` particle k. The labels
        need not be consecutive.
    pred_labels : ndarray of int, shape (H, W)
        The predicted instance map, for example from :func:`label_particles`.
    iou_threshold : float, default=0.5
        Smallest IoU, in (0, 1], at which two particles count as the same.

    Returns
    -------
    match : ParticleMatch
        ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, the matched
        label ``pairs`` and their ``ious``.

    See Also
    --------
    count_error : Compares only the numbers of particles.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.metrics import match_particles
    >>> truth = np.array([[1, 1, 0, 2, 2, 0, 3]])
    >>> pred = np.array([[5, 5, 0, 7, 0, 0, 0]])
    >>> match = match_particles(truth, pred)
    >>> match.tp, match.fp, match.fn
    (2, 0, 1)
    >>> match.pairs.tolist(), match.ious.tolist()
    ([[1, 5], [2, 7]], [1.0, 0.5])
    >>> round(match.f1, 3)
    0.8
    """
    truth = check_instance_map(true_labels, "true_labels")
    pred = check_instance_map(pred_labels, "pred_labels")
    check_same_shape(truth, pred, "true_labels", "pred_labels")
    iou_threshold = _check_iou_threshold(iou_threshold)

    t_idx, t_ids = _compact(truth)
    p_idx, p_ids = _compact(pred)
    n_true, n_pred = len(t_ids) - 1, len(p_ids) - 1
    true_areas = np.bincount(t_idx, minlength=n_true + 1)
    pred_areas = np.bincount(p_idx, minlength=n_pred + 1)

    # Overlap of every (true, pred) pair that shares pixels, from the pixels
    # that are foreground in both maps. Dense table when it is small, sorted
    # unique pair keys otherwise.
    both = (t_idx > 0) & (p_idx > 0)
    keys = t_idx[both].astype(np.int64) * (n_pred + 1) + p_idx[both]
    if (n_true + 1) * (n_pred + 1) <= 4_000_000:
        table = np.bincount(keys, minlength=(n_true + 1) * (n_pred + 1))
        keys = np.flatnonzero(table)
        overlap = table[keys]
    else:
        keys, overlap = np.unique(keys, return_counts=True)
    rows, cols = np.divmod(keys, n_pred + 1)
    ious = overlap / (true_areas[rows] + pred_areas[cols] - overlap)
    candidate = ious >= iou_threshold
    rows, cols, ious = rows[candidate], cols[candidate], ious[candidate]

    if len(rows):
        # Hungarian matching on the particles that have a candidate: first
        # as many pairs as possible, then the largest total IoU.
        r_ids, r_pos = np.unique(rows, return_inverse=True)
        c_ids, c_pos = np.unique(cols, return_inverse=True)
        iou_matrix = np.zeros((len(r_ids), len(c_ids)))
        iou_matrix[r_pos, c_pos] = ious
        # Each pair is worth 1 plus less than 1 / (2 * most pairs possible), so
        # no gain in IoU can outweigh one more pair.
        weight = 1.0 / (2.0 * min(iou_matrix.shape))
        score = np.where(iou_matrix > 0, 1.0 + weight * iou_matrix, 0.0)
        r_sel, c_sel = linear_sum_assignment(score, maximize=True)
        chosen = score[r_sel, c_sel] > 0
        r_sel, c_sel = r_sel[chosen], c_sel[chosen]
        matched_ious = iou_matrix[r_sel, c_sel]
        pairs = np.column_stack([t_ids[r_ids[r_sel]], p_ids[c_ids[c_sel]]])
        order = np.argsort(pairs[:, 0], kind="stable")
        pairs, matched_ious = pairs[order], matched_ious[order]
    else:
        pairs = np.zeros((0, 2), dtype=np.int64)
        matched_ious = np.zeros(0)

    tp = len(pairs)
    fp, fn = n_pred - tp, n_true - tp
    both_empty = n_true == 0 and n_pred == 0
    return ParticleMatch(
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, n_pred, both_empty),
        recall=_ratio(tp, n_true, both_empty),
        f1=_ratio(2 * tp, n_true + n_pred, both_empty),
        pairs=pairs,
        ious=matched_ious,
        iou_threshold=iou_threshold,
    )


def count_error(n_true, n_pred) -> float:
    """Relative error of a particle count: ``|n_pred - n_true| / n_true``.

    Parameters
    ----------
    n_true : int
        The true number of particles, 0 or more.
    n_pred : int
        The counted (predicted) number of particles, 0 or more.

    Returns
    -------
    error : float
        0.0 for a perfect count, 0.1 for a count 10 % off (too high or too
        low). When ``n_true`` is 0 there is no scale to be relative to: the
        error is 0.0 if ``n_pred`` is 0 too and ``inf`` otherwise, so that an
        average over images shows that particles were found where there are
        none. Use ``abs(n_pred - n_true)`` for an absolute error instead.

    See Also
    --------
    match_particles : Checks that the counted particles are the right ones.

    Examples
    --------
    >>> from particleseg.metrics import count_error
    >>> count_error(40, 44)
    0.1
    >>> count_error(0, 0), count_error(0, 3)
    (0.0, inf)
    """
    n_true = check_count(n_true, "n_true")
    n_pred = check_count(n_pred, "n_pred")
    if n_true == 0:
        return 0.0 if n_pred == 0 else float("inf")
    return abs(n_pred - n_true) / n_true
