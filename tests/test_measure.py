"""Tests for particleseg.measure."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial import ConvexHull, QhullError

from particleseg.datasets import make_particles
from particleseg.measure import (
    AREA_COLUMNS,
    LENGTH_COLUMNS,
    SizeDistribution,
    measure_particles,
    size_distribution,
)

UNITLESS = ["circularity", "aspect_ratio", "solidity"]


def disc(radius, centre, size):
    rows, cols = np.mgrid[0:size, 0:size]
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    return inside.astype(np.int32)


# --------------------------------------------------------------------------
# measure_particles: geometry


@given(
    radius=st.floats(3.0, 40.0),
    offset=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
)
def test_disc_measures_its_diameter(radius, offset):
    # Tolerances, for a disc of radius r sampled at pixel centres:
    # * Equivalent diameter: the union of the pixel squares lies between the
    #   discs of radius r - sqrt(2)/2 and r + sqrt(2)/2 (a pixel square lies
    #   within sqrt(2)/2 of its centre, and any point that far inside the disc
    #   has the centre of its own pixel inside), so the area lies between
    #   pi (r -+ sqrt(2)/2)^2 and |ECD - 2r| <= sqrt(2). (Measured: within
    #   [-0.62, +0.38] on a grid of radii and centres.)
    # * Feret diameters (hull of pixel centres, plus 1): that hull lies inside
    #   the disc, so each width is <= 2r + 1; it contains the disc of radius
    #   r - sqrt(2) (each point there has the four pixel centres around it in
    #   the disc), so each width is >= 2r - 2 sqrt(2) + 1 > 2r - 2.
    #   (Measured: max in [2r - 0.17, 2r + 1], min in [2r - 1, 2r + 0.49].)
    # * Circularity: the Crofton perimeter has no such bound. The worst case
    #   is a disc of whole radius centred on a pixel, whose four extreme
    #   pixels stick out alone: 0.83 at r = 3, 0.88 at r = 4 or 5, over 0.9
    #   from r = 6 on; random discs give 0.90-1.0. Hence 0.8.
    size = int(2 * radius + 6)
    centre = (radius + 2 + offset[0], radius + 2 + offset[1])
    row = measure_particles(disc(radius, centre, size)).iloc[0]
    assert abs(row["equivalent_diameter_px"] - 2 * radius) <= math.sqrt(2)
    for column in ("feret_diameter_max_px", "feret_diameter_min_px"):
        assert 2 * radius - 2 * math.sqrt(2) + 1 <= row[column] <= 2 * radius + 1 + 1e-9
    assert 0.8 <= row["circularity"] <= 1.0
    assert row["solidity"] == pytest.approx(1.0)  # a digitised disc is digitally convex
    assert row["area_px2"] == disc(radius, centre, size).sum()
    assert not row["touches_edge"]


def test_rectangle_exact_values():
    labels = np.zeros((10, 12), dtype=np.int32)
    labels[2:5, 3:10] = 7  # 3 x 7 pixels
    row = measure_particles(labels).iloc[0]
    assert row["label"] == 7
    assert row["area_px2"] == 21
    assert row["equivalent_diameter_px"] == pytest.approx(math.sqrt(4 * 21 / math.pi))
    # Centres span 2 x 6, plus one pixel.
    assert row["feret_diameter_max_px"] == pytest.approx(math.hypot(2, 6) + 1)
    assert row["feret_diameter_min_px"] == pytest.approx(3.0)
    assert row["aspect_ratio"] == pytest.approx((math.hypot(2, 6) + 1) / 3)
    assert row["solidity"] == pytest.approx(1.0)
    assert (row["centroid_row_px"], row["centroid_column_px"]) == (3.0, 6.0)


def test_degenerate_particles():
    labels = np.zeros((9, 9), dtype=np.int32)
    labels[4, 4] = 1  # one pixel
    labels[1, 1:8] = 2  # a row of 7
    for k in range(4):  # a diagonal line of 4
        labels[5 + k, 5 + k] = 3
    table = measure_particles(labels).set_index("label")
    assert table.loc[1, "feret_diameter_max_px"] == 1.0
    assert table.loc[1, "feret_diameter_min_px"] == 1.0
    assert table.loc[1, "aspect_ratio"] == 1.0
    assert table.loc[1, "circularity"] == 1.0  # clipped
    assert table.loc[2, "feret_diameter_max_px"] == 7.0
    assert table.loc[2, "feret_diameter_min_px"] == 1.0
    assert table.loc[3, "feret_diameter_max_px"] == pytest.approx(3 * math.sqrt(2) + 1)
    assert table.loc[3, "feret_diameter_min_px"] == 1.0
    assert (table["solidity"] == 1.0).all()
    assert np.isfinite(table.to_numpy(dtype=float)).all()


def test_concave_particle_has_solidity_below_one():
    labels = np.zeros((12, 12), dtype=np.int32)
    labels[1:11, 1:4] = 1
    labels[8:11, 1:11] = 1  # an L: 30 + 21 pixels
    row = measure_particles(labels).iloc[0]
    # Hull of the centres: (1,1) (10,1) (10,10) (8,10) (1,3); lattice points
    # inside it counted by hand: rows 1..10 hold 3,4,5,6,7,8,9,10,10,10.
    assert row["area_px2"] == 51
    assert row["solidity"] == pytest.approx(51 / 72)


def _brute_force(points):
    """Max/min Feret (+1) and convex pixel count from all pixel centres."""
    diff = points[:, None, :] - points[None, :, :]
    feret_max = np.sqrt((diff**2).sum(-1)).max() + 1
    # The narrowest width is across a direction joining two points (a hull edge).
    widths = [np.inf]
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            e = points[j] - points[i]
            if not e.any():
                continue
            h = e[0] * (points[:, 1] - points[i, 1]) - e[1] * (points[:, 0] - points[i, 0])
            widths.append((h.max() - h.min()) / np.hypot(*e))
    feret_min = (0.0 if not np.isfinite(min(widths)) else min(widths)) + 1
    # Lattice points inside the hull, in exact integer arithmetic.
    lo, hi = points.min(0), points.max(0)
    grid = np.stack(np.mgrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1], -1).reshape(-1, 2)
    try:
        v = points[ConvexHull(points).vertices]
        e = np.roll(v, -1, axis=0) - v
        cross = e[None, :, 0] * (grid[:, None, 1] - v[None, :, 1]) - e[None, :, 1] * (
            grid[:, None, 0] - v[None, :, 0]
        )
        inside = (cross >= 0).all(1) | (cross <= 0).all(1)
    except QhullError:  # collinear: lattice points on the segment
        a, b = points.min(0), points.max(0)
        d = points[np.argmax(np.abs(points - points[0]).sum(1))] - points[0]
        cross = d[0] * (grid[:, 1] - points[0, 1]) - d[1] * (grid[:, 0] - points[0, 0])
        inside = (cross == 0) & (grid >= a).all(1) & (grid <= b).all(1)
    return feret_max, feret_min, inside.sum()


label_maps = hnp.arrays(
    np.int32,
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    elements=st.integers(0, 4),
)


@given(labels=label_maps)
def test_hull_measures_match_brute_force(labels):
    table = measure_particles(labels)
    assert list(table["label"]) == [v for v in range(1, 5) if (labels == v).any()]
    for row in table.itertuples():
        points = np.argwhere(labels == row.label)
        feret_max, feret_min, convex = _brute_force(points)
        assert row.feret_diameter_max_px == pytest.approx(feret_max)
        assert row.feret_diameter_min_px == pytest.approx(feret_min)
        assert row.solidity == pytest.approx(len(points) / convex)
        assert 0 < row.solidity <= 1
        assert row.aspect_ratio >= 1


@given(labels=label_maps, pixel_size=st.floats(1e-3, 1e3))
def test_doubling_pixel_size_scales_lengths_and_areas(labels, pixel_size):
    one = measure_particles(labels, pixel_size=pixel_size, unit="nm")
    two = measure_particles(labels, pixel_size=2 * pixel_size, unit="nm")
    pixels = measure_particles(labels)
    for base in LENGTH_COLUMNS:
        np.testing.assert_allclose(two[f"{base}_nm"], 2 * one[f"{base}_nm"], rtol=1e-12)
        np.testing.assert_allclose(one[f"{base}_nm"], pixel_size * pixels[f"{base}_px"], rtol=1e-12)
    for base in AREA_COLUMNS:
        np.testing.assert_allclose(two[f"{base}_nm2"], 4 * one[f"{base}_nm2"], rtol=1e-12)
        np.testing.assert_allclose(one[f"{base}_nm2"], pixel_size**2 * pixels[f"{base}_px2"], rtol=1e-12)
    for column in UNITLESS + ["label", "centroid_row_px", "centroid_column_px", "touches_edge"]:
        np.testing.assert_array_equal(two[column], one[column])


# --------------------------------------------------------------------------
# measure_particles: columns and behaviour


def test_columns_carry_the_unit():
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[2:4, 2:4] = 1
    expected = [
        "label", "area_nm2", "equivalent_diameter_nm", "feret_diameter_max_nm",
        "feret_diameter_min_nm", "perimeter_nm", "circularity", "aspect_ratio",
        "solidity", "centroid_row_px", "centroid_column_px", "touches_edge",
    ]
    assert list(measure_particles(labels, pixel_size=0.8, unit="nm").columns) == expected
    in_pixels = list(measure_particles(labels).columns)
    assert in_pixels[1:3] == ["area_px2", "equivalent_diameter_px"]
    with_image = measure_particles(labels, image=np.ones((6, 6)), pixel_size=2, unit="um")
    assert list(with_image.columns) == [c.replace("nm", "um") for c in expected] + ["mean_intensity"]
    assert with_image.loc[0, "area_um2"] == 16.0


def test_edge_flag():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[0, 4] = 1  # top
    labels[4, 9] = 2  # right
    labels[9, 5:7] = 3  # bottom
    labels[3:5, 0] = 4  # left
    labels[3:7, 3:7] = 5  # inside
    labels[1:9, 1] = 6  # one pixel from the edge
    table = measure_particles(labels).set_index("label")
    assert table["touches_edge"].to_dict() == {1: True, 2: True, 3: True, 4: True, 5: False, 6: False}
    assert table["touches_edge"].dtype == bool


def test_mean_intensity_and_label_order():
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 3, 10, 42], size=(20, 30)).astype(np.int32)
    image = rng.integers(0, 65535, size=(20, 30)).astype(np.uint16)
    table = measure_particles(labels, image=image)
    assert list(table["label"]) == [3, 10, 42]
    for row in table.itertuples():
        assert row.mean_intensity == pytest.approx(image[labels == row.label].mean())
        assert row.area_px2 == (labels == row.label).sum()
        rows, cols = np.nonzero(labels == row.label)
        assert (row.centroid_row_px, row.centroid_column_px) == pytest.approx((rows.mean(), cols.mean()))


def test_rgb_image_gives_luminance_intensity():
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[1:3, 1:3] = 1
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[..., 0] = 100  # pure red: luminance 0.2125 * 100
    table = measure_particles(labels, image=image)
    assert table.loc[0, "mean_intensity"] == pytest.approx(21.0)


def test_on_synthetic_particles_sizes_match_the_truth():
    _, y = make_particles(n_images=1, shape=(128, 128), n_particles=(8, 8), overlap=0.0,
                          radius=(8, 8), random_state=0)
    table = measure_particles(y[0], pixel_size=0.5, unit="nm")
    assert len(table) == int(y[0].max())
    inner = table[~table["touches_edge"]]
    # Ellipses with semi-axes 8 and 8 * (0.8..1): diameters 12.8-16 px.
    assert inner["equivalent_diameter_nm"].between(0.5 * 12, 0.5 * 17).all()
    assert inner["circularity"].between(0.85, 1.0).all()
    assert inner["aspect_ratio"].between(1.0, 1.5).all()


def test_empty_map_gives_empty_table_with_the_same_columns():
    labels = np.zeros((5, 5), dtype=np.int32)
    labels_one = labels.copy()
    labels_one[2, 2] = 1
    for kwargs in ({}, {"pixel_size": 0.5, "unit": "nm"}, {"image": np.ones((5, 5))}):
        empty = measure_particles(labels, **kwargs)
        full = measure_particles(labels_one, **kwargs)
        assert len(empty) == 0
        assert list(empty.columns) == list(full.columns)
        assert (empty.dtypes == full.dtypes).all()


def test_errors_name_the_argument():
    labels = np.zeros((5, 5), dtype=np.int32)
    with pytest.raises(ValueError, match="unit='nm' was given without pixel_size"):
        measure_particles(labels, unit="nm")
    with pytest.raises(ValueError, match="unit='px'"):
        measure_particles(labels, pixel_size=0.5)
    with pytest.raises(ValueError, match="pixel_size must be a positive"):
        measure_particles(labels, pixel_size=-1.0, unit="nm")
    with pytest.raises(ValueError, match="pixel_size must be a positive"):
        measure_particles(labels, pixel_size=float("nan"), unit="nm")
    with pytest.raises(TypeError, match="pixel_size"):
        measure_particles(labels, pixel_size="0.5", unit="nm")
    with pytest.raises(ValueError, match="unit must be"):
        measure_particles(labels, pixel_size=0.5, unit="")
    with pytest.raises(ValueError, match="shape"):
        measure_particles(labels, image=np.ones((4, 5)))
    with pytest.raises(TypeError, match="labels"):
        measure_particles(labels.astype(bool))
    # pixel_size=1 with "px" is the identity, allowed.
    assert len(measure_particles(labels, pixel_size=1.0)) == 0


# --------------------------------------------------------------------------
# size_distribution


def table_of(values, edge=None, column="equivalent_diameter_nm"):
    values = np.asarray(values, dtype=float)
    edge = np.zeros(len(values), dtype=bool) if edge is None else np.asarray(edge)
    return pd.DataFrame({column: values, "touches_edge": edge})


def test_size_distribution_known_numbers():
    dist = size_distribution(table_of([1.0, 2.0, 3.0, 4.0]))
    assert dist.count == 4
    assert dist.mean == 2.5
    assert dist.median == dist.d50 == 2.5
    assert dist.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert dist.d10 == pytest.approx(1.3)
    assert dist.d90 == pytest.approx(3.7)
    assert dist.coefficient_of_variation == pytest.approx(dist.std / 2.5)
    logs = np.log([1, 2, 3, 4])
    assert dist.lognormal_sigma == pytest.approx(logs.std())
    assert dist.lognormal_median == pytest.approx(np.exp(logs.mean()))
    assert (dist.column, dist.unit) == ("equivalent_diameter_nm", "nm")


def test_size_distribution_recovers_a_lognormal():
    rng = np.random.default_rng(1)
    sizes = rng.lognormal(mean=np.log(12.0), sigma=0.25, size=4000)
    dist = size_distribution(table_of(sizes))
    # Standard errors: sigma / sqrt(2n) = 0.0028 and, for the median,
    # 12 * sigma / sqrt(n) = 0.047; the tolerances are over 5 of them.
    assert dist.lognormal_sigma == pytest.approx(0.25, abs=0.015)
    assert dist.lognormal_median == pytest.approx(12.0, abs=0.25)
    assert dist.d50 == pytest.approx(np.median(sizes))
    assert dist.coefficient_of_variation == pytest.approx(
        np.sqrt(np.exp(0.25**2) - 1), rel=0.05
    )


@given(st.lists(st.floats(0.1, 1e4), min_size=1, max_size=50))
def test_d50_is_the_median(values):
    dist = size_distribution(table_of(values))
    assert dist.d50 == dist.median == pytest.approx(np.median(values))
    assert dist.d10 <= dist.d50 <= dist.d90


def test_exclude_edge():
    table = table_of([1.0, 2.0, 100.0], edge=[False, False, True])
    assert size_distribution(table).count == 2
    assert size_distribution(table).mean == 1.5
    assert size_distribution(table, exclude_edge=False).count == 3
    with pytest.raises(ValueError, match="exclude_edge=False"):
        size_distribution(table.drop(columns="touches_edge"))
    assert size_distribution(table.drop(columns="touches_edge"), exclude_edge=False).count == 3


def test_zero_and_one_particle_give_nan_not_errors():
    empty = size_distribution(table_of([]))
    assert empty.count == 0
    assert all(math.isnan(v) for k, v in empty.to_dict().items() if k not in ("column", "unit", "count"))
    one = size_distribution(table_of([5.0]))
    assert (one.count, one.mean, one.median, one.d10, one.d90) == (1, 5.0, 5.0, 5.0, 5.0)
    for name in ("std", "coefficient_of_variation", "lognormal_sigma", "lognormal_median"):
        assert math.isnan(getattr(one, name))
    # Identical sizes: no spread, an exact (degenerate) fit.
    same = size_distribution(table_of([3.0, 3.0, 3.0]))
    assert (same.std, same.lognormal_sigma, same.lognormal_median) == (0.0, 0.0, 3.0)
    # Sizes of 0 or less have no logarithm: no fit.
    assert math.isnan(size_distribution(table_of([0.0, 1.0])).lognormal_sigma)
    # All edge particles: nothing left.
    assert size_distribution(table_of([1.0, 2.0], edge=[True, True])).count == 0
    # From a real empty table.
    assert size_distribution(measure_particles(np.zeros((4, 4), dtype=np.int32))).count == 0


def test_default_column_and_other_columns():
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[2:6, 2:6], labels[10:20, 10:20] = 1, 2
    table = measure_particles(labels, pixel_size=0.5, unit="nm")
    dist = size_distribution(table)
    assert dist.column == "equivalent_diameter_nm"
    assert dist.mean == pytest.approx(table["equivalent_diameter_nm"].mean())
    area = size_distribution(table, column="area_nm2")
    assert (area.unit, area.mean) == ("nm2", pytest.approx((4 + 25) / 2))
    assert size_distribution(table, column="circularity").unit == ""
    assert size_distribution(measure_particles(labels)).unit == "px"
    with pytest.raises(ValueError, match="not in the table"):
        size_distribution(table, column="diameter")
    with pytest.raises(ValueError, match="column="):
        size_distribution(pd.DataFrame({"x": [1.0]}), exclude_edge=False)
    with pytest.raises(TypeError, match="DataFrame"):
        size_distribution([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        size_distribution(table_of([1.0, np.nan]))


def test_size_distribution_result_is_a_frozen_record():
    dist = size_distribution(table_of([1.0, 2.0, 4.0]))
    assert isinstance(dist, SizeDistribution)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dist.mean = 0.0
    as_dict = dist.to_dict()
    assert list(as_dict) == [f.name for f in dataclasses.fields(SizeDistribution)]
    assert as_dict["count"] == 3 and as_dict["unit"] == "nm"
    series = dist.to_series()
    assert series.name == "equivalent_diameter_nm"
    assert series["d90"] == dist.d90
    assert list(series.index) == list(as_dict)


def test_measurements_equal_regionprops_on_touching_particles():
    # Touching regions, holes, gaps in the label values, single pixels and
    # regions on the image's edge: the vectorised measurements equal
    # scikit-image's regionprops region by region.
    from skimage.measure import regionprops_table
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(3)
    labels = np.zeros((96, 80), dtype=np.int32)
    seeds = rng.integers(0, [96, 80], size=(40, 2))
    labels[seeds[:, 0], seeds[:, 1]] = rng.choice(np.arange(1, 200), size=40, replace=False)
    labels = expand_labels(labels, distance=6)
    labels[rng.random(labels.shape) < 0.05] = 0  # holes and ragged outlines
    labels[0, 0], labels[50, 79] = 500, 501  # single pixels on the edge
    image = rng.integers(0, 65535, size=labels.shape).astype(np.uint16)

    table = measure_particles(labels, image)
    expected = regionprops_table(labels, intensity_image=image,
                                 properties=["label", "area", "bbox", "centroid",
                                             "perimeter_crofton", "intensity_mean"])
    np.testing.assert_array_equal(table["label"], expected["label"])
    np.testing.assert_array_equal(table["area_px2"], expected["area"])
    np.testing.assert_allclose(table["perimeter_px"], expected["perimeter_crofton"], rtol=1e-12)
    np.testing.assert_allclose(table["centroid_row_px"], expected["centroid-0"], rtol=1e-12)
    np.testing.assert_allclose(table["centroid_column_px"], expected["centroid-1"], rtol=1e-12)
    np.testing.assert_allclose(table["mean_intensity"], expected["intensity_mean"], rtol=1e-12)
    edge = ((expected["bbox-0"] == 0) | (expected["bbox-1"] == 0)
            | (expected["bbox-2"] == labels.shape[0]) | (expected["bbox-3"] == labels.shape[1]))
    np.testing.assert_array_equal(table["touches_edge"], edge)
    assert table["touches_edge"].any() and not table["touches_edge"].all()
