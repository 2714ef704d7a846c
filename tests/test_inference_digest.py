"""The bundled model's predictions do not change when the code is reorganised.

``predict_proba`` of the bundled "emps" model, in float32 on one CPU thread,
is hashed (SHA-256 of the float32 bytes) for a few inputs: one image, a list
of two images of different sizes, a tiled prediction and test-time flips.
The stored digests in ``tests/data/predict_proba_digests.json`` are keyed by
the SHA-256 of the bundled weights (from the model file's header), so a new
bundled model needs its own entry; without one this test fails and says how
to add it.

To (re)compute the entry of the bundled model, run from the repository root::

    python tests/test_inference_digest.py

and paste its output into the JSON file, on a commit whose predictions are
known to be right. Float32 results can differ between torch versions and CPU
instruction sets; the entry records the torch version it was computed with,
and ``other_machines`` holds the digests of the same code and weights on other
processors (a run on any of them must match its own).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

DIGESTS = Path(__file__).parent / "data" / "predict_proba_digests.json"
MODEL = "emps"


def _weights_sha256(name=MODEL):
    from safetensors import safe_open

    import particleseg

    (entry,) = [m for m in particleseg.pretrained_models() if m["name"] == name]
    with safe_open(entry["path"], framework="pt") as f:
        return f.metadata()["sha256"]


def _sha(array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha256(array.tobytes()).hexdigest()


def compute_digests():
    """Digests of ``predict_proba`` of the bundled model on fixed inputs."""
    import particleseg
    from particleseg.datasets import load_sample

    image, _ = load_sample()
    seg = particleseg.pretrained(MODEL, device="cpu")
    seg.set_params(inference_precision="float32", n_threads=1)
    out = {"single": _sha(seg.predict_proba(image))}
    pair = seg.predict_proba([image, image[:300, 100:500]])
    out["list_of_two"] = [_sha(p) for p in pair]
    seg.set_params(tile_size=256, tile_overlap=32)
    out["tiled_256_32"] = _sha(seg.predict_proba(image))
    seg.set_params(tile_size=1024, tile_overlap=128, test_time_flips=True)
    out["flips_crop_128"] = _sha(seg.predict_proba(image[:128, :160]))
    seg.set_params(test_time_flips=False)
    out["predict_classes"] = hashlib.sha256(seg.predict(image).tobytes()).hexdigest()
    return out


def test_predict_proba_matches_the_stored_digest():
    import particleseg

    if MODEL not in [m["name"] for m in particleseg.pretrained_models()]:
        pytest.fail(f"the bundled model {MODEL!r} is missing from particleseg/models.")
    key = _weights_sha256()
    stored = json.loads(DIGESTS.read_text())
    if key not in stored:
        pytest.fail(
            f"{DIGESTS.name} has no entry for the bundled {MODEL!r} model (weights sha256 {key}). "
            "A new bundled model needs its own entry: run `python tests/test_inference_digest.py` "
            f"on a commit whose predictions are right and add its output to {DIGESTS}."
        )
    entry = stored[key]
    known = [entry["digests"]] + [m["digests"] for m in entry.get("other_machines", [])]
    assert compute_digests() in known


if __name__ == "__main__":
    import torch

    entry = {
        _weights_sha256(): {
            "model": MODEL,
            "torch_version": torch.__version__,
            "cpu": f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}",
            "digests": compute_digests(),
        }
    }
    print(json.dumps(entry, indent=2))
