"""Tests for particleseg.augmentation: image and labels move together."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV
from estimator_checks import data_free_checks

from particleseg.augmentation import (
    Augmenter,
    BrightnessContrast,
    ElasticTransform,
    Flip,
    Gamma,
    GaussianNoise,
    GridDistortion,
    InvertContrast,
    LowResolution,
    OpticalDistortion,
    RandomCrop,
    RandomResize,
    RandomRotation,
    default_augmenter,
)
from particleseg.datasets import make_particles

RECIPE = [
    "resize", "flip", "crop", "rotate", "brightness_contrast", "gamma", "elastic", "grid",
    "optical",
]


def strong(name):
    """A fresh augmentation of the recipe, always applied, with strong parameters."""
    return {
        "resize": lambda: RandomResize(scale=(0.5, 2.0), p=1.0),
        "flip": lambda: Flip(p=1.0),
        "crop": lambda: RandomCrop(min_fraction=0.5, p=1.0),
        "rotate": lambda: RandomRotation(limit=180, p=1.0),
        "brightness_contrast": lambda: BrightnessContrast(0.3, 0.5, p=1.0),
        "gamma": lambda: Gamma(gamma_limit=(50, 200), p=1.0),
        "elastic": lambda: ElasticTransform(alpha=300, sigma=6, p=1.0),
        "grid": lambda: GridDistortion(num_steps=5, distort_limit=0.5, p=1.0),
        "optical": lambda: OpticalDistortion(distort_limit=0.5, p=1.0),
        "invert": lambda: InvertContrast(p=1.0),
        "noise": lambda: GaussianNoise(std_limit=(0.05, 0.1), p=1.0),
        "low_resolution": lambda: LowResolution(scale_limit=(0.25, 0.5), p=1.0),
    }[name]()


GEOMETRIC = ["resize", "flip", "crop", "rotate", "elastic", "grid", "optical"]
INTENSITY = ["brightness_contrast", "gamma", "invert"]
WITH_BORDER = ["rotate", "elastic", "grid", "optical"]
ALL = GEOMETRIC + INTENSITY
#: Intensity changes that are not pointwise (labels untouched, image degraded).
DEGRADE = ["noise", "low_resolution"]
assert sorted(set(RECIPE) | {"invert"}) == sorted(ALL)


@pytest.fixture(scope="module")
def particles():
    """A 64 x 64 synthetic micrograph (float32 in [0, 1]) and its int32 instance map."""
    images, instance_maps = make_particles(n_images=1, shape=(64, 64), random_state=0)
    return images[0].astype(np.float32) / 255, instance_maps[0]


def encode(labels):
    """An image whose intensity says which label a pixel has (background 0)."""
    ids = np.unique(labels)
    values = {int(i): 0.0 if i == 0 else 0.1 + 0.8 * i / ids.max() for i in ids}
    image = np.vectorize(values.get, otypes=[np.float32])(labels)
    return image, values


def interior_mismatch(image, labels, values, erosion=2):
    """Fraction of label-interior pixels whose intensity is not their label's, and count.

    Interiors are the label regions eroded by ``erosion`` pixels (the image edge
    counts as a boundary), which ignores the blending of linear interpolation
    at region edges. Intensities of neighbouring labels differ by >= 0.08, so a
    pixel is a mismatch when it is off by more than 0.04.
    """
    errors = []
    for label in np.unique(labels):
        inner = ndi.binary_erosion(labels == label, iterations=erosion, border_value=0)
        errors.append(np.abs(image[inner] - values[int(label)]))
    errors = np.concatenate(errors)
    return float((errors > 0.04).mean()), errors.size


def centroid_shift(image, mask):
    """Distance between the intensity centroid of the image and the mask's centroid."""
    return float(np.hypot(*np.subtract(ndi.center_of_mass(image), ndi.center_of_mass(mask))))


# --------------------------------------------------------------------------
# Image and labels stay aligned
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "name, border_mode",
    [(name, "reflect") for name in GEOMETRIC] + [(name, "constant") for name in WITH_BORDER],
)
def test_geometric_transform_keeps_image_and_labels_aligned(particles, name, border_mode, seed):
    _, labels = particles
    image, values = encode(labels)
    augmentation = strong(name)
    if name in WITH_BORDER:
        augmentation.set_params(border_mode=border_mode)
    out_image, out_labels = augmentation(image, labels, random_state=seed)
    assert out_image.shape == out_labels.shape
    mismatch, n_interior = interior_mismatch(out_image, out_labels, values)
    assert n_interior > 200  # the check looked at enough pixels to mean something
    assert mismatch <= 0.02


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_transform_has_no_subpixel_offset(name, seed):
    # One square particle, off-centre: the image's intensity centroid and the
    # label centroid must coincide to well under a pixel.
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[18:38, 24:44] = 1
    image = labels.astype(np.float32)
    out_image, out_labels = strong(name)(image, labels, random_state=seed)
    assert out_labels.sum() > 50
    assert centroid_shift(out_image, out_labels) < 0.75
    assert out_image.sum() == pytest.approx(out_labels.sum(), rel=0.2)


def test_alignment_checks_can_fail(particles):
    # Negative controls: labels moved against the image are caught.
    _, labels = particles
    image, values = encode(labels)
    assert interior_mismatch(image, labels, values)[0] == 0
    assert interior_mismatch(image, np.roll(labels, 3, axis=1), values)[0] > 0.02
    assert interior_mismatch(image, labels.T, values)[0] > 0.02
    square = np.zeros((64, 64), dtype=np.uint8)
    square[18:38, 24:44] = 1
    assert centroid_shift(square.astype(np.float32), np.roll(square, 1, axis=0)) >= 0.75


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_transform_leaves_labels_untouched(particles, name):
    image, labels = particles
    out_image, out_labels = strong(name)(image, labels, random_state=0)
    np.testing.assert_array_equal(out_labels, labels)
    assert not np.shares_memory(out_labels, labels)
    assert out_image.shape == image.shape
    assert not np.allclose(out_image, image)
    # A pointwise, monotone map of intensity: equal inputs give equal outputs.
    order = np.argsort(image, axis=None, kind="stable")
    before, after = image.ravel()[order], out_image.ravel()[order]
    same = np.diff(before) == 0
    assert np.all(np.diff(after)[same] == 0)
    steps = np.diff(after)[~same]
    if name == "invert":
        assert np.all(steps <= 0)
        np.testing.assert_allclose(out_image, 1 - image, atol=1e-6)
    else:
        assert np.all(steps >= 0)


@pytest.mark.parametrize("name", DEGRADE)
def test_degrading_leaves_labels_and_shape_untouched(particles, name):
    image, labels = particles
    out_image, out_labels = strong(name)(image, labels, random_state=0)
    np.testing.assert_array_equal(out_labels, labels)
    assert out_image.shape == image.shape and out_image.dtype == np.float32
    assert not np.allclose(out_image, image)


def test_gaussian_noise_has_the_drawn_strength():
    flat = np.full((128, 128), 0.5, dtype=np.float32)
    labels = np.zeros((128, 128), dtype=np.uint8)
    for seed in range(4):
        out, _ = GaussianNoise(std_limit=(0.02, 0.04), p=1.0)(flat, labels, random_state=seed)
        assert 0.018 < float(np.std(out - flat)) < 0.044
        assert abs(float(out.mean()) - 0.5) < 0.01  # no shift of the mean intensity


def test_low_resolution_removes_detail_but_keeps_the_picture():
    stripes = np.zeros((64, 64), dtype=np.float32)
    stripes[:, ::2] = 1.0  # 1-pixel stripes: finer than any shrunk image can hold
    disc = np.zeros((64, 64), dtype=np.float32)
    disc[np.hypot(*np.mgrid[-32:32, -32:32]) < 16] = 1.0
    labels = np.zeros((64, 64), dtype=np.uint8)
    augmentation = LowResolution(scale_limit=(0.25, 0.5), p=1.0)
    out, _ = augmentation(stripes, labels, random_state=0)
    assert float(np.std(out)) < 0.25 * float(np.std(stripes))
    out, _ = augmentation(disc, labels, random_state=0)
    assert abs(float(out.mean()) - float(disc.mean())) < 0.02  # particle stays put and sized
    assert np.abs(out - disc)[28:36, 28:36].max() < 0.05      # interior unchanged
    soft = (out > 0.05) & (out < 0.95)
    assert soft.sum() > 2 * (np.abs(np.diff(disc, axis=1)) > 0).sum()  # edges got softer


# --------------------------------------------------------------------------
# Label values, dtypes and shapes
# --------------------------------------------------------------------------
def label_maps(instances):
    """The kinds of label map a caller may pass."""
    classes = np.where(instances > 0, 1, 0).astype(np.uint8)
    classes[ndi.morphological_gradient(instances, size=3) > 0] = 2
    big = np.where(instances > 0, instances.astype(np.int64) + 1_000_000, -1)
    return {
        "instance int32": instances,
        "class uint8": classes,
        "class int64 with ignore -1 and ids > 65535": big,
        "mask bool": instances > 0,
    }


@pytest.mark.parametrize("kind", ["instance int32", "class uint8",
                                  "class int64 with ignore -1 and ids > 65535", "mask bool"])
@pytest.mark.parametrize("name", ALL)
def test_labels_keep_dtype_and_gain_no_values(particles, name, kind):
    image, instances = particles
    labels = label_maps(instances)[kind]
    for seed in range(3):
        out_image, out_labels = strong(name)(image, labels, random_state=seed)
        assert out_image.dtype == np.float32
        assert 0 <= out_image.min() and out_image.max() <= 1
        assert out_labels.dtype == labels.dtype
        assert out_labels.shape == out_image.shape
        assert set(np.unique(out_labels)) <= set(np.unique(labels))


@pytest.mark.parametrize("offset, dtype", [(1, np.int32), (1_000_000, np.int64)])
@pytest.mark.parametrize("name", WITH_BORDER)
def test_constant_border_fills_labels_with_background_only(name, offset, dtype):
    # No background in the input: the constant fill brings in 0 and nothing else
    # (also when ids beyond uint16 make the labels go through renumbering).
    labels = (np.arange(64 * 64).reshape(64, 64) + offset).astype(dtype)
    image = np.full((64, 64), 0.5, dtype=np.float32)
    augmentation = strong(name).set_params(border_mode="constant", fill=0.9)
    out_image, out_labels = augmentation(image, labels, random_state=3)
    assert out_labels.dtype == dtype
    filled = out_labels == 0
    assert set(np.unique(out_labels[~filled])) <= set(np.unique(labels))
    inner_fill = ndi.binary_erosion(filled, iterations=1)
    if name != "grid":  # GridDistortion keeps the image edges in place: little is filled
        assert inner_fill.sum() >= 10
    np.testing.assert_allclose(out_image[inner_fill], 0.9, atol=1e-6)


def test_reflect_border_duplicates_instance_ids():
    # Documented behaviour: a mirrored particle keeps its id.
    labels = np.zeros((64, 64), dtype=np.int32)
    labels[2:12, 26:38] = 5  # near the top edge
    image = (labels > 0).astype(np.float32)
    out_image, out_labels = RandomRotation(limit=(45, 45), p=1.0)(image, labels)
    assert ndi.label(out_labels == 5)[1] >= 2
    _, kept = RandomRotation(limit=(45, 45), border_mode="constant", p=1.0)(image, labels)
    assert ndi.label(kept == 5)[1] == 1


def test_resize_and_crop_change_the_shape(particles):
    image, labels = particles
    out_image, out_labels = RandomResize(scale=(2.0, 2.0), p=1.0)(image, labels)
    assert out_image.shape == out_labels.shape == (128, 128)
    out_image, out_labels = RandomCrop(min_fraction=0.5, p=1.0)(image, labels, random_state=1)
    assert out_image.shape == out_labels.shape
    assert all(32 <= side <= 64 for side in out_image.shape)
    np.testing.assert_array_equal(RandomCrop(p=0.0)(image, labels)[1], labels)


def test_flip_on_non_square_image_keeps_exact_correspondence():
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    image = (labels / 11).astype(np.float32)
    shapes = set()
    for seed in range(20):
        out_image, out_labels = Flip()(image, labels, random_state=seed)
        np.testing.assert_allclose(out_image * 11, out_labels, atol=1e-5)
        shapes.add(out_labels.shape)
    assert shapes == {(3, 4), (4, 3)}


def test_flips_are_drawn_independently():
    # albumentations' Compose(seed=s) seeds every transform alike, which would
    # make the horizontal and the vertical flip always happen together.
    labels = np.arange(4, dtype=np.uint8).reshape(2, 2)
    image = labels.astype(np.float32) / 3
    outcomes = {}
    for seed in range(200):
        key = Flip(transpose=False)(image, labels, random_state=seed)[1].tobytes()
        outcomes[key] = outcomes.get(key, 0) + 1
    assert len(outcomes) == 4
    assert min(outcomes.values()) > 25


def test_augmenter_applies_steps_in_order():
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[10:20, 30:50] = 1
    image = labels.astype(np.float32)
    augmenter = Augmenter([("resize", RandomResize(scale=0.5, p=1.0)),
                           ("invert", InvertContrast(p=1.0))])
    out_image, out_labels = augmenter(image, labels, random_state=0)
    assert out_image.shape == (32, 32)
    np.testing.assert_allclose(out_image, 1 - (out_labels == 1), atol=1e-6)


def test_empty_and_passthrough_steps_return_copies(particles):
    image, labels = particles
    for augmenter in [Augmenter([]), Augmenter([("flip", "passthrough"), ("grid", None)])]:
        out_image, out_labels = augmenter(image, labels, random_state=0)
        np.testing.assert_array_equal(out_image, image)
        np.testing.assert_array_equal(out_labels, labels)
        assert not np.shares_memory(out_labels, labels)
        assert not np.shares_memory(out_image, image)


def test_default_augmenter_on_instances_and_classes(particles):
    image, instances = particles
    augmenter = default_augmenter()
    rng = np.random.RandomState(0)
    for labels in label_maps(instances).values():
        out_image, out_labels = augmenter(image, labels, random_state=rng)
        assert out_image.dtype == np.float32 and out_labels.dtype == labels.dtype
        assert out_image.shape == out_labels.shape
        assert set(np.unique(out_labels)) <= set(np.unique(labels))


# --------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------
def same(a, b):
    return a[0].shape == b[0].shape and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("name", ALL + DEGRADE + ["default"])
def test_same_seed_gives_same_output(particles, name):
    image, labels = particles
    augmentation = default_augmenter() if name == "default" else strong(name)
    for make_state in [lambda: 7, lambda: np.random.RandomState(7),
                       lambda: np.random.default_rng(7)]:
        first = augmentation(image, labels, random_state=make_state())
        second = augmentation(image, labels, random_state=make_state())
        assert same(first, second)


@pytest.mark.parametrize("name", ALL + DEGRADE + ["default"])
def test_successive_draws_differ(particles, name):
    image, labels = particles
    if name == "default":
        augmentation = default_augmenter()
    else:  # with p=1 inversion is not random: draw it half of the time
        augmentation = strong(name).set_params(p=0.5) if name == "invert" else strong(name)
    rng = np.random.RandomState(0)
    results = [augmentation(image, labels, random_state=rng) for _ in range(6)]
    assert not all(same(results[0], other) for other in results[1:])
    by_seed = [augmentation(image, labels, random_state=seed) for seed in range(6)]
    assert not all(same(by_seed[0], other) for other in by_seed[1:])


def test_seeding_leaves_numpy_global_state_alone(particles):
    image, labels = particles
    before = np.random.get_state()[1].copy()
    default_augmenter()(image, labels, random_state=0)
    default_augmenter()(image, labels, random_state=np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# --------------------------------------------------------------------------
# scikit-learn conventions
# --------------------------------------------------------------------------
CLASSES = [RandomResize, Flip, RandomCrop, RandomRotation, BrightnessContrast, Gamma,
           ElasticTransform, GridDistortion, OpticalDistortion, InvertContrast, GaussianNoise,
           LowResolution]


@pytest.mark.parametrize(
    "estimator", [cls() for cls in CLASSES] + [default_augmenter(), Augmenter([])],
    ids=lambda estimator: type(estimator).__name__,
)
@data_free_checks
def test_sklearn_data_free_checks(estimator, check):
    check(type(estimator).__name__, estimator)


def test_default_augmenter_names_and_nested_params():
    augmenter = default_augmenter()
    assert [name for name, _ in augmenter.steps] == RECIPE
    assert list(augmenter.named_steps) == RECIPE
    params = augmenter.get_params()
    assert params["elastic__alpha"] == 120.0
    assert params["flip__p"] == 1.0
    assert isinstance(params["elastic"], ElasticTransform)
    assert augmenter.set_params(elastic__alpha=60.0, grid__num_steps=3) is augmenter
    assert augmenter.named_steps["elastic"].alpha == 60.0
    assert augmenter.get_params()["grid__num_steps"] == 3
    augmenter.set_params(optical="passthrough")
    assert augmenter.get_params()["optical"] == "passthrough"
    assert "optical__p" not in augmenter.get_params()


def test_clone_round_trip():
    augmenter = default_augmenter().set_params(elastic__alpha=42.0, rotate__border_mode="constant")
    copy = clone(augmenter)
    assert copy is not augmenter
    assert copy.named_steps["elastic"] is not augmenter.named_steps["elastic"]
    original, cloned = augmenter.get_params(), copy.get_params()
    assert original.keys() == cloned.keys()
    for key, value in original.items():
        if not isinstance(value, (BaseEstimator, list)):
            assert cloned[key] == value, key
    assert repr(copy) == repr(augmenter)


class _Recorder(BaseEstimator):
    """Stands in for ParticleSegmenter: an estimator with an ``augment`` parameter."""

    def __init__(self, augment=None):
        self.augment = augment

    def fit(self, X, y=None):
        self.alpha_ = self.augment.named_steps["elastic"].alpha
        return self

    def score(self, X, y=None):
        return -abs(self.alpha_ - 60.0)


def test_nested_parameter_is_searchable_from_an_estimator():
    estimator = _Recorder(augment=default_augmenter())
    assert estimator.get_params()["augment__elastic__alpha"] == 120.0
    estimator.set_params(augment__elastic__alpha=30.0)
    assert estimator.augment.named_steps["elastic"].alpha == 30.0
    search = GridSearchCV(estimator, {"augment__elastic__alpha": [30.0, 60.0, 90.0]}, cv=2)
    search.fit(np.zeros((4, 1)))
    assert search.best_params_ == {"augment__elastic__alpha": 60.0}
    assert estimator.augment.named_steps["elastic"].alpha == 30.0  # the search cloned it


def test_to_albumentations(particles):
    image, labels = particles
    compose = default_augmenter().to_albumentations(seed=0)
    names = [type(t).__name__ for t in compose.transforms]
    assert names == ["RandomScale", "D4", "RandomCropFromBorders", "Rotate",
                     "RandomBrightnessContrast", "RandomGamma", "ElasticTransform",
                     "GridDistortion", "OpticalDistortion"]
    result = compose(image=image, mask=labels.astype(np.uint16))
    assert result["image"].shape == result["mask"].shape
    single = ElasticTransform(p=1.0).to_albumentations(seed=0)
    assert type(single.transforms[0]).__name__ == "ElasticTransform"


def test_import_is_lazy():
    code = ("import sys, particleseg, particleseg.augmentation; "
            "print('albumentations' in sys.modules, 'cv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------
def test_parameters_are_validated_at_call_time_not_in_init(particles):
    image, labels = particles
    augmentation = ElasticTransform(alpha=-1, p=2)  # no error yet
    with pytest.raises(ValueError, match=r"ElasticTransform: alpha must be >= 0; got -1"):
        augmentation(image, labels)


@pytest.mark.parametrize(
    "augmentation, error, match",
    [
        (Flip(p=-0.1), ValueError, r"Flip: p is a probability and must be in \[0, 1\]; got -0.1"),
        (Gamma(p=1.5), ValueError, r"Gamma: p is a probability"),
        (RandomResize(scale=(1.5, 0.5)), ValueError, r"scale must be a \(low, high\) pair with "
                                                     r"low <= high"),
        (RandomResize(scale=(0, 1)), ValueError,
         r"RandomResize: scale must lie within \(0, inf\); got \(0, 1\)"),
        (RandomResize(scale="big"), TypeError, r"scale must be a number or a \(low, high\) pair"),
        (RandomCrop(min_fraction=0), ValueError, r"min_fraction must be > 0"),
        (RandomCrop(min_fraction=1.5), ValueError, r"min_fraction must be <= 1"),
        (RandomRotation(limit=-10), ValueError, r"limit given as one number x means the range"),
        (RandomRotation(limit=270), ValueError,
         r"limit must lie within \[-180, 180\]; got 270 "
         r"\(read as the range \(-270.0, 270.0\)\)"),
        (RandomRotation(border_mode="wrap"), ValueError,
         r"border_mode must be 'reflect' or 'constant'; got 'wrap'"),
        (OpticalDistortion(fill=2.0), ValueError, r"fill must be <= 1"),
        (Flip(transpose="yes"), TypeError, r"transpose must be True or False"),
        (BrightnessContrast(contrast_limit=(-1, 0.2)), ValueError,
         r"contrast_limit must lie within \(-1, inf\)"),
        (Gamma(gamma_limit=(0, 120)), ValueError, r"gamma_limit must lie within \(0, inf\)"),
        (Gamma(gamma_limit=(80, 120, 150)), TypeError, r"gamma_limit must be a number or"),
        (ElasticTransform(sigma=0.5), ValueError, r"sigma must be >= 1"),
        (GridDistortion(num_steps=2.5), TypeError, r"num_steps must be an integer"),
        (GridDistortion(distort_limit=1.5), ValueError, r"distort_limit must lie within \[-1, 1\]"),
        (InvertContrast(p=None), ValueError, r"InvertContrast: p is a probability"),
        (GaussianNoise(std_limit=(0.1, 2)), ValueError,
         r"GaussianNoise: std_limit must lie within \[0, 1\]"),
        (LowResolution(scale_limit=(0, 0.5)), ValueError,
         r"LowResolution: scale_limit must lie within \(0, 1\]"),
        (LowResolution(scale_limit=(0.5, 1)), ValueError,
         r"LowResolution: scale_limit must lie below 1"),
        (Augmenter("flip"), TypeError, r"steps must be a list of \(name, augmentation\) tuples"),
        (Augmenter([Flip()]), TypeError, r"each step must be a \(name, augmentation\) tuple"),
        (Augmenter([("flip", Flip()), ("flip", Gamma())]), ValueError,
         r"step names must be unique; 'flip' appears more than once"),
        (Augmenter([("my__flip", Flip())]), ValueError, r"contains '__'"),
        (Augmenter([("flip", np.fliplr)]), TypeError, r"step 'flip' must be an augmentation"),
        (Augmenter([("elastic", ElasticTransform(alpha=-5))]), ValueError,
         r"ElasticTransform: alpha must be >= 0"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else None,
)
def test_bad_parameters_raise_clear_errors(particles, augmentation, error, match):
    image, labels = particles
    with pytest.raises(error, match=match):
        augmentation(image, labels, random_state=0)


def test_unknown_step_name_in_set_params():
    with pytest.raises(ValueError, match=r"Invalid parameter 'elastik'"):
        default_augmenter().set_params(elastik__alpha=1.0)


@pytest.mark.parametrize(
    "image, labels, error, match",
    [
        (np.zeros((2, 8, 8), np.float32), np.zeros((2, 8, 8), np.int32), ValueError,
         r"image must be a non-empty 2-D array \(H, W\); got shape \(2, 8, 8\)"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int32), TypeError,
         r"image must be a float array with values in \[0, 1\]; got dtype uint8"),
        (np.full((8, 8), 255.0, np.float32), np.zeros((8, 8), np.int32), ValueError,
         r"image values must lie in \[0, 1\]; got values from 255.0 to 255.0"),
        (np.full((8, 8), np.nan, np.float32), np.zeros((8, 8), np.int32), ValueError,
         r"image values must lie in \[0, 1\]"),
        (np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), TypeError,
         r"labels must be an integer label map"),
        (np.zeros((8, 8), np.float32), np.zeros((8, 9), np.int32), ValueError,
         r"labels must have the shape of image \(8, 8\); got shape \(8, 9\)"),
    ],
)
def test_bad_arrays_raise_clear_errors(image, labels, error, match):
    with pytest.raises(error, match=match):
        default_augmenter()(image, labels, random_state=0)


def test_bad_random_state_raises(particles):
    image, labels = particles
    with pytest.raises(ValueError, match=r"random_state must be None, an int, a numpy "
                                         r"RandomState or a numpy Generator; got 'seed'"):
        Flip()(image, labels, random_state="seed")


def test_rounding_just_outside_the_unit_range_is_clipped_not_rejected():
    image = np.full((8, 8), 1 + 1e-7, dtype=np.float64)
    labels = np.zeros((8, 8), dtype=np.uint8)
    out_image, _ = Augmenter([])(image, labels)
    assert out_image.dtype == np.float32 and out_image.max() == 1.0
