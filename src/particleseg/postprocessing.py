"""From network output to particles: masks, instance labels and counts.

The recipe: border pixels count as background, the particle-core mask is
thresholded and its connected components are labelled, so that touching
particles, separated by border pixels, come apart. Each label is then grown
back over the border pixels next to it, so particle areas are not shrunk by the
border width.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation

from ._validation import check_prediction
from .annotation import BORDER, PARTICLE

__all__ = [
    "particle_mask",
    "foreground_mask",
    "label_particles",
    "count_particles",
    "particle_confidence",
]

#: Default smallest particle area in pixels kept by :func:`label_particles`.
DEFAULT_MIN_SIZE = 4

_METHODS = ("components", "watershed")


def _check_threshold(threshold):
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be a number in (0, 1); got {threshold!r}.")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1; got {threshold}.")


def particle_mask(pred, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask of particle cores: border and background are excluded.

    Parameters
    ----------
    pred : ndarray
        A class map (H, W) with 0 background, 1 particle, 2 border, or class
        probabilities (3, H, W) in that order, as returned by
        :meth:`ParticleSegmenter.predict_proba`.
    threshold : float, default=0.5
        For probabilities: a pixel is core when its particle probability is at
        least ``threshold``. Ignored for a class map.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        True on particle cores, False on borders and background.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.postprocessing import particle_mask
    >>> particle_mask(np.array([[0, 1, 2], [1, 1, 2]], dtype=np.uint8))
    array([[False,  True, False],
           [ True,  True, False]])
    """
    _check_threshold(threshold)
    arr = check_prediction(pred)
    if arr.ndim == 2:
        return arr == PARTICLE
    return arr[PARTICLE] >= threshold


def foreground_mask(pred, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask of all particle pixels, core and border together.

    Parameters
    ----------
    pred : ndarray
        A class map (H, W) or class probabilities (3, H, W).
    threshold : float, default=0.5
        For probabilities: a pixel is foreground when its particle plus border
        probability is at least ``threshold``. Ignored for a class map.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        True on particle cores and borders, False on background.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.postprocessing import foreground_mask
    >>> foreground_mask(np.array([[0, 1, 2]], dtype=np.uint8))
    array([[False,  True,  True]])
    """
    _check_threshold(threshold)
    arr = check_prediction(pred)
    if arr.ndim == 2:
        return arr > 0
    return (arr[PARTICLE] + arr[BORDER]) >= threshold


def _check_min_size(min_size):
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)):
        raise TypeError(f"min_size must be a whole number of pixels; got {min_size!r}.")
    if min_size < 0:
        raise ValueError(f"min_size must be 0 or more pixels; got {min_size}.")


def _check_connectivity(connectivity):
    if connectivity not in (1, 2):
        raise ValueError(
            "connectivity must be 1 (pixels touching by an edge) or 2 (by an edge or "
            f"a corner); got {connectivity!r}."
        )


def _watershed_markers(core, min_distance, connectivity):
    """One marker per local maximum of the distance to the core's edge.

    Markers are labelled with the same ``connectivity`` as the cores, so that
    cores that are separate under it (for example two cores touching only at a
    corner, with ``connectivity=1``) never share a marker, hence a label.
    """
    distance = ndi.distance_transform_edt(core)
    # h-maxima: a maximum must stand out by more than one pixel of distance,
    # so the ragged ridge of an elongated particle does not make many markers.
    maxima = morphology.h_maxima(distance, 1.0) if distance.max() > 1.0 else core
    markers = measure.label(maxima & core, connectivity=connectivity)
    if min_distance > 0:
        # Merge markers that lie closer together than min_distance.
        grown = ndi.binary_dilation(markers > 0, structure=morphology.disk(min_distance))
        markers = measure.label(grown & core, connectivity=connectivity)
    # h_maxima can miss the maximum of a small core (the image edge and the
    # discrete distances make its height fall short of h); such a core is
    # then its own marker, so that no particle is lost.
    components = measure.label(core, connectivity=connectivity)
    marked = np.zeros(components.max() + 1, dtype=bool)
    marked[components[markers > 0]] = True
    unmarked = ~marked[components] & core
    if unmarked.any():
        markers = np.where(unmarked, components + markers.max(), markers)
    return markers, distance


def grow_labels(labels, mask):
    """Grow labels over ``mask``, breadth first over 8-neighbours.

    Each pixel of ``mask`` joins the label it is closest to *through the
    mask* (chessboard steps): a label never crosses pixels outside the mask,
    and mask pixels not connected to any label stay 0. A pixel as close to
    two labels joins the smaller one, so the result does not depend on
    anything but the pixels (not on scan order, nor on how the image is cut
    into chunks: see :func:`particleseg.mosaic.label_mosaic`).

    Only the pixels next to the growing front are visited, so the cost grows
    with the number of pixels labelled, not with the image.
    """
    out = np.pad(np.asarray(labels), 1)
    fill = np.pad(np.asarray(mask, dtype=bool) & (np.asarray(labels) == 0), 1)
    width = out.shape[1]
    offsets = np.array([-width - 1, -width, -width + 1, -1, 1, width - 1, width, width + 1])
    flat_out, flat_fill = out.reshape(-1), fill.reshape(-1)
    # The first front: labelled pixels with a pixel to fill next to them.
    near = ndi.binary_dilation(fill, structure=np.ones((3, 3), bool))
    front = np.flatnonzero(near.reshape(-1) & (flat_out > 0))
    while front.size:
        targets = (front[:, None] + offsets).reshape(-1)
        sources = np.repeat(flat_out[front], len(offsets))
        keep = flat_fill[targets]
        targets, sources = targets[keep], sources[keep]
        if not targets.size:
            break
        order = np.lexsort((sources, targets))  # by target, then smallest label first
        targets, sources = targets[order], sources[order]
        first = np.ones(len(targets), dtype=bool)
        first[1:] = targets[1:] != targets[:-1]
        front = targets[first]
        flat_out[front] = sources[first]
        flat_fill[front] = False
    return out[1:-1, 1:-1].astype(np.int32, copy=False)


def label_particles(
    pred,
    threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
    *,
    method: str = "components",
    connectivity: int = 1,
    grow: bool = True,
    min_distance: int = 0,
    min_confidence: float | None = None,
    proba=None,
    calibration=None,
) -> np.ndarray:
    """Label each particle of a predicted class map with its own number.

    The particle cores (class 1; border and background excluded) are labelled
    as connected components; with ``grow=True`` each label then grows back over
    the foreground (core or border) pixels closest to it, so the particle
    area includes its border (:func:`grow_labels`). Particles smaller than ``min_size`` pixels are
    dropped and the labels are renumbered 1..n.

    Parameters
    ----------
    pred : ndarray
        A class map (H, W) with 0 background, 1 particle, 2 border, or class
        probabilities (3, H, W).
    threshold : float, default=0.5
        Probability threshold for probabilities (see :func:`particle_mask`).
    min_size : int, default=4
        Smallest particle area, in pixels, that is kept (after growing).
    method : {"components", "watershed"}, default="components"
        ``"components"`` labels connected components of the core mask (the
        published recipe). ``"watershed"`` additionally splits cores that are
        still joined by a thin neck: markers at the maxima of the distance
        transform of the cores, flooded over the cores with a watershed.
    connectivity : {1, 2}, default=1
        Pixel connectivity of a core: 1 joins pixels that share an edge, 2 also
        pixels that share a corner.
    grow : bool, default=True
        Grow labels back over border pixels. With ``False`` only cores are
        labelled (areas shrink by about the border width).
    min_distance : int, default=0
        For ``method="watershed"``: markers closer than this many pixels are
        merged, which prevents over-splitting of large, irregular particles.
    min_confidence : float in [0, 1], optional
        Drop particles whose confidence (see :func:`particle_confidence`) is
        below this. Needs class probabilities: ``pred`` itself, or ``proba``.
    proba : ndarray (3, H, W), optional
        The class probabilities ``pred`` was decided from, to score
        confidence when ``pred`` is a class map.
    calibration : dict, optional
        Maps raw scores to calibrated confidences (see
        :func:`particle_confidence`).

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        Instance map: 0 background, 1..n particles. No background pixel of
        ``pred`` is ever labelled.

    See Also
    --------
    count_particles : Only the number of particles.
    annotate_borders : The inverse, from instances to a class map.

    Notes
    -----
    ``label_particles(annotate_borders(labels, width))`` finds every particle
    that is at least ``2 * width + 1`` pixels thick and has no thinner neck,
    touching or not. Growing assigns each border pixel to the core it reaches
    first through the foreground (breadth-first over 8-neighbours, a
    chessboard distance; a pixel as close to two cores joins the one with
    the smaller label), so the areas come back exactly for axis-aligned
    rectangles when ``width`` is 1 or 2; with wider borders, and at the
    inner corners of a ring, a few corner pixels can go to a touching
    neighbour. On the EMPS labels the matched particles keep a mean IoU of
    0.998 with a 1-pixel border.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.annotation import annotate_borders
    >>> from particleseg.postprocessing import label_particles
    >>> truth = np.zeros((6, 10), dtype=int)
    >>> truth[1:5, 1:5] = 1
    >>> truth[1:5, 5:9] = 2
    >>> labels = label_particles(annotate_borders(truth))
    >>> int(labels.max())
    2
    >>> bool((labels == truth).all())
    True
    """
    _check_min_size(min_size)
    _check_connectivity(connectivity)
    if min_confidence is not None:
        _check_min_confidence(min_confidence)
        if proba is None and np.ndim(pred) != 3:
            raise ValueError(
                "min_confidence needs the class probabilities: pass pred as probabilities "
                "(3, H, W), or the class map together with proba=seg.predict_proba(image)."
            )
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    arr = check_prediction(pred)
    core = particle_mask(arr, threshold)
    foreground = foreground_mask(arr, threshold) | core

    if method == "components":
        labels = measure.label(core, connectivity=connectivity).astype(np.int32)
    else:
        markers, distance = _watershed_markers(core, int(min_distance), connectivity)
        labels = segmentation.watershed(
            -distance, markers, mask=core, connectivity=connectivity
        ).astype(np.int32)

    if grow and labels.max() > 0:
        labels = grow_labels(labels, foreground)

    labels, _ = _keep_and_renumber(labels, min_size, min_confidence,
                                   arr if proba is None else proba, calibration)
    return labels


def _check_min_confidence(value):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not 0.0 <= value <= 1.0):
        raise ValueError(f"min_confidence must be a number in [0, 1]; got {value!r}.")


def _keep_and_renumber(labels, min_size, min_confidence, proba, calibration,
                       confidence=False):
    """Drop the particles below ``min_size`` or ``min_confidence``, renumber 1..n.

    One look-up over the map does both. Returns ``(labels, scores)``: with
    ``confidence=True``, the confidence of each kept particle (in the order of
    its new label), else None.
    """
    _check_min_size(min_size)
    if min_confidence is not None:
        _check_min_confidence(min_confidence)
    n = int(labels.max()) if labels.size else 0
    # Values absent from the map (a watershed may skip some) get no number.
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= max(min_size, 1)
    keep[0] = False
    screen = min_confidence is not None and min_confidence > 0
    scores = None
    if n > 0 and (screen or confidence):
        # A particle's confidence depends on its own pixels only: scored once,
        # before the others are dropped.
        scores = particle_confidence(labels, proba, calibration)
        if screen:
            keep[1:] &= scores >= min_confidence
    renumber = np.zeros(n + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels = renumber[labels]
    if not confidence:
        return labels, None
    return labels, (scores[keep[1:]] if scores is not None else np.zeros(0, dtype=np.float64))


def particle_confidence(labels, proba, calibration=None) -> np.ndarray:
    """How sure the network is of each particle, a number in [0, 1].

    The raw score of a particle is the mean, over its pixels, of the
    probability that the pixel belongs to a particle (core or border). A
    ``calibration`` maps raw scores to calibrated confidences: among
    particles of confidence near ``c``, about a fraction ``c`` are true
    particles. The bundled model carries its calibration
    (``ParticleSegmenter.confidence_calibration_``), measured on held-out
    images.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance map with labels 1..n (as :func:`label_particles` returns).
    proba : ndarray of float, shape (3, H, W)
        Class probabilities: background, particle, border.
    calibration : dict, optional
        ``{"raw": [...], "calibrated": [...]}``, increasing knots of a
        piecewise-linear map from raw score to confidence. None: raw scores.

    Returns
    -------
    confidence : ndarray of float64, shape (n,)
        ``confidence[k - 1]`` is the confidence of particle ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.postprocessing import particle_confidence
    >>> labels = np.array([[1, 1, 0, 2]])
    >>> proba = np.array([[[0.1, 0.3, 0.9, 0.6]],    # background
    ...                   [[0.8, 0.6, 0.1, 0.3]],    # particle
    ...                   [[0.1, 0.1, 0.0, 0.1]]])   # border
    >>> particle_confidence(labels, proba).round(2)
    array([0.8, 0.4])
    """
    labels = np.asarray(labels)
    proba = np.asarray(proba)
    if proba.ndim != 3 or proba.shape[0] != 3 or proba.shape[1:] != labels.shape:
        raise ValueError(
            f"proba must have shape (3, H, W) matching labels {labels.shape}; got {proba.shape}."
        )
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    flat = labels.ravel()
    foreground = (proba[PARTICLE] + proba[BORDER]).ravel()
    sums = np.bincount(flat, weights=foreground, minlength=n + 1)[1:]
    counts = np.bincount(flat, minlength=n + 1)[1:]
    raw = np.clip(sums / np.maximum(counts, 1), 0.0, 1.0)
    if calibration is None:
        return raw
    knots = np.asarray(calibration["raw"], dtype=np.float64)
    values = np.asarray(calibration["calibrated"], dtype=np.float64)
    return np.clip(np.interp(raw, knots, values), 0.0, 1.0)


def count_particles(pred, threshold: float = 0.5, min_size: int = DEFAULT_MIN_SIZE, **kwargs) -> int:
    """Count the particles in a predicted class map.

    Parameters
    ----------
    pred : ndarray
        A class map (H, W) or class probabilities (3, H, W).
    threshold : float, default=0.5
        Probability threshold (see :func:`label_particles`).
    min_size : int, default=4
        Smallest particle area in pixels that counts.
    **kwargs
        Passed on to :func:`label_particles` (``method``, ``connectivity``,
        ...).

    Returns
    -------
    count : int
        The number of particles.

    Examples
    --------
    Three touching 10x10 squares count as three particles:

    >>> import numpy as np
    >>> from particleseg.annotation import annotate_borders
    >>> from particleseg.postprocessing import count_particles
    >>> truth = np.zeros((12, 32), dtype=int)
    >>> truth[1:11, 1:11], truth[1:11, 11:21], truth[1:11, 21:31] = 1, 2, 3
    >>> count_particles(annotate_borders(truth))
    3
    """
    labels = label_particles(pred, threshold, min_size, **kwargs)
    return int(labels.max())
