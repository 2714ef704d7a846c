"""Tests for particleseg.scalebar: finding, measuring and reading scale bars,
annotation masks, the choice of calibration, and their use by ``analyze``.

Tests that read labels need the OCR extra (``pip install
"particleseg[scalebar]"``) and are skipped without it.
"""

import io
import os
import sys
from dataclasses import replace
from types import SimpleNamespace

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_cli import dark_particles, fake_prediction  # noqa: E402,F401

from particleseg import scalebar  # noqa: E402
from particleseg._figures import draw_scale_bar  # noqa: E402
from particleseg.cli import main  # noqa: E402
from particleseg.datasets import make_particles  # noqa: E402
from particleseg.scalebar import (  # noqa: E402
    annotation_mask,
    calibrate,
    find_scale_bar,
    parse_scale_label,
    remove_annotated_particles,
)

MU = "\N{MICRO SIGN}"
ANGSTROM = "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}"


def micrograph(shape=(256, 256), seed=0):
    X, _ = make_particles(1, shape, n_particles=(12, 12), radius=(6, 12), random_state=seed)
    x = X[0].astype(np.float32)
    return 0.2 + 0.6 * (x - x.min()) / (x.max() - x.min())


def fake_ocr(monkeypatch, line, wide, odds=None):
    """Stand in for the OCR: the label line reads ``line``, its wider crop ``wide``.

    ``line`` is a text, or a callable of the crop for texts that depend on it;
    text detection finds nothing, so only the line's own readings count. The
    recogniser's odds favour the unit ``odds`` (None: no unit clearly); its
    scores are otherwise out of reach (no label is read from them).
    """
    monkeypatch.setattr(scalebar, "_unit_by_odds", lambda engine, crop, number, tail=False: odds)
    monkeypatch.setattr(scalebar, "_recogniser_odds", lambda engine, crop: None)
    wide_crop = np.zeros((7, 7), np.uint8)
    read_line = line if callable(line) else (lambda crop: (line, 0.95))
    monkeypatch.setattr(scalebar, "_wide_crop", lambda p, group, bar, height=40: wide_crop)
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (
        (wide, 0.9) if crop is wide_crop else read_line(crop)))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])


def assert_read_or_unread(bar, expected, text, confidence):
    """Check that ``bar`` read ``expected`` (value, unit) from ``text``, or nothing (None).

    A reading must be used, at about ``confidence``; no reading leaves the
    image uncalibrated.
    """
    if expected is None:
        assert bar.value is None and not bar.calibrated, bar.message
    else:
        assert (bar.value, bar.unit) == expected and bar.text == text, bar.message
        assert bar.calibrated and bar.confidence == pytest.approx(confidence, abs=0.2)


def glyph_line(mask, grey=None):
    """A label line of glyphs ``mask`` (its own box), as the line search returns it."""
    return scalebar._Group("below", (0, 0) + mask.shape, mask, 0.0, grey=grey)


def join_letters(image, label_box, ground):
    """Join a label's letters, in place, by a line of a grey short of the text's.

    Two rows at two thirds of the label's height, 0.65 of the way from the
    ``ground`` grey to the text's where the label shows ground: glyphs joined
    as by downscaling or a particle they touch, apart in the text's core.
    """
    top, left, bottom, right = label_box
    text = image[top:bottom, left:right].max()
    row = top + 2 * (bottom - top) // 3
    join = image[row:row + 2, left:right]
    image[row:row + 2, left:right] = np.where(join < (text + ground) / 2,
                                              ground + 0.65 * (text - ground), join)


def figure(shape=(256, 256), seed=0, **options):
    """A micrograph with a drawn scale bar: (image in [0, 1], truth)."""
    settings = dict(length_px=80, value=100, unit="nm", font="DejaVuSans.ttf", font_size=16,
                    polarity="light", boxed=False, ticks=False, label_side="above",
                    corner=("bottom", "right"))
    settings.update(options)
    image, _, truth = draw_scale_bar(micrograph(shape, seed), np.random.default_rng(seed),
                                     **settings)
    return image, truth


@pytest.fixture
def no_ocr(monkeypatch):
    """Behave as if the OCR extra were not installed: its import fails."""
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # import raises ImportError
    scalebar._ocr_engine.cache_clear()
    yield
    scalebar._ocr_engine.cache_clear()


def test_the_no_ocr_fixture_makes_the_import_fail(no_ocr):
    with pytest.raises(ImportError):
        import rapidocr_onnxruntime  # noqa: F401
    assert scalebar._ocr_engine() is None


# --------------------------------------------------------------------------
# Labels


@pytest.mark.parametrize("text, expected", [
    ("100 nm", (100.0, "nm")),
    ("100nm", (100.0, "nm")),
    ("2 um", (2.0, f"{MU}m")),
    ("2 \N{GREEK SMALL LETTER MU}m", (2.0, f"{MU}m")),
    (f"1.5 {MU}m", (1.5, f"{MU}m")),
    ("0,5 mm", (0.5, "mm")),
    ("50 \N{LATIN CAPITAL LETTER A WITH RING ABOVE}", (50.0, ANGSTROM)),
    ("50 \N{ANGSTROM SIGN}", (50.0, ANGSTROM)),
    ("5 A", (5.0, ANGSTROM)),
    ("200 pm", (200.0, "pm")),
    ("\N{RIGHT SINGLE QUOTATION MARK}500 nm", (500.0, "nm")),
    ("1O0 nm", (100.0, "nm")),  # OCR's letter O between digits
    ("20:nm", (20.0, "nm")),  # a speck between number and unit, read as punctuation
    ("\N{MIDDLE DOT}1nm", (1.0, "nm")),  # a speck before the number
    ("200 \N{GREEK SMALL LETTER MU}um", (200.0, f"{MU}m")),  # the tail of a small "µ" read as "u"
    ("500 \N{GREEK SMALL LETTER MU}ni", (500.0, f"{MU}m")),  # an "m" read as "ni"
    ("I nm", (1.0, "nm")),  # a lone "1" read as the letter it looks like
    ("l um", (1.0, f"{MU}m")),
])
def test_parse_scale_label_reads_value_and_unit(text, expected):
    assert parse_scale_label(text) == expected


@pytest.mark.parametrize("text", ["Au NPs", "nm", "100", "(a)", "x50k", "WD 28 mm 10 kV", "", "0 nm",
                                  "100 km", "20 :", "Il nm", "I", None])
def test_parse_scale_label_rejects_what_is_not_a_length(text):
    assert parse_scale_label(text) is None


# --------------------------------------------------------------------------
# Finding and measuring bars (no OCR needed)


@pytest.mark.parametrize("options", [
    {},
    {"polarity": "dark"},
    {"boxed": True},
    {"boxed": True, "polarity": "dark"},
    {"ticks": True},
    {"label_side": "below", "corner": ("top", "left")},
    {"label_side": "left"},
    {"label_side": "right", "corner": ("bottom", "left")},
])
def test_find_scale_bar_measures_the_bar_and_finds_its_label(options):
    image, truth = figure(**options)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)
    assert bar.polarity == options.get("polarity", "light")
    # The label found is the one drawn (its box overlaps the true box).
    assert bar.label_box is not None
    top, left, bottom, right = bar.label_box
    t, l, b, r = truth.label_box
    assert min(bottom, b) > max(top, t) and min(right, r) > max(left, l)
    assert bar.value is None and not bar.calibrated


def test_find_scale_bar_works_on_16_bit_and_large_images():
    image, truth = figure(shape=(512, 512), length_px=160, font_size=24)
    as16 = (image * 65535).astype(np.uint16)
    assert find_scale_bar(as16, read=False).length_px == pytest.approx(160, abs=1.0)
    # 4096 px wide: searched at a reduced size, measured at full resolution.
    big = np.kron(image, np.ones((8, 8), np.float32))
    bar = find_scale_bar(big, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(8 * 160, rel=0.01)


@pytest.mark.slow
def test_find_scale_bar_on_an_8k_16_bit_image():
    image, truth = figure(shape=(512, 512), length_px=160, font_size=24)
    big = np.kron((image * 65535).astype(np.uint16), np.ones((16, 16), np.uint16))  # 8192²
    bar = find_scale_bar(big, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(16 * 160, rel=0.01)


def test_find_scale_bar_on_bad_input_returns_none_or_a_bar_without_value():
    assert find_scale_bar(np.zeros((256, 256))) is None  # blank
    assert find_scale_bar(np.full((256, 256), 7, np.uint16)) is None  # flat 16-bit
    assert find_scale_bar(np.zeros((8, 8))) is None  # too small to hold a bar
    assert find_scale_bar(micrograph()) is None  # particles, no bar
    # A bar with no label: found, but it calibrates nothing, and says so.
    image = micrograph()
    image[230:235, 150:230] = 0.0
    bar = find_scale_bar(image)
    assert bar is not None and bar.label_box is None and bar.value is None
    assert not bar.calibrated and "no label" in bar.message
    with pytest.raises(ValueError, match="image"):
        find_scale_bar(np.zeros((4, 64, 64)))


def test_a_label_without_a_bar_is_not_a_scale_bar():
    image, truth = figure()
    t, l, b, r = truth.bar_box
    image[t:b, l:r] = image[t - 12:b - 12, l:r]  # erase the bar, keep the text
    bar = find_scale_bar(image, read=False)
    assert bar is None or abs(bar.length_px - truth.length_px) > 5
    calibration = calibrate(image)  # with OCR when installed: still no calibration
    assert (calibration.pixel_size, calibration.unit, calibration.source) == (None, "px", "none")


def disk(image, centre, radius, value, keep=None):
    """Paint a disk of grey ``value`` (a particle), leaving the pixels of ``keep`` alone."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    if keep is not None:
        t, l, b, r = keep
        inside[t:b, l:r] = False
    image[inside] = value
    return image


@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_particle_touching_one_side_of_the_bar_does_not_shorten_it(polarity):
    image, truth = figure(length_px=100, font_size=14, polarity=polarity, label_side="above",
                          corner=("top", "right"))
    t, l, b, r = truth.bar_box
    grey = 0.95 if polarity == "light" else 0.05  # as light, or as dark, as the bar
    disk(image, (b + 9, l + 4), 10, grey)  # below the left end, touching it
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def test_a_particle_across_the_end_of_the_bar_neither_shortens_nor_lengthens_it():
    image, truth = figure(length_px=100, font_size=14, label_side="above")
    t, l, b, r = truth.bar_box
    disk(image, ((t + b) // 2, r - 4), 12, 0.7, keep=truth.bar_box)  # the bar drawn over it
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def noisy_ground(grey, shape, seed, noise=0.02):
    """A flat ground of ``grey`` with Gaussian pixel noise, in [0, 1]: (image, its generator)."""
    rng = np.random.default_rng(seed)
    return np.clip(grey + rng.normal(0, noise, shape), 0, 1), rng


def grainy_disk(image, centre, radius, grey, seed, noise):
    """Paint a particle of mean ``grey`` with a grain of Gaussian ``noise`` (its own ``seed``)."""
    grain, _ = noisy_ground(grey, image.shape, seed, noise=noise)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    image[inside] = grain[inside]
    return image


def the_one_bar(image, box, length, inverted=False):
    """The one bar candidate longer than 30 px, checked to lie at ``box``, ``length`` px long.

    With ``inverted``, of ``1 - image`` (the same figure in the other polarity).
    """
    bars = candidate_bars(1.0 - image if inverted else image, longer_than=30)
    assert [scalebar._bar_box(bar) for bar in bars] == [box]
    assert bars[0].length == pytest.approx(length, abs=1)
    return bars[0]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_across_a_large_particle_keeps_its_own_rows(polarity, seed):
    # The bar's right end lies on a particle far thicker than the bar, of a
    # grey between the ground's and the bar's: the particle is joined to the
    # bar at the midpoint grey, but not at the bar's own grey. The bar's box
    # took in the particle's rows (so that a label under the bar was looked
    # for under the particle), and with more of it attached the bar was
    # dropped as part of something larger.
    image, _ = noisy_ground(0.3, (384, 384), seed)
    disk(image, (96, 148), 20, 0.8)
    image[103:108, 95:152] = 0.95  # the bar, drawn over the particle
    if polarity == "dark":
        image = 1.0 - image
    bars = candidate_bars(image, longer_than=30)
    assert len(bars) == 1
    top, left, bottom, right = scalebar._bar_box(bars[0])
    assert (left, right) == (95, 152) and 102 <= top <= 103 and 108 <= bottom <= 109
    assert bars[0].length == pytest.approx(57, abs=1)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_faint_bar_is_found(polarity, seed):
    # A bar only 0.08 of the image's range lighter than a smooth ground (a
    # light bar drawn on a light micrograph): it was taken for no bar at all
    # (synthetic seed 37's figure 19, seed 14's figure 173).
    image, _ = noisy_ground(0.8, (256, 256), seed, noise=0.01)
    disk(image, (60, 60), 15, 0.0)  # a dark particle: the image's range
    image[200:205, 120:220] = 0.88
    bar = the_one_bar(image, (200, 120, 205, 220), 100, inverted=polarity == "dark")
    assert bar.quality < 0.5  # faint: its readings count for less


@pytest.mark.parametrize("length", [20, 40])
def test_a_short_faint_streak_is_no_bar(length):
    # As faint as the bar above but short for its thickness: the ground's
    # texture, which a faint bar's reading must not come from.
    image, _ = noisy_ground(0.8, (256, 256), 0, noise=0.01)
    disk(image, (60, 60), 15, 0.0)
    image[200:205, 120:120 + length] = 0.88
    assert candidate_bars(image, longer_than=10) == []
    image[200:205, 120:120 + length] = 0.95  # as short, but standing out
    assert len(candidate_bars(image, longer_than=10)) == 1


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_across_a_particle_as_light_as_itself_is_found(polarity, seed):
    # A particle nearly as wide as the bar and almost as light, under it: in
    # the search the particle's rows joined the bar's into a block too thick
    # for a bar (synthetic seed 14's figure 184).
    image, _ = noisy_ground(0.3, (768, 768), seed)
    disk(image, (112, 145), 37, 0.85)
    image[97:105, 100:190] = 0.95
    the_one_bar(image, (97, 100, 105, 190), 90, inverted=polarity == "dark")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_between_particles_of_the_other_grey_is_found(polarity, seed):
    # Particles of the other polarity along most of both sides of the bar:
    # the median of the pixels beside it was theirs, and the threshold
    # halfway to it let the ground join the bar (synthetic seed 11's figure 11).
    image, _ = noisy_ground(0.45, (256, 1024), seed)
    for column in (487, 512, 537):
        disk(image, (100, column), 12, 0.95)
    image[96:104, 462:562] = 0.3  # a dark bar
    the_one_bar(image, (96, 462, 104, 562), 100, inverted=polarity == "light")


def flat_figure(shape=(256, 256), ground=0.3, seed=0, under=None, **options):
    """A scale bar on a flat, noisy ground: (image, truth).

    ``under(ground, truth)`` paints particles on the ground before the bar
    and its label are drawn over them.
    """
    settings = dict(length_px=100, value=25, unit="nm", font="DejaVuSans.ttf", font_size=16,
                    polarity="light", boxed=False, ticks=False, label_side="above",
                    corner=("bottom", "right"))
    settings.update(options)

    def draw(paint):
        rng = np.random.default_rng(seed)
        image = np.clip(ground + rng.normal(0, 0.03, shape), 0, 1).astype(np.float32)
        if paint is not None:
            paint(image, truth)
        return draw_scale_bar(image, rng, **settings)[::2]

    image, truth = draw(None)
    return draw(under) if under is not None else (image, truth)


@pytest.mark.parametrize("seed", range(95, 105))
def test_noise_in_the_ground_at_both_ends_is_not_an_outline(seed):
    # A light bar on a noisy light-grey ground: a column a little darker than
    # the ground at each end (noise) is no dark outline to add to the length
    # (synthetic figure 576 and seed 99 here were 3 px long).
    image, truth = flat_figure(ground=0.7, seed=seed, length_px=65, font_size=14)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def test_a_bar_with_a_dark_outline_is_measured_to_the_outline():
    # A light bar drawn with a black outline on a grey ground (as EMPS
    # 2e5dab1969): the outline rows above and below the bar must not count
    # as noise of the ground, or the outline's columns are not added.
    image, truth = flat_figure(ground=0.7, length_px=88, font_size=14)
    t, l, b, r = truth.bar_box
    # A blurred outline: a dark row next to the bar, a grey one outside it.
    image[t - 1, l - 1:r + 1] = image[b, l - 1:r + 1] = 0.1
    image[t - 2, l - 1:r + 1] = image[b + 1, l - 1:r + 1] = 0.35
    image[t - 2:b + 2, l - 1] = image[t - 2:b + 2, r] = 0.1  # 1 column at each end
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px + 2, abs=1.0)


def test_a_bar_running_into_a_particle_cut_by_the_image_side_is_found():
    # The bar's end touches a particle lighter than the midpoint between bar
    # and ground, and the particle runs out of the image: the search sees one
    # band from the bar to the image's side.
    def particle(ground, truth):
        t, l, b, r = truth.bar_box
        x = ground.shape[1] + 2
        disk(ground, ((t + b) // 2, x), x - r + 2, 0.75)

    image, truth = flat_figure(label_side="left", corner=("top", "right"), under=particle)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)
    assert bar.label_box is not None


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_tick_touching_a_particle_a_little_short_of_its_grey_stays_the_bars(polarity, seed):
    # The right end tick's outer side touches a particle a tenth darker than
    # the bar (in its polarity): the tick was measured from the ground's
    # grey, ran on into the particle, matched the left tick in no width, and
    # the bar ended at the tick's inner side, 6 px short (synthetic seed
    # 11's figure 111, a wrong calibration).
    image, rng = noisy_ground(0.15, (512, 512), seed, noise=0.03)
    disk(image, (300, 345), 25, 0.85)
    image = np.clip(image + rng.normal(0, 0.03, image.shape) * (image > 0.5), 0, 1)
    image[295:307, 250:322] = 0.95  # the bar
    image[290:312, 250:256] = image[290:312, 316:322] = 0.95  # its end ticks
    the_one_bar(image, (290, 250, 312, 322), 72, inverted=polarity == "dark")


def test_a_tick_bar_whose_ends_lie_on_particles_is_measured_to_its_ticks():
    # Both ends, ticks and all, lie on particles a little darker than the bar;
    # the left particle is cut by the image side. The bar stands out from the
    # particles by less than a quarter of its contrast with the ground.
    def particles(ground, truth):
        t, l, b, r = truth.bar_box
        disk(ground, ((t + b) // 2 + 6, l - 2), 14, 0.78)
        disk(ground, ((t + b) // 2, r - 6), 14, 0.78)

    image, truth = flat_figure(shape=(192, 192), ground=0.12, length_px=80, value=1, unit="nm",
                               font_size=14, ticks=True, label_side="below",
                               corner=("bottom", "left"), under=particles)
    t, l, b, r = truth.bar_box
    assert l < 14  # the left particle runs out of the image
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.5)


def bar_over_a_particle(polarity, seed, darker):
    """A thick bar whose right end lies on a noisy particle: (image, truth).

    The particle runs 20 px past the bar's end; its grey is ``darker`` of
    the way from the bar's grey to the ground's (in the bar's polarity).
    """
    options = dict(ground=0.6 if polarity == "dark" else 0.3, seed=seed, polarity=polarity,
                   font_size=36)
    image, truth = flat_figure(**options)
    t, l, b, r = truth.bar_box
    grey = image[t, l] + darker * (options["ground"] - image[t, l])

    def particle(ground, truth):
        yy, xx = np.mgrid[: ground.shape[0], : ground.shape[1]]
        inside = (yy - (t + b) // 2) ** 2 + (xx - (r - 10)) ** 2 <= 30**2
        noise = np.random.default_rng(seed).normal(0, 0.03, inside.sum())
        ground[inside] = np.clip(grey + noise, 0, 1)

    return flat_figure(**options, under=particle)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_whose_end_lies_on_a_particle_close_to_its_grey_is_measured_to_its_end(
        polarity, seed):
    # The bar stands out from the particle by 15 % of its contrast with the
    # ground: the noise of the rows beside it left columns short of the 10 %
    # margin, and the end past them was dropped as a glyph's strokes (a 738 px
    # bar measured 704 px and used).
    image, truth = bar_over_a_particle(polarity, seed, darker=0.15)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


@pytest.mark.parametrize("seed", [4, 9])
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_particle_across_the_end_within_the_bars_thickness_is_no_end_tick(polarity, seed):
    # The particle, 20 % of the contrast darker than the bar, runs on past
    # the bar's end at its rows for less than the bar's thickness before noise
    # breaks it: those columns were kept as end ticks (measured 4-13 px long).
    image, truth = bar_over_a_particle(polarity, seed, darker=0.2)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


@pytest.mark.parametrize("seed", range(3))
def test_a_glyph_stroke_on_the_particle_under_the_bars_end_is_not_the_bar(seed):
    # A thin light bar's left end and the last stem of the "m" before it lie
    # on a light particle: the particle bridged the 7 px between them, and
    # the stem (3 px wide, as long a run as the bar's reach) was taken for
    # the bar's end (synthetic seed 81 figure 181: 148 px for 139, used).
    image, _ = noisy_ground(0.44, (384, 576), seed)
    disk(image, (366, 410), 22, 0.74)
    image[365:367, 424:563] = 1.0  # the bar
    image[364, 403:417] = 1.0  # the "m"
    for left in (403, 409, 414):
        image[364:371, left:left + 3] = 1.0
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.bar_box[1] == 424
    assert bar.length_px == pytest.approx(139, abs=1.0)


@pytest.mark.parametrize("seed", range(6))
def test_the_strip_of_a_box_between_a_short_bar_and_its_label_is_not_the_bar(seed):
    # A 24 px white bar in a black box under a wider bold "500 nm": the strip
    # of box between them stands out only where glyphs lie above it. Taking
    # the strokes beyond the bar's end for glyphs' set it to the bar's length
    # plus a glyph's, no longer along the bar's whole span, and the strip
    # won over the bar (synthetic seed 69 figure 189, with a first version
    # of the rule of the test above).
    image, truth = flat_figure(seed=seed, length_px=24, value=500, font="DejaVuSerif-Bold.ttf",
                               font_size=12, boxed=True, label_side="above", ground=0.6)
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.bar_box == truth.bar_box


def boxed_bold_label_below(seed, under=None):
    """A 37 px black bar in a white box over a bold 18 px "20 µm" (synthetic seed 86 fig. 163)."""
    return flat_figure((384, 384), ground=0.33, seed=seed, length_px=37, value=20,
                       unit=f"{MU}m", font="DejaVuSans-Bold.ttf", font_size=18, polarity="dark",
                       boxed=True, label_side="below", corner=("bottom", "left"), under=under)


@pytest.mark.parametrize("seed", range(3))
def test_the_strip_of_a_box_measured_to_the_bars_ends_is_not_the_bar(seed):
    # The white rows between the bar and the label under it stand out where
    # the bar lies above them and the digits' tops below: measured from the
    # bar's end to the label's, 42 px, longer than the bar, and over the
    # same columns (neither runs along the other between its ends), the
    # strip won, then lost to a glyph's foot: 10 px for 37.
    image, truth = boxed_bold_label_below(seed)
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.bar_box == truth.bar_box


@pytest.mark.parametrize("gap", [14, 18])
@pytest.mark.parametrize("seed", range(3))
def test_a_band_of_ground_between_particles_and_a_boxed_bar_does_not_take_its_label(
        monkeypatch, gap, seed):
    # A row of particles above the box leaves a band of ground, darker than
    # both, under them: a "bar" of the ground's grey, 70 px, that reads the
    # label as well as the bar does. The band's reading, clean and read
    # first, was not read on from, and the bar's was handed to it, a longer
    # clean bar whose lines hold the label (synthetic seed 86 figure 163:
    # 79.6 px for 37, used at 1.00).
    def particles(ground, truth):
        top, left = truth.box[:2]
        for k in range(5):
            disk(ground, (top - gap - 15, left + 10 + 30 * k), 15, 0.75)

    image, truth = boxed_bold_label_below(seed, under=particles)
    fake_ocr(monkeypatch, f"20 {MU}m", f"20 {MU}m")
    bar = find_scale_bar(image)
    assert bar.bar_box == truth.bar_box and bar.calibrated, bar.describe()


@pytest.mark.parametrize("seed", range(3))
def test_a_thick_bar_touched_at_its_ends_by_particles_in_other_rows_is_found(seed):
    # Synthetic seed 90 figure 53: a 1067 px bar 84 px thick on a 6144 px
    # image, a particle touching the upper rows of its right end and another
    # the lower rows of its left end. The bar's rows without a particle fell
    # short of four fifths of the longest, leaving two bands of long rows,
    # as the frame of a box does: no bar was found.
    def particles(ground, truth):
        top, left, bottom, right = truth.bar_box
        third = (bottom - top) // 3
        disk(ground, (top - 100 + third, right + 30), 100, 0.66)
        disk(ground, (bottom + 100 - third, left - 30), 100, 0.66)

    image, truth = flat_figure((1000, 1000), ground=0.27, seed=seed, length_px=300, value=5,
                               unit="mm", font="DejaVuSans-Oblique.ttf", font_size=100,
                               label_side="left", corner=("top", "left"), under=particles)
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.length_px == pytest.approx(300, abs=1)
    assert bar.bar_box[1::2] == truth.bar_box[1::2]


def jpeg(image, quality=70):
    """``image`` (in [0, 1]) stored as an 8-bit JPEG and read back."""
    buffer = io.BytesIO()
    iio.imwrite(buffer, (np.clip(image, 0, 1) * 255).round().astype(np.uint8),
                extension=".jpg", quality=quality)
    return iio.imread(buffer.getvalue()).astype(np.float32) / 255


@pytest.mark.parametrize("seed", [0, 3])
def test_a_faint_bar_whose_end_lies_on_a_dark_particle_is_measured_to_its_end(seed):
    # A light bar 0.12 above a light ground, its right end on a particle far
    # darker: JPEG's ringing at the particle's edge takes the bar's rows
    # below the midpoint between bar and ground, so the bar ended at the
    # particle's edge (synthetic seed 82 figure 15: 169.6 px for 175, used).
    image, _ = noisy_ground(0.8, (512, 768), seed)
    disk(image, (60, 600), 40, 0.15)
    image[50:60, 420:595] = 0.92  # the bar, drawn over the particle
    the_one_bar(jpeg(image), (50, 420, 60, 595), 175)


@pytest.mark.parametrize("seed", range(3))
def test_a_faint_bar_found_as_a_row_of_itself_is_measured_on_its_own_ground(seed):
    # A light bar 0.09 above the ground, JPEG-compressed, a darker particle
    # across it: the search found single rows of it, and the rows beside
    # such a row (the bar's own) were taken for its ground, too close to its
    # grey for a bar (synthetic seed 82 figure 184: no bar of 145 px found).
    image, _ = noisy_ground(0.86, (768, 1024), seed, noise=0.01)
    disk(image, (200, 200), 40, 0.0)
    disk(image, (400, 200), 20, 1.0)
    disk(image, (722, 900), 28, 0.62)
    image[715:724, 838:983] = 0.95  # the bar, drawn over the particle
    the_one_bar(jpeg(image, 80), (715, 838, 724, 983), 145)


@pytest.mark.parametrize("seed", range(3))
def test_a_bar_mostly_over_a_dark_particle_is_found(seed):
    # A light bar whose left two thirds lie on a dark particle: the median
    # ground beside it is the particle's, the light ground passes the
    # midpoint, and in the wider window the rows of that ground below the
    # particle are as long as the bar's: no bar was found (synthetic seed 81
    # figure 28, a 31 px "1 um").
    image, _ = noisy_ground(0.82, (384, 384), seed)
    image[0:19, 0:28] = 0.22  # the particle ...
    image[19:23, 0:26] = 0.22  # ... narrower further down
    image[10:17, 7:38] = 1.0  # the bar
    the_one_bar(image, (10, 7, 17, 38), 31)


@pytest.mark.parametrize("seed", range(3))
def test_the_blurred_edge_of_a_particle_at_the_bars_end_is_not_the_bar(seed):
    # A dark bar's right end touches a dark particle whose blurred edge, two
    # columns wide, stands out from the rows beside the bar: the edge was
    # counted as the bar's (synthetic seed 77 figure 171: 27.2 px for 26).
    image, _ = noisy_ground(0.76, (256, 256), seed)
    image[5:10, 200:205] = 1.0  # a light particle far away
    image[243:255, 44:60] = 0.25  # the particle, beyond the bar's end
    image[244:254, 42] = 1 - np.array([0.24, 0.26, 0.4, 0.62, 0.66, 0.66, 0.62, 0.45, 0.4, 0.3])
    image[244:254, 43] = 1 - np.array([0.3, 0.4, 0.55, 0.7, 0.72, 0.72, 0.7, 0.55, 0.5, 0.45])
    image[247:251, 16:42] = 0.0  # the bar
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(26, abs=0.5)


def candidate_bars(image, longer_than=0.0):
    """The measured bar candidates of an image longer than ``longer_than`` px."""
    return [bar for bar, _ in scalebar._candidates(scalebar._normalise(image))
            if bar.length > longer_than]


def bar_quality(image):
    """The quality of the longest bar candidate of a figure (its end checks, 0 to 1)."""
    bars = candidate_bars(image)
    assert bars
    return max(bars, key=lambda bar: bar.length).quality


@pytest.mark.parametrize("seed", [0, 2, 3])
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_whose_end_corner_lies_on_a_particle_keeps_its_straight_end(polarity, seed):
    # A thick bar's lower rows run on past its end into a particle lighter
    # than the midpoint but short of the bar's grey (synthetic seed 22 figure
    # 44): those rows are the particle's past the end, which is straight.
    options = dict(ground=0.6 if polarity == "dark" else 0.3, seed=seed, polarity=polarity,
                   font_size=36)
    image, truth = flat_figure(**options)
    t, l, b, r = truth.bar_box
    grey = image[t + 2, l + 2] + 0.3 * (options["ground"] - image[t + 2, l + 2])

    def particle(ground, truth):
        disk(ground, (b + 14, r + 12), 24, grey)

    image, truth = flat_figure(**options, under=particle)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)
    assert bar_quality(image) >= 0.95


@pytest.mark.parametrize("seed", range(3))
def test_a_slanted_band_at_the_bars_grey_still_has_ragged_ends(seed):
    # Rows that run on past an end at the bar's own grey are no particle's:
    # a band whose rows shift along (the edge of something slanted) stays
    # a poor bar.
    rng = np.random.default_rng(seed)
    image = np.clip(0.3 + rng.normal(0, 0.03, (256, 256)), 0, 1).astype(np.float32)
    for k in range(12):
        image[200 + k, 60 + 2 * k:160 + 2 * k] = 0.95
    assert bar_quality(image) < 0.5


@pytest.mark.parametrize("seed", [1, 2])
def test_a_short_pixel_in_a_thick_bar_near_its_end_does_not_shorten_it(seed):
    # JPEG ringing took one pixel of a thick bar's second row below the
    # midpoint, near its end (synthetic figure 2222: a 1141 px bar measured
    # 1100 px and used): the columns past it were dropped as a glyph's.
    image, truth = flat_figure(shape=(384, 512), seed=seed, length_px=200, font_size=90)
    t, l, b, r = truth.bar_box
    assert b - t >= 22  # thick enough for one short row in twenty
    image[t + 1, r - 25] = 0.3
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_partial_edge_row_of_a_downscaled_bar_leaves_its_ends_straight(polarity, seed):
    # Downscaled, a bar's edge row covers its pixels' row only in part: its
    # grey lies just above the midpoint, and a little below it near the ends
    # (where the pixels are corners of the bar), so the row stops a few
    # pixels short of them. Its ends were judged ragged (quality 0, a right
    # reading left unused).
    rng = np.random.default_rng(seed)
    image = np.clip(0.3 + rng.normal(0, 0.01, (256, 256)), 0, 1)
    image[100:105, 60:150] = 0.95  # the bar
    image[105, 60:150] = 0.66  # its edge row, a little over the midpoint grey
    image[105, 60:66] = image[105, 142:150] = 0.58  # and a little under it near the ends
    if polarity == "dark":
        image = 1.0 - image
    bars = candidate_bars(image, longer_than=50)
    assert len(bars) == 1
    assert bars[0].length == pytest.approx(90, abs=1)
    assert bars[0].quality > 0.8


def test_a_search_box_running_into_the_side_is_cut_to_the_bars_own_columns():
    # The search's box runs from a dark bar through a particle touching its
    # end to the image side. The particle covers the ground above the bar,
    # not below it: over the box's columns the grounds differ, over the bar's
    # they do not.
    rng = np.random.default_rng(0)
    image = np.clip(0.75 + rng.normal(0, 0.02, (200, 245)), 0, 1)
    image[90:112, 166:] = np.clip(0.25 + rng.normal(0, 0.06, (22, 79)), 0, 1)  # the particle,
    # nearly as dark as the bar, cut by the right side
    image[100:112, 100:166] = 0.05  # the bar, 66 px
    p = 1.0 - image  # the dark bar's polarity
    bar = scalebar._measure_bar(p, (100, 100, 112, 245), 1, "dark")
    assert bar is not None
    assert bar.left == 100 and abs(bar.right - 166) <= 1
    assert bar.length == pytest.approx(66, abs=1.0)


@pytest.mark.parametrize("read", ["10 jm", "10gm", "10 p\N{GREEK SMALL LETTER MU}m"])
def test_a_micro_sign_read_as_j_is_read_as_micro(monkeypatch, read):
    # OCR reads the "µ" of a serif font as "j" or "g", or its tail as a "p"
    # of its own before it; the glyph with a tail below the line is the µ.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (read, 0.95))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = figure(value=10, unit=f"{MU}m", font="DejaVuSerif-Bold.ttf", font_size=18)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (10, f"{MU}m") and bar.calibrated, bar.message


@pytest.mark.parametrize("wide, calibrated", [("20m", False), ("20 um", True), ("20ume", True)])
def test_a_plain_u_must_agree_with_the_wide_reading(monkeypatch, wide, calibrated):
    # In small bold text an "n" can be read as a "u": a "µm" read from a
    # plain "u", with no glyph below the line, needs the wider crop to see a
    # "u" too (it may read a speck beside the label as well: "20ume").
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "20um", wide)
    # Glyphs too small to show where the letter is open.
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=20, unit="nm")
    bar = find_scale_bar(image)
    assert bar.calibrated is calibrated and bar.text == "20um", bar.message
    assert bar.unit == f"{MU}m"


def test_the_ctc_likelihood_is_the_one_torch_computes():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for labels in ([3, 4, 4, 2], [1], [5, 5, 5], [2, 1, 2, 6]):
        log_probs = torch.log_softmax(torch.from_numpy(rng.normal(size=(14, 7))), dim=1)
        expected = -torch.nn.functional.ctc_loss(
            log_probs[:, None], torch.tensor([labels]), torch.tensor([14]),
            torch.tensor([len(labels)]), reduction="sum").item()
        got = scalebar._ctc_log_likelihoods(log_probs.numpy(), [labels])[0]
        assert got == pytest.approx(expected, rel=1e-9)


def test_the_ctc_likelihoods_of_several_sequences_are_each_ones():
    rng = np.random.default_rng(5)
    log_probs = np.log(rng.dirichlet(np.ones(8), size=12))
    sequences = [[3], [4, 4], [1, 2, 3, 4, 5], [7, 1, 7], [2, 2, 2, 2]]
    together = scalebar._ctc_log_likelihoods(log_probs, sequences)
    alone = [scalebar._ctc_log_likelihoods(log_probs, [labels])[0] for labels in sequences]
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    assert len(set(np.round(together, 6))) == len(sequences)  # the sequences differ


class _Recogniser:
    """The parts of RapidOCR's recogniser that the unit's odds use, with set outputs."""

    def __init__(self, chars, probs):
        self.postprocess_op = type("Decode", (), {"character": chars})()
        self.rec_image_shape = [3, 48, 320]
        self.probs = probs

    def resize_norm_img(self, img, max_wh_ratio):
        return np.zeros((3, 48, int(48 * max_wh_ratio)), np.float32)

    def session(self, batch):
        return [self.probs[None]]


def recogniser_engine(chars, steps, floor):
    """An engine whose recogniser sees, at each step, the characters with these probabilities.

    ``steps``: dicts of character: probability, a blank step after each;
    every other character gets ``floor``, and the blank the rest.
    """
    rows = []
    for step in [s for step in steps for s in (step, {})]:
        row = np.full(len(chars), floor)
        for char, prob in step.items():
            row[chars.index(char)] = prob
        row[0] = max(1 - row[1:].sum(), floor)  # the blank takes the rest
        rows.append(row / row.sum())
    return type("Engine", (), {"text_rec": _Recogniser(chars, np.array(rows))})()


def odds_engine(u, n, m=0.9):
    """An engine whose recogniser sees "2", then "u" or "n" with these probabilities, then "m"."""
    chars = ["blank", "2", "u", "n", "m", "p", "\N{GREEK SMALL LETTER MU}", " "]
    return recogniser_engine(chars, [{"2": 0.9}, {"u": u, "n": n}, {"m": m}], 0.002)


def reading_engine(*steps):
    """An engine whose recogniser reads digits and unit letters with the ``steps``' probabilities."""
    chars = ["blank", *"0123456789.", "u", "n", "m", "p", "x",
             "\N{GREEK SMALL LETTER MU}", " "]
    return recogniser_engine(chars, steps, 0.001)


@pytest.mark.parametrize("steps, expected", [
    ([{"2": 0.97}, {"0": 0.97}, {"n": 0.97}, {"m": 0.97}], (20, ("nm",))),
    # A small "n" that looks like an "m" (OCR's "200mm" or "2001m"): "nm" or
    # "mm", which the letters' stems must tell apart.
    ([{"2": 0.97}, {"0": 0.97}, {"0": 0.97}, {"n": 0.45, "m": 0.5}, {"m": 0.97}],
     (200, ("nm", "mm"))),
    ([{"2": 0.97}, {"0": 0.97}, {"u": 0.97}, {"m": 0.97}], (20, (f"{MU}m",))),
    # The first digit a "2" or a "5": no value is clearly the likeliest.
    ([{"2": 0.5, "5": 0.45}, {"0": 0.97}, {"n": 0.97}, {"m": 0.97}], None),
    # "u" or "n" three times as likely as each other: no unit is.
    ([{"2": 0.97}, {"0": 0.97}, {"u": 0.7, "n": 0.25}, {"m": 0.97}], None),
    # Other text, which no label explains nearly as well as the recogniser's reading.
    ([{"x": 0.95}, {"2": 0.97}, {"x": 0.95}, {"x": 0.95}, {"n": 0.97}, {"m": 0.97}], None),
])
def test_the_likeliest_label_is_read_only_when_clearly_so(steps, expected):
    crop = np.full((40, 90), 255, np.uint8)
    assert scalebar._likeliest_label(reading_engine(*steps), crop) == expected


def test_the_likeliest_value_is_the_first_among_values():
    engine = reading_engine({"2": 0.5, "5": 0.45}, {"0": 0.9}, {"n": 0.9}, {"m": 0.9})
    crop = np.full((40, 90), 255, np.uint8)
    assert scalebar._likeliest_value(engine, crop) == 20
    assert scalebar._likeliest_value(object(), crop) is None


@pytest.mark.parametrize("line, smaller, wide, stems, lost, expected", [
    ((250, ("nm", "mm")), (250, ("nm", "mm")), 250, "nm", False, (250, "nm")),
    ((250, ("nm", "mm")), (250, ("nm",)), 250, "nm", False, (250, "nm")),
    ((250, ("nm", "mm")), (250, ("nm", "mm")), 250, None, False, None),  # nothing tells them apart
    ((250, ("nm",)), (250, ("nm",)), 250, "mm", False, None),  # the stems say otherwise
    ((250, ("nm", "mm")), (25, ("nm", "mm")), 250, "nm", False, None),  # the sizes disagree
    ((5, ("nm", "mm")), (5, ("nm", "mm")), 25, "nm", False, None),  # the wide crop shows a "2"
    ((2, (f"{MU}m",)), (2, (f"{MU}m",)), 2, None, False, (2, f"{MU}m")),
    (None, (2, (f"{MU}m",)), 2, None, False, None),
    # Five stems, one of which may be lost: maybe an "mm", as for an OCR's "mm".
    ((250, ("nm", "mm")), (250, ("nm", "mm")), 250, "nm", True, None),
    ((250, ("nm",)), (250, ("nm",)), 250, "nm", True, (250, "nm")),
])
def test_an_unread_line_is_read_as_the_likeliest_label(monkeypatch, line, smaller, wide,
                                                       stems, lost, expected):
    # Small or damaged text that OCR reads as no length ("250 am", "2001m")
    # is read as the label the recogniser's odds clearly favour, at both
    # sizes of the line, and the same value first in the wide crop; "nm" and
    # "mm" as the letters' stems say.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "250 am", "250 am")
    monkeypatch.setattr(scalebar, "_ocr_crop", lambda p, group, height=40, smooth=True: (
        np.full((height, 4), 255, np.uint8)))
    monkeypatch.setattr(scalebar, "_likeliest_label", lambda engine, crop: (
        line if crop.shape[0] == 40 else smaller))
    monkeypatch.setattr(scalebar, "_likeliest_value", lambda engine, crop: wide)
    monkeypatch.setattr(scalebar, "_unit_by_stems", lambda group, stems_=None: stems)
    monkeypatch.setattr(scalebar, "_stem_maybe_lost", lambda group: lost)
    image, truth = figure(value=250, unit="nm")
    assert_read_or_unread(find_scale_bar(image), expected, "250 am", 0.7)


@pytest.mark.parametrize("u, n, m, expected", [
    (0.97, 0.002, 0.9, f"{MU}m"),   # a clear "u"
    (0.002, 0.97, 0.9, "nm"),       # a clear "n"
    (0.97, 0.002, 0.05, f"{MU}m"),  # the "m" lost to a blank: "2u" as text, still a "u"
    (0.6, 0.3, 0.9, None),          # twice as likely: no verdict
    # 60 times as likely, enough against "mm" or "pm", not against the other
    # of "nm" and "µm" (a thousandfold error).
    (0.9, 0.015, 0.9, None),
])
def test_the_unit_is_the_one_the_recognisers_odds_clearly_favour(u, n, m, expected):
    crop = np.full((40, 90), 255, np.uint8)
    assert scalebar._unit_by_odds(odds_engine(u, n, m), crop, "2") == expected


def test_the_units_odds_need_the_recognisers_scores():
    # Another OCR engine (or RapidOCR laid out otherwise): no verdict, no error.
    crop = np.full((40, 90), 255, np.uint8)
    assert scalebar._unit_by_odds(object(), crop, "2") is None


@pytest.mark.parametrize("odds, wide, expected", [
    (f"{MU}m", "2u", (2, f"{MU}m")),
    ("nm", "2u", (2, "nm")),
    (None, "2u", None),
    ("mm", "2u", None),  # rare units are not taken from the odds
    (f"{MU}m", "25u", None),  # the wide crop shows a digit the line lost
])
def test_a_line_read_without_its_unit_takes_the_one_the_odds_favour(monkeypatch, odds, wide,
                                                                    expected):
    # OCR drops a small unit's "m" ("2u" for "2 um"), at both sizes: the unit
    # is the one the recogniser's odds clearly favour, else the label stays
    # unread; and so it does when the wide crop reads another number.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "2u", wide, odds=odds)
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=2, unit="um")
    assert_read_or_unread(find_scale_bar(image), expected, "2u", 0.8 * 0.95)


@pytest.mark.parametrize("bar_length, taken", [(18, False), (80, True)])
def test_a_short_bar_going_on_with_a_line_is_not_taken_for_its_lost_letters(
        monkeypatch, bar_length, taken):
    # A large "100 nm" read "100 n", its "bar" a stroke of the "m" right after
    # the line: the odds give no unit. A long bar beside its label does.
    blank = np.full((4, 4), 255, np.uint8)
    monkeypatch.setattr(scalebar, "_ocr_crop", lambda p, group, height=40, smooth=True: blank)
    monkeypatch.setattr(scalebar, "_wide_crop", lambda p, group, bar, height=40: blank)
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("100 n", 0.9))
    monkeypatch.setattr(scalebar, "_unit_by_odds", lambda engine, crop, number, tail=False: "nm")
    line = scalebar._Group("left", (462, 110, 498, 224), np.ones((36, 114), bool), 0.0)
    bar = SimpleNamespace(top=471, bottom=481, left=230, right=230 + bar_length,
                          length=float(bar_length))
    found = scalebar._unit_from_odds(None, line, bar, None, [(blank, "100 n", 0.9)])
    parsed = found and found[0]
    assert (parsed == (100, "nm")) is taken


@pytest.mark.parametrize("odds, calibrated", [(f"{MU}m", True), (None, False), ("nm", False)])
def test_a_doubted_plain_u_is_believed_when_the_odds_favour_it(monkeypatch, odds, calibrated):
    # A "µm" read from a plain "u" that neither the glyph nor the wide crop
    # confirms is doubted; the recogniser's odds favouring the "u" lift the
    # doubt, and no other verdict does.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "20um", "20m", odds=odds)
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=20, unit="um")
    bar = find_scale_bar(image)
    assert bar.calibrated is calibrated and bar.unit == f"{MU}m", bar.message


def millimetres_read(monkeypatch, ahead, widths):
    """A figure's "2 mm" read by OCR, with no stems to count and the letters' ``widths``.

    The recogniser's odds favour "mm" by e**``ahead`` over "nm" (by more over
    the others). Returns what :func:`find_scale_bar` finds.
    """
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "2 mm", "2 mm")
    odds = {"nm": -1.0 - ahead, f"{MU}m": -14.0, "mm": -1.0, "pm": -15.0}
    monkeypatch.setattr(scalebar, "_unit_by_odds",
                        lambda engine, crop, number, tail=False: scalebar._unit_verdict(odds))
    monkeypatch.setattr(scalebar, "_unit_stems", lambda group: None)
    monkeypatch.setattr(scalebar, "_unit_by_widths", lambda group: widths)
    image, truth = figure(value=2, unit="mm", font_size=18)
    return find_scale_bar(image)


@pytest.mark.parametrize("ahead, calibrated", [(5.4, False), (6.0, False), (6.9, True),
                                               (12.0, True)])
def test_millimetres_need_odds_far_ahead_of_every_other_unit(monkeypatch, ahead, calibrated):
    # "mm" bars are rare on micrographs, and OCR reads small "nm" as "mm":
    # without glyphs to confirm it, a millimetre reading is believed only
    # when the recogniser's odds favour it e**6.5 times over any other
    # unit. They favoured "mm" by e**5.4 for a large bold serif "25nm"
    # (seed 22's figure 39), read "25mm" at 1.00; by e**6.9 to e**15 for
    # the small "mm" labels whose glyphs could not confirm them on seeds 3
    # to 36 (seed 3's figure 146, "10mm": e**6.9).
    bar = millimetres_read(monkeypatch, ahead, widths=None)
    assert bar.unit == "mm" and bar.calibrated is calibrated, bar.message


@pytest.mark.parametrize("ahead, unit", [(5.4, "nm"), (6.9, "mm"), (11.2, "mm")])
def test_an_mm_the_widths_call_nm_is_kept_on_odds_far_ahead(monkeypatch, ahead, unit):
    # Synthetic seed 33's figure 168: "2 mm" downscaled, its first "m"
    # narrower than the second, no stems to count: the widths made it
    # "2 nm", used at 0.84 (a millionfold error), while the recogniser's
    # odds favoured "mm" by e**11.
    bar = millimetres_read(monkeypatch, ahead, widths="nm")
    assert (bar.value, bar.unit) == (2, unit) and bar.calibrated, bar.message


def test_millimetres_need_odds_far_ahead_of_micrometres_too():
    # An "mm" must lead every unit by e**6.5, not only "nm".
    odds = {"nm": -12.0, f"{MU}m": -6.0, "mm": -1.0, "pm": -15.0}
    assert scalebar._unit_verdict(odds) is None
    assert scalebar._unit_verdict({**odds, f"{MU}m": -8.0}) == "mm"
    # The other units keep their margins: "nm" e**3 ahead of "mm".
    assert scalebar._unit_verdict({"nm": -1.0, "mm": -4.5, f"{MU}m": -6.5}) == "nm"


@pytest.mark.parametrize("drawn", ["nm", "um"])
@pytest.mark.parametrize("wide", ["20m", "20um"])
def test_a_plain_u_is_settled_by_its_glyph(monkeypatch, drawn, wide):
    # The glyph before the "m" shows a "u" (open at the top) or an "n" (open
    # at the bottom): OCR's "20um" is then believed, or read as "20 nm",
    # whatever the wider crop reads.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "20um", wide)
    image, truth = figure(value=20, unit=drawn)
    bar = find_scale_bar(image)
    assert bar.calibrated and bar.text == "20um", bar.message
    assert bar.unit == {"nm": "nm", "um": f"{MU}m"}[drawn]


def test_a_wide_reading_in_pm_agrees_with_a_line_read_in_micrometres(monkeypatch):
    # The wider crop around the label reads the same value with "p" for "µ",
    # OCR's usual slip: no disagreement, no lower confidence.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_wide_crop", lambda p, group, bar: "wide")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (
        ("1 pm", 0.95) if isinstance(crop, str) else (f"1 {MU}m", 0.95)))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = figure(value=1, unit=f"{MU}m")
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (1, f"{MU}m") and bar.calibrated, bar.message
    assert bar.confidence > 0.9


@pytest.mark.parametrize("font", ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
                                  "DejaVuSerif-Bold.ttf"])
@pytest.mark.parametrize("drawn, expected", [(f"{MU}m", (f"{MU}m", True)), ("pm", ("pm", False))])
def test_a_label_read_in_pm_is_micrometres_when_its_p_is_open_at_the_top(
        monkeypatch, font, drawn, expected):
    # OCR often reads a "µ" as a "p". A "µ" is a "u" with a tail, open at the
    # top; a "p" closes a bowl. The glyph decides; a real "p" stays doubted.
    # (500 pm over 80 of 384 px: an image 2.4 nm across, as an atomic-resolution
    # one may be.)
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "500 pm", "500 pm")
    image, truth = figure(shape=(384, 384), value=500, unit=drawn, font=font, font_size=20)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit, bar.calibrated) == (500, *expected), bar.message


@pytest.mark.parametrize("large, small", [("10 pm", f"10 {MU}m"), (f"10 {MU}m", "10 pm")])
def test_a_label_read_in_micrometres_at_one_size_and_pm_at_the_other_is_micrometres(
        monkeypatch, large, small):
    # The two sizes disagree only by OCR's usual "p" for "µ": no lower confidence.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch,  # 40 px text, else 28
             lambda crop: (large, 0.9) if crop.shape[0] > 58 else (small, 0.9), f"10 {MU}m")
    image, truth = figure(value=10, unit=f"{MU}m", font_size=11)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (10, f"{MU}m") and bar.calibrated, bar.message
    assert bar.confidence > 0.85


def test_a_glyph_too_small_to_show_its_counter_leaves_pm_in_doubt():
    # Below an x-height of 8 px the top of a "µ" and the bowl of a "p" blur
    # alike: neither is claimed.
    from particleseg._figures import _text_mask

    for text in (f"2 {MU}m", "2 pm"):
        mask = _text_mask(text, "DejaVuSans.ttf", 9)
        assert scalebar._open_bowl(glyph_line(mask)) \
            is None


@pytest.mark.parametrize("line, small, wide, expected", [
    ("50 ", "50", f"50 {MU}m", (50, f"{MU}m")),    # the unit read as a blank
    ("10gm", "10gm", "10nm", (10, "nm")),          # a letter that is no unit
    ("50 ", "20", f"50 {MU}m", None),              # the line's sizes disagree
    ("50 ", "50", f"20 {MU}m", None),              # the wide crop reads another number
    ("nm", "nm", "50 nm", None),                   # the line gave no number
])
def test_a_line_read_without_its_unit_takes_it_from_the_wide_reading(
        monkeypatch, line, small, wide, expected):
    # The masked line sometimes loses its unit while the wider crop of the
    # same line reads it: the unit is taken from there only when both give
    # the same number, at both sizes of the line, and the text reported is
    # the wide reading.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch,  # 40 px text, else 28
             lambda crop: (line, 0.85) if crop.shape[0] > 58 else (small, 0.85), wide)
    # Glyphs too small to show the letter before the "m" (else they give it).
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=50, unit="nm")
    assert_read_or_unread(find_scale_bar(image), expected, wide.strip(), 0.8 * 0.85)


def test_a_detected_label_starting_on_the_bars_end_tick_is_read_without_it(monkeypatch):
    # Text detection took the end tick beside "2 nm" for a "1" ("12nm"): the
    # part of the box over the bar's columns is cut off and read again.
    bar = scalebar._Bar(top=36, left=11, bottom=45, right=68, length=57.0, thickness=3,
                        level=1.0, ground=0.5, quality=1.0, polarity="light", core_top=39,
                        core_bottom=42, sides=0.0)
    crop = np.arange(100 * 120, dtype=np.uint8).reshape(100, 120)
    seen = []

    def recognise(engine, line):
        seen.append(line)
        return "2nm", 0.9

    monkeypatch.setattr(scalebar, "_recognise", recognise)
    box, text, score = scalebar._off_the_bar(crop, (35, 65, 46, 100), "12nm", 0.8, bar, 0, 0,
                                             engine=None)
    assert box == (35, 69, 46, 100) and (text, score) == ("2nm", 0.9)
    assert seen[0].shape == (11 + 2 * 3, 31 + 2 * 3)  # the rest of the box, padded
    # A box that only comes near the bar's end, or lies off its rows, is kept as read.
    for other in [(35, 70, 46, 100), (10, 65, 30, 100)]:
        assert scalebar._off_the_bar(crop, other, "2nm", 0.8, bar, 0, 0, None) == (
            other, "2nm", 0.8)
    # Ending on the bar's left end: cut there.
    box, text, _ = scalebar._off_the_bar(crop, (35, 0, 46, 14), "2nm1", 0.8, bar, 0, 0, None)
    assert box == (35, 0, 46, 10) and text == "2nm"


def test_a_label_drawn_over_a_particle_at_the_end_of_the_bar_is_its_label():
    # A particle under the label and the bar's end: the strokes of the glyphs
    # stand out from it as the bar does, but they are not the bar; and the
    # glyphs, joined to the particle at the midpoint grey, are still glyphs.
    def particle(ground, truth):
        t, l, b, r = truth.bar_box
        disk(ground, ((t + b) // 2, l - 14), 20, 0.75)

    image, truth = flat_figure(shape=(384, 384), length_px=150, font_size=24, label_side="left",
                               under=particle)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)
    assert bar.label_box is not None
    top, left, bottom, right = bar.label_box
    t, l, b, r = truth.label_box
    assert left <= l + 2 and right >= r - 2


def test_a_label_touching_particles_is_found_whole():
    def particles(ground, truth):
        t, l, b, r = truth.label_box
        for x in (l - 10, r + 10):
            disk(ground, ((t + b) // 2, x), 12, 0.75)

    image, truth = flat_figure(value=500, label_side="below", under=particles)
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.label_box is not None
    top, left, bottom, right = bar.label_box
    t, l, b, r = truth.label_box
    assert left <= l + 2 and right >= r - 2


def test_particles_darker_than_the_ground_at_both_ends_are_not_an_outline():
    # A dark bar between two light particles: the particles are "darker than
    # the ground" in the bar's polarity, but they are not a thin outline.
    image, truth = figure(length_px=60, font_size=14, polarity="dark", label_side="above")
    t, l, b, r = truth.bar_box
    for x in (l - 11, r + 10):
        disk(image, ((t + b) // 2, x), 11, 0.8)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def measured_bar(box, core, length, polarity, *, level=1.0, ground=0.0, quality=1.0, sides=0.0):
    """A measured bar as ``scalebar._candidates`` compares them: box and core rows."""
    (top, left, bottom, right), (core_top, core_bottom) = box, core
    return scalebar._Bar(top=top, left=left, bottom=bottom, right=right, length=length,
                         thickness=core_bottom - core_top, level=level, ground=ground,
                         quality=quality, polarity=polarity, core_top=core_top,
                         core_bottom=core_bottom, sides=sides)


def test_a_bar_of_ink_wins_over_a_grey_stroke_with_alike_grounds():
    # Synthetic figure 100 of seed 22: a white 39 px bar between dark
    # particles (different grounds above and below it) touched the edge of
    # one, measured as a dark "bar" of a particle's grey with alike grounds:
    # that edge was kept and the scale bar lost.
    bar = measured_bar((362, 71, 369, 110), (362, 369), 39.0, "light", level=0.97,
                       ground=0.63, sides=0.51)
    edge = measured_bar((351, 54, 367, 79), (359, 362), 25.4, "dark", level=0.78,
                        ground=0.41, quality=0.73, sides=0.02)
    assert scalebar._better(bar, edge) and not scalebar._better(edge, bar)
    # Both of ink, or both not: the grounds decide, as before.
    assert not scalebar._better(bar, replace(edge, level=0.9, quality=0.9))
    assert not scalebar._better(replace(bar, level=0.8), edge)
    # Ink is told by its grey alone: a black bar whose ends a particle
    # frays (seed 10's figure 159) is still of ink, and its alike grounds
    # win over the white box's strip around it.
    strip = measured_bar((18, 293, 39, 387), (18, 33), 95.6, "light", level=0.99, ground=0.69,
                         sides=0.22)
    frayed = measured_bar((35, 301, 41, 373), (35, 41), 71.1, "dark", ground=0.01,
                          quality=0.79)
    assert scalebar._better(frayed, strip) and not scalebar._better(strip, frayed)


@pytest.mark.parametrize("label_side", ["left", "below"])
def test_a_dark_bar_in_a_light_box_is_the_bar_not_the_strip_of_box_beside_it(label_side):
    image, truth = figure(length_px=100, font_size=20, polarity="dark", boxed=True,
                          label_side=label_side)
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.polarity == "dark"
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def test_a_bar_inside_the_strip_of_its_box_is_the_bar():
    # A light bar in a dark box on light ground (a synthetic figure, 16-bit,
    # downscaled): beside the label, the box's strip above the bar has light
    # ground beyond the box and the light bar below it, the same grounds, as
    # a bar has, and it is longer. It holds the bar, so it is the box.
    strip = measured_bar((373, 263, 386, 335), (373, 381), 72.7, "dark", ground=0.1,
                         sides=0.06)
    bar = measured_bar((381, 268, 385, 326), (381, 385), 57.8, "light", ground=0.05)
    assert scalebar._better(bar, strip) and not scalebar._better(strip, bar)
    # of the same polarity, the longer one still wins
    same = replace(strip, polarity="light")
    assert scalebar._better(same, bar)


def test_a_bar_along_the_strip_of_its_box_is_the_bar():
    # Synthetic figures measured wrong before: a dark bar in a light box with
    # its label on the same line, where the box's whole line (label and bar,
    # 124 px) stands out as a light bar twice as long as the bar (59 px).
    line = measured_bar((359, 63, 375, 186), (359, 370), 124.1, "light", level=0.94,
                        ground=0.44, sides=0.1)
    bar = measured_bar((370, 120, 380, 179), (370, 380), 58.9, "dark", level=0.94,
                       ground=0.06, sides=0.01)
    assert scalebar._better(bar, line) and not scalebar._better(line, bar)
    # A light bar in a dark box: the box's strip above it (223 px for 171)
    # has the light ground beyond the box on one side and the bar on the other.
    strip = measured_bar((877, 218, 919, 440), (877, 914), 223.0, "dark", ground=0.68,
                         sides=0.01)
    light = measured_bar((914, 249, 936, 420), (914, 936), 171.0, "light")
    assert scalebar._better(light, strip) and not scalebar._better(strip, light)
    # Not along it: a bar that runs past the strip's end is not held by it.
    past = replace(light, left=150, right=321)
    assert scalebar._better(strip, past)
    # Much shorter than the strip: a piece of something beside it.
    piece = replace(bar, left=150, right=179, length=29.0)
    assert scalebar._better(line, piece)
    # Nearly as long, or ragged: the box's strip below a light bar, its ends
    # cut short by the label (synthetic figure 48), is not the bar.
    cut = measured_bar((485, 24, 501, 167), (485, 496), 143.0, "dark", ground=0.3,
                       quality=0.61, sides=0.34)
    light_bar = measured_bar((474, 21, 490, 170), (479, 485), 149.0, "light")
    assert scalebar._better(light_bar, cut)
    assert scalebar._better(light_bar, replace(cut, quality=1.0))
    # The box's strip above a light bar (synthetic figure 133: 380 px for
    # 430): clean, short enough, but with other grounds above and below.
    assert scalebar._better(light_bar, replace(cut, quality=1.0, length=130.0))
    # A grey particle between a light bar and its light label, cut by both
    # (synthetic figure 573: 50 px along a 156 px bar), is not drawn in ink.
    particle = measured_bar((977, 88, 991, 138), (984, 991), 50.0, "dark", level=0.78,
                            ground=0.03)
    bar_573 = measured_bar((990, 24, 1001, 180), (991, 1000), 156.2, "light",
                           level=0.97, ground=0.7, sides=0.09)
    assert scalebar._better(bar_573, particle) and not scalebar._better(particle, bar_573)
    # The white of a box between a dark label and the dark bar under it
    # (synthetic figure 1171: 27 px along a 52 px bar) only touches the bar
    # it runs along: the box's gap, not a bar drawn in a strip.
    gap = measured_bar((353, 41, 367, 66), (358, 367), 27.0, "light")
    bar_1171 = measured_bar((367, 14, 374, 66), (367, 374), 52.0, "dark")
    assert scalebar._better(bar_1171, gap) and not scalebar._better(gap, bar_1171)
    # A dark bar in a white box, a pixel thicker than the box's strip below
    # it, whose rows it shares (synthetic figure 1417: 123 px for 325).
    white_strip = measured_bar((52, 19, 83, 344), (67, 83), 325.0, "light", ground=0.28,
                               sides=0.29)
    bar_1417 = measured_bar((42, 206, 59, 329), (42, 59), 123.0, "dark")
    assert scalebar._better(bar_1417, white_strip) and not scalebar._better(white_strip, bar_1417)


def test_a_long_bar_between_two_strips_of_its_box_is_the_bar():
    # A long dark bar in a white box with narrow margins (synthetic figure
    # 1876: 238 px, its box's strips above and below 268 and 263 px, 0.89
    # and 0.91 of them) is the bar.
    above = measured_bar((616, 111, 639, 377), (616, 634), 267.8, "light", level=0.98,
                         ground=0.3, sides=0.18)
    below = measured_bar((641, 116, 664, 378), (646, 663), 262.8, "light", level=0.98,
                         ground=0.3, sides=0.09)
    bar = measured_bar((634, 130, 646, 368), (634, 646), 238.2, "dark", level=0.98, ground=0.1)
    bars = [above, bar, below]
    assert scalebar._held(bar, bars) and not scalebar._held(above, bars)
    for strip in (above, below):
        assert scalebar._better(bar, strip, [bar]) and not scalebar._better(strip, bar, [bar])
    # A strip on one side only (the ground between a bar's end ticks runs
    # along it, a tick's width shorter: synthetic figure 139, 112 px of dark
    # box between the ticks of a 123 px light bar): the longer stroke is the bar.
    light = measured_bar((548, 28, 569, 150), (553, 564), 123.1, "light", level=0.93,
                         sides=0.02)
    gap = measured_bar((564, 33, 588, 145), (565, 583), 112.0, "dark", level=0.93, sides=0.09)
    assert not scalebar._held(gap, [light, gap])
    assert scalebar._better(light, gap, []) and not scalebar._better(gap, light, [])


def test_the_ground_between_a_bars_end_ticks_is_not_a_bar_drawn_in_it():
    # Synthetic figure 2425: a dark bar with end ticks in a white box (139 px,
    # ticks 7 px wide). The white between the ticks, below the bar, runs along
    # it 125 px long (0.9 of it) as the strip of a box runs along a bar drawn
    # in it, and was taken for the bar; but it is not held there: it runs on
    # round the ticks, past both ends of the bar.
    image = np.full((256, 256), 0.05)  # a dark ground, as dark as the bar, round the box
    image[165:205, 40:220] = 1.0  # the white box
    image[180:190, 60:160] = 0.0  # the bar, 100 px ...
    for x in (60, 154):
        image[170:200, x:x + 6] = 0.0  # ... and its end ticks, 6 px wide
    bar = find_scale_bar(image, read=False)
    assert bar.polarity == "dark" and bar.length_px == pytest.approx(100, abs=1)
    # The same comparison on measured bars: held in the bar's rows, the gap
    # would be a bar drawn in a box; running past both its ends, it is not.
    dark = measured_bar((170, 60, 200, 160), (180, 190), 100.0, "dark")
    gap = measured_bar((190, 66, 205, 154), (190, 205), 88.0, "light", sides=0.02)
    assert scalebar._better(gap, dark)
    gap = replace(gap, reach_left=40, reach_right=220)
    assert scalebar._better(dark, gap) and not scalebar._better(gap, dark)


def test_a_bar_with_light_particles_along_most_of_one_side_is_a_bar():
    # Synthetic figure 2500: light particles touch a light bar (281 px, with
    # end ticks) along more than half of its lower edge. The medians of the
    # grounds above and below it differ as those of a box's strip do (the
    # bar's grey on one side, the ground beyond the box on the other), and the
    # bar was dropped; but along the rest of it the grounds are alike.
    image = np.full((256, 256), 0.3)
    rows, cols = np.mgrid[:256, :256]
    for x in (60, 95, 130, 165):
        image[(rows - 216) ** 2 + (cols - x) ** 2 <= 12 ** 2] = 0.85
    image[200:210, 40:200] = 1.0
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.length_px == pytest.approx(160, abs=1)


def test_a_stroke_of_a_detected_label_is_not_its_bar(monkeypatch):
    # Synthetic figure 2500: with the bar missed, the foot of the "2" of
    # "25nm" (23 px) was taken for a bar, and text detection around it found
    # "25nm", whose box holds the foot: a confident reading, 12 times too small.
    image = np.full((120, 200), 0.3)
    image[60:64, 60:84] = 1.0  # the foot ...
    image[40:60, 80:84] = 1.0  # ... of a glyph
    foot = measured_bar((60, 60, 64, 84), (60, 64), 24.0, "light", ground=0.3)
    crop_origin = (20, 12)  # of the crop around the bar that text detection sees
    label = (35, 55, 68, 118)  # (well inside the crop: not cut by its side)
    box = tuple(v - crop_origin[k % 2] for k, v in enumerate(label))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [(box, "25nm", 0.99)])
    assert scalebar._read_detected(image, foot, engine=None) is None
    # A bar that the detected box takes in beside its label is still its bar.
    image[40:60, 80:84] = 0.3
    hit = scalebar._read_detected(image, foot, engine=None)
    assert hit is not None and hit[:4] == (label, "25nm", 25.0, "nm")


def test_a_ragged_bar_gives_the_label_it_read_to_the_clean_bar_beside_it():
    # Synthetic figure 1242: "5 um" left of a 90 px bar. The bar's own line
    # on that side starts at a particle's edge and does not read; the edge
    # of a particle above it (35 px, ragged) read the label, and its length
    # went out as the scale.
    bar = measured_bar((234, 283, 248, 373), (238, 243), 90.4, "light", ground=0.28)
    edge = measured_bar((201, 211, 225, 245), (208, 219), 35.4, "light", level=0.84,
                        ground=0.38, quality=0.31)
    line = scalebar._Group("left", (237, 223, 247, 279), np.ones((10, 56), bool), 4.0)
    found = [(bar, "p", [line]), (edge, "p", [])]
    reading = (edge, "p", (237, 253, 245, 279), "5 um", 5.0, f"{MU}m", 0.84)
    assert scalebar._to_clean_bar(reading, found)[0] is bar
    # A clean bar keeps what it read; so does a ragged one with no clean bar
    # of its colour holding the label.
    clean = replace(edge, quality=0.9)
    assert scalebar._to_clean_bar((clean, *reading[1:]), found)[0] is clean
    dark = [(replace(bar, polarity="dark"), "p", [line]), (edge, "p", [])]
    assert scalebar._to_clean_bar(reading, dark)[0] is edge


def test_a_ragged_strip_of_a_particle_grey_gives_its_label_to_the_bar_of_ink_over_it():
    # Seed 74's figure 182: "100mm" under a 52 px black bar with end ticks,
    # in a white box, a dark particle at the box's corner. The bar's line
    # below started from the particle (nearer to the bar than the label)
    # and reached up into the bar's rows: no line of the bar held the label.
    # The edge of the particle under the label (24 px, ragged, of its grey)
    # read it, and went out as the scale at 0.78.
    bar = measured_bar((452, 29, 470, 81), (457, 465), 52.0, "dark", level=0.96, ground=0.03)
    edge = measured_bar((494, 77, 507, 101), (497, 504), 24.3, "dark", level=0.76,
                        ground=0.35, quality=0.46)
    found = [(bar, "p", []), (edge, "p", [])]
    reading = (edge, "p", (478, 19, 493, 92), "100mm", 100.0, "mm", 0.99)
    assert scalebar._to_clean_bar(reading, found)[0] is bar
    # Not a label far below the bar, nor one read by a ragged strip of ink
    # (a scale bar touched by particles), nor to a bar of a particle's grey.
    far = (edge, "p", (528, 19, 543, 92), *reading[3:])
    assert scalebar._to_clean_bar(far, found)[0] is edge
    ink = replace(edge, level=0.96)
    assert scalebar._to_clean_bar((ink, *reading[1:]), [(bar, "p", [])])[0] is ink
    grey = [(replace(bar, level=0.7), "p", []), (edge, "p", [])]
    assert scalebar._to_clean_bar(reading, grey)[0] is edge


def test_a_clean_strip_of_a_particle_grey_does_not_own_the_label_of_a_bar_of_ink():
    # Seed 75's figure 99: "100nm" beside a black 45 px bar in a white box;
    # the dark ground between the box's top edge and light particles above
    # it, a clean 73 px strip of the ground's grey, read the same label
    # (its line, below it): the longer was taken, and went out as the scale.
    bar = measured_bar((228, 13, 243, 58), (233, 238), 45.0, "dark", level=0.98, ground=0.02)
    strip = measured_bar((217, 59, 230, 131), (217, 230), 73.4, "dark", level=0.7, ground=0.32)
    assert scalebar._owns_label(bar, strip) and not scalebar._owns_label(strip, bar)
    # Of two bars of ink, or of two of a particle's grey, the longer.
    longer_ink = replace(strip, level=0.96)
    assert scalebar._owns_label(longer_ink, bar)
    assert scalebar._owns_label(strip, replace(bar, level=0.7))


def test_a_bar_shorter_than_the_label_it_read_gives_it_to_the_clean_bar_holding_it():
    # Synthetic seed 26 figure 30: "25 µm" over a 75 px bar in a box. The
    # bar's own line lost the "25"; a 12 px sliver above the label read it,
    # and only the bar's own misreading ("1m", not used) kept the sliver's
    # length from going out as the scale. Seed 11 figure 192's 14 px sliver
    # went out so.
    bar = measured_bar((312, 16, 315, 90), (312, 315), 74.8, "dark", ground=0.1)
    sliver = measured_bar((293, 62, 296, 75), (293, 296), 12.1, "dark", ground=0.1)
    line = scalebar._Group("above", (301, 53, 309, 70), np.ones((8, 17), bool), 3.0)
    found = [(bar, "p", [line]), (sliver, "p", [])]
    reading = (sliver, "p", (299, 36, 309, 70), f"25 {MU}m", 25.0, f"{MU}m", 0.99)
    assert scalebar._to_clean_bar(reading, found)[0] is bar
    # A bar at least as long as its label keeps it.
    longer = replace(sliver, left=30, length=40.0)
    assert scalebar._to_clean_bar((longer, *reading[1:]), found)[0] is longer
    # Nor does a bar short of the label as well take it (seed 3 figure 76:
    # a stroke of a glyph, 19 px, under a "250 µm" 122 px wide).
    stroke = replace(bar, left=40, right=59, length=19.1)
    short = [(stroke, "p", [line]), (sliver, "p", [])]
    assert scalebar._to_clean_bar(reading, short)[0] is sliver


def test_a_bar_keeps_its_own_reading_over_one_handed_to_it():
    # Synthetic seed 29 figure 30: "25 µm" below a 68 px bar with ticks. The
    # foot of the "2", a 9 px "bar", read the rest of the line as "5 µm" at
    # 0.96; handed to the scale bar, it beat the bar's own "25 µm" (0.83).
    bar = measured_bar((452, 23, 467, 91), (458, 461), 67.9, "light", ground=0.4)
    foot = measured_bar((478, 28, 485, 37), (480, 483), 9.0, "light", ground=0.4)
    line = scalebar._Group("below", (471, 28, 489, 86), np.ones((18, 58), bool), 4.0)
    found = [(bar, "p", [line]), (foot, "p", [])]
    own = (bar, "p", (471, 28, 489, 86), f"25 {MU}m", 25.0, f"{MU}m", 0.83)
    from_foot = (foot, "p", (467, 40, 489, 90), f"5 {MU}m", 5.0, f"{MU}m", 0.96)
    assert scalebar._to_clean_bar(from_foot, found)[0] is bar
    assert scalebar._to_clean_bars([own, from_foot], found) == [own]
    # With no reading of its own, the bar takes the one handed to it; with
    # one that agrees, its own stands: the bar's line can lose the "2" too,
    # and its wider crop's "25 µm" doubt it (synthetic seed 92 figure 181:
    # the foot's "5 µ", at 0.97, went out for a bar read "5 µ" at 0.39).
    (kept,) = scalebar._to_clean_bars([from_foot], found)
    assert kept[0] is bar and kept[3:] == from_foot[3:]
    doubted = (*own[:3], f"5 {MU}m", 5.0, f"{MU}m", 0.39)
    assert scalebar._to_clean_bars([doubted, from_foot], found) == [doubted]


def test_two_lines_over_the_same_text_read_differently_are_both_doubted(monkeypatch):
    # Synthetic seed 90 figure 99: a small serif "100 nm" over dark particles.
    # Its own line read "100 nm" at 0.77 (the stems of "nm" counted); a line
    # taking in the particles under it, where no stems can be counted, read
    # "100 mm" at 0.94 and went out. Here a tight line reads "100 nm" and a
    # wider one over it "200 nm": neither reading may calibrate.
    p = np.zeros((40, 200), np.float32)
    tight = scalebar._Group("below", (12, 20, 20, 84), np.zeros((8, 64), bool), 2.0)
    tight.mask[1:7, ::4] = True
    wide = scalebar._Group("below", (12, 4, 30, 100), np.zeros((18, 96), bool), 2.0)
    wide.mask[:8, 16:80] = tight.mask
    wide.mask[10:18, :30] = True  # a particle under the line
    p[12:30, 4:100][wide.mask] = 1.0

    def line(crop):  # the tight line's crop is the wider (height 40)
        return ("100 nm", 0.8) if crop.shape[1] > 4 * crop.shape[0] else ("200 nm", 0.95)

    fake_ocr(monkeypatch, line, "")
    bar = measured_bar((4, 20, 8, 84), (5, 7), 64.0, "light")
    assert scalebar._read_groups(p, bar, [wide], None)[1:] == ("200 nm", 200.0, "nm", 0.95)
    *_, score = scalebar._read_groups(p, bar, [tight, wide], None)
    assert score < scalebar.MIN_CONFIDENCE


def test_the_foot_of_a_glyph_is_not_a_scale_bar():
    image, truth = figure(value=25, unit="mm", font="DejaVuSerif.ttf", font_size=22,
                          polarity="dark", label_side="left")
    t, l, b, r = truth.bar_box
    image[t:b, l:r] = image[t - 12:b - 12, l:r]  # erase the bar, keep the text
    bar = find_scale_bar(image, read=False)
    assert bar is None or bar.label_box is None


def test_several_bars_give_one_of_them():
    image, first = figure(shape=(384, 384), corner=("bottom", "right"), length_px=90)
    image, second = draw_scale_bar(image, np.random.default_rng(1), length_px=60, value=50,
                                   unit="nm", font="DejaVuSans.ttf", font_size=16,
                                   polarity="light", boxed=False, ticks=False,
                                   label_side="above", corner=("top", "left"))[::2]
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert min(abs(bar.length_px - 90), abs(bar.length_px - 60)) <= 1.0


def test_without_the_ocr_extra_the_bar_is_found_and_the_message_says_how_to_read_it(no_ocr):
    image, truth = figure()
    bar = find_scale_bar(image)
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)
    assert bar.value is None and bar.pixel_size is None and not bar.calibrated
    assert 'pip install "particleseg[scalebar]"' in bar.message
    calibration = calibrate(image)
    assert (calibration.pixel_size, calibration.unit, calibration.source) == (None, "px", "none")
    assert any("particleseg[scalebar]" in m for m in calibration.messages)


# --------------------------------------------------------------------------
# Reading labels (OCR)


@pytest.mark.parametrize("value, unit, options", [
    (100, "nm", {}),
    (2, f"{MU}m", {"polarity": "dark", "boxed": True}),
    (50, "nm", {"label_side": "below", "ticks": True, "font": "DejaVuSerif.ttf"}),
    (500, "nm", {"label_side": "right", "corner": ("bottom", "left")}),
])
def test_find_scale_bar_reads_the_label(value, unit, options):
    pytest.importorskip("rapidocr_onnxruntime")
    image, truth = figure(value=value, unit=unit, **options)
    bar = find_scale_bar(image)
    assert bar.calibrated, bar.message
    assert (bar.value, bar.unit) == (value, unit)
    factor = 1000 if unit == f"{MU}m" else 1
    assert bar.pixel_size_nm == pytest.approx(value * factor / truth.length_px, rel=0.02)


def test_a_low_confidence_reading_is_not_a_calibration(monkeypatch):
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("100 nm", 0.3))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, _ = figure()
    bar = find_scale_bar(image)
    assert bar.value == 100 and not bar.calibrated
    assert "low confidence" in bar.message
    assert calibrate(image).unit == "px"


@pytest.mark.parametrize("drawn, ocr", [("nm", "100 mm"), ("mm", "100 nm")])
@pytest.mark.parametrize("font", ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"])
def test_nm_and_mm_are_told_apart_by_the_stems_of_their_letters(monkeypatch, drawn, ocr, font):
    # OCR confuses "nm" and "mm" in small text, both ways: an "n" has two
    # stems, an "m" three, and the glyphs decide.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (ocr, 0.95))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = figure(value=100, unit=drawn, font=font, font_size=14)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (100, drawn)
    assert bar.calibrated, bar.message


@pytest.mark.parametrize("seed", [0, 1])
def test_small_aliased_text_is_smoothed_before_it_is_read(seed):
    # "1 nm" in 11 px serif text drawn without anti-aliasing, on a 16-bit
    # image (synthetic figure 2277): enlarged as it was, the "n" read as a
    # "u", and the figure was calibrated in micrometres.
    pytest.importorskip("rapidocr_onnxruntime")
    image, truth = flat_figure(ground=0.85, seed=seed, polarity="dark", length_px=26, value=1,
                               unit="nm", font="DejaVuSerif-Bold.ttf", font_size=11)
    bar = find_scale_bar((image * 65535).astype(np.uint16))
    assert (bar.value, bar.unit) == (1, "nm") and bar.calibrated, bar.message


def test_only_small_aliased_text_is_smoothed():
    p = np.zeros((30, 60), np.float32)
    p[10:20, 10:12] = p[10:20, 16:18] = p[10, 10:18] = 1.0  # an "n" without grey edges
    group = scalebar._Group("above", (10, 10, 20, 18), p[10:20, 10:18] >= 0.5, 0.0)
    plain, smooth = (scalebar._ocr_crop(p, group, 40, smooth=s) for s in (False, True))
    greys = [np.mean((crop > 40) & (crop < 215)) for crop in (plain, smooth)]
    assert greys[1] > 1.5 * greys[0]
    # Anti-aliased (here: blurred) text is left as it is.
    from scipy import ndimage as ndi
    blurred = ndi.uniform_filter(p, 2)
    group = replace(group, mask=blurred[10:20, 10:18] >= 0.5)
    assert np.array_equal(scalebar._ocr_crop(blurred, group, 40, smooth=False),
                          scalebar._ocr_crop(blurred, group, 40))


@pytest.mark.parametrize("plain, calibrated", [("25 nm", False), ("75 um", True), ("2", True)])
def test_the_number_of_smoothed_text_must_agree_with_the_plain_reading(
        monkeypatch, plain, calibrated):
    # Smoothing small aliased text mends its letters but can blur a digit
    # into another: the crop read as it is must give the same number (its
    # unit may differ; a reading that is no length says nothing).
    pytest.importorskip("rapidocr_onnxruntime")
    smoothed = scalebar._ocr_crop
    plain_crops = []

    def crop(p, group, height=40, smooth=True):
        out = smoothed(p, group, height, smooth)
        if not smooth:
            plain_crops.append(out)
        return out

    monkeypatch.setattr(scalebar, "_ocr_crop", crop)
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (
        (plain, 0.95) if any(crop is c for c in plain_crops) else ("75 nm", 0.95)))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = figure(value=75, unit="nm", font_size=12)
    bar = find_scale_bar(image)
    assert plain_crops  # the label was smoothed
    assert (bar.value, bar.unit) == (75, "nm") and bar.calibrated is calibrated, bar.message


@pytest.mark.parametrize("wide, calibrated", [("25m", False), ("75m", True), ("m", True)])
def test_a_wide_reading_that_is_no_length_can_still_dispute_the_number(
        monkeypatch, wide, calibrated):
    # The line lost the foot of a small "2" and read "75 nm"; the wider crop
    # read "25m", no length, but another number.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "75 nm", wide)
    image, truth = figure(value=75, unit="nm")
    bar = find_scale_bar(image)
    assert bar.value == 75 and bar.calibrated is calibrated, bar.message


def test_a_weak_reading_of_a_label_line_is_checked_by_text_detection(monkeypatch):
    # A label line joined to texture beside it reads "22 µm" with a low
    # score; text detection around the bar finds the label itself.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (f"22 {MU}m", 0.3))
    # At the top left, the crop that text detection sees starts at the image's corner.
    image, truth = figure(value=2, unit=f"{MU}m", corner=("top", "left"))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [
        (tuple(truth.label_box), f"2 {MU}m", 0.95)])
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (2, f"{MU}m") and bar.calibrated, bar.message


@pytest.mark.parametrize("read, calibrated", [("200 nm", True), ("60 nm", True),
                                               ("208 nm", False), ("1.25 nm", False)])
def test_a_value_of_three_digits_is_not_used(monkeypatch, read, calibrated):
    # Bars are labelled with round numbers: "208 nm" is "200 nm" with a "0"
    # read as "8", and is reported, not used; "60 nm" is unusual but possible.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, read, read)
    image, truth = figure(value=200, unit="nm")
    bar = find_scale_bar(image)
    assert bar.text == read and bar.calibrated is calibrated, bar.message


@pytest.mark.parametrize("detected, odds, calibrated", [
    ("500um", None, False), ("500um", "nm", False), ("500um", f"{MU}m", True),
    (f"500 {MU}m", None, True)])
def test_a_detected_label_read_with_a_plain_u_is_doubted(monkeypatch, detected, odds,
                                                         calibrated):
    # Text detection reads small "500 nm" as "500um" too: with no glyph
    # reaching below the line, the "u" could be an "n", and the reading is
    # reported, not used, unless the recogniser's odds in the detected box
    # clearly favour the "u". A "µ" read as such is believed.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("500 m", 0.3))
    monkeypatch.setattr(scalebar, "_unit_by_odds", lambda engine, crop, number, tail=False: odds)
    monkeypatch.setattr(scalebar, "_recogniser_odds", lambda engine, crop: None)
    # Glyphs that cannot tell a "u" from an "n": no tail below the line, no open top.
    monkeypatch.setattr(scalebar, "_has_descender", lambda group: False)
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    # At the top left, the crop that text detection sees starts at the image's corner.
    image, truth = figure(value=500, unit=f"{MU}m", corner=("top", "left"))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [
        (tuple(truth.label_box), detected, 0.95)])
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (500, f"{MU}m") and bar.calibrated is calibrated, bar.message


@pytest.mark.parametrize("ahead, calibrated", [(None, False), (5.4, False), (8.6, True)])
def test_a_detected_millimetre_is_believed_on_odds_far_ahead(monkeypatch, ahead, calibrated):
    # Text detection reads a small "250mm" (seed 21's figure 4, downscaled
    # to 0.43) whose glyphs cannot confirm it: doubted, unless the
    # recogniser's odds in the detected box favour "mm" e**6.5 over every
    # other unit (e**8.6 there; e**5.4 for a bold serif "25nm" read "25mm").
    pytest.importorskip("rapidocr_onnxruntime")
    odds = None if ahead is None else {"nm": -1.0 - ahead, f"{MU}m": -14.0, "mm": -1.0}
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("250 m", 0.3))
    monkeypatch.setattr(scalebar, "_unit_by_odds", lambda engine, crop, number, tail=False: (
        odds and scalebar._unit_verdict(odds)))
    monkeypatch.setattr(scalebar, "_recogniser_odds", lambda engine, crop: None)
    monkeypatch.setattr(scalebar, "_unit_stems", lambda group: None)
    monkeypatch.setattr(scalebar, "_unit_by_widths", lambda group: None)
    image, truth = figure(value=250, unit="mm", corner=("top", "left"))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [
        (tuple(truth.label_box), "250mm", 0.95)])
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (250, "mm") and bar.calibrated is calibrated, bar.message


def test_a_label_unread_with_pieces_of_a_particle_is_read_again_without_them(monkeypatch):
    # A glyph touching a particle carries pieces of it (lighter than the
    # midpoint, short of the text's grey): the label is read again, with
    # those greys shown as white.
    pytest.importorskip("rapidocr_onnxruntime")
    readings = iter(["5Oum*"])
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: (next(readings, "50 nm"), 0.95))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = figure(value=50)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (50, "nm") and bar.calibrated, bar.message


def test_the_second_reading_shows_the_pieces_of_a_particle_as_white():
    p = np.full((20, 40), 0.3, np.float32)
    p[4:16, 4:7] = 1.0  # a stroke of the text, in the bar's grey
    p[14:18, 7:20] = 0.7  # a piece of a particle joined to it, past the midpoint
    group = scalebar._Group("above", (0, 0, 20, 40), p >= 0.65, 0.0)
    bar = scalebar._Bar(top=30, left=0, bottom=33, right=40, length=40.0, thickness=3,
                        level=1.0, ground=0.3, quality=1.0, polarity="light")
    first = scalebar._ocr_crop(p, group, height=20)
    second = scalebar._ocr_crop(p, scalebar._text_core(p, group, bar), height=20)
    assert first[15, 12] < 200 and second[15, 12] == 255  # the piece, grey then white
    assert second[5:12, 5].max() < 60  # the stroke stays black


def test_describe_says_when_the_unit_used_is_not_the_ocr_text():
    corrected = scalebar.ScaleBar(length_px=146.0, bar_box=(0, 0, 3, 146), text="5nm", value=5.0,
                                  unit="mm", confidence=0.56)
    assert corrected.describe() == '"5nm" (read as 5 mm) = 146.0 px'
    greek_mu = "5\N{GREEK SMALL LETTER MU}m"  # OCR's spelling of "5 µm"
    as_read = scalebar.ScaleBar(length_px=90.0, bar_box=(0, 0, 3, 90), text=greek_mu,
                                value=5.0, unit=MU + "m", confidence=0.9)
    assert as_read.describe() == f'"{greek_mu}" = 90.0 px'


def test_a_speck_at_the_end_of_a_label_line_is_left_out():
    # (id, top, left, bottom, right): a speck, then "1 nm" 10 px high.
    speck, one, n, m = (1, 10, 0, 12, 2), (2, 5, 5, 15, 8), (3, 8, 12, 15, 18), (4, 8, 20, 15, 28)
    members, box = scalebar._drop_end_specks([speck, one, n, m], (5, 0, 15, 28))
    assert members == [one, n, m] and box == (5, 5, 15, 28)
    members, box = scalebar._drop_end_specks([one, n, m, (5, 13, 30, 15, 32)], (5, 5, 15, 32))
    assert box == (5, 5, 15, 28)


@pytest.mark.parametrize("line", [
    # "0.5 nm": the decimal point lies between digits.
    [(1, 5, 0, 15, 5), (2, 13, 6, 15, 8), (3, 5, 9, 15, 14), (4, 8, 18, 15, 24),
     (5, 8, 26, 15, 34)],
    # "5 Å": the ring stands over its letter, not beyond it.
    [(1, 5, 0, 15, 6), (2, 5, 10, 15, 18), (3, 1, 12, 4, 16)],
])
def test_a_decimal_point_or_a_ring_is_not_a_speck(line):
    box = (min(c[1] for c in line), line[0][2], 15, max(c[4] for c in line))
    assert scalebar._drop_end_specks(list(line), box) == (line, box)


def test_a_label_with_a_speck_before_it_is_read(monkeypatch):
    # A grain of the ground just left of "1 nm" (beside the bar) made the line
    # read "-1 nm", not a length; the line now starts at the "1".
    pytest.importorskip("rapidocr_onnxruntime")
    image, truth = figure(shape=(256, 320), value=1, unit="nm", label_side="left", font_size=16)
    t, l, b, r = truth.label_box
    middle = (t + b) // 2 - 2
    image[middle:middle + 3, l - 5:l - 2] = image[truth.bar_box[0] + 1, truth.bar_box[1] + 5]
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (1, "nm") and bar.calibrated, bar.message
    assert bar.label_box[1] >= l - 2


GLYPHS_8PX = {  # 8 rows by 5 columns, strokes 1 px wide
    "5": ["11111", "10000", "10000", "11110", "00001", "00001", "10001", "01110"],
    "0": ["01110", "10001", "10001", "10001", "10001", "10001", "10001", "01110"],
}


def test_a_glyph_over_the_end_of_the_bar_is_not_an_end_tick():
    # "500" in 8 px text, 2 px over a bar's left end: the "5" is as narrow
    # as an end tick and as close to the bar, but it is no solid stroke.
    image = np.full((40, 80), 0.1, np.float32)
    image[19:22, 9:61] = 0.9  # the bar
    for left, glyph in zip((12, 19, 26), "500"):
        ink = np.array([list(row) for row in GLYPHS_8PX[glyph]]) == "1"
        image[9:17, left:left + 5] = np.where(ink, 0.9, 0.1)
    bar, p = scalebar._candidates(scalebar._normalise(image))[0]
    assert bar.length == pytest.approx(52, abs=1)
    line = scalebar._label_groups(p, bar)[0]
    assert line.box[1] == 12 and line.box[3] == 31  # from the "5" to the last "0"


def one_nm_mask(width=40):
    """ "1 nm" as a 12 px high mask: a tall "1", then an "n" (two stems) and
    an "m" (three stems), stems 3 px wide from the x-height at row 4."""
    mask = np.zeros((12, width), bool)
    mask[:, 1:3] = True  # the "1", full height
    mask[4, 6:16] = mask[4, 19:34] = True  # the arches of "n" and "m"
    for left in (6, 13, 19, 25, 31):
        mask[4:, left:left + 3] = True  # stems, 3 px wide
    return mask


def test_a_speck_beside_a_stem_is_not_another_stem():
    # A one-pixel sliver between the stems of the "n": five stems, not six.
    mask = one_nm_mask()
    mask[6:11, 11] = True  # the sliver, inside the "n"
    group = scalebar._Group("above", (0, 0, 12, 40), mask, 0.0)
    assert scalebar._unit_stems(group) == 5


def test_a_speck_after_the_letters_is_not_another_stem():
    # A short speck right of the "m" (a JPEG artefact or the edge of a
    # particle at the box): five stems, so "nm", not "mm".
    mask = one_nm_mask(width=48)
    mask[7:11, 42:45] = True  # the speck: half the x-height
    group = scalebar._Group("above", (0, 0, 12, 48), mask, 0.0)
    assert scalebar._unit_stems(group) == 5


@pytest.mark.parametrize("pad", [0, 2, 4])
def test_stems_are_counted_in_a_detected_box_with_empty_rows(pad):
    # A box from text detection holds empty rows above and below the glyphs.
    padded = np.pad(one_nm_mask(), ((pad, pad), (0, 0)))
    group = scalebar._Group("detected", (0, 0) + padded.shape, padded, 0.0)
    assert scalebar._unit_stems(group) == 5


#: "25nm" in 8 px serif text (synthetic figure 2313, 16-bit): the foot of the
#: "5" and the serif of the "n" share a column without touching.
TWENTY_FIVE_NM = """
####....#####....................
#..##...#........................
#..###..####..###.##..######.###.
...##......##..##..##..##..##..#.
...##.......##.##..##..##..##..##
..#.....#...##.##..##..##..##..##
##...#..#..##..##..##..##..##..##
######..####..###################
"""


def test_stems_are_counted_when_no_empty_column_parts_digits_and_letters():
    mask = np.array([[c == "#" for c in row] for row in TWENTY_FIVE_NM.split()])
    group = scalebar._Group("above", (0, 0) + mask.shape, mask, 0.0)
    assert scalebar._unit_stems(group) == 5
    assert scalebar._unit_plausibility("mm", group) == ("nm", 0.9)


def test_no_stem_count_without_letters_after_the_digits():
    mask = np.zeros((12, 30), bool)
    mask[:, 1:3] = mask[:, 6:9] = True  # "11" and nothing after it
    group = scalebar._Group("detected", (0, 0, 12, 30), mask, 0.0)
    assert scalebar._unit_stems(group) is None


def test_no_stem_count_when_a_digit_lost_its_top():
    # "10 nm" where the top of the "0" was lost (JPEG, a light ground): the
    # "0" would pass for a letter, so the stems cannot tell "nm" from "mm".
    mask = np.zeros((16, 50), bool)
    mask[:, 1:3] = True  # the "1", full height
    mask[3:, 6:9] = mask[3:, 12:15] = mask[3, 6:15] = mask[15, 6:15] = True  # the "0", cut
    mask[6, 18:28] = mask[6, 31:46] = True  # the arches of "n" and "m"
    for left in (18, 25, 31, 37, 43):
        mask[6:, left:left + 3] = True
    group = scalebar._Group("detected", (0, 0, 16, 50), mask, 0.0)
    assert scalebar._unit_stems(group) is None


#: "20 mm" in 9 px text (synthetic figure 588, JPEG): the second "m" lost the
#: middle of its first stem, so its stems count "nm".
TWENTY_MM = """
..##......##.............................
##..##...#.##............................
.....#..#...##......#.##..###...#.##..##.
.....#..#...##......##.####.##..##.###.##
....#...#...##......##..##..##..#...#...#
...#....#...##......#...##..##......#...#
..#.....#...##......#...##..##......#...#
.#####...####.......#...##..##......#...#
######....##.............#...#......#...#
"""


def test_stems_do_not_overrule_the_ocr_when_the_letter_widths_disagree_with_them():
    mask = np.array([[c == "#" for c in row] for row in TWENTY_MM.split()])
    group = scalebar._Group("above", (0, 0) + mask.shape, mask, 0.0)
    assert scalebar._unit_stems(group) == 5  # says "nm"
    assert scalebar._unit_by_widths(group) == "mm"  # two letters as wide as each other
    assert scalebar._proportional(group)  # ... and wider than the digits
    assert scalebar._unit_plausibility("mm", group) == ("mm", 0.9)  # OCR's "mm", doubted
    # Stems and widths agree on "nm": the OCR's "mm" is corrected.
    one_nm = scalebar._Group("above", (0, 0, 12, 40), one_nm_mask(), 0.0)
    assert scalebar._unit_by_widths(one_nm) == "nm"
    assert scalebar._unit_plausibility("mm", one_nm) == ("nm", 0.9)


def test_a_stroke_far_before_the_letters_stems_is_no_stem_of_theirs():
    # "25 nm" downscaled and JPEG-compressed (synthetic seed 20's figure
    # 164): the "5" lost its top and its stroke stood with the letters, so
    # they counted six stems and the OCR's "nm" was read "mm".
    letters = np.zeros((9, 60), bool)
    for left in (13, 27, 34, 42, 49, 56):
        letters[:, left:left + 2] = True
    starts, stops = scalebar._stem_runs(letters, 0, 9)
    assert list(starts) == [27, 34, 42, 49, 56]
    # Six stems evenly spaced are an "mm"; an "n" a little apart from an "m", five.
    letters[:, 13:15] = False
    letters[:, 20:22] = True
    assert len(scalebar._stem_runs(letters, 0, 9)[0]) == 6
    letters[:, 20:22] = False
    letters[:, 30:32] = letters[:, 22:24] = True
    letters[:, 27:29] = letters[:, 34:36] = False
    assert len(scalebar._stem_runs(letters, 0, 9)[0]) == 5


def test_five_stems_standing_apart_leave_an_ocr_mm_doubted(monkeypatch):
    # "1 mm" downscaled (synthetic seed 11's figure 146): the letters lost
    # their arches and a stem; the five thin stems left stand apart. They
    # do not turn the OCR's "mm" into "nm" (a silent factor of 10^6), nor
    # doubt an OCR's "nm".
    mask = np.zeros((12, 40), bool)
    mask[:, 1:3] = True  # the "1", full height
    for left in (6, 13, 19, 25, 31):
        mask[4:, left:left + 2] = True  # five stems 2 px wide, no arches
    group = scalebar._Group("above", (0, 0, 12, 40), mask, 0.0)
    assert scalebar._unit_stems(group) == 5
    assert scalebar._stem_maybe_lost(group)
    assert scalebar._unit_plausibility("mm", group) == ("mm", 0.45)
    assert scalebar._unit_plausibility("nm", group) == ("nm", 1.0)
    # Stems 3 px wide are not lost so (seed 5's figure 146, a 16-bit "500nm"
    # whose arches fell short of the midpoint grey): five are an "nm".
    for left in (6, 13, 19, 25, 31):
        mask[4:, left + 2] = True
    assert scalebar._unit_stems(group) == 5
    assert not scalebar._stem_maybe_lost(group)
    assert scalebar._unit_plausibility("mm", group) == ("nm", 0.9)
    # Stems with their arches, one of the "m"'s lost to downscaling (seed
    # 21's figure 66, "20 mm" 8 px high): the gap where it stood is twice
    # the others.
    mask = np.zeros((12, 40), bool)
    mask[:, 1:3] = True  # the "1", full height
    mask[4, 6:16] = mask[4, 18:28] = True  # the arches of the two "m"
    for left in (6, 10, 18, 22, 26):  # the first "m"'s third stem, at 14, lost
        mask[4:, left:left + 2] = True
    gap = scalebar._Group("above", (0, 0, 12, 40), mask, 0.0)
    assert scalebar._unit_stems(gap) == 5
    assert scalebar._stem_maybe_lost(gap)
    with monkeypatch.context() as m:  # letter widths that tell nothing
        m.setattr(scalebar, "_unit_by_widths", lambda group: None)
        assert scalebar._unit_plausibility("mm", gap) == ("mm", 0.45)
    # With their arches, the same stems are an "n" and an "m".
    whole = scalebar._Group("above", (0, 0, 12, 40), one_nm_mask(), 0.0)
    assert not scalebar._stem_maybe_lost(whole)
    assert scalebar._unit_plausibility("mm", whole) == ("nm", 0.9)


def two_panel_figure(second_length):
    """A 384 px figure with a bar of 90 px = 100 nm and one of ``second_length`` = 50 nm."""
    image, first = figure(shape=(384, 384), corner=("bottom", "right"), length_px=90)
    image, _, second = draw_scale_bar(image, np.random.default_rng(1), length_px=second_length,
                                      value=50, unit="nm", font="DejaVuSans.ttf", font_size=16,
                                      polarity="light", boxed=False, ticks=False,
                                      label_side="above", corner=("top", "left"))
    return image


def test_bars_that_disagree_are_not_a_calibration():
    pytest.importorskip("rapidocr_onnxruntime")
    image = two_panel_figure(second_length=80)  # 1.11 and 0.625 nm per pixel
    bar = find_scale_bar(image)
    assert bar.value in (100, 50) and len(bar.disagreeing) == 1
    assert not bar.calibrated and "disagree" in bar.message
    calibration = calibrate(image)
    assert (calibration.pixel_size, calibration.unit) == (None, "px")
    assert any("disagree" in m for m in calibration.messages)


def test_a_short_bar_beside_the_label_of_another_is_no_second_panel(monkeypatch):
    # A short stroke on the far side of the label reads the same label: one
    # label belongs to one bar, the longer, and there is no disagreement.
    pytest.importorskip("rapidocr_onnxruntime")
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("100 nm", 0.95))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    image, truth = flat_figure(shape=(256, 320), length_px=100, value=100, unit="nm",
                               label_side="right", corner=("bottom", "left"), font_size=16)
    t, l, b, r = truth.bar_box
    lt, ll, lb, lr = truth.label_box
    image[t:b, lr + 12:lr + 32] = image[t, l + 10]  # a 20-px stroke right of the label
    bar = find_scale_bar(image)
    assert bar.calibrated, bar.message
    assert bar.length_px == pytest.approx(100, abs=1.0) and not bar.disagreeing


def test_bars_that_agree_are_a_calibration():
    pytest.importorskip("rapidocr_onnxruntime")
    image = two_panel_figure(second_length=45)  # 100 nm / 90 px = 50 nm / 45 px
    bar = find_scale_bar(image)
    assert bar.calibrated, bar.message
    assert len(bar.others) == 1 and bar.disagreeing == ()
    assert bar.pixel_size_nm == pytest.approx(100 / 90, rel=0.02)


# --------------------------------------------------------------------------
# Calibration order


def test_calibrate_prefers_option_then_metadata_then_scale_bar(monkeypatch):
    image, truth = figure()
    read = scalebar.ScaleBar(length_px=80.0, bar_box=truth.bar_box, text="100 nm", value=100.0,
                             unit="nm", confidence=0.99)
    monkeypatch.setattr(scalebar, "find_scale_bar", lambda image: read)
    assert calibrate(image, pixel_size=2.0, unit="um").source == "option"
    agree = calibrate(image, metadata=(1.26, "nm"))
    assert (agree.pixel_size, agree.source, agree.messages) == (1.26, "metadata", ())
    disagree = calibrate(image, metadata=(1.5, "nm"))
    assert disagree.source == "metadata" and "differ by" in disagree.messages[0]
    from_bar = calibrate(image)
    assert from_bar.source == "scale bar"
    assert from_bar.pixel_size == pytest.approx(1.25) and from_bar.unit == "nm"


# --------------------------------------------------------------------------
# Annotations


def test_annotation_mask_covers_bar_and_label_but_not_the_particles():
    X, y = make_particles(1, (256, 256), n_particles=(12, 12), radius=(6, 12), random_state=0)
    x = X[0].astype(np.float32)
    x = 0.2 + 0.6 * (x - x.min()) / (x.max() - x.min())
    image, drawn, _ = draw_scale_bar(x, np.random.default_rng(0), length_px=80, value=100,
                                     unit="nm", font="DejaVuSans.ttf", font_size=16,
                                     polarity="light", boxed=True, ticks=False,
                                     label_side="above", corner=("bottom", "right"))
    mask = annotation_mask(image)
    assert mask.shape == image.shape and mask.dtype == bool
    assert mask[drawn].mean() > 0.95
    particles = (y[0] > 0) & ~drawn
    assert mask[particles].mean() < 0.05


def test_annotation_mask_of_a_blank_image_is_empty():
    assert not annotation_mask(np.zeros((64, 64))).any()


def count_bar_searches(monkeypatch):
    """A list that grows by one at every call of ``find_scale_bar`` (which still runs)."""
    calls, real = [], scalebar.find_scale_bar
    monkeypatch.setattr(scalebar, "find_scale_bar",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_annotation_mask_can_skip_the_bar_search(monkeypatch):
    image, _ = figure(seed=2)
    bar = find_scale_bar(image, read=False)
    full = annotation_mask(image)
    assert bar is not None
    assert np.array_equal(annotation_mask(image, scale_bar=bar, search_bar=False), full)
    calls = count_bar_searches(monkeypatch)
    without_bar = annotation_mask(image, search_bar=False)
    assert calls == []
    # only the bar is missed: the mask is a part of the full one
    assert not (without_bar & ~full).any()
    assert without_bar.sum() < full.sum()


def test_remove_annotated_particles_drops_only_particles_mostly_inside():
    labels = np.zeros((10, 10), int)
    labels[0:2, 0:4] = 1  # all inside
    labels[2:6, 0:2] = 2  # a quarter inside
    labels[7:, 7:] = 3  # outside
    mask = np.zeros((10, 10), bool)
    mask[:3, :] = True
    kept, n = remove_annotated_particles(labels, mask)
    assert n == 1 and sorted(np.unique(kept)) == [0, 2, 3]
    kept, n = remove_annotated_particles(labels, mask, overlap=0.2)
    assert n == 2 and sorted(np.unique(kept)) == [0, 3]
    assert remove_annotated_particles(labels, np.zeros_like(mask))[1] == 0
    with pytest.raises(ValueError, match="overlap"):
        remove_annotated_particles(labels, mask, overlap=1.5)
    with pytest.raises(ValueError):
        remove_annotated_particles(labels, mask[:5])


# --------------------------------------------------------------------------
# particleseg analyze


def write_figure(folder, name="figure.png", seed=0, **options):
    folder.mkdir(parents=True, exist_ok=True)
    image, truth = figure(shape=(320, 320), seed=seed, **options)
    iio.imwrite(folder / name, (image * 255).astype(np.uint8))
    return truth


def test_analyze_measures_a_folder_of_figures_in_nm_from_their_scale_bars(
        tmp_path, tiny_model, fake_prediction, capsys):
    pytest.importorskip("rapidocr_onnxruntime")
    fake_prediction(dark_particles)  # which also finds the dark bar and glyphs
    folder = tmp_path / "figures"
    write_figure(folder, "a.png", length_px=100, value=50, unit="nm", polarity="dark")
    write_figure(folder, "b.png", seed=1, length_px=120, value=2, unit=f"{MU}m", boxed=True)
    out = tmp_path / "results"
    assert main(["analyze", str(folder), "--model", tiny_model, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("from its scale bar") == 2 and "--pixel-size" not in err
    summary = pd.read_csv(out / "summary.csv").set_index("file")
    a, b = summary.loc[str(folder / "a.png")], summary.loc[str(folder / "b.png")]
    assert (a["unit"], a["pixel_size_from"]) == ("nm", "scale bar")
    assert (b["unit"], b["pixel_size_from"]) == ("nm", "scale bar")
    # The drawn bars: 50 nm over 100 px, and 2 µm = 2000 nm over 120 px.
    assert a["pixel_size"] == pytest.approx(0.5, rel=0.02)
    assert b["pixel_size"] == pytest.approx(2000 / 120, rel=0.02)
    assert a["scale_bar_text"].replace(" ", "") == "50nm"
    assert a["scale_bar_length_px"] == pytest.approx(100, abs=1)
    assert a["annotations_removed"] >= 1  # the glyphs of "50 nm" are dark blobs too
    particles = pd.read_csv(out / "particles.csv")
    assert "equivalent_diameter_nm" in particles and "equivalent_diameter_px" not in particles
    assert (out / "a_overlay.png").exists()


def test_analyze_bad_figures_give_messages_not_crashes(tmp_path, tiny_model, capsys):
    folder = tmp_path / "figures"
    folder.mkdir()
    iio.imwrite(folder / "blank.png", np.full((256, 256), 128, np.uint8))
    no_label = micrograph()
    no_label[230:235, 150:230] = 0.0
    iio.imwrite(folder / "no_label.png", (no_label * 255).astype(np.uint8))
    no_bar, truth = figure()
    t, l, b, r = truth.bar_box
    no_bar[t:b, l:r] = no_bar[t - 12:b - 12, l:r]
    iio.imwrite(folder / "no_bar.png", (no_bar * 255).astype(np.uint8))
    out = tmp_path / "results"
    assert main(["analyze", str(folder), "--model", tiny_model, "--out", str(out),
                 "--no-plots", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "no label next to it" in err and "--pixel-size" in err
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3
    assert (summary["unit"] == "px").all() and (summary["pixel_size_from"] == "none").all()


def test_analyze_without_the_ocr_extra_says_how_and_stays_in_pixels(
        tmp_path, tiny_model, no_ocr, capsys):
    write_figure(tmp_path / "figures")
    out = tmp_path / "results"
    assert main(["analyze", str(tmp_path / "figures"), "--model", tiny_model,
                 "--out", str(out), "--no-plots", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert 'pip install "particleseg[scalebar]"' in err and "--pixel-size" in err
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["unit"] == "px" and row["pixel_size_from"] == "none"
    assert row["scale_bar_length_px"] == pytest.approx(80, abs=1)


def test_analyze_looks_for_the_scale_bar_once_per_image(
        tmp_path, tiny_model, fake_prediction, monkeypatch, capsys):
    fake_prediction(dark_particles)
    folder = tmp_path / "figures"
    write_figure(folder, "bar.png", length_px=100, value=50, unit="nm", polarity="dark")
    iio.imwrite(folder / "no_bar.png", (micrograph() * 255).astype(np.uint8))
    calls = count_bar_searches(monkeypatch)
    out = tmp_path / "results"
    assert main(["analyze", str(folder), "--model", tiny_model, "--out", str(out),
                 "--no-plots", "--quiet"]) == 0
    capsys.readouterr()
    assert len(calls) == 2
    summary = pd.read_csv(out / "summary.csv").set_index("file")
    assert summary.loc[str(folder / "bar.png"), "annotations_removed"] >= 1
    # with --no-scale-bar, calibration does not look, so the mask does
    calls.clear()
    assert main(["analyze", str(folder), "--model", tiny_model, "--out", str(tmp_path / "r2"),
                 "--no-plots", "--quiet", "--no-scale-bar"]) == 0
    capsys.readouterr()
    assert len(calls) == 2


def test_analyze_no_scale_bar_leaves_the_figure_in_pixels(tmp_path, tiny_model, capsys):
    write_figure(tmp_path / "figures")
    out = tmp_path / "results"
    assert main(["analyze", str(tmp_path / "figures"), "--model", tiny_model, "--no-scale-bar",
                 "--out", str(out), "--no-plots", "--quiet"]) == 0
    capsys.readouterr()
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["unit"] == "px" and row["pixel_size_from"] == "none"
    assert np.isnan(row["scale_bar_length_px"])


@pytest.mark.slow
@pytest.mark.emps
def test_reads_real_emps_figures():
    """A few hand-measured EMPS bars (benchmarks/data/emps_scale_bars.csv)."""
    pytest.importorskip("rapidocr_onnxruntime")
    from pathlib import Path

    from particleseg.io import imread

    root = Path(__file__).resolve().parents[1]
    images = root.parent / "shared" / "data" / "emps-train" / "images"
    if not images.is_dir():
        pytest.skip(f"EMPS data absent: {images}")
    truth = pd.read_csv(root / "benchmarks" / "data" / "emps_scale_bars.csv").head(6)
    exact = 0
    for row in truth.itertuples():
        bar = find_scale_bar(imread(images / f"{row.name}.png").image)
        if bar is not None and bar.calibrated:
            assert bar.length_px == pytest.approx(row.bar_length_px, rel=0.03)
            exact += bar.value == row.value
    assert exact >= 4


@pytest.mark.parametrize("factor", [1, 2, 3])
@pytest.mark.parametrize("how", ["max", "min"])
def test_pool_takes_the_block_max_or_min(factor, how):
    img = np.random.default_rng(factor).random((13, 17)).astype(np.float32)
    before = img.copy()
    pooled = scalebar._pool(img, factor, how)
    h, w = 13 // factor, 17 // factor
    reduce = np.max if how == "max" else np.min
    expected = np.array([[reduce(img[r * factor:(r + 1) * factor, c * factor:(c + 1) * factor])
                          for c in range(w)] for r in range(h)])
    assert pooled.shape == (h, w)
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(img, before)  # the input is left as it was


@pytest.mark.parametrize("seed", range(20))
def test_runs_at_least_is_the_opening_by_a_horizontal_line(seed):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 50, 2)
    mask = rng.random((h, w)) < rng.uniform(0.3, 0.95)
    length = int(rng.integers(1, 16))
    expected = ndi.binary_opening(mask, structure=np.ones((1, length), bool))
    assert np.array_equal(scalebar._runs_at_least(mask, length), expected)


def test_a_strip_within_a_bars_stroke_is_part_of_the_bar():
    # A bar with end ticks over a light particle: its lower rows, between
    # the ticks, stand out from the particle as a thin strip of their own,
    # with the same ground above and below. The bar wins, not the strip.
    bar = measured_bar((15, 9, 36, 140), (20, 31), 131.3, "light", level=0.99,
                       ground=0.3, quality=0.91, sides=0.37)
    strip = measured_bar((29, 14, 42, 135), (29, 31), 122.9, "light", ground=0.75,
                         quality=0.96, sides=0.02)
    assert scalebar._better(bar, strip) and not scalebar._better(strip, bar)
    dark = replace(strip, polarity="dark")
    assert scalebar._better(dark, bar)  # another polarity: the grounds decide, as before


def one_unit_mask(first):
    """ "1 um" or "1 nm" as a 12 px high mask (see :func:`one_nm_mask`): the
    first letter closed at the top ("n", an arch) or at the bottom ("u")."""
    mask = one_nm_mask()
    if first == "u":
        mask[4, 6:16] = False
        mask[4, 13:16] = True  # the right stem's top
        mask[11, 6:16] = True  # the bowl, along the baseline
    return mask


@pytest.mark.parametrize("first", ["u", "n"])
def test_the_letter_before_the_m_is_told_by_where_it_is_open(first):
    group = scalebar._Group("below", (0, 0, 12, 40), one_unit_mask(first), 0.0)
    assert scalebar._unit_stems(group) == 5  # both have two stems, then the "m"'s three
    assert scalebar._first_letter(group) == first
    # OCR's plain "um" is believed over a "u", read as "nm" over an "n".
    want = "\N{MICRO SIGN}m" if first == "u" else "nm"
    assert scalebar._unit_from_glyphs((1.0, "\N{MICRO SIGN}m"), group, "1um") == (1.0, want)
    assert scalebar._plain_u("1um", group) is (first == "n")
    # A "µ" that OCR saw is never overruled.
    assert scalebar._unit_from_glyphs((1.0, "\N{MICRO SIGN}m"), group, "1\N{MICRO SIGN}m") \
        == (1.0, "\N{MICRO SIGN}m")


def test_a_first_letter_open_at_both_ends_tells_nothing():
    mask = one_unit_mask("u")
    mask[11, 6:16] = False  # no bowl either: two stems
    group = scalebar._Group("below", (0, 0, 12, 40), mask, 0.0)
    assert scalebar._first_letter(group) is None
    assert scalebar._plain_u("1um", group)  # still doubted
    assert scalebar._plain_u("1um", None)


def test_the_micron_sign_alone_reads_as_micrometres():
    assert scalebar.parse_scale_label("2 \N{GREEK SMALL LETTER MU}") == (2.0, "\N{MICRO SIGN}m")
    assert scalebar.parse_scale_label("2 \N{MICRO SIGN}") == (2.0, "\N{MICRO SIGN}m")


@pytest.mark.parametrize("wide, line, other", [
    ("25m", "75 nm", True),       # a glyph left out of the line
    ("110 mm", "10 mm", True),
    ("2uupm", "200\N{MICRO SIGN}m", False),  # digits read as letters: no other glyph
    ("", "5 nm", False),
    ("5 nm", "5 nm", False),
    ("2o ", "2 pm", True),        # an "o" that is a digit: "25" whose "5" the line lost
    ("5Onm", "50 nm", False),     # the same number, with OCR's letter for a digit
    ("0", "10 \N{GREEK SMALL LETTER MU}m", False),  # the wide crop lost the "1" (zeros alone)
    ("00", "100 nm", False),
    ("0", "1 nm", True),          # zeros that do not end the line's number
    ("5", "25 nm", True),         # a digit alone is a number of its own
])
def test_a_wide_reading_disputes_the_line_only_with_another_number(wide, line, other):
    assert scalebar._other_number(wide, line) is other


def test_a_label_beyond_specks_next_to_the_bar_is_found():
    # Specks (the grain of a particle near the bar) lie closer to the bar
    # than its label; the line still starts from the label's glyphs.
    image = np.full((60, 90), 0.1, np.float32)
    image[10:13, 9:81] = 0.9  # the bar
    for left in (12, 18, 24, 30, 36):
        image[15:17, left:left + 2] = 0.9  # specks, 2 px below the bar
    for left, glyph in zip((30, 37, 44), "500"):
        ink = np.array([list(row) for row in GLYPHS_8PX[glyph]]) == "1"
        image[22:30, left:left + 5] = np.where(ink, 0.9, 0.1)
    bar, p = scalebar._candidates(scalebar._normalise(image))[0]
    boxes = [group.box for group in scalebar._label_groups(p, bar)]
    assert (22, 30, 30, 49) in boxes


@pytest.mark.parametrize("seed", range(4))
def test_a_label_much_wider_than_its_bar_is_found_whole(seed):
    # A bold "200 nm" left of a bar less than half as long: the window the
    # line was looked for in cut off its first glyphs (synthetic seed 81
    # figure 123: "00 nm" unread, the label went to a particle's edge below
    # the box, 46 px for 92).
    image, truth = flat_figure(shape=(384, 384), seed=seed, length_px=60, value=200,
                               font="DejaVuSerif-Bold.ttf", font_size=40, label_side="left",
                               boxed=True)
    bar, p = next((bar, p) for bar, p in scalebar._candidates(scalebar._normalise(image))
                  if abs(bar.length - 60) < 1)
    assert scalebar._label_groups(p, bar)[0].box == truth.label_box


def test_small_bold_glyphs_are_no_particles():
    # An "m" 6 px high with strokes 3 px wide beside a "5" of 8 px: as thick
    # for its height as a small particle by the distance to its edge, but
    # the distance counts the pixel itself.
    image = np.full((40, 80), 0.1, np.float32)
    image[8:11, 9:61] = 0.9  # the bar
    ink = np.array([list(row) for row in GLYPHS_8PX["5"]]) == "1"
    image[15:23, 20:25] = np.where(ink, 0.9, 0.1)
    image[17:23, 28:29 + 10] = 0.9
    image[18:23, 31] = image[18:23, 35] = 0.1  # the "m": three stems 3 px wide under an arch
    bar, p = scalebar._candidates(scalebar._normalise(image))[0]
    line = scalebar._label_groups(p, bar)[0]
    assert line.box == (15, 20, 23, 39)  # the "5" and the "m"


@pytest.mark.parametrize("gap", [1, 2])
def test_the_top_stroke_broken_off_a_5_is_part_of_its_line(gap):
    # Small compressed text: the join between the top stroke of a "5" and
    # its bowl is lost. The stroke, 1 px high above a line of the bowl and
    # an "m", is too small for a glyph, but it is the 5's.
    image = np.full((40, 80), 0.1, np.float32)
    image[6:9, 9:61] = 0.9  # the bar
    ink = np.array([list(row) for row in GLYPHS_8PX["5"]]) == "1"
    image[15:23, 20:25] = np.where(ink, 0.9, 0.1)
    image[16:15 + gap + 1, 20] = 0.1  # the join, lost
    image[17:23, 28:39] = 0.9
    image[18:23, 31] = image[18:23, 35] = 0.1  # the "m"
    bar, p = scalebar._candidates(scalebar._normalise(image))[0]
    line = scalebar._label_groups(p, bar)[0]
    assert line.box == (15, 20, 23, 39)  # the "5", its top stroke, and the "m"
    assert line.mask[0, :5].all()


def test_glyphs_of_a_detected_box_leave_out_the_bar_and_what_lies_at_its_edges():
    bar = scalebar._Bar(top=30, left=0, bottom=33, right=20, length=20.0, thickness=3,
                        level=1.0, ground=0.0, quality=1.0, polarity="light",
                        core_top=30, core_bottom=33)
    crop = np.zeros((40, 50), np.float32)
    crop[14:26, 10:50] = one_nm_mask()  # the text
    crop[30:33, 0:20] = 1.0  # the bar, which the box takes in
    crop[32:34, 25:30] = 1.0  # a speck at the box's bottom edge
    glyphs = scalebar._detected_glyphs(crop, (10, 8, 34, 50), 0.5, bar, 0, 0)
    assert glyphs.box == (10, 8, 34, 50)
    assert np.array_equal(glyphs.mask[:16], crop[10:26, 8:50] >= 0.5)  # the text, whole
    assert not glyphs.mask[16:].any()  # no bar, no speck
    assert scalebar._unit_stems(glyphs) == 5
    # No ink at the midpoint (text of the other colour): no glyphs.
    assert scalebar._detected_glyphs(np.zeros((40, 50)), (10, 8, 34, 50), 0.5, bar, 0, 0) is None


def test_glyphs_of_a_detected_box_on_a_particle_are_the_text_at_its_own_grey():
    # Synthetic seed 14 figure 20: "50 mm" whose "50" lies on a dark
    # particle. At the midpoint grey the box is ink all over (the particle
    # and the text as one), and the "mm" went out doubted (0.36).
    bar = scalebar._Bar(top=60, left=0, bottom=63, right=20, length=20.0, thickness=3,
                        level=1.0, ground=0.0, quality=1.0, polarity="light",
                        core_top=60, core_bottom=63)
    crop = np.zeros((40, 50), np.float32)
    crop[6:34, 4:46] = 0.65  # the particle, darker than the text
    crop[14:26, 10:50] = np.where(one_nm_mask(), 1.0, crop[14:26, 10:50])
    glyphs = scalebar._detected_glyphs(crop, (10, 8, 30, 50), 0.5, bar, 0, 0)
    assert glyphs is not None
    assert np.array_equal(glyphs.mask, crop[10:30, 8:50] == 1.0)
    assert scalebar._unit_stems(glyphs) == 5


@pytest.mark.parametrize("first", ["u", "n"])
def test_a_letter_dropped_before_the_m_is_read_from_its_glyph(first):
    # OCR reads "1 um" in small bold text as "1 m" (metres never label a
    # micrograph's bar): the glyph before the "m" tells which letter it was.
    group = scalebar._Group("below", (0, 0, 12, 40), one_unit_mask(first), 0.0)
    want = {"u": "\N{MICRO SIGN}m", "n": "nm"}[first]
    assert scalebar._parse_with_glyphs("1 m", group) == (1.0, want)
    assert scalebar._parse_with_glyphs("1gm", group) == (1.0, want)  # a "g" with no tail
    undecided = one_unit_mask("u")
    undecided[11, 6:16] = False  # open at both ends: no letter claimed
    group = scalebar._Group("below", (0, 0, 12, 40), undecided, 0.0)
    assert scalebar._parse_with_glyphs("1 m", group) is None


def test_text_on_a_ground_of_the_bars_colour_is_not_its_label():
    # Light text in a dark box, and a "bar" that is the box's strip below
    # it: in that bar's polarity the box is ink around the text.
    bar = scalebar._Bar(top=26, left=5, bottom=29, right=55, length=50.0, thickness=3,
                        level=1.0, ground=0.0, quality=1.0, polarity="dark")
    crop = np.zeros((30, 60), np.float32)
    crop[5:25, 5:55] = 1.0  # the box, of the "bar"'s colour
    crop[10:20, 12:48] = one_nm_mask(width=36)[:10] == 0  # text of the other colour
    assert scalebar._on_ground_of_bar_colour(crop, (8, 10, 22, 50), bar)
    # Text of the bar's colour, with a margin of ground around it.
    assert not scalebar._on_ground_of_bar_colour(1.0 - crop, (8, 10, 22, 50), bar)
    # Particles around the text, of greys about the bar's: no flat ground.
    textured = crop.copy()
    textured[5:25, 5:55] = np.random.default_rng(0).uniform(0.55, 1.0, (20, 50))
    assert not scalebar._on_ground_of_bar_colour(textured, (8, 10, 22, 50), bar)


#: "50 nm" in 8 px bold serif text (seed 3 figure 171, JPEG): the hairline
#: arch of the "n" fell short of the midpoint grey and the serifs of its feet
#: joined along the line, so at the midpoint it has the shape of a "u".
FIFTY_NM = """
#####....###.........................
#.......##..##.......................
####....##..##....###..##.##########.
...##...##..##.....##..##..##..##..#.
#...##..##..##.....##..##..##..##..##
#...##..##..##.....##..##..##..##..##
#..###..##..##.....##..##..##..##..##
####.....####......##################
"""


def test_a_faint_arch_keeps_a_small_serif_n_from_passing_for_a_u():
    mask = np.array([[c == "#" for c in row] for row in FIFTY_NM.split()])
    grey = mask.astype(float)
    grey[2, 21:23] = 0.4  # the arch, a third of the way from the ground to the text
    assert scalebar._first_letter(glyph_line(mask)) \
        == "u"  # the mask alone is fooled
    group = glyph_line(mask, grey)
    assert scalebar._first_letter(group) is None
    assert scalebar._unit_from_glyphs((50.0, "\N{MICRO SIGN}m"), group, "50um") \
        == (50.0, "\N{MICRO SIGN}m")
    assert scalebar._parse_with_glyphs("50m", group) is None  # was read "50 µm"
    # A "u" open down to the ground keeps its verdict.
    grey[2, 21:23] = 0.1
    assert scalebar._first_letter(group) == "u"


@pytest.mark.parametrize("drawn, other", [("nm", "mm"), ("mm", "nm")])
@pytest.mark.parametrize("stems_seen", [True, False])
def test_readings_that_differ_only_in_nm_and_mm_agree_when_the_stems_decide(
        monkeypatch, drawn, other, stems_seen):
    # The line reads the drawn unit at one size and the other at the other
    # size and in the wider crop (OCR's nm/mm slip in small text). Where the
    # letters' stems tell "n" from "m", the readings agree with what they
    # show; where they cannot, the disagreement leaves the bar uncalibrated.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch,  # 40 px text, else 28
             lambda crop: (f"2 {drawn}", 0.9) if crop.shape[0] > 58 else (f"2 {other}", 0.9),
             f"2{other}")
    if not stems_seen:
        monkeypatch.setattr(scalebar, "_unit_stems", lambda group: None)
        monkeypatch.setattr(scalebar, "_unit_by_widths", lambda group: None)
    image, truth = figure(value=2, unit=drawn, font_size=18)
    bar = find_scale_bar(image)
    if stems_seen:
        assert (bar.value, bar.unit) == (2, drawn) and bar.calibrated, bar.message
        assert bar.confidence > 0.8
    else:
        assert not bar.calibrated, bar.message


@pytest.mark.parametrize("line, wide", [("5 jum", "5m"), ("5un", "5un"), ("5pn", "5un"),
                                        ("5\N{GREEK SMALL LETTER MU}n", "5un")])
@pytest.mark.parametrize("drawn", [f"{MU}m", "nm"])
def test_a_bold_micro_sign_misread_is_micrometres_when_a_glyph_reaches_below_the_line(
        monkeypatch, line, wide, drawn):
    # A small bold "µm" is read "jum" (the tail as a "j"), or its "m" losing
    # a stem as an "n" ("5un", "5pn"). With a glyph reaching below the line
    # the unit is µm; without one ("5 nm" drawn), such readings are no unit.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, line, wide)
    image, truth = figure(value=5, unit=drawn, font="DejaVuSerif-Bold.ttf", font_size=18)
    bar = find_scale_bar(image)
    if drawn == "nm":
        assert not (bar.calibrated and bar.unit == f"{MU}m"), bar.message
    else:
        assert (bar.value, bar.unit) == (5, f"{MU}m") and bar.calibrated, bar.message


@pytest.mark.parametrize("font", ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"])
def test_a_micro_sign_that_lost_its_tail_is_told_from_a_p_by_its_open_top(font):
    # A particle under the label took the tail of the "µ" (or of the "p"):
    # no glyph reaches below the line. Open at the top and closed at the
    # bottom, the letter is a "u", and "pm" is read "µm"; a "p" is closed at
    # the top and stays "pm".
    from particleseg._figures import _text_mask

    for text, expected in ((f"2{MU}m", f"{MU}m"), ("2pm", "pm")):
        mask = _text_mask(text, font, 16)
        base = np.nonzero(mask[:, -3:].any(axis=1))[0][-1] + 1  # the baseline of the "m"
        group = glyph_line(mask[:base])
        assert scalebar._unit_from_glyphs((2.0, "pm"), group, "2pm") == (2.0, expected)


def test_a_bar_joined_by_the_ground_beside_a_particle_is_found_by_its_own_rows():
    # The search's top-hat makes the ground beside a dark particle bright; a
    # light bar below the particle joins that ground, in rows shorter than
    # the bar's, down to the image's edge. The bar is the block of rows
    # nearly as long as its own.
    mask = np.zeros((60, 120), bool)
    mask[30:38, 5:95] = True  # the bar, 90 px
    mask[38:, 5:60] = True  # the ground beside the particle, to the bottom edge
    mask[28:30, 40:50] = True  # a glyph's serif touching the bar
    assert scalebar._long_rows(mask, 10) == [(30, 5, 38, 95)]
    # A band across the bottom edge, as long in every row, is still no bar.
    band = np.zeros((60, 120), bool)
    band[40:, 5:95] = True
    assert scalebar._long_rows(band, 10) == []


def test_a_bar_touched_by_a_particle_cut_by_the_images_edge_is_measured():
    # A dark particle cut by the bottom edge touches the end of a dark bar
    # 3 px above that edge: the bar is not itself cut by the edge.
    rng = np.random.default_rng(0)
    image = np.clip(0.8 + rng.normal(0, 0.02, (256, 256)), 0, 1)
    rows, cols = np.mgrid[:256, :256]
    image[np.hypot(rows - 256, cols - 206) < 10] = 0.3  # the particle
    image[247:253, 208:245] = 0.02  # the bar, 37 px
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.length_px == pytest.approx(37, abs=1.5)
    assert bar.bar_box[2] <= 254  # the bar's rows, not the particle's


def test_a_millimetre_reading_without_glyphs_to_confirm_it_is_not_used(monkeypatch):
    # OCR reads even large "nm" as "mm" when particles touch its letters;
    # "mm" bars are rare on micrographs: unless the letters' stems or widths
    # confirm it, a reading in "mm" is reported but not used, however sure
    # the OCR is.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "2 mm", "2 mm")
    image, truth = figure(value=2, unit="mm", font_size=18)
    assert find_scale_bar(image).calibrated  # the glyphs confirm it
    monkeypatch.setattr(scalebar, "_unit_stems", lambda group: None)
    monkeypatch.setattr(scalebar, "_unit_by_widths", lambda group: None)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (2, "mm") and not bar.calibrated
    assert "low confidence" in bar.message


@pytest.mark.parametrize("plain, expected", [((500.0, f"{MU}m"), (f"{MU}m", True)),
                                             (None, ("pm", False)), ((500.0, "pm"), ("pm", False))])
def test_a_label_read_in_pm_is_micrometres_when_its_unsmoothed_reading_sees_the_micro_sign(
        monkeypatch, plain, expected):
    # Both sizes read "500pm"; the crop read as it is, without smoothing,
    # reads "500 µm" (or "500gm" over a glyph reaching below the line): OCR
    # reads a "µ" as a "p", seldom a "p" as a "µ". Glyphs too small to decide.
    # (500 pm over 80 of 256 px: an image 1.6 nm across, as an atomic-resolution
    # one may be.)
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "500pm", "500pm")
    monkeypatch.setattr(scalebar, "_plain_reading", lambda p, group, engine, crop: plain)
    monkeypatch.setattr(scalebar, "_open_bowl", lambda group: None)
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=500, unit=f"{MU}m", font_size=18)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit, bar.calibrated) == (500, *expected), bar.message


def test_a_descender_is_seen_beside_a_single_other_glyph():
    # Small text where the "1" was lost and the "µ" joins the "m": two tall
    # glyphs, a "0" on the line and a "µm" whose tail reaches 2 px below it.
    mask = np.zeros((10, 22), bool)
    mask[0:8, 0:5] = True  # "0"
    mask[2:10, 7:9] = True  # the stem of the "µ", with its tail
    mask[2:8, 9:22] = True  # the rest of "µm"
    group = glyph_line(mask)
    assert scalebar._has_descender(group)
    mask[8:10] = False  # no tail: both glyphs end on the line
    assert not scalebar._has_descender(glyph_line(mask[:8]))


def ten_micrometres_mask():
    """ "10 µm" as a 20 px high mask: "1" and "0" on the line, the "µ"'s tail 4 px below it."""
    mask = np.zeros((20, 44), bool)
    mask[0:16, 1:4] = True  # "1"
    mask[0:16, 7:15] = True  # "0"
    mask[5:20, 19:22] = True  # the stem of the "µ", with its tail
    mask[5:16, 22:27] = True  # the rest of the "µ"
    mask[5:16, 30:44] = True  # "m"
    return mask


@pytest.mark.parametrize("read, expected", [
    ("10 p\N{GREEK SMALL LETTER MU}m", (10.0, "\N{MICRO SIGN}m")),
    ("10 j\N{MICRO SIGN}m", (10.0, "\N{MICRO SIGN}m")),
    ("10 x\N{GREEK SMALL LETTER MU}m", None),  # no letter with a tail
])
def test_the_tail_of_a_micro_sign_read_as_a_letter_before_it_is_the_micro_sign(read, expected):
    # Small text: OCR reads the tail of a "µ" as a "p" of its own before
    # the "µ" ("5 pμm" for "5 µm"), which is no unit.
    group = glyph_line(ten_micrometres_mask())
    assert scalebar._parse_with_glyphs(read, group) == expected
    if expected is not None:  # the tail is needed
        mask = ten_micrometres_mask()
        mask[16:20] = False
        assert scalebar._parse_with_glyphs(read, glyph_line(mask[:16])) is None


def test_a_particle_joined_below_a_glyph_is_no_tail():
    # Synthetic seed 26 figure 102: "10 nm" read "10 m", a dark particle
    # joined to the "1" from below taken for the tail of a "µ": 10 µm used.
    assert scalebar._has_descender(glyph_line(ten_micrometres_mask()))
    # The first glyph reaching below the line: a number's digit, not a "µ".
    mask = ten_micrometres_mask()
    mask[16:20, 19:22] = False  # the "µ" loses its tail ...
    mask[16:20, 1:4] = True     # ... and the "1" gains one
    assert not scalebar._has_descender(glyph_line(mask))
    # A glyph reaching below the line by more than half the line's height
    # above it (a particle joined to the "µ"): no tail.
    mask = np.zeros((40, 44), bool)
    mask[:20] = ten_micrometres_mask()
    mask[20:40, 16:26] = True
    assert not scalebar._has_descender(glyph_line(mask))


def test_a_detected_line_cut_by_the_side_of_the_region_is_read_in_a_wider_one(monkeypatch):
    # Synthetic seed 26 figure 103: "250 nm" left of a 55 px bar reached past
    # the region that text detection saw, which read "50 nm": used, 5 times
    # too large. A line touching a side of the region is read in a wider one.
    # The label at rows 90-104, columns 200-295 of the image, ending 5 px
    # before the bar; the first region starts at column 220, the second at 140.
    image = np.full((200, 400), 0.2)
    bar = measured_bar((100, 300, 104, 340), (100, 104), 40.0, "light", ground=0.2)
    seen = []

    def detect(engine, crop):
        seen.append(crop.shape)
        if len(seen) <= 2:  # the first region (rows from 60), in both polarities
            return [((30, 0, 44, 75), "50 nm", 0.99)]
        return [((70, 60, 84, 155), "250 nm", 0.99)]  # the second (rows from 20)

    monkeypatch.setattr(scalebar, "_detect_text", detect)
    hit = scalebar._read_detected(image, bar, engine=None)
    assert hit is not None and hit[1:4] == ("250 nm", 250.0, "nm")
    assert seen[2][1] > seen[0][1]
    # A line well inside the region is read from it, as before.
    seen.clear()
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: (
        seen.append(crop.shape) or [((30, 15, 44, 75), "50 nm", 0.99)]))
    hit = scalebar._read_detected(image, bar, engine=None)
    assert hit is not None and hit[1:4] == ("50 nm", 50.0, "nm") and len(seen) == 1


def test_detected_words_join_their_next_neighbour_on_the_line():
    # A panel letter below the label starts between its number and its unit:
    # "250" still joins "nm" (synthetic seed 26 figure 103).
    words = [((13, 94, 38, 150), "250", 0.99), ((122, 95, 160, 150), "(c)", 0.94),
             ((17, 157, 37, 204), "nm", 0.99)]
    texts = [text for _, text, _ in scalebar._join_words(words)]
    assert "250 nm" in texts and "(c) nm" not in texts and "250 (c)" not in texts


def test_detected_words_whose_boxes_overlap_by_a_pixel_are_joined():
    # Seed 29's figure 163: "2 nm" beside a bar's end tick, detected as "2"
    # and "nm" in boxes overlapping by a pixel; neither parsed alone, and the
    # bar was left with no label.
    words = [((82, 290, 111, 343), "2", 0.97), ((91, 342, 109, 378), "nm", 0.99)]
    joined = scalebar._join_words(words)
    assert ((82, 290, 111, 378), "2 nm", 0.97) in joined
    assert len(joined) == 3  # no box joins itself


@pytest.mark.parametrize("font_size", [16, 22])
def test_millimetres_are_confirmed_by_the_glyphs_core_when_greys_join_them(
        monkeypatch, font_size):
    # A downscaled label's glyphs are joined by greys short of the text's (a
    # line of them drawn here across "25mm"): the whole line shows no
    # letters to count, its core (the pixels at the text's grey) shows the
    # six stems of "mm", and the OCR's "mm" is used.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "25mm", "25mm")
    image, truth = figure(value=25, unit="mm", font_size=font_size)
    top, left, bottom, right = truth.label_box
    join_letters(image, truth.label_box, np.median(image[top - 6:top - 3, left:right]))
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (25, "mm") and bar.calibrated, bar.message
    # Without the core, the glyphs cannot confirm "mm" and it is not used.
    monkeypatch.setattr(scalebar, "_text_core", lambda p, group, bar: group)
    assert not find_scale_bar(image).calibrated


def test_the_lines_stems_overrule_a_core_that_lost_one(monkeypatch):
    # Synthetic seed 44's figure 38: a small serif "50 nm" whose line reads
    # "50 111", its core no better, and its wide crop "50mm". The core lost
    # a stem of the "n" and, with the letters as wide as each other, showed
    # "mm"; the whole line's five stems read "nm". "50 mm" went out at
    # 0.61, a millionfold wrong scale: now the unit is doubted.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "25 111", "25 mm")
    monkeypatch.setattr(scalebar, "_unit_in_core", lambda p, group, bar, unit, value: (unit, 1.0))
    image, truth = figure(value=25, unit="nm", font_size=16)
    bar = find_scale_bar(image)
    assert bar.unit == "mm" and not bar.calibrated, bar.message
    # A line whose stems cannot be counted leaves the core's word standing.
    monkeypatch.setattr(scalebar, "_unit_by_stems", lambda group, stems=None: None)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (25, "mm") and bar.calibrated, bar.message


@pytest.mark.parametrize("font_size", [16, 22])
def test_a_detected_label_touching_a_particle_is_confirmed_by_its_core(monkeypatch, font_size):
    # Synthetic figure 85 of seed 22: "1 mm" drawn over a particle of a grey
    # short of the text's. The line search reads only "m"; text detection
    # finds the label, whose glyphs at the midpoint grey are joined by the
    # particle (a line of its grey drawn here across "25mm"): no letters to
    # count, and the OCR's "mm" was doubted. In the line's core the six
    # stems of "mm" show, and it is used.
    pytest.importorskip("rapidocr_onnxruntime")
    # At the top left, the crop that text detection sees starts at the image's corner.
    image, truth = figure(value=25, unit="mm", font_size=font_size, corner=("top", "left"),
                          label_side="below")
    top, left, bottom, right = truth.label_box
    join_letters(image, truth.label_box, np.median(image[bottom + 3:bottom + 6, left:right]))
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("m", 0.99))
    monkeypatch.setattr(scalebar, "_recogniser_odds", lambda engine, crop: None)
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [
        (tuple(truth.label_box), "25mm", 0.95)])
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (25, "mm") and bar.calibrated, bar.message
    # Without the core, the glyphs cannot confirm "mm" and it is not used.
    monkeypatch.setattr(scalebar, "_text_core", lambda p, group, bar: group)
    bar = find_scale_bar(image)
    assert bar.value == 25 and not bar.calibrated


def test_a_piece_of_a_particle_reaching_far_below_a_label_line_does_not_join_it():
    # "25µm" in a box, beside a light particle that the box cuts (seed 5's
    # figure 189): the particle's piece starts within the line's rows but
    # reaches 12 px below them; joined, it pulled the line down onto the bar.
    glyphs = [(1, 6, 64, 15, 71), (2, 6, 73, 15, 80), (3, 8, 81, 18, 90), (4, 8, 91, 15, 104)]
    particle = (5, 10, 38, 30, 60)
    members, box = scalebar._grow_line(glyphs[2], glyphs + [particle], used=set())
    assert sorted(members) == glyphs and box == (6, 64, 18, 104)
    # A digit beside a line of small letters, and a descender, still join.
    letters = (1, 10, 20, 18, 40)
    digit, tail = (2, 5, 10, 18, 17), (3, 10, 42, 22, 48)
    members, box = scalebar._grow_line(letters, [letters, digit, tail], used=set())
    assert len(members) == 3 and box == (5, 10, 22, 48)


def test_the_strip_of_a_box_near_the_images_edge_is_no_bar():
    # A dark box 2 px below the top edge holds a light bar and its label;
    # something dark joins the box to the edge at a few columns. The box's
    # strip above the bar is as long as the box: the bar inside it is the
    # scale bar.
    rng = np.random.default_rng(0)
    image = np.clip(0.7 + rng.normal(0, 0.02, (256, 340)), 0, 1)
    image[2:20, 3:100] = 0.02  # the box
    image[0:2, 40:45] = 0.02  # joined to the top edge
    image[9:14, 66:96] = 0.98  # the bar, 30 px
    image[9:15, 8:60:6] = 0.98  # strokes of its label
    bar = find_scale_bar(image, read=False)
    assert bar is not None and bar.length_px == pytest.approx(30, abs=1.0)
    assert bar.polarity == "light"


def test_a_thin_sliver_beyond_the_last_letter_adds_no_stem():
    # "nm" with the edge of its label's box 6 px beyond the "m" (seed 6's
    # figure 156): counted, the edge made six stems, read "mm".
    mask = np.zeros((10, 30), bool)
    mask[:, 0:3] = True  # a digit
    mask[:, 3:5] = False
    mask[3:, 6:8] = mask[3:, 10:12] = True  # the "n"
    mask[3, 6:12] = True
    mask[3:, 14:16] = mask[3:, 18:20] = mask[3:, 22:24] = True  # the "m"
    mask[3, 14:24] = True
    group = glyph_line(mask)
    assert scalebar._unit_stems(group) == 5
    mask[3:8, 29] = True  # the box's edge
    assert scalebar._unit_stems(group) == 5
    mask[3:, 26:28] = True  # a third letter as close as the others is counted
    assert scalebar._unit_stems(group) == 7


def test_letter_widths_tell_nothing_in_a_monospaced_font(monkeypatch):
    # In a monospaced font "n" and "m" are as wide as each other: the widths
    # do not confirm an OCR's "mm" (seed 6's figure 190, "1 nm" read "1 mm");
    # an "m" as wide as the digits shows such a font.
    from particleseg._figures import _text_mask

    monkeypatch.setattr(scalebar, "_unit_stems", lambda group: None)  # the stems cannot tell
    for font, expected in (("DejaVuSansMono.ttf", 0.45), ("DejaVuSans.ttf", 1.0),
                           ("DejaVuSerif.ttf", 1.0)):
        mask = _text_mask("20 mm", font, 30)
        group = glyph_line(mask)
        assert scalebar._unit_plausibility("mm", group) == ("mm", expected), font



def test_a_piece_reaching_past_a_label_line_both_ways_joins_it_only_close_by():
    # "250 µm" 11 px high in a box, a light particle 17 px beyond the "m"
    # (seed 8's figure 92): its piece reaches past the line above and below;
    # joined, it took the line into the bar's rows, and the line was lost.
    glyphs = [(1, 12, 100, 23, 106), (2, 12, 108, 23, 114), (3, 15, 116, 23, 122),
              (4, 15, 124, 23, 130)]
    particle = (5, 10, 147, 29, 155)
    members, box = scalebar._grow_line(glyphs[2], glyphs + [particle], used=set())
    assert sorted(members) == glyphs and box == (12, 100, 23, 130)
    # A digit taller than a line of letters joins as far as its own height.
    letters, digit = (1, 15, 20, 23, 40), (2, 12, 5, 23, 8)
    members, _ = scalebar._grow_line(letters, [letters, digit], used=set())
    assert len(members) == 2


def test_a_glyph_broken_above_its_foot_keeps_its_foot_in_the_line():
    # Downscaled small text breaks a "2" into its upper part and its foot, a
    # sliver two rows high (seed 8's figure 92); left out, "250 µm" was read ">0 µm".
    image, truth = flat_figure(ground=0.1, value=25, unit="nm", font_size=13)
    t, l, b, r = truth.label_box
    glyphs = image[t:b, l:r] > 0.5
    top = t + np.nonzero(glyphs.any(axis=1))[0][0]
    left = l + np.nonzero(glyphs.any(axis=0))[0][0]
    image[top + 6, left:left + 7] = 0.1  # a blank row through the "2", above its foot
    foot = image[top + 7:top + 9, left:left + 7] > 0.5
    assert foot.sum() >= 6
    bar, p = next(iter(scalebar._candidates(scalebar._normalise(image))))
    group = scalebar._label_groups(p, bar)[0]
    gt, gl = group.box[:2]
    kept = group.mask[top + 7 - gt:top + 9 - gt, left - gl:left + 7 - gl]
    assert kept[foot].all()


@pytest.mark.parametrize("radius", [16, 20, 26])
def test_a_tick_bar_with_a_particle_against_a_tick_is_measured_to_its_ticks(radius):
    # A dark particle touches the outer side of the right end tick and the
    # bar's lower rows (seed 9's figure 3): those rows ran on into it, the
    # longest, and the bar's other rows were left out; thinner than its
    # ticks are wide, the bar was measured between them (52 px for 58).
    rng = np.random.default_rng(0)
    image = np.clip(0.85 + rng.normal(0, 0.02, (200, 200)), 0, 1)
    disk(image, (102 + radius, 118 + radius), radius, 0.3)
    image[100:109, 60:119] = 0.0  # the bar, 9 rows
    image[91:118, 60:64] = image[91:118, 115:119] = 0.0  # its end ticks
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(59, abs=1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jpeg_ringing_beside_a_faint_bar_is_not_an_outline(seed):
    # A light bar of little contrast (JPEG, seed 9's figure 82): a column a
    # third of the contrast darker than the ground beside each end is ringing,
    # not a dark outline to add to the length (107 px for 103).
    image, truth = flat_figure(ground=0.6, seed=seed, length_px=100, font_size=14)
    t, l, b, r = truth.bar_box
    level = float(np.median(image[t:b, l:r]))
    image[t:b, l - 2] = image[t:b, r + 1] = 0.6 - 0.3 * (level - 0.6)
    bar = find_scale_bar(image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(truth.length_px, abs=1.0)


def serif_unit_mask(first, x_height):
    """ "1 nm" or "1 um" with serifs: a serif "n" has feet that half close its
    bottom; a serif "u" has spurs that half close its top (5 px between its stems)."""
    mask = np.zeros((x_height + 4, 40), bool)
    mask[:, 1:3] = True  # the "1"
    for stem in (6, 14, 20, 26, 32):
        mask[4:, stem:stem + 3] = True
    mask[4, 20:35] = True  # the "m"'s arches
    if first == "n":
        mask[4, 6:17] = True  # the arch
        mask[-1, 5:10] = mask[-1, 13:18] = True  # the feet's serifs
    else:
        mask[4, 4:9] = mask[4, 12:17] = True  # the spurs
        mask[-1, 6:17] = True  # the bowl
    return mask


@pytest.mark.parametrize("first", ["n", "u"])
def test_serifs_do_not_hide_whether_the_first_letter_is_a_u_or_an_n(first):
    # Serif feet close two fifths of an "n"'s bottom, spurs two fifths of a
    # "u"'s top: neither end is clearly open, but one is wholly closed.
    group = glyph_line(serif_unit_mask(first, 8))
    assert scalebar._unit_stems(group) == 5
    assert scalebar._first_letter(group) == first


def test_a_small_u_with_spurs_is_not_told_from_a_serif_n():
    # Below an x-height of 8 px, a serif "n" whose arch is lost looks the same.
    assert scalebar._first_letter(glyph_line(serif_unit_mask("u", 7))) is None
    assert scalebar._first_letter(glyph_line(serif_unit_mask("n", 7))) == "n"


def mm_line():
    """A "50 mm" line, 12 rows: digits from row 0, the letters' x-height from row 3."""
    mask = np.zeros((12, 36), bool)
    mask[:, 0:2] = mask[:, 6:8] = mask[:, 9:11] = True  # the "5" and the "0"
    mask[0, 0:5] = mask[0, 6:11] = mask[11, 6:11] = True
    for left in (14, 25):  # each "m": an arch and three stems
        mask[3, left:left + 9] = True
        for stem in (left, left + 4, left + 7):
            mask[3:, stem:stem + 2] = True
    return mask


@pytest.mark.parametrize("speck", [(1, 14), (0, 29)])
def test_a_speck_on_a_letter_does_not_hide_the_stems(speck):
    # Synthetic seed 26 figure 117 ("500 mm", JPEG): a pixel on top of the
    # first stem of the "m", a row above the x-height, was taken for a
    # digit's column, and the "mm" went out doubted (0.38).
    mask = mm_line()
    row, col = speck
    mask[row:3, col] = True
    group = glyph_line(mask)
    assert scalebar._unit_stems(group) == 6
    assert scalebar._unit_plausibility("mm", group) == ("mm", 1.0)
    assert scalebar._unit_plausibility("nm", group)[0] == "mm"


@pytest.mark.parametrize("top_bar", [True, False])
def test_strokes_apart_are_no_letters_to_measure(top_bar):
    # Synthetic seed 22 figure 93: "25nm", downscaled, on a particle. Cut at
    # the text's own grey (as a detected box over a particle is), the "5"
    # and the "n" are one piece and the "m" falls apart into its three
    # stems, which as wide as each other said "mm": a first version of that
    # cut read it as 25 mm at 0.69. The piece is a digit, its top thin or
    # not: no speck on a letter.
    mask = np.zeros((9, 34), bool)
    mask[:, 0:3] = mask[:, 7:10] = True  # the "2", and the "5" joined to the "n"
    mask[0, 7:13] = top_bar
    mask[3, 7:21] = True
    mask[3:, 13:15] = mask[3:, 19:21] = True
    for stem in (24, 28, 32):  # the stems of the "m", apart
        mask[3:, stem:stem + 2] = True
    group = glyph_line(mask)
    assert scalebar._unit_by_widths(group) is None
    assert scalebar._unit_plausibility("mm", group) == ("mm", 0.45)


def test_a_digit_that_came_apart_is_not_taken_for_a_letter():
    # "250nm" 8 px high, downscaled (seed 3's figure 182): the right side of
    # the "0" is a piece of its own that starts a row below the line's top.
    # Taken for a letter, it made six stems and "nm" was read "250 mm".
    mask = np.zeros((8, 40), bool)
    mask[:, 1:3] = mask[:, 5:7] = True  # the "2" and the left side of the "0"
    mask[1:7, 9] = True  # the right side of the "0"
    mask[2, 12:18] = mask[2, 20:30] = True  # the arches of "n" and "m"
    for stem in (12, 16, 20, 24, 28):
        mask[2:, stem:stem + 2] = True
    group = glyph_line(mask)
    assert scalebar._unit_stems(group) in (5, None)
    assert scalebar._unit_plausibility("nm", group)[0] == "nm"


def test_a_label_that_holds_a_bar_with_a_label_of_its_own_is_no_label():
    # Seed 32's figure 161: the edge of a box (2312 px) read the box's content,
    # a 1346 px bar and its "500 nm", as its label, "500 mm" (0.85). A label
    # that holds a clean bar with a label of its own is not one.
    strip = SimpleNamespace(top=400, left=100, bottom=410, right=700, length=600.0,
                            quality=1.0)
    bar = SimpleNamespace(top=300, left=150, bottom=310, right=450, length=300.0,
                          quality=1.0)
    readings = [(strip, None, (250, 100, 399, 700), "500 mm", 500.0, "mm", 0.85),
                (bar, None, (290, 470, 320, 600), "500 nm", 500.0, "nm", 0.98)]
    assert scalebar._holds_bar(readings[0][2], readings[1])
    assert not scalebar._holds_bar(readings[1][2], readings[0])
    # A stroke of a glyph (shorter than the label it read) is no bar to hold.
    stroke = SimpleNamespace(top=300, left=480, bottom=303, right=490, length=10.0,
                             quality=1.0)
    assert not scalebar._holds_bar((290, 470, 320, 600),
                                   (stroke, None, (290, 470, 320, 600), "5 nm", 5.0, "nm", 0.9))


def test_a_column_dimmed_where_a_tick_meets_the_bar_does_not_end_it():
    # Seed 26's figure 172: the left end tick lies on a dark particle, and
    # JPEG's ringing dims the column where it meets the bar. Taken for a
    # particle across the end, it cut the tick off (67.6 px for 71).
    rng = np.random.default_rng(0)
    image = np.clip(0.6 + rng.normal(0, 0.02, (200, 200)), 0, 1)
    disk(image, (104, 64), 18, 0.15)
    image[100:108, 60:131] = 0.93  # the bar, 71 px
    image[92:116, 60:64] = image[92:116, 127:131] = 0.93  # its end ticks
    image[100:108, 63] = 0.84  # the dimmed column
    bars = candidate_bars(image, longer_than=50)
    assert len(bars) == 1
    assert bars[0].length == pytest.approx(71, abs=1.0)


def test_a_pixel_of_noise_below_the_midpoint_does_not_end_a_faint_bar():
    # Seed 26's figure 155: a dark bar of little contrast (0.19), one pixel
    # of a middle row just short of the midpoint grey seven columns from its
    # end. The bar was measured from there (64.5 px for 70.9).
    rng = np.random.default_rng(1)
    image = np.clip(0.24 + rng.normal(0, 0.01, (200, 200)), 0, 1)
    image[100:107, 40:111] = 0.05  # the bar, 71 px
    image[103, 46] = 0.16  # just lighter than the midpoint (0.145)
    bar = find_scale_bar(1.0 - image, read=False)
    assert bar is not None
    assert bar.length_px == pytest.approx(71, abs=1.0)


def test_four_stems_of_a_narrow_letter_and_an_m_are_an_nm_that_lost_one():
    # Seed 32's figure 10: "200 nm", 8 px high (JPEG): the first stem of the
    # "m" fell short of the midpoint grey; the "n" is narrower than the "m".
    rows = [".###....###...###.....................",
            "#..#...#..#..#..#.....................",
            "...##..#...#.#...#.........#.##..##.##",
            "...#...#...#.#...#.........#..##.#.#.#",
            "..#....#...#.#...#.........#...#...#.#",
            ".#.....#...#.#...#.........#...#...#.#",
            "#......#..#..#..#..........#...#...#.#",
            "#####...###...###..........#...#...#.#"]
    nm = glyph_line(np.array([[c == "#" for c in row] for row in rows]))
    assert scalebar._unit_stems(nm) == 4
    assert scalebar._nm_short_of_a_stem(nm)
    # An "m" as wide as the "m" after it, each short of a stem: no "nm".
    mm = [row[:27] + row[33:38] + "." + row[33:38] for row in rows]
    mm = glyph_line(np.array([[c == "#" for c in row] for row in mm]))
    assert not scalebar._nm_short_of_a_stem(mm)


@pytest.mark.parametrize("drawn", [f"{MU}m", "nm"])
def test_a_micro_sign_read_at_both_sizes_over_its_tail_is_not_disputed_by_the_wide_reading(
        monkeypatch, drawn):
    # Seed 21's figure 111: "2 µm" over particles, read "2 µm" at both sizes
    # (a "µ" with its tail below the line), but "2 mm" in the wide crop,
    # which takes in the particles around it: doubted (0.34). Without a tail
    # below the line ("nm" drawn), the wide reading still disputes it.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "2 \N{GREEK SMALL LETTER MU}m", "2 mm")
    image, truth = figure(value=2, unit=drawn, font_size=18)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (2, f"{MU}m")
    assert bar.calibrated == (drawn != "nm"), bar.message


def test_a_glyph_a_column_away_from_a_thin_bar_is_not_bridged_to_it():
    # Seed 31's figure 153: a 25 px bar, 3 rows thick, with the "5" of its
    # "50 Å" a column away from its end, joined to it by a pixel. Bridging
    # single columns short of the bar (noise on a faint bar, seed 26's
    # figure 155) must not join them.
    rng = np.random.default_rng(3)
    image = np.clip(0.25 + rng.normal(0, 0.01, (120, 160)), 0, 1)
    image[60:63, 80:105] = 0.95  # the bar, 25 px, 3 rows
    image[52:70, 76:79] = 0.95  # a stroke of a glyph, a column before it,
    image[60, 79] = 0.95  # joined to it at the bar's top row
    bars = candidate_bars(image, longer_than=15)
    assert bars and all(bar.length == pytest.approx(25, abs=1.0) for bar in bars)


def label_on_a_particle(seed):
    """A figure whose label's first digit touches a small particle below the line: (image, truth)."""
    image, truth = flat_figure(seed=seed, value=25, unit="nm", font_size=20, label_side="below",
                               corner=("top", "left"))
    lt, ll, lb, lr = truth.label_box
    text, ground = image[truth.bar_box[:2]], 0.3
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    particle = ((yy - lb - 6) ** 2 + (xx - ll - 2) ** 2 <= 36) & (image < (text + ground) / 2)
    image[particle] = ground + 0.6 * (text - ground)
    return image, truth


@pytest.mark.parametrize("seed", range(2))
def test_a_glyph_joined_to_a_particle_is_cut_out_of_it_as_a_last_resort(monkeypatch, seed):
    # The "2" of "25 nm" touches a particle reaching below the line, of a
    # grey short of the text's: the line takes the particle in (OCR reads
    # it as something else). Cut out at the glyphs' own grey, the line is
    # the label's; it is read when no other line was.
    image, truth = label_on_a_particle(seed)
    bar, p = max(scalebar._candidates(scalebar._normalise(image)), key=lambda c: c[0].length)
    assert scalebar._label_groups(p, bar)[0].box[2] > truth.label_box[2] + 5  # the particle
    assert scalebar._label_groups(p, bar, free_glyphs=True)[0].box == truth.label_box

    def read(p, bar, groups, engine):
        for group in groups:
            if group.box == truth.label_box:
                return group, "25 nm", 25.0, "nm", 0.95
        return None

    monkeypatch.setattr(scalebar, "_ocr_engine", lambda: object())
    monkeypatch.setattr(scalebar, "_read_groups", read)
    monkeypatch.setattr(scalebar, "_read_detected", lambda p, bar, engine: None)
    found = find_scale_bar(image)
    assert found.calibrated and (found.value, found.unit) == (25, "nm")
    assert found.label_box == truth.label_box


def test_text_detection_runs_when_no_confident_reading_is_left_for_a_clean_bar(monkeypatch):
    # Synthetic seed 21's figure 122: a short ragged "bar" under the label
    # read "1 µm" surely; handed to the scale bar, whose own line read
    # "|1 µm" (11 µm, doubted), it was left out as another reading of the
    # same label. Its confidence had kept text detection, which reads the
    # label, from being tried: the figure went uncalibrated.
    image, truth = flat_figure(value=25, unit="nm")

    def read(p, bar, groups, engine):
        return SimpleNamespace(box=truth.label_box), "25 nm", 25.0, "nm", 0.95

    to_clean = scalebar._to_clean_bars
    monkeypatch.setattr(scalebar, "_to_clean_bars", lambda readings, found: [
        r for r in to_clean(readings, found) if r[3] != "25 nm"])  # left out, as above
    monkeypatch.setattr(scalebar, "_ocr_engine", lambda: object())
    monkeypatch.setattr(scalebar, "_read_groups", read)
    monkeypatch.setattr(scalebar, "_read_detected", lambda p, bar, engine: (
        truth.label_box, "25nm", 25.0, "nm", 0.9))
    found = find_scale_bar(image)
    assert found.calibrated and found.text == "25nm", found.message


def test_find_scale_bar_drops_a_reading_whose_label_holds_the_bar(monkeypatch):
    # End to end, with the OCR's readings given: the edge of a box below a
    # bar (seed 32's figure 161) reads the box's content, the bar and its
    # label, as "500 mm", more surely than the bar reads its "500 nm". The
    # box edge's "label" holds the bar and is no label.
    image, truth = flat_figure(shape=(400, 640), length_px=200, value=500, font_size=20,
                                corner=("top", "left"))
    t, l, b, r = truth.bar_box
    lt, ll, lb, lr = truth.label_box
    image[b + 20:b + 26, 40:540] = image[t, l]  # the edge of a box, 500 px
    content = (min(t, lt) - 4, min(l, ll) - 4, max(b, lb) + 4, max(r, lr) + 4)

    def read(p, bar, groups, engine):
        if bar.length > 400:  # the box's edge
            return SimpleNamespace(box=content), "500 mm", 500.0, "mm", 0.85
        if abs(bar.length - 200) <= 2:
            return SimpleNamespace(box=truth.label_box), "500 nm", 500.0, "nm", 0.8
        return None

    # (The box's edge has no text of its own next to it: it is given its content.)
    label_groups = scalebar._label_groups
    monkeypatch.setattr(scalebar, "_label_groups", lambda p, bar, **kw: label_groups(
        p, bar, **kw) or ([SimpleNamespace(box=content)] if bar.length > 400 else []))
    monkeypatch.setattr(scalebar, "_ocr_engine", lambda: object())
    monkeypatch.setattr(scalebar, "_read_groups", read)
    monkeypatch.setattr(scalebar, "_read_detected", lambda p, bar, engine: None)
    found = find_scale_bar(image)
    assert found is not None
    assert (found.text, found.unit) == ("500 nm", "nm")
    assert found.length_px == pytest.approx(200, abs=1.0)


@pytest.mark.parametrize("value", [2, 5])
def test_a_small_monospaced_nm_read_as_a_digit_is_read_from_the_wide_crop(value):
    # Seed 26's figure 46, seed 2's figure 28: a "5nm" 8 px high in a
    # monospaced font, in a box. The line's crop, cut to the glyphs' mask,
    # loses the thin strokes of the "nm" and reads "51"; the wide crop,
    # unmasked, keeps their grey and gives the label the line's crops agree on.
    pytest.importorskip("rapidocr_onnxruntime")
    image, truth = flat_figure(shape=(384, 384), ground=0.7, seed=1, value=value, unit="nm",
                               font="DejaVuSansMono.ttf", font_size=11, boxed=True,
                               polarity="dark", length_px=80)
    found = find_scale_bar(image)
    assert found is not None and found.calibrated
    assert (found.value, found.unit) == (value, "nm")


def test_a_two_row_bar_whose_partial_row_dips_over_a_particle_is_whole():
    # Seed 35's figure 30: a thin light bar downscaled to two rows, one at
    # the bar's grey and one covering its pixel row in part. Where a dark
    # particle lies across the bar, the partial row falls just short of the
    # midpoint; the bar was measured to there (31.7 px for 61.7).
    rng = np.random.default_rng(0)
    image = np.clip(0.6 + rng.normal(0, 0.01, (200, 200)), 0, 1)
    disk(image, (104, 76), 5, 0.2)
    disk(image, (96, 76), 2, 0.3)
    image[100, 40:101] = 0.95  # the bar, 61 px
    image[101, 40:101] = 0.85  # its partial row
    image[101, 73:79] = 0.76  # just short of the midpoint (0.775) over the particle
    bars = candidate_bars(image, longer_than=20)
    assert len(bars) == 1
    assert bars[0].length == pytest.approx(61, abs=1.0)


def test_a_micro_sign_with_its_tail_seen_needs_the_usual_odds_over_nm():
    # Seed 3's figure 28, "2µm" read "2u": the recogniser's odds favour "µm"
    # by e**4.3 over "nm", short of the e**5 asked of these two. A glyph
    # reaching below the line (the tail of the "µ") rules out the "n".
    odds = {"nm": -7.0, "\N{MICRO SIGN}m": -2.7, "mm": -7.7, "pm": -6.8}
    assert scalebar._unit_verdict(odds) is None
    assert scalebar._unit_verdict(odds, tail=True) == "\N{MICRO SIGN}m"
    # An "nm" favoured so is not taken on a tail; nor a "µm" short of the usual odds.
    swapped = {**odds, "nm": -2.7, "\N{MICRO SIGN}m": -7.0}
    assert scalebar._unit_verdict(swapped, tail=True) is None
    assert scalebar._unit_verdict({**odds, "pm": -4.7}, tail=True) is None


@pytest.mark.parametrize("value, length, unit, factor", [
    (100, 51, f"{MU}m", 0.9),  # seed 22's figure 45: the image would be 0.75 nm across
    (5, 58, f"{MU}m", 0.9),
    (500, 69, "pm", 0.45),  # 2.8 nm across: an atomic-resolution image may be
])
def test_a_picometre_bar_that_leaves_the_image_too_small_for_atoms_is_a_micrometre(
        value, length, unit, factor):
    # OCR reads a "µ" as a "p": "100 pm" for "100 µm". Picometre bars are
    # rare and doubted; one that makes the image less than a nanometre
    # across (a few atoms' spacing) is no picometre bar.
    p = np.zeros((256, 384), np.float32)
    bar = SimpleNamespace(length=float(length))
    assert scalebar._unit_in_core(p, None, bar, "pm", value) == (unit, factor)
    assert scalebar._unit_in_core(p, None, bar, "nm", value) == ("nm", 1.0)


def test_a_wide_reading_in_pm_does_not_doubt_a_micrometre_line_whose_small_reading_lost_its_unit(
        monkeypatch):
    # Seed 48's figure 9: the line reads "500pm", a "µm" as its unsmoothed
    # reading sees; the smaller size reads "500 μmi" (no unit it can parse)
    # and the wide crop "500pm". That is OCR's usual "p" for "µ", not another
    # unit: the reading was halved below the threshold.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch,  # 40 px text, else 28
             lambda crop: ("500pm", 0.9) if crop.shape[0] > 58 else (f"500 {MU}mi", 0.9),
             "500pm")
    monkeypatch.setattr(scalebar, "_plain_reading",
                        lambda p, group, engine, crop: (500.0, f"{MU}m"))
    monkeypatch.setattr(scalebar, "_open_bowl", lambda group: None)
    monkeypatch.setattr(scalebar, "_first_letter", lambda group: None)
    image, truth = figure(value=500, unit=f"{MU}m", font_size=11)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (500, f"{MU}m") and bar.calibrated, bar.message
    assert bar.confidence > 0.8
    # A wide reading of another unit still doubts it.
    fake_ocr(monkeypatch,
             lambda crop: ("500pm", 0.9) if crop.shape[0] > 58 else (f"500 {MU}mi", 0.9),
             "500nm")
    assert not find_scale_bar(image).calibrated


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bars_rows_do_not_take_in_a_particle_whose_grain_reaches_its_grey(polarity, seed):
    # Seed 44's figure 36: a particle under the bar's end, a little short of
    # the bar's grey, with a grain that reaches it at scattered pixels. The
    # bar's box took in the particle's rows, and the label just above the
    # bar, which then overlapped the box, was not looked for.
    image, _ = noisy_ground(0.2, (256, 256), seed)
    grainy_disk(image, (101, 135), 10, 0.78, seed + 10, noise=0.05)
    image[100:103, 60:142] = 0.96
    the_one_bar(image, (99, 60, 104, 142), 82, inverted=polarity == "dark")


def test_a_label_is_the_clean_bars_not_a_longer_ragged_strip_of_ground(monkeypatch):
    # Seed 50's figure 56: a strip of the ground between particles, longer
    # than the bar, thick and of the ground's grey, reached the label under
    # it from far off and read it first; as the longer bar, it kept the label
    # (65.6 px for the bar's 43).
    pytest.importorskip("rapidocr_onnxruntime")
    image, truth = figure(value=500, unit="nm", font_size=16, length_px=43)
    monkeypatch.setattr(scalebar, "_recognise", lambda engine, crop: ("500 nm", 0.99))
    monkeypatch.setattr(scalebar, "_detect_text", lambda engine, crop: [])
    strip = scalebar._Bar(top=10, left=20, bottom=31, right=86, length=65.6, thickness=21,
                          level=0.68, ground=0.51, quality=0.67, polarity="dark", core_top=11,
                          core_bottom=31, sides=0.17, reach_left=10, reach_right=100, shape=1.0)
    candidates = scalebar._candidates
    monkeypatch.setattr(scalebar, "_candidates", lambda img: candidates(img) + [(strip, img)])
    t, l, b, r = truth.label_box
    label = scalebar._Group("below", truth.label_box, np.ones((b - t, r - l), bool), 40.0)
    groups = scalebar._label_groups
    monkeypatch.setattr(scalebar, "_label_groups", lambda p, bar, free_glyphs=False: (
        [label] if bar is strip else groups(p, bar, free_glyphs)))
    bar = find_scale_bar(image)
    assert bar.calibrated and bar.length_px == pytest.approx(43, abs=1.5)


def test_a_bar_shorter_than_its_label_is_tall_does_not_read_it(monkeypatch):
    # Seed 48's figure 134: a stroke of a large "µ", 29 px long, read the
    # "20 µ" of the line it is part of, 223 px tall, as 20 µm.
    bar = SimpleNamespace(length=29.0, quality=0.19, polarity="dark")
    reading = (bar, None, (3805, 68, 4028, 570), "20 μ", 20.0, f"{MU}m", 0.83)
    assert scalebar._to_clean_bars([reading], []) == []
    bar.length = 250.0
    assert scalebar._to_clean_bars([reading], []) == [reading]


@pytest.mark.parametrize("seed", [1, 2])
def test_specks_of_the_ground_over_a_labels_box_are_no_broken_caps(seed):
    # Seed 48's figure 153: white "20µm" in a black box on a light, noisy
    # micrograph. The ground above the box joins into a blob at the midpoint
    # grey; cut at the text's grey, its specks just above the glyphs passed
    # for the broken-off tops of a "5" or "7" and made the line taller, its
    # text smaller in the OCR crop ("20uni", unread).
    from particleseg._figures import draw_scale_bar
    ground, rng = noisy_ground(0.75, (256, 384), seed, noise=0.04)
    image, _, truth = draw_scale_bar(
        ground, rng, length_px=78, value=20, unit=f"{MU}m", font="DejaVuSerif-Bold.ttf",
        font_size=11, polarity="light", boxed=True, ticks=False, label_side="above",
        corner=("bottom", "right"))
    bar, p = next((bar, p) for bar, p in scalebar._candidates(scalebar._normalise(image))
                  if bar.polarity == "light" and bar.length == pytest.approx(78, abs=2))
    lines = [g.box for g in scalebar._label_groups(p, bar)
             if scalebar._overlap(g.box, truth.label_box)]
    assert lines == [truth.label_box]


@pytest.mark.parametrize("polarity", ["light", "dark"])
def test_a_bar_along_a_large_particle_on_one_side_is_found(polarity):
    # Seed 48's figure 134: a 507 px bar whose lower side lies along a
    # particle of a grey between the ground's and the bar's for most of its
    # length. Its grounds above and below differ as a box's strip's do, and
    # it was dropped as one; a stroke of the label's "µ" was read instead.
    # The darker side is the micrograph's ground, the image's median grey.
    image, _ = noisy_ground(0.3, (768, 1024), 0)
    disk(image, (414, 310), 300, 0.65)
    image[112:120, 220:400] = 1.0
    the_one_bar(image, (112, 220, 120, 400), 180, inverted=polarity == "dark")


def test_a_plain_reading_with_the_micro_signs_stem_read_as_a_1_agrees(monkeypatch):
    # Seed 51's figure 45 and seed 43's figure 135: a tight bold "25µm"
    # reads "25pm" smoothed (a "µm" by its open top) and "251m" unsmoothed,
    # the stem of the "µ" read as a "1", its tail making the "m" a "µm".
    # That is no other number: the reading was halved below the threshold.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "25pm", f"25 {MU}m")
    monkeypatch.setattr(scalebar, "_open_bowl", lambda group: True)
    plain = (251.0, f"{MU}m")
    monkeypatch.setattr(scalebar, "_plain_reading", lambda p, group, engine, crop: plain)
    image, truth = figure(value=25, unit=f"{MU}m", font_size=11)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (25, f"{MU}m") and bar.calibrated, bar.message
    plain = (250.0, f"{MU}m")  # another number: still a dispute
    assert not find_scale_bar(image).calibrated
    assert scalebar._micro_stem_as_digit((11.0, f"{MU}m"), (1.0, f"{MU}m"))
    assert not scalebar._micro_stem_as_digit((251.0, "nm"), (25.0, "nm"))


def test_a_smaller_reading_that_sees_the_micro_sign_but_garbles_the_m_agrees(monkeypatch):
    # Seed 52's figure 135: "1 μm" at 40 px, "1 μuu" at 28 px and nothing
    # in the wide crop. The smaller size saw the "µ": its unit was taken for
    # lost, and with no wide reading to settle it, the reading was halved.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch,  # 40 px text, else 28
             lambda crop: (f"1 {MU}m", 0.9) if crop.shape[0] > 58 else (f"1 {MU}uu", 0.9), "")
    monkeypatch.setattr(scalebar, "_plain_reading", lambda p, group, engine, crop: None)
    image, truth = figure(value=1, unit=f"{MU}m", font_size=12)
    bar = find_scale_bar(image)
    assert (bar.value, bar.unit) == (1, f"{MU}m") and bar.calibrated, bar.message
    # Without the "µ" in the smaller reading, the unit is still in doubt.
    fake_ocr(monkeypatch,
             lambda crop: (f"1 {MU}m", 0.9) if crop.shape[0] > 58 else ("1 uu", 0.9), "")
    assert not find_scale_bar(image).calibrated


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("grey", [0.12, 0.13])
@pytest.mark.parametrize("polarity", ["dark", "light"])
def test_a_bar_whose_end_lies_on_a_particle_nearly_as_dark_is_measured_to_its_end(
        polarity, grey, seed):
    # Seed 56's figure 149: the left end of a black 448 px bar lies on a
    # grainy particle only a little lighter than the bar (about a tenth of
    # the bar's contrast with the ground). The bar stood out from the
    # particle's grey beside it by less than the margin asked, and was
    # measured from the particle's far side: 410 px, used at 0.98.
    image, _ = noisy_ground(0.8, (512, 768), seed)
    grainy_disk(image, (106, 80), 40, grey, seed + 10, noise=0.04)
    image[100:112, 60:460] = 0.05
    the_one_bar(image, (95, 60, 117, 460), 400, inverted=polarity == "light")


@pytest.mark.parametrize("seed, left, quality", [(0, 629, 71), (1, 633, 71), (1, 633, 90)])
def test_a_label_beside_the_bar_cut_by_the_text_search_region_is_searched_again_wider(
        seed, left, quality):
    # Seed 58's figure 122: "250 mm" left of a 116 px bar. Text detection
    # round the bar found the line from a few pixels inside its region's
    # side, the "2" outside it, and read "50 mm" at 0.8: a silent wrong scale.
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image

    from particleseg._figures import _text_mask
    rng = np.random.default_rng(seed)
    image = 0.75 + 0.03 * rng.standard_normal((1024, 1024))
    image[25:47, 894:1010] = 0.05
    text = _text_mask("250 mm", "DejaVuSerif.ttf", 59)
    top = 36 - text.shape[0] // 2
    where = (slice(top, top + text.shape[0]), slice(left, left + text.shape[1]))
    image[where] = np.where(text, 0.05, image[where])
    buffer = io.BytesIO()
    Image.fromarray((255 * np.clip(image, 0, 1)).astype(np.uint8)).save(
        buffer, "JPEG", quality=quality)
    bar = find_scale_bar(np.asarray(Image.open(buffer)))
    assert round(bar.length_px) == 116
    assert (bar.value, bar.unit) == (250, "mm")


def detect_one_line(monkeypatch, text, height, contrast, last=False):
    """Stand in for text detection: one line, read ``text``, wherever the crop round a bar lies.

    The line's box holds the pixels more than ``contrast`` (of 255) from the
    crop's median grey, in the ``height`` rows from the first such row (from
    the last, with ``last``). The recogniser's odds are out of reach.
    """
    def detect(engine, crop):
        rows, cols = np.nonzero(np.abs(crop.astype(int) - int(np.median(crop))) > contrast)
        inside = rows > rows.max() - height - 2 if last else rows < rows.min() + height + 2
        rows, cols = rows[inside], cols[inside]
        return [((int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1),
                 text, 0.99)]

    monkeypatch.setattr(scalebar, "_detect_text", detect)
    monkeypatch.setattr(scalebar, "_recogniser_odds", lambda engine, crop: None)


@pytest.mark.parametrize("label, quality, read", [
    ("other", 0.33, False), ("other", 0.9, True), ("own", 0.33, True)])
def test_text_of_the_other_colour_is_no_label_of_a_ragged_strip(
        monkeypatch, label, quality, read):
    # Seed 46's figure 165: the grey ground between a white "25 nm" and its
    # white bar, a dark particle above, was taken for a ragged dark "bar"
    # (quality 0.33) 50 px long; text detection round it read the white
    # label, of the other colour, as its own: "25 nm" = 50 px for 89 px.
    # A clean bar's label of the other colour (real figure 1700be1235: white
    # text in a black box beside a black bar), or a ragged bar's of its own
    # colour, is read.
    from particleseg._figures import _text_mask
    rng = np.random.default_rng(0)
    ground, ink, particle = (0.49, 0.02, 0.85) if label == "other" else (0.02, 0.49, 0.12)
    p = ground + 0.02 * rng.standard_normal((200, 300))  # in the "bar"'s polarity
    p[10:50, 90:170] = particle  # a particle above the label
    text = _text_mask("25 nm", "DejaVuSerif-Bold.ttf", 19)
    p[62:62 + text.shape[0], 100:100 + text.shape[1]][text] = ink
    p[88:97, 90:180] = 0.02  # the white bar below (the label's)
    p[80:87, 100:151] = 0.49  # the strip of ground between them, or a bar
    strip = scalebar._Bar(top=80, left=100, bottom=87, right=151, length=51.0, thickness=7,
                          level=0.49, ground=0.02, quality=quality, polarity="dark",
                          core_top=80, core_bottom=87, sides=0.45, shape=quality)

    # (The label, not what lies below it.)
    detect_one_line(monkeypatch, "25 nm", text.shape[0], contrast=110)
    found = scalebar._read_detected(p, strip, object())
    assert (found is not None) == read
    if read:
        assert found[1:4] == ("25 nm", 25.0, "nm")


def test_five_stems_under_letters_as_wide_as_each_other_leave_an_mm_doubted():
    # Seed 63's figure 174: "500 mm" downscaled to 0.66, its letters broken
    # into pieces too far to tell the font by. Five stems were counted, and
    # they turned the OCR's "mm" (read at both sizes and wide) into "nm",
    # used at 0.87. The two letters are as wide as each other: a stem may
    # be lost, and the "mm" is doubted (the recogniser's odds can lift it).
    rows = ["####......##......#...............................",
            "####.....####....####.............................",
            "#.......##..#...##..#.............................",
            "##.....##....#.##...##......#.##..###.....###..##.",
            "####...##....#.##....#......##.###.###...##.###.##",
            "...##..##....#.##....#......#...#...##...#..##...#",
            "....#..##....#.##....#......#...#....#......##...#",
            "....#...#...#...#...#.......#...#....#......##...#",
            "#####...#####...#####.......#...#....#......##...#",
            ".###.....###.....###............#....#.......#...#"]
    group = glyph_line(np.array([[c == "#" for c in row] for row in rows]))
    assert scalebar._unit_stems(group) == 5
    assert scalebar._unit_plausibility("mm", group) == ("mm", 0.45)
    assert scalebar._unit_plausibility("nm", group) == ("nm", 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_a_bar_whose_end_lies_in_a_particle_wider_below_it_keeps_its_thickness(seed):
    # Seed 63's figure 94: a dark bar 15 rows thick whose left end lies in a
    # particle nearly as dark, wider below the bar than above it. The bar's
    # lower rows, with the particle's, were the longest: the bar was taken
    # to be 6 rows thick, and measured from the particle's far side, 66 px
    # for 80, used at 0.99.
    rng = np.random.default_rng(seed)
    p = 0.3 + 0.03 * rng.standard_normal((200, 700))  # in the bar's polarity
    p[14:31, 509:553] = 0.78  # the particle: above the bar's end ...
    p[31:46, 484:550] = 0.78  # ... and wider below it
    p[22:37, 525:605] = 0.9
    p += 0.02 * rng.standard_normal(p.shape)
    bar = scalebar._measure_bar(p, (22, 522, 37, 606), 1, "dark")
    assert bar.thickness == 15
    assert bar.length == pytest.approx(80, abs=1.0)


@pytest.mark.parametrize("wide, line, other", [
    ("i0 nm", "110 nm", True), ("I0 nm", "110 nm", True), ("i0 nm", "10 nm", False),
    # Seed 80's figure 63: a "50 \N{ANGSTROM SIGN}" whose "5" lies over a dark particle read
    # "60 A" at both sizes and was used at 0.71; the wide crop read "SOA".
    ("SOA", "60 A", True), ("SOA", "50 A", False), ("S0 nm", "50 nm", False)])
def test_a_wide_reading_whose_first_digit_reads_as_a_letter_is_another_number(wide, line, other):
    # Seed 66's figure 62: a 225 px serif "10 nm" whose line took in a speck
    # before the "1", read "110 nm" at both sizes and used at 0.77; the wide
    # crop read "i0 nm", which parses as no length and was taken for none.
    assert scalebar._other_number(wide, line) is other


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("gap", [22, 26, 30])
def test_a_particle_outside_the_box_taller_than_the_label_is_not_part_of_its_line(gap, seed):
    # A dark particle beside the white box of a dark bar, level with the
    # label's foot and reaching well above its top: nearly twice as tall as
    # the label, as far from it as a digit from lower-case letters may be.
    # The line is the label's alone, not the label and the particle (which
    # reached up into the bar's rows, and the label was lost).
    def particle(image, truth):
        top, left, bottom, right = truth.label_box
        radius = int(0.9 * (bottom - top))
        grainy_disk(image, (bottom - radius, left - gap - radius), radius, 0.4, seed, 0.1)

    options = dict(length_px=49, value=250, font="DejaVuSansMono.ttf", font_size=19,
                   polarity="dark", boxed=True, label_side="below", corner=("bottom", "right"))
    image, truth = flat_figure(ground=0.6, under=particle, **options)
    bar = the_one_bar(image, truth.bar_box, truth.length_px, inverted=True)
    p = 1.0 - scalebar._normalise(image)
    lines = [group.box for group in scalebar._label_groups(p, bar)]
    assert truth.label_box in lines


@pytest.mark.parametrize("seed", range(3))
def test_the_ground_round_a_box_at_the_text_grey_is_not_part_of_its_line(seed):
    # A white bar and label in a black box on a light micrograph, its ground
    # nearly as light as the text: the ground's grain at the text's grey lies
    # beside the label, past the box's edge. The line is the label's alone.
    options = dict(length_px=300, value=25, font="DejaVuSerif.ttf", font_size=40,
                   polarity="light", boxed=True, label_side="right", corner=("bottom", "left"))
    image, truth = flat_figure(shape=(768, 768), ground=0.75, seed=seed, **options)
    image = np.clip(image + np.random.default_rng(seed).normal(0, 0.06, image.shape), 0, 1)
    bar = the_one_bar(image, truth.bar_box, truth.length_px)
    p = scalebar._normalise(image)
    lines = [group.box for group in scalebar._label_groups(p, bar)]
    assert truth.label_box in lines


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("grey", [0.2, 0.3])
def test_a_particle_hanging_below_the_end_of_a_label_is_not_its_last_glyph(grey, seed):
    # Seed 71's figure 50: a dark particle under the edge of the white box,
    # beside the "m" of a "1nm", a sliver of it showing past the box down to
    # half the label's height below its foot. Taken for a last glyph, it
    # made the line reach below the label and gave "nm" a fifth stem: read
    # "mm", used at 0.89. A label ends on its line, not in a descender.
    def particle(image, truth):
        top, left, bottom, right = truth.label_box
        below = int(bottom + 0.55 * (bottom - top))
        grainy_disk(image, (below - 12, truth.box[3] + 5), 12, grey, seed, 0.1)

    options = dict(length_px=200, value=1, font="DejaVuSerif.ttf", font_size=31,
                   polarity="dark", boxed=True, label_side="right", corner=("bottom", "left"))
    image, truth = flat_figure(shape=(512, 512), ground=0.6, seed=seed, under=particle, **options)
    bar = the_one_bar(image, truth.bar_box, truth.length_px, inverted=True)
    p = 1.0 - scalebar._normalise(image)
    lines = [group.box for group in scalebar._label_groups(p, bar)]
    assert truth.label_box in lines


@pytest.mark.parametrize("text_grey, level, read", [
    (0.02, 0.72, False), (0.02, 0.95, True), (0.72, 0.72, True)])
def test_text_of_the_other_colour_is_no_label_of_a_strip_of_a_particle_grey(
        monkeypatch, text_grey, level, read):
    # Seed 72's figure 46: a faint white bar over a dark particle, its white
    # label below it on a light ground. The bar was not found, but the strip
    # of the particle between them was taken for a dark "bar" (quality 0.69,
    # of the particle's grey); text detection round it read the white label,
    # of the other colour, as its own: "100nm" = 22.9 px for 44 px. A bar of
    # ink reads a label of the other colour (white text in a black box by a
    # black bar), and a strip of a particle's grey one of its own colour.
    from particleseg._figures import _text_mask
    rng = np.random.default_rng(0)
    p = 0.2 + 0.02 * rng.standard_normal((200, 300))  # in the "bar"'s polarity: the ground
    p[10:34, 90:170] = level  # the particle (or a bar of ink)
    text = _text_mask("100nm", "DejaVuSansMono.ttf", 19)
    p[36:36 + text.shape[0], 95:95 + text.shape[1]][text] = text_grey
    strip = scalebar._Bar(top=26, left=100, bottom=33, right=123, length=23.0, thickness=7,
                          level=level, ground=0.07, quality=0.69, polarity="dark",
                          core_top=26, core_bottom=33, sides=0.3, shape=0.69)

    # (The label, under the particle.)
    detect_one_line(monkeypatch, "100nm", text.shape[0], contrast=30, last=True)
    found = scalebar._read_detected(p, strip, object())
    assert (found is not None) == read
    if read:
        assert found[1:4] == ("100nm", 100.0, "nm")


@pytest.mark.parametrize("drawn, odds, expected", [
    ("nm", "mm", None), ("nm", None, (100, "nm")), ("mm", "mm", (100, "mm"))])
@pytest.mark.parametrize("font", ["DejaVuSans.ttf", "DejaVuSansMono.ttf"])
def test_stems_against_an_mm_read_at_both_sizes_and_far_ahead_in_the_odds_leave_it_doubted(
        monkeypatch, drawn, odds, expected, font):
    # Seed 66's figure 40: a monospaced "500mm" downscaled, two stems of an
    # "m" joined: five stems made the OCR's "mm" (both sizes, the odds for
    # "mm" far ahead) an "nm", used at 0.90. Against such odds the stems
    # leave the unit doubted; without the odds they still settle it, and
    # with the odds and the glyphs of an "mm" it is read.
    pytest.importorskip("rapidocr_onnxruntime")
    fake_ocr(monkeypatch, "100 mm", "100 mm", odds=odds)
    image, truth = figure(value=100, unit=drawn, font=font, font_size=14)
    bar = find_scale_bar(image)
    if expected is None:
        assert not bar.calibrated and "low confidence" in bar.message
    else:
        assert_read_or_unread(bar, expected, "100 mm", 0.95)
