"""Tests of the automatic inference scale (particleseg._autoscale) and of
``inference_scale="auto"`` on the segmenter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from particleseg import ParticleSegmenter
from particleseg._autoscale import (
    FALLBACK_SCALE,
    MAX_SCALE,
    PROBE_SCALE,
    ESCALATION_LIMIT,
    SIZING_CONFIDENCE,
    choose_scale,
    predict_proba_auto,
    typical_diameter,
)
from particleseg.datasets import make_particles


def discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for k, (r, c) in enumerate(centres, start=1):
        labels[(yy - r) ** 2 + (xx - c) ** 2 <= radius**2] = k
    return labels


def test_typical_diameter_is_the_median_equivalent_diameter():
    labels = discs((200, 200), [(50, 50), (50, 150), (150, 50), (150, 150)], radius=10)
    area = np.count_nonzero(labels == 1)
    assert typical_diameter(labels) == pytest.approx(2 * math.sqrt(area / math.pi))


def test_typical_diameter_leaves_out_edge_particles_when_enough_remain():
    labels = discs((200, 200), [(50, 50), (50, 150), (150, 100)], radius=10)
    big = discs((200, 200), [(0, 0)], radius=60)  # a large particle cut by the corner
    labels[big > 0] = 4
    inner = typical_diameter(labels)
    assert inner == pytest.approx(typical_diameter(labels * (labels < 4)))
    # With fewer than three interior particles, edge particles count too.
    labels[labels == 3] = 0
    labels[discs((200, 200), [(199, 199)], radius=60) > 0] = 5
    assert typical_diameter(labels) > inner


def test_typical_diameter_of_an_empty_map_is_none():
    assert typical_diameter(np.zeros((10, 10), dtype=np.int32)) is None


def test_typical_diameter_leaves_out_unsure_particles():
    # Four large particles the network is sure of, twelve small unsure ones
    # (texture, fragments): the sure ones set the size.
    sure = discs((128, 128), [(30, 30), (30, 90), (90, 30), (90, 90)], radius=10)
    unsure = discs((128, 128), [(8 + 10 * i, 60) for i in range(12)], radius=2)
    labels = np.where(unsure > 0, unsure + 4, sure)
    confidence = np.r_[np.full(4, 0.9), np.full(12, SIZING_CONFIDENCE / 2)]
    assert typical_diameter(labels) < typical_diameter(sure) / 2  # the unsure ones dominate
    assert typical_diameter(labels, confidence) == pytest.approx(typical_diameter(sure))
    assert typical_diameter(labels, np.full(16, SIZING_CONFIDENCE / 2)) is None


@pytest.mark.parametrize("diameter, expected, reuse", [
    (100.0, 1.0, False),     # already the target size
    (25.0, 4.0, False),      # small particles: enlarge (up to MAX_SCALE)
    (5.0, MAX_SCALE, False),
    (400.0, PROBE_SCALE, True),  # large particles: the probe's own scale
    (None, FALLBACK_SCALE, False),
])
def test_choose_scale(diameter, expected, reuse):
    scale, reused = choose_scale(diameter, target_diameter=100.0)
    assert scale == pytest.approx(expected)
    assert reused is reuse


def test_choose_scale_keeps_the_cost_bound():
    # Whenever a second pass is made, the probe costs at most half of it.
    for d in np.geomspace(5, 1000, 200):
        scale, reused = choose_scale(d, 100.0)
        if not reused:
            assert PROBE_SCALE**2 <= 0.5 * scale**2 + 1e-9


def test_predict_proba_auto_rescales_by_the_measured_size():
    labels = discs((128, 128), [(30, 30), (30, 90), (90, 30), (90, 90)], radius=5)
    calls = []

    def predict_at(image, scale):
        calls.append(scale)
        return np.stack([labels == 0, labels > 0, np.zeros_like(labels, bool)]).astype(np.float32)

    def label(proba):
        return labels, None

    d = typical_diameter(labels)
    proba, scale, kept = predict_proba_auto(np.zeros((128, 128), np.float32), predict_at,
                                            label, target_diameter=2 * d)
    assert calls == [PROBE_SCALE, 2.0]
    assert scale == 2.0
    assert proba.shape == (3, 128, 128)
    assert kept[0] is labels  # the pass kept was labelled to decide: its labels come back
    calls.clear()
    _, scale, kept = predict_proba_auto(np.zeros((128, 128), np.float32), predict_at, label,
                                        target_diameter=d / 2)
    assert calls == [PROBE_SCALE] and scale == PROBE_SCALE  # the probe is reused
    assert kept[0] is labels


def _big():
    return discs((128, 128), [(40, 40), (40, 90), (90, 40), (90, 90)], radius=16)


def _small():
    return discs((128, 128), [(20 + 22 * i, 20 + 22 * j) for i in range(5) for j in range(5)],
                 radius=4)


def _auto(seen_at, target_diameter):
    """``predict_proba_auto`` with a stand-in network whose output is its scale.

    ``seen_at(scale)`` is the instance map the pass at ``scale`` labels.
    Returns (proba, scale, kept labels, the scales predicted at).
    """
    calls = []

    def predict_at(image, scale):
        calls.append(scale)
        return np.full((3, 128, 128), scale, dtype=np.float32)  # remembers its scale

    proba, scale, kept = predict_proba_auto(np.zeros((128, 128), np.float32), predict_at,
                                            lambda proba: (seen_at(proba[0, 0, 0]), None),
                                            target_diameter=target_diameter)
    return proba, scale, kept, calls


def test_predict_proba_auto_looks_again_when_a_pass_shows_smaller_particles():
    # The probe sees only large blobs (small particles merged); the pass at the
    # scale they suggest shows the small particles, so one more pass enlarges.
    big, small = _big(), _small()
    target = 2 * typical_diameter(big)
    proba, scale, kept, calls = _auto(lambda s: big if s == PROBE_SCALE else small, target)
    first = choose_scale(typical_diameter(big), target)[0]
    second = choose_scale(typical_diameter(small), target)[0]
    assert (first, second) == (2.0, MAX_SCALE)
    assert calls == [PROBE_SCALE, first, second]
    assert scale == second and proba[0, 0, 0] == second
    assert kept[0] is small  # labelled to decide that no other pass was needed


def test_predict_proba_auto_enlarges_when_a_pass_finds_nothing():
    calls = []

    def predict_at(image, scale):
        calls.append(scale)
        return np.zeros((3, 32, 32), dtype=np.float32)

    _, scale, _ = predict_proba_auto(np.zeros((32, 32), np.float32), predict_at,
                                     lambda proba: (np.zeros((32, 32), np.int32), None),
                                     target_diameter=50.0)
    assert calls == [PROBE_SCALE, 2 * PROBE_SCALE, 4 * PROBE_SCALE, 8 * PROBE_SCALE]
    assert calls[-1] == ESCALATION_LIMIT == MAX_SCALE
    assert scale == ESCALATION_LIMIT


def test_predict_proba_auto_comes_back_down_when_a_pass_shows_larger_particles():
    # The probe takes texture for small particles and sends the image up; the
    # pass up there shows the real, larger particles: one pass comes back down.
    big, small = _big(), _small()
    target = 1.5 * typical_diameter(big)
    proba, scale, kept, calls = _auto(lambda s: small if s == PROBE_SCALE else big, target)
    up = choose_scale(typical_diameter(small), target)[0]
    down = choose_scale(typical_diameter(big), target)[0]
    assert up > 2 * down > 2 * PROBE_SCALE
    assert calls == [PROBE_SCALE, up, down]  # once down, no further pass
    assert scale == down and proba[0, 0, 0] == down
    assert kept is None


def test_predict_proba_auto_does_not_come_back_down_below_a_scale_that_found_nothing():
    # Nothing at the probe, nothing at twice it; the particles found at 4x the
    # probe look large, but the smaller scales have already shown nothing (a
    # closer look at 8x shows nothing either).
    big = _big()
    nothing = np.zeros((128, 128), np.int32)
    _, scale, kept, calls = _auto(lambda s: big if s == 4 * PROBE_SCALE else nothing,
                                  typical_diameter(big) / 2)
    assert calls == [PROBE_SCALE, 2 * PROBE_SCALE, 4 * PROBE_SCALE, 8 * PROBE_SCALE]
    assert scale == 4 * PROBE_SCALE and kept[0] is big


def test_predict_proba_auto_looks_closer_at_large_particles_after_an_empty_pass():
    # Tiny, densely packed particles: nothing at the probe, a few large blobs
    # at twice it (half that scale would have shown particles that large),
    # the particles themselves at four times it.
    big, small = _big(), _small()
    nothing = np.zeros((128, 128), np.int32)
    target = 4 * PROBE_SCALE * typical_diameter(small)

    def seen_at(scale):
        return nothing if scale == PROBE_SCALE else big if scale == 2 * PROBE_SCALE else small

    proba, scale, kept, calls = _auto(seen_at, target)
    assert calls == [PROBE_SCALE, 2 * PROBE_SCALE, 4 * PROBE_SCALE]
    assert scale == 4 * PROBE_SCALE and proba[0, 0, 0] == scale and kept[0] is small


@pytest.mark.parametrize("above", ["large", "nothing"])
def test_predict_proba_auto_keeps_the_doubted_pass_when_a_closer_look_agrees_no_better(above):
    big = _big()
    nothing = np.zeros((128, 128), np.int32)
    target = PROBE_SCALE * typical_diameter(big) / 2  # big particles look too large

    def seen_at(scale):
        if scale == PROBE_SCALE:
            return nothing
        return big if scale == 2 * PROBE_SCALE or above == "large" else nothing

    proba, scale, kept, calls = _auto(seen_at, target)
    assert calls == [PROBE_SCALE, 2 * PROBE_SCALE, 4 * PROBE_SCALE]
    assert scale == 2 * PROBE_SCALE and proba[0, 0, 0] == scale and kept[0] is big


def test_predict_proba_auto_checks_a_closer_look_made_by_the_last_pass():
    # Nothing at the probe nor at twice it; blobs at 4x the probe; the last
    # pass (8x) is the closer look, and shows particles as large: 4x is kept.
    big = _big()
    nothing = np.zeros((128, 128), np.int32)
    _, scale, kept, calls = _auto(lambda s: nothing if s < 4 * PROBE_SCALE else big,
                                  PROBE_SCALE * typical_diameter(big) / 2)
    assert calls == [PROBE_SCALE, 2 * PROBE_SCALE, 4 * PROBE_SCALE, 8 * PROBE_SCALE]
    assert scale == 4 * PROBE_SCALE and kept[0] is big


@pytest.fixture(scope="module")
def fitted():
    X, y = make_particles(n_images=4, shape=(64, 64), random_state=0)
    seg = ParticleSegmenter(backbone="mobilenet_v3_large", max_epochs=1, crop_size=64,
                            batch_size=2, augment=None, device="cpu", random_state=0)
    return seg.fit(X, y), X, y


def test_fit_records_the_typical_training_diameter(fitted):
    seg, X, y = fitted
    expected = np.median([typical_diameter(t) for t in y])
    assert seg.particle_diameter_ == pytest.approx(expected)


def test_auto_scale_records_the_scale_of_each_image(fitted):
    seg, X, _ = fitted
    seg = ParticleSegmenter(**{**seg.get_params(), "inference_scale": "auto"})
    fitted_seg = fitted[0]
    for name in ("model_", "device_", "classes_", "class_weight_", "normalization_",
                 "border_width_", "particle_diameter_", "confidence_calibration_",
                 "min_confidence_"):
        setattr(seg, name, getattr(fitted_seg, name))
    proba = seg.predict_proba(X[:2])
    assert len(seg.last_scales_) == 2
    assert all(PROBE_SCALE <= s <= MAX_SCALE for s in seg.last_scales_)
    fixed = seg.set_params(inference_scale=seg.last_scales_[0]).predict_proba(X[0])
    np.testing.assert_allclose(proba[0], fixed, atol=1e-6)


def test_auto_scale_without_a_recorded_diameter_says_what_to_do(fitted):
    seg = fitted[0]
    saved = seg.particle_diameter_
    try:
        seg.particle_diameter_ = None
        seg.set_params(inference_scale="auto")
        with pytest.raises(ValueError, match="Set inference_scale to a number"):
            seg.predict_proba(fitted[1][0])
    finally:
        seg.particle_diameter_ = saved
        seg.set_params(inference_scale=1.0)


@pytest.mark.parametrize("bad", ["big", 0.1, 5, True])
def test_bad_inference_scale_is_refused(fitted, bad):
    seg = fitted[0]
    try:
        seg.set_params(inference_scale=bad)
        with pytest.raises(ValueError, match="inference_scale must be"):
            seg.predict_proba(fitted[1][0])
    finally:
        seg.set_params(inference_scale=1.0)


def test_auto_scale_does_not_depend_on_min_confidence(fitted, monkeypatch):
    # A stand-in network sees four large particles it is sure of and eight
    # small blobs it is not (calibrated confidence about 0.3). The scale comes
    # from the sure ones whatever min_confidence a user asks for; the
    # threshold only decides which particles are kept.
    from particleseg import _inference

    seg, X, _ = fitted
    sure = discs((64, 64), [(14, 14), (14, 50), (50, 14), (50, 50)], radius=9)
    unsure = discs((64, 64), [(4 + 8 * i, 32) for i in range(8)], radius=2)
    particle = np.where(sure > 0, 0.99, np.where(unsure > 0, 0.55, 0.01)).astype(np.float32)

    def network(model, image, settings):
        return np.stack([1 - particle, particle, np.zeros_like(particle)])

    monkeypatch.setattr(_inference, "predict_proba_one", network)
    monkeypatch.setattr(seg, "confidence_calibration_",
                        {"raw": [0.0, 0.6, 1.0], "calibrated": [0.0, 0.3, 1.0]})
    expected = choose_scale(typical_diameter(sure), seg.particle_diameter_)[0]
    try:
        seg.set_params(inference_scale="auto")
        for cut, n in ((None, 12), (0.2, 12), (0.6, 4)):
            labels, confidence = seg.set_params(min_confidence=cut).predict_particles(
                X[:2], return_confidence=True)
            assert seg.last_scales_ == [pytest.approx(expected)] * 2
            assert [int(lab.max()) for lab in labels] == [n, n]
            assert all(len(c) == n for c in confidence)
    finally:
        seg.set_params(inference_scale=1.0, min_confidence="auto")


def test_predict_particles_confidence_and_threshold(fitted):
    seg, X, _ = fitted
    try:
        labels, confidence = seg.set_params(min_confidence=None).predict_particles(
            X[0], return_confidence=True)
        assert labels.dtype == np.int32
        assert len(confidence) == labels.max()
        assert np.all((confidence >= 0) & (confidence <= 1))
        if len(confidence) >= 2:
            cut = float(np.median(confidence))
            kept, kept_conf = seg.set_params(min_confidence=cut).predict_particles(
                X[0], return_confidence=True)
            assert kept.max() == np.count_nonzero(confidence >= cut)
            assert np.all(kept_conf >= cut - 1e-12)
    finally:
        seg.set_params(min_confidence="auto")


def test_model_file_keeps_diameter_and_calibration(fitted, tmp_path):
    seg = fitted[0]
    seg.confidence_calibration_ = {"raw": [0.0, 0.5, 1.0], "calibrated": [0.0, 0.2, 0.9]}
    seg.min_confidence_ = 0.3
    try:
        loaded = ParticleSegmenter.load(seg.save(tmp_path / "m.safetensors"), device="cpu")
    finally:
        seg.confidence_calibration_ = None
        seg.min_confidence_ = None
    assert loaded.particle_diameter_ == pytest.approx(seg.particle_diameter_)
    assert loaded.confidence_calibration_ == {"raw": [0.0, 0.5, 1.0], "calibrated": [0.0, 0.2, 0.9]}
    assert loaded.min_confidence_ == 0.3
