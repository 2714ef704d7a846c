"""Tests of the synthetic figure annotations used for scale-robust training."""

from __future__ import annotations

import numpy as np
import pytest

from particleseg._figures import (
    ScaleRobustAugmenter,
    _draw_text,
    draw_scale_bar,
    particle_free_background,
    paste_annotations,
)
from particleseg.datasets import make_particles


@pytest.mark.parametrize("polarity", ["light", "dark"])
@pytest.mark.parametrize("label_side", ["above", "below", "left", "right"])
def test_draw_scale_bar_draws_what_it_reports(polarity, label_side):
    rng = np.random.default_rng(0)
    image = np.full((300, 400), 0.5, dtype=np.float32)
    out, mask, truth = draw_scale_bar(image, rng, length_px=120, value=50, unit="nm",
                                      polarity=polarity, label_side=label_side, boxed=False,
                                      font_size=20)
    top, left, bottom, right = truth.bar_box
    assert right - left == truth.length_px == 120
    bar = out[top:bottom, left:right]
    assert np.all(bar > 0.85) if polarity == "light" else np.all(bar < 0.15)
    assert truth.text in ("50 nm", "50nm") and truth.value == 50 and truth.unit == "nm"
    assert mask[top:bottom, left:right].all()
    # the label's glyphs are inside its box, and nothing outside bar, label and their halo changed
    changed = out != 0.5
    assert not (changed & ~mask).any()
    t, l, b, r = truth.label_box
    assert changed[t:b, l:r].any()


def test_draw_scale_bar_never_leaves_the_image():
    rng = np.random.default_rng(1)
    for _ in range(300):
        h, w = rng.integers(40, 500, 2)
        image = np.zeros((h, w), np.float32)
        try:
            out, mask, truth = draw_scale_bar(image, rng, length_px=int(rng.uniform(0.2, 0.9) * w),
                                              font_size=int(rng.integers(9, 60)))
        except ValueError:
            continue  # too large for the image: refused, not clipped
        assert out.shape == image.shape
        t, l, b, r = truth.box
        assert 0 <= t < b <= h and 0 <= l < r <= w


def test_paste_annotations_makes_covered_pixels_background():
    rng = np.random.default_rng(2)
    images, labels = make_particles(n_images=1, shape=(256, 256), random_state=0)
    image = images[0].astype(np.float32) / 255
    out, new_labels, mask = paste_annotations(image, labels[0], rng, n_max=4)
    assert mask.any()
    assert not new_labels[mask].any()
    np.testing.assert_array_equal(new_labels[~mask], labels[0][~mask])
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_particle_free_background_is_a_valid_image():
    img = particle_free_background((128, 96), np.random.default_rng(3))
    assert img.shape == (128, 96) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0


def test_scale_robust_augmenter_keeps_image_and_labels_aligned():
    images, labels = make_particles(n_images=1, shape=(256, 256), random_state=0)
    image = images[0].astype(np.float32) / 255
    aug = ScaleRobustAugmenter(None, crop_size=64, p_background=0.0, p_annotations=0.0)
    assert aug.window_factor == pytest.approx(3.0)
    sizes = set()
    for seed in range(20):
        out, lab = aug(image, labels[0], random_state=seed)
        assert out.shape == lab.shape
        sizes.add(out.shape)
        # the synthetic particles are darker than their background: labels stay on them
        if lab.any() and (lab == 0).any():
            assert out[lab > 0].mean() < out[lab == 0].mean() - 0.1
    assert len(sizes) > 1  # rescaled by different factors
    negative = ScaleRobustAugmenter(None, crop_size=64, p_background=1.0)
    out, lab = negative(image, labels[0], random_state=0)
    assert not lab.any()


def test_draw_text_keeps_clear_of_the_boxes_to_avoid_and_draws_the_same_numbers():
    avoid = [(0, 0, 200, 256)]  # all but the bottom 56 rows
    for seed in range(10):
        out = np.full((256, 256), 0.5, np.float32)
        mask = np.zeros(out.shape, bool)
        rng = np.random.default_rng(seed)
        box = _draw_text(out, mask, rng, "SEM", 20, avoid=avoid)
        after = rng.random()
        assert box is not None and box[0] >= 200
        assert not mask[:200].any()
        # the caller's generator is where it would be without ``avoid``
        plain = np.random.default_rng(seed)
        _draw_text(out.copy(), mask.copy(), plain, "SEM", 20)
        assert plain.random() == after


def test_draw_text_without_a_clear_place_draws_nothing():
    out = np.full((128, 128), 0.5, np.float32)
    mask = np.zeros(out.shape, bool)
    assert _draw_text(out, mask, np.random.default_rng(0), "SEM", 20, avoid=[(0, 0, 128, 128)]) is None
    assert not mask.any() and (out == 0.5).all()
