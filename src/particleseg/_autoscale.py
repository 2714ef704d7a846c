"""Automatic inference scale: bring particles to the size the network knows.

A network sees particles best at the sizes it was trained on. Micrographs
come at every magnification, so ``inference_scale="auto"`` measures, per
image, how large its particles are and rescales the image so that they reach
the network at the model's typical particle diameter (the idea of
Cellpose's size model, with a first segmentation pass as the size
estimator):

1. a *probe* pass at :data:`PROBE_SCALE` (a quarter of the pixels of a 1x
   pass) is segmented and labelled;
2. the median equivalent diameter ``d`` of the particles it finds (those
   not cut by the image edge, when there are enough of them, and not below
   :data:`SIZING_CONFIDENCE`) gives the scale ``s = target_diameter / d``,
   clipped to [:data:`PROBE_SCALE`, :data:`MAX_SCALE`];
3. when ``s`` is close enough to the scale just predicted (within a factor
   of ``sqrt(2)``), that prediction is the answer; otherwise the image is
   predicted again at ``s``, and step 2 is repeated on the new prediction
   (at most :data:`MAX_PASSES` passes in all). Passes mostly go *up* in
   scale: particles too small to be resolved at the probe's scale are
   missed or merged by it, so the probe over-estimates their size, and the
   pass at ``s`` shows them. When a pass above the probe shows particles
   larger than the ones that led to it (the probe took texture or fragments
   for small particles), one last pass comes back down to the scale they
   ask for;
4. when a pass finds no particle at all, the next one is made at twice its
   scale, up to :data:`ESCALATION_LIMIT` (tiny, densely packed particles
   can be invisible at half size and at full size alike). When the pass
   after such an empty one finds particles that look larger than the target
   (so half its scale should have shown them), they are blobs of particles
   it cannot resolve, or texture: one more pass at twice its scale is made,
   and kept if its particles do not look too large as well.

The cost is bounded by the chosen scale in the common cases: each upward
pass before the last is made at most at ``1 / sqrt(2)`` of the next one's
scale, so with a probe and one pass the total is at most 1.5 times a
fixed-scale prediction at the chosen scale (at most 2 times with more upward
passes), and a probe that is already the answer costs nothing more. Only the
rare pass that comes back down, or that checks doubtful particles after an
empty pass, costs more than that.

Nothing here imports torch: the prediction and the decision rule come in as
callables.
"""

from __future__ import annotations

import math

import numpy as np

#: Scale of the probe pass.
PROBE_SCALE = 0.5
#: Largest scale "auto" chooses.
MAX_SCALE = 4.0
#: Scale used when the probe finds no particle (see :func:`choose_scale`).
FALLBACK_SCALE = 1.0
#: A pass that finds no particle is followed by one at twice its scale, up to this.
ESCALATION_LIMIT = MAX_SCALE
#: Most predictions of one image (the probe included).
MAX_PASSES = 4
#: Fewest particles away from the image edge for the estimate to ignore the
#: ones on the edge.
MIN_INTERIOR = 3
#: Particles whose confidence is below this do not size a pass: they are
#: mostly texture or fragments, which pull the size down and the scale up.
#: Fixed, so that the scale chosen does not depend on the ``min_confidence`` a
#: user asks for (chosen on the EMPS validation images with
#: ``benchmarks/sizing_confidence.py``).
SIZING_CONFIDENCE = 0.3


def typical_diameter(labels, confidence=None):
    """Median equivalent diameter (px) of the particles in an instance map.

    Particles cut by the image edge are left out when at least
    :data:`MIN_INTERIOR` others remain, and, given their ``confidence``,
    those below :data:`SIZING_CONFIDENCE`. None when no particle is left.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
    confidence : ndarray of float, shape (labels.max(),), optional
        The confidence of particles 1, 2, ...

    Returns
    -------
    diameter : float or None
    """
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    if confidence is not None:
        areas[np.asarray(confidence) < SIZING_CONFIDENCE] = 0.0
        if not areas.any():
            return None
    edge = np.zeros(n + 1, dtype=bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[np.unique(side)] = True
    edge = edge[1:]
    keep = areas > 0
    if np.count_nonzero(keep & ~edge) >= MIN_INTERIOR:
        keep &= ~edge
    return float(np.median(2.0 * np.sqrt(areas[keep] / np.pi)))


def training_diameter(targets, annotator):
    """Median over training images of their typical particle diameter (px).

    ``targets`` are instance maps, or class maps when ``annotator`` is None
    (their particles are labelled first). None when no image has a particle.
    """
    from .postprocessing import label_particles

    diameters = []
    for target in targets:
        if annotator is not None:  # instance maps; -1 (unlabelled) is not a particle
            labels = np.maximum(np.asarray(target), 0)
        else:
            labels = label_particles(target)
        d = typical_diameter(labels)
        if d is not None:
            diameters.append(d)
    return float(np.median(diameters)) if diameters else None


def choose_scale(diameter, target_diameter, probe_scale=PROBE_SCALE, max_scale=MAX_SCALE):
    """The scale that brings particles of ``diameter`` px to ``target_diameter`` px.

    Parameters
    ----------
    diameter : float or None
        Typical particle diameter in the image, in its own pixels.
    target_diameter : float
        The diameter the network knows best, in pixels at its input.

    Returns
    -------
    scale : float
        In [probe_scale, max_scale]; :data:`FALLBACK_SCALE` when
        ``diameter`` is None.
    reuse_probe : bool
        True when the probe's own prediction is to be used (the scale is the
        probe's).
    """
    if diameter is None or not diameter > 0:
        return FALLBACK_SCALE, False
    scale = float(np.clip(target_diameter / diameter, probe_scale, max_scale))
    if scale <= math.sqrt(2.0) * probe_scale:
        return float(probe_scale), True
    # Round to two significant digits: the same particles give the same scale
    # even when the estimate moves by a hair.
    return float(f"{scale:.2g}"), False


def _asks_lower(wanted, scale):
    """Whether particles that ask for ``wanted`` were found too large at ``scale``."""
    return wanted * math.sqrt(2.0) < scale


def predict_proba_auto(image, predict_at, label, target_diameter, probe_scale=PROBE_SCALE):
    """Class probabilities of one image at its automatic scale.

    Parameters
    ----------
    image : ndarray (H, W)
        The standardised image.
    predict_at : callable
        ``predict_at(image, scale) -> proba (3, H, W)`` at the image's size.
    label : callable
        ``label(proba) -> (instance map, confidence)``: the decision rule and
        labelling, with the confidence of each particle (or None); see
        :func:`typical_diameter`.
    target_diameter : float
        The model's typical particle diameter at its input, in pixels.

    Returns
    -------
    proba : ndarray (3, H, W)
    scale : float
        The scale used.
    found : tuple or None
        ``label(proba)`` when it was made to decide that no other pass was
        needed (so the caller need not label ``proba`` again), else None.
    """
    scale = float(probe_scale)
    proba = predict_at(image, scale)
    escalated = lower = False
    doubted = None  # a pass after an empty one whose particles looked too large
    for _ in range(MAX_PASSES - 1):
        found = label(proba)
        diameter = typical_diameter(*found)
        if diameter is None:
            if doubted is not None:
                return doubted
            if 2 * scale > ESCALATION_LIMIT:
                return proba, scale, found
            wanted, escalated = 2 * scale, True
        else:
            wanted, _ = choose_scale(diameter, target_diameter, probe_scale)
            too_large = _asks_lower(wanted, scale)
            if doubted is not None and too_large:
                return doubted
            if escalated and too_large and doubted is None and 2 * scale <= ESCALATION_LIMIT:
                # Half this scale showed nothing, yet these particles ask for
                # less: they are blobs of particles too small to resolve here
                # (or texture). Look once more at twice the scale; this pass is
                # the answer if that one agrees no better.
                doubted, wanted = (proba, scale, found), 2 * scale
            else:
                doubted = None
                lower = too_large and scale > probe_scale and not escalated
                if wanted <= math.sqrt(2.0) * scale and not lower:
                    return proba, scale, found
        del proba, found
        scale = wanted
        proba = predict_at(image, scale)
        if lower:  # back down, once: this pass is the answer
            return proba, scale, None
    if doubted is not None:  # the last pass was made to check doubtful particles
        found = label(proba)
        diameter = typical_diameter(*found)
        if diameter is None or _asks_lower(
                choose_scale(diameter, target_diameter, probe_scale)[0], scale):
            return doubted
        return proba, scale, found
    return proba, scale, None
