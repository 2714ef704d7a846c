"""Tests of particleseg.datasets: synthetic particles, EMPS reading, the sample."""

from __future__ import annotations

import urllib.request
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import measure

from particleseg import datasets
from particleseg.datasets import fetch_emps, load_emps, load_sample, make_particles

# --------------------------------------------------------------------------
# make_particles


def test_make_particles_shapes_and_dtypes():
    X, y = make_particles(n_images=3, shape=(40, 56), random_state=0)
    assert len(X) == len(y) == 3
    for image, labels in zip(X, y):
        assert image.shape == labels.shape == (40, 56)
        assert image.dtype == np.uint8 and labels.dtype == np.int32


def test_make_particles_labels_are_consecutive_and_connected():
    _, y = make_particles(n_images=4, shape=(64, 64), random_state=1)
    for labels in y:
        n = labels.max()
        assert n > 0
        np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
        for k in range(1, n + 1):  # each particle is one 4-connected piece
            assert measure.label(labels == k, connectivity=1).max() == 1


def test_make_particles_is_reproducible():
    X1, y1 = make_particles(n_images=2, shape=(32, 32), random_state=42)
    X2, y2 = make_particles(n_images=2, shape=(32, 32), random_state=np.random.RandomState(42))
    for a, b in zip(X1 + y1, X2 + y2):
        np.testing.assert_array_equal(a, b)
    X3, _ = make_particles(n_images=2, shape=(32, 32), random_state=43)
    assert not np.array_equal(X1[0], X3[0])


def test_make_particles_number_of_particles():
    _, y = make_particles(n_images=3, shape=(96, 96), n_particles=4, radius=5, overlap=0.0, random_state=0)
    assert [labels.max() for labels in y] == [4, 4, 4]
    _, y = make_particles(n_images=2, shape=(16, 16), n_particles=0, random_state=0)
    assert all(not labels.any() for labels in y)


def test_make_particles_overlap_zero_keeps_particles_apart():
    _, y = make_particles(n_images=3, shape=(96, 96), n_particles=(8, 8), overlap=0.0, random_state=3)
    for labels in y:
        assert measure.label(labels > 0, connectivity=2).max() == labels.max()


def test_make_particles_overlap_makes_touching_particles():
    _, y = make_particles(n_images=4, shape=(96, 96), n_particles=(15, 15), overlap=0.4, random_state=3)
    touching = sum(measure.label(labels > 0).max() < labels.max() for labels in y)
    assert touching >= 3


@pytest.mark.parametrize("polarity, darker", [("dark", True), ("bright", False)])
def test_make_particles_polarity(polarity, darker):
    X, y = make_particles(n_images=3, shape=(64, 64), polarity=polarity, random_state=5)
    for image, labels in zip(X, y):
        inside = image[labels > 0].mean()
        outside = image[labels == 0].mean()
        assert (inside < outside - 50) if darker else (inside > outside + 50)


def test_make_particles_mixed_polarity_gives_both():
    X, y = make_particles(n_images=12, shape=(48, 48), polarity="mixed", random_state=0)
    dark = [image[labels > 0].mean() < image[labels == 0].mean() for image, labels in zip(X, y)]
    assert any(dark) and not all(dark)


def test_make_particles_noise_and_blur():
    kwargs = dict(n_images=1, shape=(64, 64), n_particles=0, random_state=0)
    clean = make_particles(noise=0.0, blur=0.0, **kwargs)[0][0].astype(float)
    noisy = make_particles(noise=0.3, blur=0.0, **kwargs)[0][0].astype(float)
    assert np.std(np.diff(clean, axis=1)) < 1.0  # a smooth gradient
    assert np.std(np.diff(noisy, axis=1)) > 10.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_images": 0}, ValueError, r"n_images must be at least 1; got 0"),
        ({"n_images": 2.0}, TypeError, r"n_images must be an integer; got 2\.0"),
        ({"shape": 64}, ValueError, r"shape must be a \(height, width\) pair; got 64"),
        ({"shape": (64, 64, 3)}, ValueError, r"shape must be a \(height, width\) pair; got \(64, 64, 3\)"),
        ({"shape": (64, 0)}, ValueError, r"shape must be at least 1; got 0"),
        ({"shape": (64.0, 64)}, TypeError, r"shape must be an integer; got 64\.0"),
        ({"n_particles": (9, 3)}, ValueError, r"n_particles must satisfy 0 <= low <= high; got \(9, 3\)"),
        ({"n_particles": -1}, ValueError, r"n_particles must be 0\.0 or more; got -1"),
        ({"n_particles": "many"}, TypeError, r"n_particles must be a number or a \(low, high\) pair; got 'many'"),
        ({"radius": (1, 2, 3)}, ValueError, r"radius must be a number or a \(low, high\) pair; got \(1, 2, 3\)"),
        ({"radius": 0.5}, ValueError, r"radius must be at least 1 pixel; got 0\.5"),
        ({"radius": (4, "a")}, TypeError, r"radius must be a number; got 'a'"),
        ({"overlap": 1.5}, ValueError, r"overlap must be between 0\.0 and 1\.0; got 1\.5"),
        ({"overlap": "some"}, TypeError, r"overlap must be a number; got 'some'"),
        ({"noise": -0.1}, ValueError, r"noise must be 0\.0 or more; got -0\.1"),
        ({"noise": float("nan")}, ValueError, r"noise must be a finite number; got nan"),
        ({"blur": -1}, ValueError, r"blur must be 0\.0 or more; got -1"),
        ({"polarity": "grey"}, ValueError, r"polarity must be 'dark', 'bright' or 'mixed'; got 'grey'"),
        ({"random_state": "seed"}, ValueError, r"'seed' cannot be used to seed"),
    ],
)
def test_make_particles_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_particles(**kwargs)


# --------------------------------------------------------------------------
# load_emps on a folder written here


def _write_emps(root, names=("b_second", "a_first"), shapes=((20, 30), (24, 16)), rgb=True):
    (root / "images").mkdir(parents=True)
    (root / "segmaps").mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for name, shape in zip(names, shapes):
        gray = rng.integers(0, 256, size=shape, dtype=np.uint8)
        image = np.repeat(gray[..., None], 3, axis=-1) if rgb else gray
        labels = np.zeros(shape, dtype=np.uint16)
        labels[2:8, 2:8] = 1
        labels[2:8, 8:14] = 700  # 16-bit ids
        iio.imwrite(root / "images" / f"{name}.png", image)
        iio.imwrite(root / "segmaps" / f"{name}.png", labels)
        expected[name] = (gray, labels)
    return expected


def test_load_emps_reads_sorted_images_and_labels(tmp_path):
    expected = _write_emps(tmp_path)
    X, y, names = load_emps(tmp_path)
    assert names == ["a_first", "b_second"]
    for image, labels, name in zip(X, y, names):
        gray, true_labels = expected[name]
        assert image.dtype == np.uint8 and image.ndim == 2  # RGB reduced
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(image, gray)
        np.testing.assert_array_equal(labels, true_labels)
        assert set(np.unique(labels)) == {0, 1, 700}


def test_load_emps_without_names_and_with_str_path(tmp_path):
    _write_emps(tmp_path, rgb=False)
    result = load_emps(str(tmp_path), return_names=False)
    assert len(result) == 2
    X, y = result
    assert [im.shape for im in X] == [(24, 16), (20, 30)]


def test_load_emps_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not an EMPS-style folder: expected the sub-folders 'images/' and 'segmaps/'"):
        load_emps(tmp_path / "nowhere")


def test_load_emps_without_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "segmaps").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No PNG images found in .*images"):
        load_emps(tmp_path)


def test_load_emps_missing_label_map(tmp_path):
    _write_emps(tmp_path)
    (tmp_path / "segmaps" / "b_second.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Image b_second\.png has no label map: expected .*b_second\.png"):
        load_emps(tmp_path)


def test_load_emps_label_map_of_wrong_shape(tmp_path):
    _write_emps(tmp_path)
    iio.imwrite(tmp_path / "segmaps" / "a_first.png", np.zeros((5, 5), np.uint16))
    with pytest.raises(
        ValueError,
        match=r"label map a_first has shape \(5, 5\) but image a_first has shape \(24, 16\)",
    ):
        load_emps(tmp_path)


def test_load_emps_bad_image(tmp_path):
    _write_emps(tmp_path)
    iio.imwrite(tmp_path / "images" / "a_first.png", np.zeros((24, 16, 2), np.uint8))  # grey + alpha
    with pytest.raises(ValueError, match=r"image a_first must be 2-D .*; got shape \(24, 16, 2\)"):
        load_emps(tmp_path)


# --------------------------------------------------------------------------
# fetch_emps, without any network


def _no_download(*args, **kwargs):
    raise AssertionError("fetch_emps must not download here")


def test_fetch_emps_uses_an_existing_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlretrieve", _no_download)
    _write_emps(tmp_path / "emps")
    assert fetch_emps(tmp_path) == tmp_path / "emps"
    assert fetch_emps(tmp_path / "emps") == tmp_path / "emps"
    monkeypatch.setenv("PARTICLESEG_DATA", str(tmp_path))
    assert fetch_emps() == tmp_path / "emps"


def test_fetch_emps_without_copy_and_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlretrieve", _no_download)
    with pytest.raises(FileNotFoundError, match=r"No EMPS copy in .* and download_if_missing=False"):
        fetch_emps(tmp_path, download_if_missing=False)


def test_fetch_emps_reports_a_failed_download(tmp_path, monkeypatch):
    def offline(url, filename):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(ConnectionError, match=r"Could not download the EMPS data set from .*network is unreachable"):
        fetch_emps(tmp_path)


def test_fetch_emps_unpacks_the_archive(tmp_path, monkeypatch):
    source = tmp_path / "source" / "emps-main"
    _write_emps(source)
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in source.rglob("*.png"):
            zf.write(path, path.relative_to(tmp_path / "source"))

    def fake_download(url, filename):
        assert url == datasets.EMPS_URL
        filename.write_bytes(archive.read_bytes())

    monkeypatch.setattr(urllib.request, "urlretrieve", fake_download)
    home = tmp_path / "home"
    path = fetch_emps(home)
    assert path == home / "emps"
    X, y, names = load_emps(path)
    assert names == ["a_first", "b_second"]
    assert not (home / "emps.zip").exists() and not (home / "_emps_extract").exists()


# --------------------------------------------------------------------------
# load_sample


def test_load_sample_is_a_fixed_image_of_touching_particles():
    image, labels = load_sample()
    assert image.shape == labels.shape == (512, 512)
    assert image.dtype == np.uint8 and labels.dtype == np.int32
    n = labels.max()
    assert 40 <= n <= 70
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
    assert measure.label(labels > 0).max() < n  # some particles touch
    image2, labels2 = load_sample()
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(labels, labels2)


# --------------------------------------------------------------------------
# The real EMPS data


@pytest.mark.emps
def test_load_emps_reads_the_emps_training_split(emps):
    X, y, names = emps
    assert len(X) == len(y) == len(names) == 366
    assert names == sorted(names)
    for image, labels in zip(X, y):
        assert image.ndim == 2 and image.dtype == np.uint8
        assert labels.shape == image.shape and labels.dtype == np.int32
        assert labels.min() == 0 and labels.max() > 0
    n_particles = [len(np.unique(labels)) - 1 for labels in y]
    assert min(n_particles) >= 1 and max(n_particles) <= 1000
