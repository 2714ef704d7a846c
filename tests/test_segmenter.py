"""Tests of particleseg.segmenter: ParticleSegmenter's fit, predict and contract.

Training is kept tiny: 64x64 images, MobileNetV3 (the CPU backbone), one or
two epochs, except for the one test that checks that training learns. The
ResNet-50 default is tested in test_models.py; model files and pickling in
test_persistence.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn
from estimator_checks import data_free_checks
from fast_fit import FAST

import particleseg._training as training
from particleseg import BorderAnnotator, Normalizer, ParticleSegmenter, annotate_borders
from particleseg._training import balanced_class_weight, load_checkpoint
from particleseg.augmentation import Augmenter, Flip
from particleseg.datasets import make_particles
from particleseg.normalization import RECIPE_MEAN, RECIPE_STD



@pytest.fixture(scope="module")
def fitted(data):
    """A segmenter fitted for one epoch (shared: tests must not change it)."""
    X, y = data
    return ParticleSegmenter(**FAST).fit(X, y)


def _first_batchnorm(model):
    """The first BatchNorm layer of a model (it counts the training steps)."""
    return next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))


# ---------------------------------------------------------------------------
# Training learns


#: Large particles (radius 18-26 px) so that DeepLabV3's stride-16 output can
#: draw them on 64x64 images; 16 images, 4 steps per epoch.
_LEARN_DATA = dict(n_images=16, shape=(64, 64), radius=(18, 26), n_particles=(1, 2))
_LEARN = dict(FAST, max_epochs=20, batch_size=4, learning_rate=1e-3)


@pytest.fixture(scope="module")
def learn_data():
    return make_particles(random_state=0, **_LEARN_DATA)


@pytest.fixture(scope="module")
def trained(learn_data):
    """A segmenter trained for 80 steps (about 15 s on a loaded 2-core CPU)."""
    X, y = learn_data
    return ParticleSegmenter(**_LEARN).fit(X, y)


def test_short_training_beats_the_untrained_model(learn_data, trained):
    """80 steps lift the particle IoU on the training images well above the start.

    Measured with random_state 0-5: untrained 0.346 (it calls every pixel a
    particle border, so its IoU is the particle fraction), trained 0.74-0.79.
    Without training (or with stale BatchNorm statistics, as with
    torchvision's MobileNetV3 momentum of 0.01) the score stays at 0.35-0.39.
    """
    X, y = learn_data
    untrained = ParticleSegmenter(**dict(_LEARN, max_epochs=0)).fit(X, y)
    before, after = untrained.score(X, y), trained.score(X, y)
    assert after > 0.6
    assert after > before + 0.25
    losses = [record["train_loss"] for record in trained.history_]
    assert np.mean(losses[-3:]) < 0.75 * np.mean(losses[:3])


# ---------------------------------------------------------------------------
# Fitted attributes


def test_fit_sets_attributes(data, fitted):
    X, y = data
    assert fitted.model_ is not None and not fitted.model_.training
    np.testing.assert_array_equal(fitted.classes_, [0, 1, 2])
    expected_weight = balanced_class_weight([annotate_borders(t) for t in y])
    np.testing.assert_allclose(fitted.class_weight_, expected_weight)
    assert fitted.class_weight_[2] > fitted.class_weight_[1] > fitted.class_weight_[0]
    assert fitted.normalization_ == (RECIPE_MEAN, RECIPE_STD)
    assert fitted.border_width_ == 1
    assert fitted.n_iter_ == 1
    assert fitted.device_ == torch.device("cpu")


def test_fit_returns_self(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, max_epochs=0))
    assert seg.fit(X, y) is seg


def test_class_weight_options(data):
    X, y = data
    plain = ParticleSegmenter(**dict(FAST, max_epochs=0, class_weight=None)).fit(X, y)
    np.testing.assert_array_equal(plain.class_weight_, [1, 1, 1])
    given = ParticleSegmenter(**dict(FAST, max_epochs=0, class_weight=[1, 2, 5])).fit(X, y)
    np.testing.assert_array_equal(given.class_weight_, [1, 2, 5])


def test_fit_on_class_maps_with_annotator_none(data):
    X, y = data
    class_maps = [annotate_borders(t, 2) for t in y]
    seg = ParticleSegmenter(**dict(FAST, max_epochs=0, annotator=None)).fit(X, class_maps)
    assert seg.border_width_ is None
    np.testing.assert_allclose(seg.class_weight_, balanced_class_weight(class_maps))


def test_annotator_width_is_used(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, max_epochs=0, annotator=BorderAnnotator(width=3)))
    seg.fit(X, y)
    assert seg.border_width_ == 3
    np.testing.assert_allclose(
        seg.class_weight_, balanced_class_weight([annotate_borders(t, 3) for t in y])
    )


def test_one_training_image_trains(data):
    """BatchNorm cannot train on one crop: one image still gives a step of two crops."""
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, batch_size=8)).fit(X[:1], y[:1])
    assert int(_first_batchnorm(seg.model_).num_batches_tracked) == 1
    assert np.isfinite(seg.history_[0]["train_loss"])


# ---------------------------------------------------------------------------
# Wrong inputs and parameters


def test_predict_before_fit():
    seg = ParticleSegmenter()
    image = np.zeros((64, 64), np.uint8)
    for method in (seg.predict, seg.predict_proba):
        with pytest.raises(NotFittedError):
            method(image)
    with pytest.raises(NotFittedError):
        seg.score([image], [np.zeros((64, 64), np.int32)])
    with pytest.raises(NotFittedError):
        seg.save("never-written.safetensors")


def test_x_and_y_of_different_lengths(data):
    X, y = data
    with pytest.raises(ValueError, match=r"X and y must have the same length: got 4 images and 3 label maps"):
        ParticleSegmenter(**FAST).fit(X, y[:3])


def test_one_label_map_for_many_images(data):
    X, y = data
    with pytest.raises(ValueError, match=r"y is one label map but X holds 4 images"):
        ParticleSegmenter(**FAST).fit(X, y[0])


def test_label_map_shape_differs_from_image(data):
    X, y = data
    bad = [y[0][:32], *y[1:]]
    with pytest.raises(ValueError, match=r"y\[0\] has shape \(32, 64\) but X\[0\] has shape \(64, 64\)"):
        ParticleSegmenter(**FAST).fit(X, bad)


def test_class_maps_above_two_without_annotator(data):
    X, y = data
    assert y[0].max() > 2  # instance maps, not class maps
    with pytest.raises(ValueError, match=r"y\[0\] must be a class map with values 0 \(background\), "
                                         r"1 \(particle\) and 2 \(border\); got values from 0 to \d+"):
        ParticleSegmenter(**dict(FAST, annotator=None)).fit(X, y)


def test_three_dimensional_image_in_a_list(data, fitted):
    _, y = data
    with pytest.raises(ValueError, match=r"X\[0\] must be 2-D \(H, W\).*got shape \(4, 64, 64\)\. "
                                         r"To process a stack of images, pass a list of 2-D images"):
        ParticleSegmenter(**FAST).fit([np.zeros((4, 64, 64), np.uint8)], y[:1])
    with pytest.raises(ValueError, match=r"X\[0\] must be 2-D .*got shape \(4, 64, 64\)"):
        fitted.predict([np.zeros((4, 64, 64), np.uint8)])


def test_y_none(data):
    X, _ = data
    with pytest.raises(ValueError, match=r"y is required: pass one instance map \(or class map "
                                         r"with annotator=None\) per image"):
        ParticleSegmenter(**FAST).fit(X, None)
    # A Pipeline fitted without y passes y=None on.
    with pytest.raises(ValueError, match=r"y is required"):
        make_pipeline(Normalizer(), ParticleSegmenter(**FAST)).fit(X)


def test_negative_instance_labels(data):
    X, y = data
    bad = [-t for t in y]
    with pytest.raises(ValueError, match=r"y\[0\] contains negative labels"):
        ParticleSegmenter(**FAST).fit(X, bad)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"backbone": "resnet18"}, ValueError,
         r"backbone must be one of \('resnet50', 'resnet101', 'mobilenet_v3_large'\); got 'resnet18'"),
        ({"crop_size": 8}, ValueError, r"crop_size must be an integer >= 16; got 8"),
        ({"crop_size": 64.0}, ValueError, r"crop_size must be an integer >= 16; got 64.0"),
        ({"batch_size": 1}, ValueError, r"batch_size must be an integer >= 2; got 1"),
        ({"max_epochs": -1}, ValueError, r"max_epochs must be an integer >= 0; got -1"),
        ({"crops_per_image": 0}, ValueError, r"crops_per_image must be an integer >= 1; got 0"),
        ({"tile_size": 64, "tile_overlap": 32}, ValueError,
         r"tile_overlap \(32\) must be less than half of tile_size \(64\)"),
        ({"tile_size": 32}, ValueError, r"tile_size must be an integer >= 64; got 32"),
        ({"tile_overlap": -1}, ValueError, r"tile_overlap must be an integer >= 0; got -1"),
        ({"validation_fraction": 1.0}, ValueError,
         r"validation_fraction must be None or between 0 and 1; got 1.0"),
        ({"validation_fraction": 0}, ValueError,
         r"validation_fraction must be None or between 0 and 1; got 0"),
        ({"validation_fraction": 0.9}, ValueError,
         r"validation_fraction=0.9 leaves no training image out of 4"),
        ({"class_weight": "auto"}, ValueError,
         r'class_weight must be "balanced", None or 3 numbers; got \'auto\''),
        ({"class_weight": [1, 2]}, ValueError,
         r"class_weight must be 3 positive numbers \(background, particle, border\); got \[1, 2\]"),
        ({"class_weight": [1, 0, 1]}, ValueError, r"class_weight must be 3 positive numbers"),
        ({"learning_rate": 0}, ValueError, r"learning_rate must be a positive number; got 0"),
        ({"std": 0}, ValueError, r"std must be a positive number; got 0"),
        ({"intensity_range": "auto"}, ValueError, r'intensity_range must be "dtype" or "image"'),
        ({"annotator": "watershed"}, ValueError,
         r'annotator must be "default", None or a BorderAnnotator; got \'watershed\''),
        ({"annotator": 3}, TypeError, r'annotator must be "default", None or a BorderAnnotator'),
        ({"augment": "heavy"}, ValueError,
         r'augment must be "default", None or an Augmenter; got \'heavy\''),
        ({"augment": 3}, TypeError, r'augment must be "default", None or an Augmenter'),
        ({"device": "tpu"}, ValueError, r'device must be "auto", "cpu", "cuda" or "cuda:N"; got \'tpu\''),
        ({"random_state": "seed"}, TypeError, r"random_state must be an int, a RandomState or None"),
        ({"weights": 3}, TypeError, r'weights must be None, "imagenet" or the path of a saved model'),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_bad_parameters_raise_in_fit(data, params, error, message):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, **params))  # __init__ accepts anything
    with pytest.raises(error, match=message):
        seg.fit(X, y)
    assert not hasattr(seg, "model_")


# ---------------------------------------------------------------------------
# Prediction


def test_predict_single_image(data, fitted):
    X, _ = data
    pred = fitted.predict(X[0])
    assert isinstance(pred, np.ndarray)
    assert pred.shape == (64, 64) and pred.dtype == np.uint8
    assert set(np.unique(pred)) <= {0, 1, 2}


def test_predict_list_gives_list(data, fitted):
    X, _ = data
    pred = fitted.predict(X)
    assert isinstance(pred, list) and len(pred) == 4
    assert all(p.shape == (64, 64) and p.dtype == np.uint8 for p in pred)
    # A list of one stays a list.
    assert isinstance(fitted.predict(X[:1]), list)


def test_predict_stack_gives_list(data, fitted):
    X, _ = data
    pred = fitted.predict(np.stack(X))
    assert isinstance(pred, list) and len(pred) == 4
    for a, b in zip(pred, fitted.predict(X)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (17, 100), (100, 20), (65, 129)])
def test_odd_sizes_come_back_at_full_resolution(fitted, shape):
    # (17, 100), (100, 20) and (65, 129) are larger than tile_size=64 on one
    # side: they go through the tiled path with one side padded.
    seg = copy.deepcopy(fitted).set_params(tile_size=64, tile_overlap=16)
    image = make_particles(n_images=1, shape=shape, random_state=1)[0][0]
    proba = seg.predict_proba(image)
    assert proba.shape == (3, *shape) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-5)
    assert seg.predict(image).shape == shape


def test_predict_proba_is_a_distribution_and_predict_its_argmax(data, fitted):
    X, _ = data
    proba = fitted.predict_proba(X[1])
    assert proba.shape == (3, 64, 64) and proba.dtype == np.float32
    assert proba.min() >= 0
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-5)
    # The plain rule: each pixel its most probable class.
    argmax_seg = copy.deepcopy(fitted).set_params(calibrate_outlines=False)
    np.testing.assert_array_equal(argmax_seg.predict(X[1]), proba.argmax(axis=0))
    # The default rule: cores where p(particle) >= 0.5; outlines where
    # particle-or-border wins once the class weights are divided out.
    w = fitted.class_weight_
    outline = proba[1] / w[1] + proba[2] / w[2] >= proba[0] / w[0]
    expected = np.where(outline, 2, 0)
    expected[proba[1] >= 0.5] = 1
    np.testing.assert_array_equal(fitted.predict(X[1]), expected)
    probas = fitted.predict_proba(X)
    assert isinstance(probas, list) and len(probas) == 4
    np.testing.assert_array_equal(probas[1], proba)


def test_predict_accepts_other_dtypes_and_rgb(data, fitted):
    X, _ = data
    reference = fitted.predict_proba(X[0])
    as_uint16 = X[0].astype(np.uint16) * 257  # the same image on the 16-bit scale
    np.testing.assert_allclose(fitted.predict_proba(as_uint16), reference, atol=1e-4)
    as_rgb = np.repeat(X[0][..., None], 3, axis=-1)
    np.testing.assert_array_equal(fitted.predict_proba(as_rgb), reference)


def test_score_is_particle_iou(data, fitted):
    X, y = data
    pred = fitted.predict(X)
    expected = np.mean([((p > 0) & (t > 0)).sum() / ((p > 0) | (t > 0)).sum()
                        for p, t in zip(pred, y)])
    assert fitted.score(X, y) == pytest.approx(expected)
    assert fitted.score(X[0], y[0]) == pytest.approx(
        ((pred[0] > 0) & (y[0] > 0)).sum() / ((pred[0] > 0) | (y[0] > 0)).sum()
    )
    with pytest.raises(ValueError, match=r"X and y must have the same length: got 4 images and 2"):
        fitted.score(X, y[:2])


# ---------------------------------------------------------------------------
# Tiled prediction


class _Pixelwise(nn.Module):
    """A stand-in network whose output at a pixel depends on that pixel only."""

    def __init__(self, kernel_size=1):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        pad = kernel_size // 2
        self.first = nn.Conv2d(3, 8, kernel_size, padding=pad)
        self.second = nn.Conv2d(8, 3, kernel_size, padding=pad)
        with torch.no_grad():
            for conv in (self.first, self.second):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen))

    def forward(self, x):
        return {"out": self.second(torch.tanh(self.first(x)))}


def _with_model(fitted, model, **params):
    seg = copy.deepcopy(fitted)
    seg.model_ = model.eval()
    return seg.set_params(inference_precision="float32", **params)


def _interior_edge_distance(size, tile, overlap):
    """Distance of each row (or column) to the nearest tile edge inside the image."""
    step = tile - overlap
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    edges = [s for s in starts if s > 0] + [s + tile - 1 for s in starts if s + tile < size]
    idx = np.arange(size)
    return np.min(np.abs(idx[:, None] - np.array(edges)[None]), axis=1)


@pytest.fixture(scope="module")
def big_image():
    """160x160: with tile_size=64 and tile_overlap=16, 3x3 tiles (starts 0, 48, 96)."""
    return make_particles(n_images=1, shape=(160, 160), radius=(18, 26), n_particles=(4, 8),
                          random_state=1)[0][0]


def test_tiles_are_placed_and_blended_exactly(fitted, big_image):
    """With a pixel-wise network, tiled and whole predictions agree to rounding."""
    seg = _with_model(fitted, _Pixelwise(1), tile_size=64, tile_overlap=16)
    tiled = seg.predict_proba(big_image)
    whole = seg.set_params(tile_size=None).predict_proba(big_image)
    assert np.abs(tiled - whole).max() < 1e-5
    np.testing.assert_array_equal(tiled.argmax(0), whole.argmax(0))
    assert len(np.unique(whole.argmax(0))) > 1  # the stand-in is not trivially constant


def test_tile_edges_only_affect_pixels_next_to_them(fitted, big_image):
    """With a 5x5 receptive field, tiling changes only pixels within 2 px of a tile edge.

    Each tile zero-pads its own edge; the blending weights (about 0.03 and
    0.09 on a tile's outer two pixels) keep the error small.
    """
    seg = _with_model(fitted, _Pixelwise(3), tile_size=64, tile_overlap=16)
    tiled = seg.predict_proba(big_image)
    whole = seg.set_params(tile_size=None).predict_proba(big_image)
    diff = np.abs(tiled - whole).max(axis=0)
    d = _interior_edge_distance(160, 64, 16)
    near = np.minimum(d[:, None], d[None, :]) <= 1
    assert diff[~near].max() < 1e-5
    assert diff.max() < 0.15
    assert np.mean(tiled.argmax(0) != whole.argmax(0)) < 0.01


def test_tiled_prediction_of_deeplab(trained, big_image):
    """Tiles are predicted as if alone, and blended as a weighted mean.

    DeepLabV3 sees the whole input (image pooling, receptive field larger
    than a 64-pixel tile), so 64-pixel tiles do *not* reproduce the
    whole-image prediction of a briefly trained model: measured on this image,
    48 % of the pixels change class and probabilities differ by up to 0.79
    (30-48 % over three training seeds and two images; 16-35 % with 128-pixel
    tiles), about as often far from the seams as near them. What must hold is
    asserted here: a region covered by one tile only is exactly that tile's
    own prediction, and everywhere the blend lies between the tiles'
    predictions.
    """
    seg = copy.deepcopy(trained).set_params(inference_precision="float32", tile_size=64,
                                            tile_overlap=16)
    tiled = seg.predict_proba(big_image)
    assert tiled.shape == (3, 160, 160)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)
    starts = [0, 48, 96]
    tiles = {(t, l): seg.predict_proba(big_image[t:t + 64, l:l + 64]) for t in starts for l in starts}
    # Corners are covered by one tile.
    np.testing.assert_allclose(tiled[:, :48, :48], tiles[0, 0][:, :48, :48], atol=1e-6)
    np.testing.assert_allclose(tiled[:, 112:, 112:], tiles[96, 96][:, 16:, 16:], atol=1e-6)
    low = np.full_like(tiled, np.inf)
    high = np.full_like(tiled, -np.inf)
    for (t, l), p in tiles.items():
        low[:, t:t + 64, l:l + 64] = np.minimum(low[:, t:t + 64, l:l + 64], p)
        high[:, t:t + 64, l:l + 64] = np.maximum(high[:, t:t + 64, l:l + 64], p)
    assert np.all(tiled >= low - 1e-6) and np.all(tiled <= high + 1e-6)


# ---------------------------------------------------------------------------
# Reproducibility


def test_same_random_state_gives_identical_predictions(data):
    X, y = data
    params = dict(FAST, augment="default", random_state=3)
    a = ParticleSegmenter(**params).fit(X, y).predict_proba(X)
    b = ParticleSegmenter(**params).fit(X, y).predict_proba(X)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    c = ParticleSegmenter(**dict(params, random_state=4)).fit(X, y).predict_proba(X)
    assert not all(np.array_equal(pa, pc) for pa, pc in zip(a, c))


# ---------------------------------------------------------------------------
# History, warm start, partial_fit, checkpoints


def test_history_has_one_entry_per_epoch(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, max_epochs=2)).fit(X, y)
    assert seg.n_iter_ == 2
    assert [r["epoch"] for r in seg.history_] == [1, 2]
    assert set(seg.history_[0]) == {"epoch", "train_loss", "learning_rate", "seconds"}
    # Cosine annealing over 2 epochs: 1e-3, then 5e-4.
    assert [r["learning_rate"] for r in seg.history_] == pytest.approx([1e-3, 5e-4])
    assert all(np.isfinite(r["train_loss"]) and r["train_loss"] > 0 for r in seg.history_)


def test_history_with_validation(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, max_epochs=2, validation_fraction=0.25)).fit(X, y)
    assert len(seg.history_) == 2
    for record in seg.history_:
        assert set(record) == {"epoch", "train_loss", "learning_rate", "seconds",
                               "valid_loss", "valid_iou"}
        assert np.isfinite(record["valid_loss"]) and record["valid_loss"] > 0
        assert 0.0 <= record["valid_iou"] <= 1.0


def test_warm_start_continues(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, warm_start=True)).fit(X, y)
    model = seg.model_
    first = {k: v.clone() for k, v in model.state_dict().items()}
    seg.fit(X, y)
    assert seg.model_ is model
    assert seg.n_iter_ == 2
    assert [r["epoch"] for r in seg.history_] == [1, 2]
    assert int(_first_batchnorm(seg.model_).num_batches_tracked) == 4  # 2 steps per epoch
    assert not torch.equal(first["classifier.4.weight"], seg.model_.state_dict()["classifier.4.weight"])


def test_without_warm_start_fit_starts_again(data):
    X, y = data
    seg = ParticleSegmenter(**FAST).fit(X, y)
    model = seg.model_
    seg.fit(X, y)
    assert seg.model_ is not model
    assert seg.n_iter_ == 1
    assert int(_first_batchnorm(seg.model_).num_batches_tracked) == 2


def test_partial_fit_continues(data):
    X, y = data
    seg = ParticleSegmenter(**FAST).partial_fit(X, y)  # the first call is a fit
    assert seg.n_iter_ == 1
    seg.partial_fit(X, y)
    seg.partial_fit(X, y)
    assert seg.n_iter_ == 3
    assert [r["epoch"] for r in seg.history_] == [1, 2, 3]
    assert int(_first_batchnorm(seg.model_).num_batches_tracked) == 6
    # Each call restarts the learning-rate schedule (a warm restart).
    assert [r["learning_rate"] for r in seg.history_] == pytest.approx([1e-3] * 3)


class _Interrupted(Exception):
    pass


def test_checkpoint_resumes_an_interrupted_fit(data, tmp_path, monkeypatch):
    X, y = data
    path = tmp_path / "run.ckpt"
    params = dict(FAST, max_epochs=2, checkpoint=path)
    real_epoch = training.train_epoch
    calls = []

    def epoch_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Interrupted  # the session ends during epoch 2
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", epoch_then_interrupt)
    with pytest.raises(_Interrupted):
        ParticleSegmenter(**params).fit(X, y)
    saved = load_checkpoint(path, "cpu")
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    assert not (tmp_path / "run.ckpt.tmp").exists()

    counted = []
    monkeypatch.setattr(training, "train_epoch",
                        lambda *a, **k: counted.append(1) or real_epoch(*a, **k))
    resumed = ParticleSegmenter(**params).fit(X, y)
    assert len(counted) == 1  # only epoch 2 was trained
    assert resumed.n_iter_ == 2
    assert resumed.history_[0] == saved["history"][0]
    assert resumed.history_[1]["epoch"] == 2
    # The learning-rate schedule was restored, not restarted.
    assert resumed.history_[1]["learning_rate"] == pytest.approx(5e-4)
    assert load_checkpoint(path, "cpu")["epoch"] == 2

    # A finished checkpoint trains nothing more and returns its model.
    counted.clear()
    again = ParticleSegmenter(**params).fit(X, y)
    assert counted == [] and again.n_iter_ == 2
    for a, b in zip(again.predict_proba(X), resumed.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_with_other_settings_is_refused(data, tmp_path):
    X, y = data
    path = tmp_path / "run.ckpt"
    ParticleSegmenter(**dict(FAST, checkpoint=path)).fit(X, y)
    with pytest.raises(ValueError, match=r"checkpoint .*run\.ckpt was written with other settings "
                                         r"\(batch_size: checkpoint 2 vs now 4\); use the same settings"):
        ParticleSegmenter(**dict(FAST, checkpoint=path, batch_size=4)).fit(X, y)
    with pytest.raises(ValueError, match=r"max_epochs: checkpoint 1 vs now 3"):
        ParticleSegmenter(**dict(FAST, checkpoint=path, max_epochs=3)).fit(X, y)


# ---------------------------------------------------------------------------
# Pipelines, clone, grid search


@pytest.mark.parametrize("augment", [None, "default"])
def test_pipeline_with_normalizer_normalises_once(data, augment):
    """Normalizer's marked output is recognised: the same model as on raw images.

    Without augmentation the two fits are bit-identical. With it, the
    segmenter undoes the standardisation to augment in [0, 1], which changes
    the last bits of the input: probabilities then differ by about 1e-4.
    """
    X, y = data
    params = dict(FAST, augment=augment)
    pipe = make_pipeline(Normalizer(), ParticleSegmenter(**params)).fit(X, y)
    alone = ParticleSegmenter(**params).fit(X, y)
    assert pipe[-1].normalization_ == alone.normalization_ == (RECIPE_MEAN, RECIPE_STD)
    from_pipe, from_raw = pipe.predict_proba(X), alone.predict_proba(X)
    for a, b in zip(from_pipe, from_raw):
        if augment is None:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, atol=2e-3)
    preds = pipe.predict(X)
    assert all(p.shape == (64, 64) and p.dtype == np.uint8 for p in preds)
    assert pipe.predict(X[0]).shape == (64, 64)
    agree = np.mean([np.mean(a.argmax(0) == b.argmax(0)) for a, b in zip(from_pipe, from_raw)])
    assert agree >= 0.99


def test_pipeline_passes_fitted_statistics(data):
    X, y = data
    pipe = make_pipeline(Normalizer(mean="fit", std="fit"), ParticleSegmenter(**dict(FAST, max_epochs=0)))
    pipe.fit(X, y)
    norm = pipe[0]
    assert norm.mean_ != pytest.approx(RECIPE_MEAN)
    assert pipe[-1].normalization_ == pytest.approx((norm.mean_, norm.std_))


def test_clone_gives_an_unfitted_estimator(fitted):
    augment = Augmenter([("flip", Flip(p=0.5))])
    seg = ParticleSegmenter(**dict(FAST, augment=augment))
    cloned = clone(seg)
    assert cloned.get_params(deep=False).keys() == seg.get_params(deep=False).keys()
    assert cloned.augment is not augment
    assert cloned.get_params()["augment__flip__p"] == 0.5
    unfitted = clone(fitted)
    assert not hasattr(unfitted, "model_")
    with pytest.raises(NotFittedError):
        unfitted.predict(np.zeros((64, 64), np.uint8))
    assert unfitted.get_params() == fitted.get_params()


def test_nested_augmentation_parameters():
    seg = ParticleSegmenter(augment=Augmenter([("flip", Flip(p=0.5))]))
    assert seg.get_params()["augment__flip__p"] == 0.5
    seg.set_params(augment__flip__p=0.25)
    assert seg.augment.named_steps["flip"].p == 0.25


def test_grid_search_over_epochs_and_an_augmentation(data):
    X, y = data
    seg = ParticleSegmenter(**dict(FAST, augment=Augmenter([("flip", Flip(p=0.5))])))
    grid = {"max_epochs": [0, 1], "augment__flip__p": [0.0, 1.0]}
    search = GridSearchCV(seg, grid, cv=2, error_score="raise").fit(X, y)
    results = search.cv_results_
    assert [(p["augment__flip__p"], p["max_epochs"]) for p in results["params"]] == [
        (0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)
    ]
    for split in ("split0_test_score", "split1_test_score"):
        assert np.all((results[split] >= 0) & (results[split] <= 1))
    best = search.best_estimator_
    assert best.n_iter_ == search.best_params_["max_epochs"]
    assert best.augment.named_steps["flip"].p == search.best_params_["augment__flip__p"]
    assert seg.augment.named_steps["flip"].p == 0.5  # the searched estimator is untouched
    assert not hasattr(seg, "model_")
    # Untrained candidates (max_epochs=0) do not depend on the augmentation.
    assert results["mean_test_score"][0] == results["mean_test_score"][2]


# ---------------------------------------------------------------------------
# scikit-learn's data-free checks


@data_free_checks
@pytest.mark.parametrize(
    "estimator",
    [ParticleSegmenter(), ParticleSegmenter(augment=Augmenter([("flip", Flip())]),
                                            annotator=BorderAnnotator(width=2))],
    ids=["default", "nested"],
)
def test_data_free_sklearn_checks(estimator, check):
    check("ParticleSegmenter", estimator)


def test_tags():
    tags = ParticleSegmenter().__sklearn_tags__()
    assert tags.input_tags.two_d_array is False
    assert tags.non_deterministic is True
    assert ParticleSegmenter(random_state=0).__sklearn_tags__().non_deterministic is False



@pytest.mark.parametrize("shape", [(64, 64), (37, 53)])
def test_inference_scale_returns_full_resolution_and_changes_the_input(data, fitted, shape):
    """inference_scale enlarges the input; results come back at the image's size."""
    seg = clone(fitted).set_params(inference_scale=2.0)
    for name in ("model_", "device_", "classes_", "normalization_", "history_", "n_iter_",
                 "border_width_", "class_weight_"):
        setattr(seg, name, getattr(fitted, name))
    image = data[0][0][: shape[0], : shape[1]]
    scaled = seg.predict_proba(image)
    plain = fitted.predict_proba(image)
    assert scaled.shape == plain.shape == (3, *shape)
    np.testing.assert_allclose(scaled.sum(axis=0), 1.0, atol=1e-5)
    # The network saw another input: the probabilities are not those at scale 1.
    assert np.abs(scaled - plain).max() > 1e-4


@pytest.mark.parametrize("scale", [0.1, 5, "2", True])
def test_bad_inference_scale_is_refused_at_predict(data, fitted, scale):
    seg = clone(fitted).set_params(inference_scale=scale)
    seg.model_, seg.device_, seg.normalization_ = fitted.model_, fitted.device_, fitted.normalization_
    with pytest.raises(ValueError, match='inference_scale must be "auto" or a number between 0.25 and 4'):
        seg.predict_proba(data[0][0])


def test_mixing_normalized_and_raw_images_is_refused(data):
    from particleseg import Normalizer

    X, y = data
    mixed = [Normalizer().fit_transform(X[0]), X[1]]
    with pytest.raises(ValueError, match="mixes images normalised by a Normalizer with raw images"):
        ParticleSegmenter(**FAST).fit(mixed, y[:2])


def test_fit_without_y_says_what_to_pass(data):
    with pytest.raises(ValueError, match="y is required"):
        ParticleSegmenter(**FAST).fit(data[0])


def test_test_time_flips_average_the_eight_orientations(data, fitted):
    """With test_time_flips, predict_proba is the mean over the 8 orientations."""
    image = data[0][1][:48, :40]  # not square: rotations change the shape
    seg = copy.deepcopy(fitted).set_params(inference_precision="float32")
    expected = np.zeros((3, 48, 40), dtype=np.float64)
    for k in range(4):
        for flip in (False, True):
            view = np.rot90(image, k)
            view = view[:, ::-1] if flip else view
            p = seg.predict_proba(np.ascontiguousarray(view))
            p = p[:, :, ::-1] if flip else p
            expected += np.rot90(p, -k, axes=(1, 2))
    averaged = seg.set_params(test_time_flips=True).predict_proba(image)
    assert averaged.shape == (3, 48, 40) and averaged.dtype == np.float32
    np.testing.assert_allclose(averaged, expected / 8, atol=1e-5)
    plain = seg.set_params(test_time_flips=False).predict_proba(image)
    assert np.abs(averaged - plain).max() > 1e-4
