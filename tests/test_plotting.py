"""Tests for particleseg.plotting (Agg backend, nothing shown)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from particleseg.datasets import load_sample, make_particles  # noqa: E402
from particleseg.measure import measure_particles, size_distribution  # noqa: E402
from particleseg.plotting import plot_overlay, plot_size_distribution  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sample():
    image, labels = load_sample()
    return image, labels, measure_particles(labels, image, pixel_size=0.5, unit="nm")


# --------------------------------------------------------------------------
# plot_overlay


def test_overlay_numbers_every_particle_at_its_centroid(sample):
    image, labels, table = sample
    ax = plot_overlay(image, labels)
    assert len(ax.texts) == len(table) == int(labels.max())
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    for row in table.itertuples():
        assert texts[str(row.label)] == pytest.approx((row.centroid_column_px, row.centroid_row_px))


def test_overlay_draws_the_image_and_the_outlines():
    X, y = make_particles(n_images=1, shape=(64, 80), n_particles=(4, 4), random_state=1)
    ax = plot_overlay(X[0], y[0], color="red")
    images = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert len(images) == 1
    np.testing.assert_array_equal(images[0].get_array(), X[0])
    (outlines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    np.testing.assert_allclose(outlines.get_colors()[0], [1, 0, 0, 1])
    polygons = outlines.get_segments()
    assert len(polygons) >= int(y[0].max())
    vertices = np.concatenate(polygons)
    assert vertices[:, 0].min() >= -0.5 and vertices[:, 0].max() <= 79.5
    assert vertices[:, 1].min() >= -0.5 and vertices[:, 1].max() <= 63.5
    assert ax.get_xlim() == (-0.5, 79.5) and ax.get_ylim() == (63.5, -0.5)
    assert not ax.axison


def test_overlay_outlines_follow_pixel_edges():
    labels = np.zeros((8, 12), dtype=np.int32)
    labels[2:5, 3:7] = 1  # rows 2-4, columns 3-6
    labels[2:5, 7:10] = 2  # touching it on the right
    ax = plot_overlay(np.zeros((8, 12)), labels)
    (outlines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    first, second = outlines.get_segments()
    x, y = first[:, 0], first[:, 1]
    # The pixel edges of particle 1 are x = 2.5 and 6.5, y = 1.5 and 4.5.
    assert (x.min(), x.max(), y.min(), y.max()) == (2.5, 6.5, 1.5, 4.5)
    on_edge = np.isin(x, [2.5, 6.5]) | np.isin(y, [1.5, 4.5])
    assert on_edge.all()
    # The touching particle's outline shares the line x = 6.5.
    assert second[:, 0].min() == 6.5


def test_overlay_into_given_axes_without_numbers():
    X, y = make_particles(n_images=1, shape=(48, 48), random_state=2)
    fig, axes = plt.subplots(1, 2)
    ax = plot_overlay(X[0], y[0], ax=axes[1], numbers=False)
    assert ax is axes[1]
    assert len(ax.texts) == 0
    assert len(fig.axes) == 2


def test_overlay_scale_bar(sample):
    image, labels, _ = sample
    ax = plot_overlay(image, labels, numbers=False, pixel_size=0.5, unit="nm")
    # 512 px * 0.5 nm = 256 nm; the bar is the nice length under a fifth: 50 nm.
    bars = [a for a in ax.artists if type(a).__name__ == "AnchoredSizeBar"]
    assert len(bars) == 1
    label = bars[0].txt_label.get_text()
    assert label == "50 nm"
    assert "\N{MICRO SIGN}m" in _scale_label(image, labels, pixel_size=0.01, unit="um")
    assert not [a for a in plot_overlay(image, labels).artists if type(a).__name__ == "AnchoredSizeBar"]


def _scale_label(image, labels, **kwargs):
    ax = plot_overlay(image, labels, numbers=False, **kwargs)
    return [a for a in ax.artists if type(a).__name__ == "AnchoredSizeBar"][0].txt_label.get_text()


def test_overlay_empty_labels_and_errors():
    image = np.zeros((16, 16), dtype=np.uint8)
    ax = plot_overlay(image, np.zeros((16, 16), dtype=np.int32))
    assert len(ax.texts) == 0
    with pytest.raises(ValueError, match="shape"):
        plot_overlay(image, np.zeros((8, 16), dtype=np.int32))
    with pytest.raises(ValueError, match="pixel_size"):
        plot_overlay(image, np.zeros((16, 16), dtype=np.int32), pixel_size=-1)


# --------------------------------------------------------------------------
# plot_size_distribution


def test_size_histogram_labels_fit_and_d50(sample):
    _, _, table = sample
    dist = size_distribution(table)
    ax = plot_size_distribution(table)
    assert ax.get_xlabel() == "Equivalent diameter (nm)"
    assert ax.get_ylabel() == "Number of particles"
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == dist.count == (~table["touches_edge"]).sum()
    lines = {line.get_label().split(" ")[0]: line for line in ax.get_lines()}
    assert set(lines) == {"Log-normal", "D50"}
    assert lines["D50"].get_xdata()[0] == pytest.approx(dist.d50)
    assert f"{dist.d50:.3g} nm" in lines["D50"].get_label()
    # The fitted curve is the log-normal pdf scaled to counts: its area
    # (trapezoid rule) is about n times the bin width.
    x, y = lines["Log-normal"].get_data()
    width = ax.patches[0].get_width()
    area = np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))
    assert area == pytest.approx(dist.count * width, rel=0.03)
    assert x[np.argmax(y)] == pytest.approx(
        dist.lognormal_median * np.exp(-dist.lognormal_sigma**2), rel=0.02
    )  # the mode of a log-normal
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"Particles (n = {dist.count})"
    assert len(legend) == 3


def test_size_histogram_options(sample):
    _, _, table = sample
    ax = plot_size_distribution(table, column="area_nm2", bins=5, exclude_edge=False)
    assert ax.get_xlabel() == "Area (nm\N{SUPERSCRIPT TWO})"
    assert len(ax.patches) == 5
    assert sum(p.get_height() for p in ax.patches) == len(table)
    ax = plot_size_distribution(table, column="feret_diameter_max_nm")
    assert ax.get_xlabel() == "Maximum Feret diameter (nm)"
    ax = plot_size_distribution(table, column="circularity")
    assert ax.get_xlabel() == "Circularity"
    pixels = measure_particles(sample[1])
    assert plot_size_distribution(pixels).get_xlabel() == "Equivalent diameter (px)"
    micro = pd.DataFrame({"equivalent_diameter_um": [1.0, 2.0, 3.0]})
    ax = plot_size_distribution(micro, exclude_edge=False)
    assert ax.get_xlabel() == "Equivalent diameter (\N{MICRO SIGN}m)"


def test_size_histogram_unequal_bins_show_density(sample):
    _, _, table = sample
    ax = plot_size_distribution(table, bins=[5, 10, 12, 14, 20, 30])
    assert ax.get_ylabel() == "Density (per nm)"
    areas = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert areas == pytest.approx(1.0)


def test_size_histogram_into_given_axes_and_tiny_tables():
    fig, ax = plt.subplots()
    one = pd.DataFrame({"equivalent_diameter_nm": [4.0], "touches_edge": [False]})
    assert plot_size_distribution(one, ax=ax) is ax
    assert [line.get_label().split(" ")[0] for line in ax.get_lines()] == ["D50"]  # no fit
    same = pd.DataFrame({"equivalent_diameter_nm": [3.0] * 4, "touches_edge": [False] * 4})
    ax = plot_size_distribution(same)
    assert [line.get_label().split(" ")[0] for line in ax.get_lines()] == ["D50"]
    assert sum(p.get_height() for p in ax.patches) == 4
    empty = measure_particles(np.zeros((8, 8), dtype=np.int32), pixel_size=1.0, unit="nm")
    ax = plot_size_distribution(empty)
    assert [t.get_text() for t in ax.texts] == ["No particles"]
    assert ax.get_xlabel() == "Equivalent diameter (nm)"


def test_size_histogram_errors(sample):
    _, _, table = sample
    with pytest.raises(ValueError, match="not in the table"):
        plot_size_distribution(table, column="diameter")
    with pytest.raises(TypeError, match="DataFrame"):
        plot_size_distribution(np.arange(5.0))
