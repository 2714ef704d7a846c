"""Shared test set-up: the hypothesis profile and the EMPS data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests run with the "ci" profile: no per-example deadline (the shared
# CI machines are slow and noisy), few examples on small maps, so the whole
# hypothesis part takes seconds. Choose another with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The EMPS training split, next to the repository (absent in a fresh checkout).
EMPS_DIR = (Path(__file__).parents[1] / ".." / "shared" / "data" / "emps-train").resolve()


@pytest.fixture(scope="module")
def data():
    """Four 64x64 synthetic images and their instance maps (a test module may redefine it)."""
    from particleseg.datasets import make_particles

    return make_particles(n_images=4, shape=(64, 64), random_state=0)


@pytest.fixture(scope="session")
def emps_dir():
    """Path of the EMPS training data; skips the test when it is absent."""
    if not (EMPS_DIR / "images").is_dir() or not (EMPS_DIR / "segmaps").is_dir():
        pytest.skip(f"EMPS data not found at {EMPS_DIR}")
    return EMPS_DIR


@pytest.fixture(scope="session")
def emps(emps_dir):
    """The EMPS training data (images, instance maps, names), read once."""
    from particleseg.datasets import load_emps

    return load_emps(emps_dir)

# No test may wait on the network: albumentations asks for updates on import
# unless told not to, and matplotlib must not look for a display.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
