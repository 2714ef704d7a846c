"""Tests of particleseg._pretrained: the models bundled inside the package.

No model file is bundled yet, so the loader is tested on a tiny model saved
into a temporary folder that stands in for ``particleseg/models``.
"""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from fast_fit import FAST

import particleseg._pretrained as pretrained_module
from particleseg import ParticleSegmenter, pretrained, pretrained_models
from particleseg.datasets import make_particles


@pytest.fixture(scope="module")
def data():
    return make_particles(n_images=2, shape=(64, 64), random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    seg = ParticleSegmenter(**FAST).fit(X, y)
    seg.model_info_ = {"training_data": "make_particles(n_images=2)", "validation": {"iou": 0.5}}
    return seg


@pytest.fixture
def bundled(fitted, tmp_path, monkeypatch):
    """A models folder holding one model, "tiny", seen by particleseg.pretrained."""
    path = fitted.save(tmp_path / "tiny.safetensors")
    monkeypatch.setattr(pretrained_module, "_model_files", lambda: {"tiny": path})
    return path


def _bundled_names():
    folder = resources.files("particleseg.models")
    return sorted(Path(e.name).stem for e in folder.iterdir() if e.name.endswith(".safetensors"))


def test_pretrained_is_only_the_function():
    import particleseg

    assert particleseg.pretrained is pretrained and callable(particleseg.pretrained)
    assert pretrained_module.pretrained is pretrained
    # No module of that name hides behind the function.
    with pytest.raises(ModuleNotFoundError, match="particleseg.pretrained"):
        importlib.import_module("particleseg.pretrained")


def test_pretrained_models_lists_the_bundled_files():
    models = pretrained_models()
    assert isinstance(models, list)
    assert [m["name"] for m in models] == _bundled_names()


def test_unknown_name_lists_the_available_models():
    available = ", ".join(_bundled_names()) or "none"
    with pytest.raises(ValueError, match=rf"No pretrained model named 'nope'; available: {available}\. "
                                         r"See particleseg\.pretrained_models\(\)\."):
        pretrained("nope")


def test_unknown_name_with_models_present(bundled, monkeypatch):
    monkeypatch.setattr(pretrained_module, "_model_files", lambda: {"beta": bundled, "alpha": bundled})
    with pytest.raises(ValueError, match=r"No pretrained model named 'emps'; available: alpha, beta\."):
        pretrained()


def test_pretrained_models_describes_a_model(bundled):
    (entry,) = pretrained_models()
    assert entry == {
        "name": "tiny",
        "backbone": "mobilenet_v3_large",
        "border_width": 1,
        "training_data": "make_particles(n_images=2)",
        "validation": {"iou": 0.5},
        "epochs": 1,
        "file_size_mb": round(bundled.stat().st_size / 1e6, 1),
        "path": str(bundled),
    }
    assert 40 < entry["file_size_mb"] < 50  # DeepLabV3-MobileNetV3 in float32


def test_pretrained_loads_a_fitted_estimator(data, fitted, bundled):
    X, _ = data
    seg = pretrained("tiny", device="cpu")
    assert isinstance(seg, ParticleSegmenter)
    assert seg.n_iter_ == 1
    assert seg.model_info_ == fitted.model_info_
    for a, b in zip(fitted.predict_proba(X), seg.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
