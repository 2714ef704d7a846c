"""Shared helpers of the EMPS scripts: where the data is and the fixed split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

#: The EMPS training images of this workplace, relative to the repository.
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emps-train"

#: Seed and size of the validation split used by every EMPS script.
SPLIT_SEED = 0
VALID_FRACTION = 0.2


def split_indices(n_images, seed=SPLIT_SEED, fraction=VALID_FRACTION):
    """Indices of the training and validation images (fixed seed)."""
    train, valid = train_test_split(np.arange(n_images), test_size=fraction, random_state=seed)
    return np.sort(train), np.sort(valid)
