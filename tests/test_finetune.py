"""Tests for few-shot fine-tuning: ParticleSegmenter.fine_tune and particleseg._finetune."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from particleseg import ParticleSegmenter, _finetune  # noqa: E402
from particleseg import _training as T  # noqa: E402
from particleseg.annotation import UNLABELLED, BorderAnnotator, annotate_borders  # noqa: E402
from particleseg.datasets import make_particles  # noqa: E402
from particleseg.labels import mark_unlabelled  # noqa: E402
from particleseg.segmenter import _fine_tune  # noqa: E402

TINY = {"crop_size": 64, "batch_size": 2}


@pytest.fixture(scope="module")
def data():
    return make_particles(n_images=4, shape=(64, 64), random_state=0)


def fit_tiny(X, y, **params):
    """A one-epoch MobileNet segmenter on the synthetic data, float32, seeded."""
    return ParticleSegmenter(
        backbone="mobilenet_v3_large", max_epochs=1, crop_size=64, batch_size=4, augment=None,
        inference_precision="float32", random_state=0, n_threads=1, **params,
    ).fit(X, y)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, data):
    """A tiny model with inference settings that differ from the defaults."""
    X, y = data
    path = tmp_path_factory.mktemp("model") / "start.safetensors"
    seg = fit_tiny(
        X, y, annotator=BorderAnnotator(width=2), intensity_range="image", mean=0.4, std=0.2,
        inference_scale=1.5, calibrate_outlines=False, tile_size=96, tile_overlap=16,
    )
    seg.model_info_ = {"training_data": "4 synthetic images"}
    seg.save(path)
    return path


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------
# What carries over, what is recorded


def test_fine_tuned_file_keeps_the_starting_models_inference_settings(model_file, data, tmp_path):
    X, y = data
    start = ParticleSegmenter.load(model_file, device="cpu")
    before = start.get_params(deep=False)
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe=TINY, names=["a", "b", "c", "d"])
    path = seg.save(tmp_path / "tuned.safetensors")
    tuned = ParticleSegmenter.load(path, device="cpu")
    after = tuned.get_params(deep=False)
    for name in ("inference_scale", "calibrate_outlines", "tile_size", "tile_overlap",
                 "inference_precision", "intensity_range", "mean", "std", "normalize",
                 "test_time_flips", "backbone"):
        assert after[name] == before[name], name
    assert tuned.border_width_ == start.border_width_ == 2
    assert tuned.normalization_ == start.normalization_ == (0.4, 0.2)
    np.testing.assert_array_equal(tuned.class_weight_, start.class_weight_)
    record = tuned.model_info_["fine_tuned"]
    assert record["parent"]["file"] == "start.safetensors"
    assert record["parent"]["sha256"] and record["parent"]["format_version"] == 1
    assert record["parent"]["model_info"] == {"training_data": "4 synthetic images"}
    assert record["images"] == ["a", "b", "c", "d"]
    assert record["recipe"]["learning_rate"] == _finetune.DEFAULT_RECIPE["learning_rate"]
    assert record["recipe"]["crop_size"] == 64 and record["recipe"]["steps"] == 2
    # 4 images trained on (their last quarters held out), each at the numeric
    # inference_scale.
    assert record["recipe"]["training_scales"] == [1.5, 1.5, 1.5, 1.5]
    assert tuned.model_info_["training_data"].startswith("4 synthetic images; fine-tuned on 4")


def test_fine_tune_changes_the_weights_and_reports_what_it_did(model_file, data):
    X, y = data
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    start = state(seg.model_)
    seg.fine_tune(X, y, minutes=None, max_steps=3, recipe=TINY, validation=False)
    assert seg.fine_tuning_["steps"] == 3 and seg.fine_tuning_["stopped"] == "budget"
    assert not seg.fine_tuning_["kept_starting_weights"]
    assert "without held-out data" in seg.fine_tuning_["message"]
    assert not same_state(start, state(seg.model_))
    # BatchNorm statistics are the starting model's (frozen by the recipe).
    for name, value in state(seg.model_).items():
        if "running_mean" in name or "running_var" in name:
            assert torch.equal(value, start[name]), name


def test_fine_tune_stops_at_the_time_budget(model_file, data):
    X, y = data
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    ticks = iter(range(0, 10_000, 20))  # a clock that advances 20 s per reading
    _fine_tune(seg, X, y, minutes=1, recipe=TINY, validation=False, clock=lambda: next(ticks))
    assert seg.fine_tuning_["stopped"] == "budget"
    assert 1 <= seg.fine_tuning_["steps"] <= 3


# --------------------------------------------------------------------------
# Validation: keep the best, keep the start when it is better, Ctrl-C


def scripted_scores(monkeypatch, f1s, saved):
    """validation_score returns the given F1s in turn and keeps a copy of each state."""
    scores = iter(f1s)

    def fake(seg, model, validation, starting=False):
        saved.append(state(model))
        return {"f1": next(scores), "count_error": 0.0}

    monkeypatch.setattr(_finetune, "validation_score", fake)


def test_ctrl_c_stops_and_keeps_the_best_weights_so_far(model_file, data, monkeypatch):
    X, y = data
    saved = []
    scripted_scores(monkeypatch, [0.5, 0.9, 0.2, 0.1, 0.1], saved)  # before, step 1, 2, 3...
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)

    def interrupt(record):
        if record["step"] == 3:
            raise KeyboardInterrupt

    seg.fine_tune(X, y, minutes=None, max_steps=10, callback=interrupt,
                  recipe={**TINY, "validation_rounds": 10})
    assert seg.fine_tuning_["stopped"] == "interrupted"
    assert seg.fine_tuning_["steps"] == 3
    assert seg.fine_tuning_["validation"]["after"]["f1"] == 0.9
    assert same_state(saved[1], state(seg.model_))  # the state scored 0.9
    assert not same_state(saved[0], state(seg.model_))


def test_starting_weights_are_kept_when_fine_tuning_does_not_help(model_file, data, monkeypatch):
    X, y = data
    saved = []
    scripted_scores(monkeypatch, [0.8, 0.3, 0.3, 0.3], saved)
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    start = state(seg.model_)
    seg.fine_tune(X, y, minutes=None, max_steps=3, recipe={**TINY, "validation_rounds": 3})
    assert seg.fine_tuning_["kept_starting_weights"]
    assert "did not beat the starting model" in seg.fine_tuning_["message"]
    assert "0.800" in seg.fine_tuning_["message"]
    assert same_state(start, state(seg.model_))
    assert seg.model_info_["fine_tuned"]["kept_starting_weights"]


def test_early_stopping_after_patience_rounds_without_progress(model_file, data, monkeypatch):
    X, y = data
    scripted_scores(monkeypatch, [0.5, 0.6, 0.4, 0.4, 0.4, 0.4], [])
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=20,
                  recipe={**TINY, "validation_rounds": 20, "patience": 2})
    assert seg.fine_tuning_["stopped"] == "early stopping"
    assert seg.fine_tuning_["steps"] == 3


def test_one_image_of_eight_is_held_out_and_strips_below_eight(data):
    X, y = data
    images = [x.astype(np.float32) for x in X] * 2
    rng = np.random.default_rng(0)
    train, targets, held = _finetune.split_validation(images, list(y) * 2, list("abcdefgh"), rng,
                                                      True)
    assert held.method == "image" and len(train) == 7 and len(held.images) == 1
    train, targets, held = _finetune.split_validation(images[:5], list(y) + list(y[:1]),
                                                      list("abcde"), rng, True)
    assert held.method.startswith("strip") and len(train) == 5 and len(held.images) == 5
    train, targets, held = _finetune.split_validation(images[:2], list(y[:2]), ["a", "b"], rng,
                                                      True)
    assert held.method.startswith("strip") and len(train) == 2 and held.names == ["a", "b"]
    for target, truth in zip(targets, held.truths):
        assert (target[48:] == -1).all() and (target[:48] >= 0).all()  # last quarter hidden
        assert truth.shape == (16, 64)


def test_held_out_setting_chooses_image_or_strips(data):
    X, y = data
    images = [x.astype(np.float32) for x in X]
    rng = np.random.default_rng(0)
    train, targets, held = _finetune.split_validation(images, list(y), list("abcd"), rng, True,
                                                      held_out="strip")
    assert held.method.startswith("strip") and len(train) == 4 and len(held.images) == 4
    train, targets, held = _finetune.split_validation(images[:2], list(y[:2]), ["a", "b"], rng,
                                                      True, held_out="image")
    assert held.method == "image" and len(train) == 1 and len(held.images) == 1
    with pytest.raises(ValueError, match="at least 2 images"):
        _finetune.split_validation(images[:1], list(y[:1]), ["a"], rng, True, held_out="image")
    with pytest.raises(ValueError, match="held_out must be one of"):
        _finetune.check_recipe({"held_out": "half"})


def test_score_particles_leaves_out_predictions_on_unlabelled_pixels():
    truth = np.zeros((20, 20), int)
    truth[2:6, 2:6] = 1
    truth[:, 10:] = -1
    labels = np.zeros((20, 20), int)
    labels[2:6, 2:6] = 1
    labels[12:16, 12:16] = 2  # a particle nobody labelled
    assert _finetune.score_particles(truth, labels) == (1.0, 0.0)


# --------------------------------------------------------------------------
# Unlabelled pixels (-1)


def test_unlabelled_pixels_become_the_ignored_class_through_augmentation_and_borders():
    assert UNLABELLED == T.IGNORE
    labels = np.zeros((6, 10), int)
    labels[1:5, 1:5] = 1
    labels[:, 7:] = -1
    classes = annotate_borders(labels)
    assert (classes[:, 7:] == UNLABELLED).all()
    assert set(np.unique(classes[:, :7])) == {0, 1, 2}
    from particleseg.augmentation import default_augmenter

    image = np.random.default_rng(0).random((80, 80)).astype(np.float32)
    target = np.zeros((80, 80), int)
    target[10:30, 10:30] = 1
    target[40:] = -1
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(5):
        _, crop = T.make_sample(image, target, crop_size=48, augmenter=default_augmenter(),
                                border_width=1, rng=rng)
        seen |= set(np.unique(crop).tolist())
    assert UNLABELLED in seen and seen <= {0, 1, 2, UNLABELLED}


def test_the_loss_skips_unlabelled_pixels():
    from particleseg._models import build_model, forward_logits

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_large").eval()  # deterministic forward (no dropout)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 64, 64)).astype(np.float32)
    classes = rng.integers(0, 3, (2, 64, 64))
    classes[:, :, 40:] = T.IGNORE
    weight = torch.tensor([0.5, 1.0, 4.0])
    with torch.no_grad():
        logits = forward_logits(model, torch.from_numpy(image[:, None]))
    t = torch.from_numpy(classes)
    keep = t != T.IGNORE
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], t[keep], weight=weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = _finetune._train_step(model, optimizer, list(zip(image, classes)), weight, "cpu")
    assert loss == pytest.approx(float(expected), rel=1e-5)
    everything_ignored = [(im, np.full((64, 64), T.IGNORE)) for im in image]
    assert _finetune._train_step(model, optimizer, everything_ignored, weight, "cpu") is None


def test_fit_and_fine_tune_accept_sparse_labels(data):
    X, y = data
    region = np.zeros((64, 64), bool)
    region[:32] = True
    sparse = [mark_unlabelled(labels, region) for labels in y]
    seg = ParticleSegmenter(backbone="mobilenet_v3_large", max_epochs=1, crop_size=64,
                            batch_size=2, validation_fraction=0.25, random_state=0,
                            n_threads=1).fit(X, sparse)
    assert np.isfinite(seg.history_[-1]["valid_loss"])
    seg.fine_tune(X, sparse, minutes=None, max_steps=1, recipe=TINY, validation=False)
    assert seg.fine_tuning_["steps"] == 1


# --------------------------------------------------------------------------
# Refusals


def test_refuses_images_without_labels(model_file, data):
    X, y = data
    seg = ParticleSegmenter.load(model_file, device="cpu")
    with pytest.raises(ValueError, match="fine-tuning needs labels"):
        seg.fine_tune(X, None, max_steps=1)
    with pytest.raises(ValueError, match="4 images and 3 label maps"):
        seg.fine_tune(X, y[:3], max_steps=1)
    with pytest.raises(ValueError, match=r"y\[1\] \(b\) is missing"):
        seg.fine_tune(X[:2], [y[0], None], max_steps=1, names=["a", "b"])


def test_refuses_labels_without_a_particle(model_file, data):
    X, y = data
    seg = ParticleSegmenter.load(model_file, device="cpu")
    empty = [y[0], np.zeros_like(y[1])]
    with pytest.raises(ValueError, match=r"y\[1\] \(image 1\) labels no particle"):
        seg.fine_tune(X[:2], empty, max_steps=1)
    unlabelled = [y[0], np.full_like(y[1], -1)]
    with pytest.raises(ValueError, match="labels no particle"):
        seg.fine_tune(X[:2], unlabelled, max_steps=1)
    with pytest.raises(ValueError, match=r"negative labels \(minimum -2\).*-1 for unlabelled"):
        seg.fine_tune(X[:1], [np.full_like(y[0], -2)], max_steps=1)


def test_refuses_a_starting_model_of_another_format_version(model_file, data):
    X, y = data
    seg = ParticleSegmenter.load(model_file, device="cpu")
    seg.model_file_ = {**seg.model_file_, "format_version": 0}
    with pytest.raises(ValueError, match="model format 0; fine-tuning needs format 1"):
        seg.fine_tune(X, y, max_steps=1)


def test_refuses_an_unfitted_model_and_bad_settings(model_file, data):
    X, y = data
    with pytest.raises(NotFittedError):
        ParticleSegmenter().fine_tune(X, y)
    seg = ParticleSegmenter.load(model_file, device="cpu")
    with pytest.raises(ValueError, match="minutes must be a positive number"):
        seg.fine_tune(X, y, minutes=0)
    with pytest.raises(ValueError, match="both are None"):
        seg.fine_tune(X, y, minutes=None)
    with pytest.raises(ValueError, match="unknown fine-tuning setting"):
        seg.fine_tune(X, y, recipe={"epochs": 3})
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        seg.fine_tune(X, y, recipe={"batch_size": 1})
    with pytest.raises(ValueError, match="keep_confidence must be True or False"):
        seg.fine_tune(X, y, recipe={"keep_confidence": "yes"})


def test_learning_rate_warms_up_then_decays():
    lr = [_finetune.learning_rate(1.0, f, 0.1) for f in np.linspace(0, 1, 101)]
    peak = int(np.argmax(lr))
    assert 9 <= peak <= 11 and lr[0] < 0.05 and lr[-1] < 1e-6
    assert all(a <= b + 1e-12 for a, b in zip(lr[:peak], lr[1 : peak + 1]))
    assert all(a >= b - 1e-12 for a, b in zip(lr[peak:], lr[peak + 1 :]))


# --------------------------------------------------------------------------
# Automatic scale and particle confidence


@pytest.fixture(scope="module")
def auto_model_file(tmp_path_factory, data):
    """A tiny model that predicts at inference_scale="auto", with a confidence calibration."""
    X, y = data
    path = tmp_path_factory.mktemp("auto") / "auto.safetensors"
    seg = fit_tiny(X, y, inference_scale="auto")
    seg.particle_diameter_ = 9.5
    seg.confidence_calibration_ = {"raw": [0.0, 0.5, 1.0], "calibrated": [0.0, 0.6, 0.9]}
    seg.min_confidence_ = 0.3
    seg.save(path)
    return path


@pytest.mark.parametrize("keep", [True, False])
def test_fine_tuned_auto_model_keeps_its_scale_and_its_calibration_unless_asked(
        auto_model_file, data, tmp_path, keep):
    X, y = data
    seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "keep_confidence": keep},
                  validation=False)
    tuned = ParticleSegmenter.load(seg.save(tmp_path / "tuned.safetensors"), device="cpu")
    assert tuned.inference_scale == "auto" and tuned.particle_diameter_ == 9.5
    record = tuned.model_info_["fine_tuned"]
    assert not record["kept_starting_weights"]
    if keep:
        assert tuned.min_confidence_ == 0.3
        assert tuned.confidence_calibration_ == {"raw": [0.0, 0.5, 1.0],
                                                 "calibrated": [0.0, 0.6, 0.9]}
        assert record["confidence_calibration"] == "kept"
        assert "confidence" not in seg.fine_tuning_["message"]
    else:
        assert "confidence calibration and threshold" in seg.fine_tuning_["message"]
        assert tuned.confidence_calibration_ is None and tuned.min_confidence_ is None
        assert record["confidence_calibration"].startswith("dropped")
    # Each image is trained at the scale "auto" chooses for its labelled particles.
    from particleseg._autoscale import choose_scale, typical_diameter

    assert record["recipe"]["training_scales"] == [
        round(choose_scale(typical_diameter(t), 9.5)[0], 4) for t in y]
    # The fine-tuned model predicts like any auto model: one scale per image.
    tuned.predict(X[0])
    assert len(tuned.last_scales_) == 1


@pytest.mark.parametrize("keep", [True, False])
def test_held_out_checks_use_the_rule_the_weights_will_be_used_with(auto_model_file, data,
                                                                   monkeypatch, keep):
    X, y = data
    calls = []

    def fake(seg, model, validation, keep_confidence=True):
        calls.append(keep_confidence)
        return {"f1": 0.3 if len(calls) == 1 else 0.8, "count_error": 0.0}

    monkeypatch.setattr(_finetune, "validation_score", fake)
    seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2,
                  recipe={**TINY, "validation_rounds": 2, "keep_confidence": keep,
                          "tune_confidence": False})
    assert not seg.fine_tuning_["kept_starting_weights"]
    assert calls[0] is True  # the start is scored with its own threshold
    assert len(calls) > 1 and all(c is keep for c in calls[1:])
    assert (seg.min_confidence_ == 0.3) is keep


def test_kept_starting_weights_keep_their_calibration(auto_model_file, data, monkeypatch):
    X, y = data
    calls = []

    def fake(seg, model, validation, keep_confidence=True):
        calls.append(keep_confidence)  # the start scores 0.8, fine-tuned states 0.3
        return {"f1": 0.8 if len(calls) == 1 else 0.3, "count_error": 0.0}

    monkeypatch.setattr(_finetune, "validation_score", fake)
    seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "validation_rounds": 2})
    assert seg.fine_tuning_["kept_starting_weights"]
    assert len(calls) > 1
    assert seg.min_confidence_ == 0.3 and seg.confidence_calibration_ is not None
    assert seg.model_info_["fine_tuned"]["confidence_calibration"] == "kept"


class _StandIn:
    """A segmenter whose particle probability is the image itself."""

    normalization_ = confidence_calibration_ = None
    min_confidence_ = 0.5

    def __init__(self):
        import torch

        self.model_ = torch.nn.Identity()

    def predict_proba(self, image):
        return np.stack([1 - image, image, np.zeros_like(image)])

    def _decide(self, proba):
        return (proba[1] > 0.05).astype(np.uint8)


def test_tune_confidence_picks_the_threshold_that_scores_best_on_held_out_data():
    # Four squares of particle probability 0.9, 0.6, 0.33 (three true
    # particles) and 0.12 (a false one): from 0.15 to 0.30 the false one is
    # dropped and the three true ones kept (F1 1); the lowest of those wins.
    image = np.zeros((40, 40), dtype=np.float32)
    truth = np.zeros((40, 40), dtype=np.int32)
    for k, (top, p) in enumerate([(2, 0.9), (12, 0.6), (22, 0.33), (32, 0.12)], start=1):
        image[top:top + 6, 5:11] = p
        if p > 0.3:
            truth[top:top + 6, 5:11] = k
    held = _finetune._Validation("image", ["a"], [image], [truth])
    threshold, score = _finetune.tune_confidence(_StandIn(), held)
    assert threshold == 0.15
    assert score == {"f1": 1.0, "count_error": 0.0}
    # Only the true particle of 0.9 left: the best is no longer above 0.6.
    truth[truth != 1] = 0
    threshold, score = _finetune.tune_confidence(_StandIn(), held)
    assert threshold == 0.65 and score == {"f1": 1.0, "count_error": 0.0}


def test_tune_confidence_prefers_the_right_count_when_f1_hardly_differs():
    # 200 true particles: 198 found with probability 0.9; 2 found with 0.2
    # but shifted, so they match nothing (IoU < 0.5). Keeping the 2 gives the
    # right count at F1 0.990; dropping them, F1 0.995 and 1 % too few. The
    # F1 differs by less than F1_TOLERANCE: the right count wins.
    image = np.zeros((100, 200), dtype=np.float32)
    truth = np.zeros((100, 200), dtype=np.int32)
    for k in range(200):
        top, left = 10 * (k // 20) + 2, 10 * (k % 20) + 2
        shift = 3 if k in (0, 1) else 0
        image[top:top + 4, left:left + 4] = 0.2 if shift else 0.9
        truth[top:top + 4, left + shift:left + shift + 4] = k + 1
    held = _finetune._Validation("image", ["a"], [image], [truth])
    threshold, score = _finetune.tune_confidence(_StandIn(), held)
    assert threshold == 0.0
    assert score["count_error"] == 0.0 and score["f1"] == pytest.approx(0.99)
    # With more such particles, F1 drops by more than the tolerance: dropped.
    for k in range(2, 6):
        top, left = 10 * (k // 20) + 2, 10 * (k % 20) + 2
        image[top:top + 4, left:left + 4] = 0.2
        truth[top:top + 4, left:left + 4] = 0
        truth[top:top + 4, left + 3:left + 7] = k + 1
    threshold, score = _finetune.tune_confidence(_StandIn(), held)
    assert threshold == 0.25 and score["f1"] > 0.98


def test_fine_tuning_with_tune_confidence_records_the_new_threshold(auto_model_file, data,
                                                                  monkeypatch):
    X, y = data
    calls = []

    def fake(seg, model, validation, keep_confidence=True):
        calls.append(1)  # the start scores 0.3, fine-tuned states 0.8
        return {"f1": 0.3 if len(calls) == 1 else 0.8, "count_error": 0.0}

    monkeypatch.setattr(_finetune, "validation_score", fake)
    monkeypatch.setattr(_finetune, "tune_confidence",
                        lambda seg, held: (0.15, {"f1": 0.9, "count_error": 0.05}))
    # The held-out strips of these tiny images hold a few particles: too few.
    seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "validation_rounds": 2})
    assert seg.min_confidence_ == 0.3 and "min_confidence" not in seg.model_info_["fine_tuned"]
    assert ("min_confidence kept at 0.3: the held-out strip (25% of every image) holds"
            in seg.fine_tuning_["message"])
    monkeypatch.setattr(_finetune, "MIN_TUNING_PARTICLES", 1)
    calls.clear()
    seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "validation_rounds": 2})
    assert seg.min_confidence_ == 0.15  # on by default
    record = seg.model_info_["fine_tuned"]["min_confidence"]
    assert record["starting"] == 0.3 and record["chosen"] == 0.15
    assert "min_confidence chosen on the held-out strip (25% of every image): 0.3 -> 0.15" in \
        seg.fine_tuning_["message"]
    # Turned off, or with the confidence rule dropped, the threshold is not tuned.
    for change in ({"tune_confidence": False}, {"keep_confidence": False}):
        calls.clear()
        seg = ParticleSegmenter.load(auto_model_file, device="cpu").set_params(random_state=0)
        seg.fine_tune(X, y, minutes=None, max_steps=2,
                      recipe={**TINY, "validation_rounds": 2, **change})
        assert "min_confidence" not in seg.model_info_["fine_tuned"]
        assert seg.min_confidence_ == (0.3 if "tune_confidence" in change else None)


def test_validation_score_counts_labelled_and_found_particles(monkeypatch):
    # Three particles found; the first is labelled, the second lies on
    # unlabelled (-1) pixels, the third on background (0).
    found = np.zeros((40, 40), dtype=np.int32)
    for k, top in enumerate((2, 14, 26), start=1):
        found[top:top + 6, 5:11] = k
    truth = np.zeros((40, 40), dtype=np.int32)
    truth[2:8, 5:11] = 1
    truth[12:22, :] = -1
    monkeypatch.setattr(_finetune, "_particles", lambda *args: [found])
    held = _finetune._Validation("image", ["a"], [np.zeros((40, 40), np.float32)], [truth])
    score = _finetune.validation_score(None, None, held)
    assert score["n_labelled"] == 1
    assert score["n_found"] == 2  # the one on unlabelled pixels is left out
    assert score["f1"] == pytest.approx(2 / 3)


def test_kept_starting_weights_point_at_partly_labelled_held_out_data(model_file, data,
                                                                     monkeypatch):
    # The starting model finds 2478 particles where 195 are labelled (one
    # patch of a densely packed image outlined): no state can score better.
    X, y = data
    calls = []

    def fake(seg, model, validation, keep_confidence=True):
        calls.append(1)
        return {"f1": 0.15 if len(calls) == 1 else 0.1, "count_error": 11.7,
                "n_labelled": 195, "n_found": 2478 if len(calls) == 1 else 2000}

    monkeypatch.setattr(_finetune, "validation_score", fake)
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "validation_rounds": 2})
    message = seg.fine_tuning_["message"]
    assert seg.fine_tuning_["kept_starting_weights"]
    assert "finds 2478 particles where 195 are labelled" in message
    assert "unlabelled (-1)" in message
    # Found and labelled counts that agree give no such hint.
    calls.clear()
    monkeypatch.setattr(_finetune, "validation_score", lambda *a, **k: (
        calls.append(1), {"f1": 0.8 if len(calls) == 1 else 0.3, "count_error": 0.1,
                          "n_labelled": 195, "n_found": 210})[1])
    seg = ParticleSegmenter.load(model_file, device="cpu").set_params(random_state=0)
    seg.fine_tune(X, y, minutes=None, max_steps=2, recipe={**TINY, "validation_rounds": 2})
    assert seg.fine_tuning_["kept_starting_weights"]
    assert "labelled:" not in seg.fine_tuning_["message"]
