"""Tiled prediction agrees with whole-image prediction of the same model.

Uses the bundled EMPS model (a trained network: a barely trained one reacts
to any change of context and says nothing about tiling) on a synthetic image
of 3x3 tiles. DeepLabV3 sees context wider than a tile (its image-pooling
branch averages over the whole input), so tiles cannot reproduce the whole
image exactly; the blending must keep the disagreement small and must not
leave seams.
"""

from __future__ import annotations

import numpy as np
import pytest

import particleseg
from particleseg.datasets import make_particles

TILE, OVERLAP = 256, 64  # tiles start at 0, 192, 384: 3x3 tiles on 640x640


def _bundled():
    if "emps" not in [m["name"] for m in particleseg.pretrained_models()]:
        pytest.skip("needs the bundled 'emps' model")
    return particleseg.pretrained("emps", device="cpu")


@pytest.fixture(scope="module")
def image():
    X, _ = make_particles(n_images=1, shape=(640, 640), n_particles=(60, 60), radius=(8, 18),
                          overlap=0.2, random_state=3)
    return X[0]


def test_tiles_of_a_three_by_three_grid_agree_with_the_whole_image(image):
    seg = _bundled().set_params(inference_precision="float32", inference_scale=1.0)
    whole = seg.set_params(tile_size=None).predict_proba(image)
    tiled = seg.set_params(tile_size=TILE, tile_overlap=OVERLAP).predict_proba(image)
    assert tiled.shape == whole.shape == (3, 640, 640)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)

    differ = whole.argmax(0) != tiled.argmax(0)
    # Stated tolerance: at most 2 % of the pixels change class.
    assert differ.mean() <= 0.02, f"{differ.mean():.2%} of pixels change class"
    # No seams: pixels next to the tile edges (within 16 px of a tile's start or
    # end) disagree no more often than three times the rest of the image.
    near = np.zeros(image.shape, dtype=bool)
    for start in (0, 192, 384):
        for edge in (start, start + TILE):
            lo, hi = max(edge - 16, 0), min(edge + 16, 640)
            near[lo:hi, :] = True
            near[:, lo:hi] = True
    near[:16], near[-16:], near[:, :16], near[:, -16:] = False, False, False, False
    rate_near = differ[near].mean()
    rate_far = differ[~near].mean()
    assert rate_near <= 3 * rate_far + 0.005, (rate_near, rate_far)


def test_an_image_that_fits_in_one_tile_is_unchanged(image):
    seg = _bundled().set_params(inference_precision="float32")
    small = image[:200, :250]
    whole = seg.set_params(tile_size=None).predict_proba(small)
    tiled = seg.set_params(tile_size=TILE, tile_overlap=OVERLAP).predict_proba(small)
    np.testing.assert_array_equal(whole, tiled)


@pytest.mark.parametrize("length", [1025, 1100, 1920, 1921, 2048, 3000, 4096, 5000])
@pytest.mark.parametrize("tile_size, overlap, multiple", [(1024, 128, 16), (256, 32, 8),
                                                           (512, 0, 1)])
def test_tile_starts_cover_evenly_with_the_fewest_tiles(length, tile_size, overlap, multiple):
    from particleseg._inference import tile_starts

    side, starts = tile_starts(length, tile_size, overlap, multiple)
    assert side <= tile_size
    assert starts[0] == 0 and starts[-1] + side == length
    gaps = np.diff(starts)
    assert (side - gaps >= overlap).all()  # neighbours overlap by at least `overlap`
    assert gaps.max() - gaps.min() <= 1  # spread evenly
    # No fewer tiles of tile_size could cover the length with that overlap.
    assert len(starts) == 1 or (len(starts) - 2) * (tile_size - overlap) + tile_size < length


def test_tiles_of_a_two_by_two_grid_are_smaller_than_tile_size(image):
    # 640 in tiles of at most 512 overlapping by 64: two tiles of 352, not of 512.
    from particleseg._inference import tile_starts

    assert tile_starts(640, 512, 64, 16) == (352, [0, 288])
    seg = _bundled().set_params(inference_precision="float32", inference_scale=1.0)
    whole = seg.set_params(tile_size=None).predict_proba(image)
    tiled = seg.set_params(tile_size=512, tile_overlap=64).predict_proba(image)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)
    assert (whole.argmax(0) != tiled.argmax(0)).mean() <= 0.02


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (False, False, None),   # AVX-512 without BF16: oneDNN only emulates it, float32 is faster
    (True, False, "bfloat16"),
    (False, True, "bfloat16"),
])
def test_auto_precision_takes_bfloat16_only_on_processors_that_compute_it(
        monkeypatch, avx512_bf16, amx, expected):
    import torch

    from particleseg._inference import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    got = resolve_precision("auto", torch.device("cpu"))
    assert got == (None if expected is None else torch.bfloat16)
    assert resolve_precision("float32", torch.device("cpu")) is None
