"""Tests of model files (particleseg._persistence) and of pickling a fitted segmenter.

A model file is one safetensors file: weights plus a JSON header with the
format version and a checksum. Files that were changed, cut short, written by
something else or by a newer particleseg are refused with a ModelFileError.
"""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from fast_fit import FAST
from safetensors.torch import load_file, save_file

from particleseg import BorderAnnotator, ParticleSegmenter, __version__
from particleseg._persistence import FORMAT_VERSION, ModelFileError, read_model_file

#: A fast fit that also tiles (the test images are larger than 256 pixels).
TILED = dict(FAST, tile_size=256, tile_overlap=32)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return ParticleSegmenter(**TILED).fit(X, y)


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory):
    return fitted.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _rewrite(path, out, change):
    """Copy a model file, letting ``change(config)`` edit its JSON record."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["particleseg"])
    change(config)
    metadata["particleseg"] = json.dumps(config)
    save_file(load_file(str(path)), str(out), metadata=metadata)
    return out


def _header_length(path):
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


# ---------------------------------------------------------------------------
# Round trip


def test_save_load_gives_identical_probabilities(data, fitted, model_file):
    X, _ = data
    loaded = ParticleSegmenter.load(model_file, device="cpu")
    for a, b in zip(fitted.predict_proba(X), loaded.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_load_restores_the_fitted_state(fitted, model_file):
    loaded = ParticleSegmenter.load(model_file, device="cpu")
    for name in ("backbone", "max_epochs", "batch_size", "crop_size", "tile_size",
                 "tile_overlap", "mean", "std", "intensity_range", "random_state"):
        assert loaded.get_params()[name] == fitted.get_params()[name], name
    assert loaded.history_ == fitted.history_
    assert loaded.n_iter_ == fitted.n_iter_ == 1
    np.testing.assert_array_equal(loaded.class_weight_, fitted.class_weight_)
    assert loaded.normalization_ == fitted.normalization_
    np.testing.assert_array_equal(loaded.classes_, [0, 1, 2])
    assert loaded.border_width_ == 1
    assert isinstance(loaded.annotator, BorderAnnotator) and loaded.annotator.width == 1
    assert loaded.device_ == torch.device("cpu")
    assert not loaded.model_.training
    for name, tensor in fitted.model_.state_dict().items():
        assert torch.equal(loaded.model_.state_dict()[name], tensor), name


def test_save_writes_one_safetensors_file_with_a_json_record(fitted, model_file):
    assert model_file.name == "tiny.safetensors"
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["tiny.safetensors"]
    with safe_open(str(model_file), framework="pt") as f:
        metadata = f.metadata()
        names = set(f.keys())
    assert names == set(fitted.model_.state_dict())
    config = json.loads(metadata["particleseg"])
    assert config["format_version"] == FORMAT_VERSION
    assert config["particleseg_version"] == __version__
    assert config["torch_version"] == torch.__version__
    assert config["params"]["backbone"] == "mobilenet_v3_large"
    assert config["half_precision"] is False
    assert len(metadata["sha256"]) == 64


def test_saved_model_continues_training(data, model_file):
    X, y = data
    loaded = ParticleSegmenter.load(model_file, device="cpu").set_params(augment=None)
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 2
    assert [r["epoch"] for r in loaded.history_] == [1, 2]


def test_weights_parameter_starts_from_a_model_file(data, fitted, model_file):
    X, y = data
    started = ParticleSegmenter(**dict(FAST, weights=str(model_file), max_epochs=0)).fit(X, y)
    for a, b in zip(fitted.predict_proba(X), started.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"holds a mobilenet_v3_large model but "
                                         r"backbone='resnet50'; set backbone to match"):
        ParticleSegmenter(**dict(FAST, weights=str(model_file), backbone="resnet50")).fit(X, y)


# ---------------------------------------------------------------------------
# Half precision


def test_half_precision_halves_the_file_and_keeps_predictions(data, fitted, model_file, tmp_path):
    """Measured: 22.1 MB instead of 44.2 MB; probabilities differ by < 1e-4.

    A model trained for one step has near-ties, so a few pixels (0.4 %) may
    change class.
    """
    X, _ = data
    half = fitted.save(tmp_path / "half.safetensors", half_precision=True)
    ratio = half.stat().st_size / model_file.stat().st_size
    assert 0.45 < ratio < 0.55
    with safe_open(str(half), framework="pt") as f:
        assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64) for k in f.keys())
    config, state = read_model_file(half)
    assert config["half_precision"] is True
    assert all(t.dtype != torch.float16 for t in state.values())  # back to float32
    loaded = ParticleSegmenter.load(half, device="cpu")
    for a, b in zip(fitted.predict_proba(X), loaded.predict_proba(X)):
        np.testing.assert_allclose(a, b, atol=2e-3)
        assert np.mean(a.argmax(0) == b.argmax(0)) >= 0.99


# ---------------------------------------------------------------------------
# Refused files


def test_tampered_file_is_refused(model_file, tmp_path):
    raw = bytearray(model_file.read_bytes())
    data_start = 8 + _header_length(model_file)
    position = data_start + (len(raw) - data_start) // 2
    raw[position] ^= 0x01  # one bit of one weight
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match=r"tampered\.safetensors has been modified since it was "
                                             r"saved: its weights do not match their checksum"):
        ParticleSegmenter.load(tampered)


def test_truncated_file_is_refused(model_file, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.safetensors is not a readable particleseg "
                                             r"model file \(corrupt or truncated\?\)"):
        ParticleSegmenter.load(truncated)


def test_file_that_is_not_safetensors_is_refused(tmp_path):
    junk = tmp_path / "notes.safetensors"
    junk.write_text("these are not weights")
    with pytest.raises(ModelFileError, match=r"is not a readable particleseg model file"):
        ParticleSegmenter.load(junk)


def test_other_safetensors_file_is_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match=r"other\.safetensors is a safetensors file but not a "
                                             r"particleseg model \(no 'particleseg' header\)"):
        ParticleSegmenter.load(other)


def test_newer_format_version_is_refused(model_file, tmp_path):
    def newer(config):
        config["format_version"] = FORMAT_VERSION + 1
        config["particleseg_version"] = "9.0"

    newer_file = _rewrite(model_file, tmp_path / "newer.safetensors", newer)
    with pytest.raises(ModelFileError, match=rf"written by particleseg 9\.0 in model format "
                                             rf"{FORMAT_VERSION + 1}; this particleseg reads formats "
                                             rf"up to {FORMAT_VERSION}\. Upgrade particleseg"):
        ParticleSegmenter.load(newer_file)


def test_damaged_header_is_refused(model_file, tmp_path):
    with safe_open(str(model_file), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata["particleseg"] = "{not json"
    damaged = tmp_path / "damaged.safetensors"
    save_file(load_file(str(model_file)), str(damaged), metadata=metadata)
    with pytest.raises(ModelFileError, match=r"damaged\.safetensors has a damaged header"):
        ParticleSegmenter.load(damaged)


def test_weights_of_another_network_are_refused(model_file, tmp_path):
    def claim_resnet(config):
        config["params"]["backbone"] = "resnet50"

    wrong = _rewrite(model_file, tmp_path / "wrong.safetensors", claim_resnet)
    with pytest.raises(ModelFileError, match=r"wrong\.safetensors does not match a resnet50 model"):
        ParticleSegmenter.load(wrong)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"No model file at nowhere\.safetensors"):
        ParticleSegmenter.load("nowhere.safetensors")


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


# ---------------------------------------------------------------------------
# Pickle


def test_pickle_round_trip_gives_identical_predictions(data, fitted):
    X, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.get_params() == fitted.get_params()
    assert restored.history_ == fitted.history_
    for a, b in zip(fitted.predict_proba(X), restored.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_pickle_unfitted():
    seg = ParticleSegmenter(backbone="mobilenet_v3_large", crop_size=128)
    restored = pickle.loads(pickle.dumps(seg))
    assert restored.get_params() == seg.get_params()
    assert not hasattr(restored, "model_")
