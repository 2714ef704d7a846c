"""Tests for particleseg.mosaic: large images in chunks, labelled across chunk borders."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402

da = pytest.importorskip("dask.array")
pytest.importorskip("zarr")

from particleseg import annotate_borders, label_particles  # noqa: E402
from particleseg.measure import measure_particles  # noqa: E402
from particleseg.mosaic import (  # noqa: E402
    analyze_mosaic,
    label_mosaic,
    measure_mosaic,
    open_mosaic,
    predict_mosaic,
)


def discs(size, n, seed=0, radii=(4, 14)):
    """An instance map of ``n`` random discs (later ones over earlier ones, touching)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.int32)
    yy, xx = np.mgrid[-radii[1]:radii[1] + 1, -radii[1]:radii[1] + 1]
    for k in range(1, n + 1):
        r, c = rng.integers(0, size, 2)
        radius = rng.integers(*radii)
        disc = yy**2 + xx**2 <= radius**2
        rows, cols = np.nonzero(disc)
        rows, cols = rows + r - radii[1], cols + c - radii[1]
        inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        labels[rows[inside], cols[inside]] = k
    return labels


def image_of(labels, seed=0):
    rng = np.random.default_rng(seed)
    image = np.where(labels > 0, 60, 180) + rng.integers(0, 40, labels.shape)
    return image.astype(np.uint8)


@pytest.fixture(scope="module")
def large():
    """A 4096² class map with thousands of touching particles, and its image."""
    truth = discs(4096, 6000)
    return annotate_borders(truth), image_of(truth)


def crossing(labels, chunk):
    """The labels that have pixels on both sides of a chunk border."""
    found = set()
    for edge in range(chunk, labels.shape[0], chunk):
        for a, b in ((labels[edge - 1, :], labels[edge, :]), (labels[:, edge - 1], labels[:, edge])):
            same = (a == b) & (a > 0)
            found |= set(a[same].tolist())
    return found


def test_mosaic_labels_and_table_equal_the_in_memory_ones(large, tmp_path):
    classes, image = large
    expected = label_particles(classes)
    assert len(crossing(expected, 1024)) > 100  # many particles straddle chunk borders

    labels, n = label_mosaic(da.from_array(classes, chunks=1024), workdir=tmp_path)
    assert labels.chunks == ((1024,) * 4, (1024,) * 4)
    assert n == expected.max()
    np.testing.assert_array_equal(labels.compute(), expected)

    table = measure_mosaic(labels, da.from_array(image, chunks=1024), pixel_size=0.5,
                           unit="nm")
    reference = measure_particles(expected, image, pixel_size=0.5, unit="nm")
    assert len(table) == len(reference) == n
    centroids = ["centroid_row_px", "centroid_column_px"]
    pd.testing.assert_frame_equal(table.drop(columns=centroids),
                                  reference.drop(columns=centroids))
    np.testing.assert_allclose(table[centroids], reference[centroids], rtol=1e-12)


@pytest.mark.parametrize("min_size, connectivity", [(0, 2), (40, 1)])
def test_mosaic_labels_follow_min_size_and_connectivity(min_size, connectivity, tmp_path):
    classes = annotate_borders(discs(600, 300, seed=1, radii=(2, 9)))
    expected = label_particles(classes, min_size=min_size, connectivity=connectivity)
    labels, n = label_mosaic(da.from_array(classes, chunks=(128, 200)), min_size=min_size,
                             connectivity=connectivity, workdir=tmp_path)
    np.testing.assert_array_equal(labels.compute(), expected)
    assert n == expected.max()


def test_cores_joined_only_across_a_chunk_corner_or_round_a_ring(tmp_path):
    # Two pixels that touch only by a corner, where four chunks meet: one
    # particle with 8-connectivity, two with 4-connectivity.
    classes = np.zeros((8, 8), dtype=np.uint8)
    classes[3, 3] = classes[4, 4] = 1
    for connectivity, expected in ((2, 1), (1, 2)):
        _, n = label_mosaic(da.from_array(classes, chunks=4), min_size=0,
                            connectivity=connectivity, workdir=tmp_path / str(connectivity))
        assert n == expected
    # A ring through four chunks: its pieces join only through one another.
    ring = np.zeros((12, 12), dtype=np.uint8)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0
    labels, n = label_mosaic(da.from_array(ring, chunks=6), min_size=0, workdir=tmp_path / "r")
    assert n == 1
    np.testing.assert_array_equal(labels.compute(), ring.astype(np.int32))


def test_a_map_without_particles_gives_an_empty_table(tmp_path):
    labels, n = label_mosaic(da.zeros((300, 300), dtype=np.uint8, chunks=100),
                             workdir=tmp_path)
    assert n == 0 and not labels.any().compute()
    table = measure_mosaic(labels, pixel_size=2.0, unit="nm")
    assert len(table) == 0 and "area_nm2" in table


class Thresholder:
    """A stand-in for a segmenter: dark pixels are particles, their rim the border."""

    tile_overlap = 16

    def predict_proba(self, image):
        classes = annotate_borders((image < 120).astype(np.int32))
        return np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)

    def _decide(self, proba, threshold=0.5):
        return np.argmax(proba, axis=0).astype(np.uint8)


class AutoScaler(Thresholder):
    """A stand-in at inference_scale="auto" that records the scale of every call."""

    inference_scale = "auto"
    seen = []

    def predict_proba(self, image):
        AutoScaler.seen.append(self.inference_scale)
        self.last_scales_ = [1.5 if self.inference_scale == "auto" else self.inference_scale]
        return super().predict_proba(image)


def test_every_chunk_is_predicted_at_the_scale_chosen_once_for_the_mosaic():
    image = da.from_array(image_of(discs(500, 200, seed=2)), chunks=128)
    AutoScaler.seen = []
    model = AutoScaler()
    classes = predict_mosaic(model, image)
    assert AutoScaler.seen == ["auto"]  # one probe, on the centre of the mosaic
    classes.compute()
    assert AutoScaler.seen[1:] == [1.5] * 16 and model.inference_scale == "auto"
    assert predict_mosaic(model, image, inference_scale=2.0) is not None
    assert AutoScaler.seen[-1] == 1.5  # a given scale needs no probe
    with pytest.raises(ValueError, match="number for a mosaic"):
        predict_mosaic(model, image, inference_scale="auto")


def test_predict_mosaic_stitches_chunks_without_seams():
    image = image_of(discs(500, 200, seed=2))
    classes = predict_mosaic(Thresholder(), da.from_array(image, chunks=128))
    seg = Thresholder()
    np.testing.assert_array_equal(classes.compute(), seg._decide(seg.predict_proba(image)))


@pytest.mark.parametrize("kind", ["tiff", "tiled-tiff", "zarr"])
def test_open_mosaic_reads_lazily_by_chunk(kind, tmp_path):
    image = image_of(discs(300, 50, seed=3))
    if kind == "zarr":
        path = tmp_path / "m.zarr"
        da.from_array(image, chunks=64).to_zarr(str(path))
    else:
        path = tmp_path / "m.tif"
        extra = {"tile": (64, 64), "compression": "zlib"} if kind == "tiled-tiff" else {}
        tifffile.imwrite(path, image, **extra)
    mosaic = open_mosaic(path, chunks=100)
    assert mosaic.chunks == ((100, 100, 100), (100, 100, 100))
    np.testing.assert_array_equal(mosaic.compute(), image)
    np.testing.assert_array_equal(mosaic[150:160, 20:250].compute(), image[150:160, 20:250])


def test_open_mosaic_errors_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_mosaic(tmp_path / "nowhere.zarr")
    (tmp_path / "m.png").write_bytes(b"")
    with pytest.raises(ValueError, match="Zarr folder or a TIFF"):
        open_mosaic(tmp_path / "m.png")
    with pytest.raises(ValueError, match="2-D grey"):
        open_mosaic(np.zeros((10, 10, 3)))


def test_analyze_mosaic_with_a_stand_in_model(tmp_path):
    truth = discs(700, 300, seed=4)
    image = image_of(truth)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, image)
    table = analyze_mosaic(path, Thresholder(), chunks=256, pixel_size=1.5, unit="nm")
    seg = Thresholder()
    expected = measure_particles(label_particles(seg._decide(seg.predict_proba(image))),
                                 image, pixel_size=1.5, unit="nm")
    assert len(table) == len(expected) > 100
    np.testing.assert_allclose(table["area_nm2"], expected["area_nm2"])


@pytest.mark.slow
def test_mosaic_count_with_the_bundled_model_matches_the_whole_image():
    from particleseg import pretrained
    from particleseg.datasets import make_particles

    X, _ = make_particles(n_images=4, shape=(1024, 1024), random_state=0)
    image = np.block([[X[0], X[1]], [X[2], X[3]]])
    seg = pretrained("emps", device="cpu")
    whole = int(label_particles(seg.predict(image)).max())
    table = analyze_mosaic(image, seg, chunks=768)
    assert abs(len(table) - whole) <= 0.02 * whole


def test_class_map_is_stored_one_row_of_chunks_at_a_time(tmp_path):
    from particleseg.mosaic import _store_by_rows

    rows_seen = []

    def record(block, block_info=None):
        rows_seen.append(block_info[0]["chunk-location"][0])
        return block + 1

    values = np.arange(70 * 45, dtype=np.int32).reshape(70, 45)
    array = da.from_array(values, chunks=(16, 20)).map_blocks(record, dtype=np.int32)
    stored = _store_by_rows(array, tmp_path / "classes.zarr")
    np.testing.assert_array_equal(stored.compute(), values + 1)  # last chunks irregular
    assert sorted(rows_seen) == rows_seen  # no row started before the one above ended
    assert len(rows_seen) == 5 * 3
