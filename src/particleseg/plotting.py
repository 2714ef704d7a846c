"""Figures: segmentation outlines over a micrograph, size histograms.

matplotlib is imported inside the functions, so ``import particleseg`` stays
fast. Each function draws into the Axes it is given (or a new figure) and
returns that Axes; none calls ``plt.show()``.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_image, check_instance_map, check_same_shape
from .measure import _column_unit, _select_values, size_distribution

__all__ = ["plot_overlay", "plot_scale_bar", "plot_size_distribution"]

#: Readable names of the columns of :func:`particleseg.measure_particles`.
_QUANTITY_NAMES = {
    "equivalent_diameter": "Equivalent diameter",
    "feret_diameter_max": "Maximum Feret diameter",
    "feret_diameter_min": "Minimum Feret diameter",
    "perimeter": "Perimeter",
    "area": "Area",
    "circularity": "Circularity",
    "aspect_ratio": "Aspect ratio",
    "solidity": "Solidity",
    "mean_intensity": "Mean intensity",
}

_OUTLINE_COLOR = "#ffd21f"  # a warm yellow, visible on dark and light grey
_HIST_COLOR = "#9ecae1"
_HIST_EDGE = "#3182bd"
_FIT_COLOR = "#d62728"


def _display_unit(unit: str) -> str:
    """``"nm2"`` -> ``"nm²"``, ``"um"`` -> ``"µm"``."""
    if unit.endswith("2"):
        return _display_unit(unit[:-1]) + "\N{SUPERSCRIPT TWO}"
    return "\N{MICRO SIGN}m" if unit == "um" else unit


def _axis_label(column: str) -> str:
    unit = _column_unit(column)
    base = column[: -len(unit) - 1] if unit else column
    name = _QUANTITY_NAMES.get(base, base.replace("_", " ").capitalize())
    return f"{name} ({_display_unit(unit)})" if unit else name


def _nice_length(target: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``target``."""
    power = 10.0 ** np.floor(np.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target:
            return step * power
    return power


def _outlines(labels):
    """Outline polygons, as (x, y) = (column, row) vertex arrays.

    Each particle's outline follows the edges of its pixels (the 0.5 level of
    its mask, corners cut diagonally), so touching particles share a line.
    """
    from scipy import ndimage as ndi
    from skimage.measure import find_contours

    polygons = []
    for value, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        mask = np.pad(labels[box] == value, 1).astype(np.float32)
        offset = np.array([box[1].start - 1, box[0].start - 1], dtype=np.float64)
        for contour in find_contours(mask, 0.5):
            polygons.append(contour[:, ::-1] + offset)
    return polygons


def _new_axes(figsize):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_overlay(
    image,
    labels,
    ax=None,
    numbers: bool = True,
    *,
    color: str = _OUTLINE_COLOR,
    linewidth: float = 0.8,
    fontsize: float = 7.0,
    pixel_size=None,
    unit: str = "px",
):
    """Draw particle outlines and numbers over a micrograph.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        The micrograph, shown in grey levels (0.5th to 99.5th percentile).
    labels : ndarray of int, shape (H, W)
        Instance map of the particles, 0 for background.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure sized to the image when omitted.
    numbers : bool, default=True
        Write each particle's label at its centroid, so that rows of
        :func:`particleseg.measure_particles`'s table can be found on the image.
    color : str, default="#ffd21f"
        Colour of the outlines (any matplotlib colour).
    linewidth : float, default=0.8
        Width of the outlines in points. Outlines are vector lines along the
        pixel edges, sharp at any resolution and in PDF/SVG.
    fontsize : float, default=7.0
        Size of the numbers, in points.
    pixel_size : float, optional
        Size of one pixel in ``unit``; when given, a scale bar is drawn.
    unit : str, default="px"
        Unit of ``pixel_size`` (``"um"`` is written ``µm``).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn into: the image, the outlines (a
        :class:`~matplotlib.collections.LineCollection` with one polygon per
        particle, or more for a particle in pieces) and one text per
        particle.

    See Also
    --------
    skimage.measure.find_contours : How outlines are traced.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from particleseg.datasets import make_particles
    >>> from particleseg.plotting import plot_overlay
    >>> X, y = make_particles(n_images=1, shape=(96, 96), random_state=0)
    >>> ax = plot_overlay(X[0], y[0], pixel_size=0.5, unit="nm")
    >>> len(ax.texts) == len(set(y[0].ravel()) - {0})
    True
    >>> ax.figure.savefig("overlay.png", dpi=150)  # doctest: +SKIP
    """
    from matplotlib import patheffects

    image = check_image(image)
    labels = check_instance_map(labels)
    check_same_shape(image, labels)
    if pixel_size is not None and (not np.isscalar(pixel_size) or not pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number or None; got {pixel_size!r}.")

    from matplotlib.collections import LineCollection
    from skimage.measure import regionprops_table

    height, width = image.shape
    if ax is None:
        scale = 6.0 / max(height, width)
        ax = _new_axes((width * scale, height * scale))
    low, high = np.percentile(image, [0.5, 99.5])
    if high <= low:
        low, high = None, None
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="antialiased")

    outlines = LineCollection(
        _outlines(labels), colors=color, linewidths=linewidth, capstyle="round",
        joinstyle="round", label="Particle outlines",
    )
    ax.add_collection(outlines)

    if numbers and labels.any():
        props = regionprops_table(labels, properties=("label", "centroid"))
        stroke = [patheffects.withStroke(linewidth=1.8, foreground="black")]
        for label, row, col in zip(props["label"], props["centroid-0"], props["centroid-1"]):
            ax.text(
                col, row, str(label), color="white", fontsize=fontsize,
                ha="center", va="center", path_effects=stroke,
            )

    if pixel_size is not None:
        from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

        length = _nice_length(0.2 * width * pixel_size)
        bar = AnchoredSizeBar(
            ax.transData, length / pixel_size, f"{length:g} {_display_unit(unit)}",
            loc="lower right", pad=0.4, borderpad=0.6, sep=4, color="white",
            frameon=True, size_vertical=max(height / 150, 1.0),
            fontproperties={"size": 9},
        )
        bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")
        ax.add_artist(bar)

    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    return ax


def plot_size_distribution(table, column=None, ax=None, bins="auto", exclude_edge: bool = True):
    """Histogram of particle sizes with the fitted log-normal and D50.

    Parameters
    ----------
    table : pandas.DataFrame
        A table from :func:`particleseg.measure_particles`.
    column : str, optional
        The column to plot; by default the ``equivalent_diameter_<unit>``
        column.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new 5 x 3.5 inch figure when omitted.
    bins : int, sequence or str, default="auto"
        Histogram bins, as for :func:`numpy.histogram_bin_edges`.
    exclude_edge : bool, default=True
        Leave out particles that touch the image edge.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes, with the histogram (counts), the log-normal fit scaled to the
        counts (when there are two particles or more), a dashed line at D50,
        axis labels with the unit and a legend.

    See Also
    --------
    particleseg.measure.size_distribution : The numbers behind the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from particleseg.datasets import load_sample
    >>> from particleseg.measure import measure_particles
    >>> from particleseg.plotting import plot_size_distribution
    >>> image, labels = load_sample()
    >>> table = measure_particles(labels, pixel_size=0.5, unit="nm")
    >>> ax = plot_size_distribution(table)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('Equivalent diameter (nm)', 'Number of particles')
    """
    values, column = _select_values(table, column, exclude_edge)
    dist = size_distribution(table, column=column, exclude_edge=exclude_edge)
    unit = _display_unit(dist.unit)
    suffix = f" {unit}" if unit else ""
    if ax is None:
        ax = _new_axes((5.0, 3.5))

    n = len(values)
    if n:
        edges = np.histogram_bin_edges(values, bins=bins)
        widths = np.diff(edges)
        equal = np.allclose(widths, widths[0])
        heights, _, _ = ax.hist(
            values, bins=edges, density=not equal, color=_HIST_COLOR,
            edgecolor=_HIST_EDGE, linewidth=0.8, label=f"Particles (n = {n})",
        )
        top = heights.max()
        if np.isfinite(dist.lognormal_sigma) and dist.lognormal_sigma > 0:
            from scipy import stats

            x = np.linspace(max(edges[0] - widths[0], 0.0), edges[-1] + widths[-1], 400)
            pdf = stats.lognorm.pdf(x, dist.lognormal_sigma, scale=dist.lognormal_median)
            pdf = pdf * (n * widths[0] if equal else 1.0)
            top = max(top, pdf.max())
            ax.plot(
                x, pdf, color=_FIT_COLOR, linewidth=1.8,
                label=(
                    f"Log-normal fit (median {dist.lognormal_median:.3g}{suffix}, "
                    f"\N{GREEK SMALL LETTER SIGMA} = {dist.lognormal_sigma:.2f})"
                ),
            )
        ax.plot(  # up to just above the bars, below the legend
            [dist.d50, dist.d50], [0, 1.08 * top], color="black", linestyle="--",
            linewidth=1.2, label=f"D50 = {dist.d50:.3g}{suffix}",
        )
        # Head room above the bars for the legend.
        ax.set_ylim(0, 1.55 * top)
        ax.legend(frameon=False, fontsize=8, loc="upper right")
        ax.set_ylabel("Number of particles" if equal else f"Density (per {unit or 'unit'})")
    else:
        ax.text(0.5, 0.5, "No particles", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel("Number of particles")
    ax.set_xlabel(_axis_label(column))
    ax.spines[["top", "right"]].set_visible(False)
    return ax


_BAR_COLOR = "#00e5ff"  # cyan: apart from the yellow particle outlines


def plot_scale_bar(scale_bar, ax=None, *, color: str = _BAR_COLOR, fontsize: float = 7.0):
    """Outline a scale bar and its label, as read by :func:`particleseg.scalebar.find_scale_bar`.

    Draws a rectangle around the bar and one around its label, and writes
    what was read ("100 nm = 212.0 px", or why nothing was), so a reading
    can be checked at a glance.

    Parameters
    ----------
    scale_bar : particleseg.scalebar.ScaleBar
    ax : matplotlib.axes.Axes, optional
        Axes showing the image (pixel coordinates); the current Axes when omitted.
    color : str, default="#00e5ff"
    fontsize : float, default=7.0

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from particleseg.plotting import plot_scale_bar
    >>> from particleseg.scalebar import ScaleBar
    >>> fig, ax = plt.subplots()
    >>> _ = ax.imshow(np.zeros((100, 100)), cmap="gray")
    >>> bar = ScaleBar(length_px=40.0, bar_box=(90, 50, 93, 90), label_box=(78, 55, 87, 85),
    ...                text="10 nm", value=10.0, unit="nm", confidence=0.9)
    >>> ax = plot_scale_bar(bar, ax=ax)
    >>> len(ax.patches)
    2
    >>> plt.close(fig)
    """
    from matplotlib.patches import Rectangle

    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    style = "-" if scale_bar.calibrated else "--"
    for box in (scale_bar.bar_box, scale_bar.label_box):
        if box is None:
            continue
        top, left, bottom, right = box
        ax.add_patch(Rectangle((left - 1.5, top - 1.5), right - left + 2, bottom - top + 2,
                               fill=False, edgecolor=color, linewidth=1.0, linestyle=style))
    if scale_bar.calibrated:
        note = f"{scale_bar.describe()} ({scale_bar.pixel_size_nm:.3g} nm/px)"
    elif scale_bar.text is not None:
        note = f"{scale_bar.describe()}: not used (confidence {scale_bar.confidence:.2f})"
    else:
        note = f"bar of {scale_bar.length_px:.0f} px, label not read"
    top, left, bottom, right = scale_bar.box or scale_bar.bar_box
    height, width = max(ax.get_ylim()), max(ax.get_xlim())
    above = top > 0.15 * height
    on_right = (left + right) / 2 > width / 2
    ax.annotate(note, (right if on_right else left, top - 3 if above else bottom + 3),
                ha="right" if on_right else "left", va="bottom" if above else "top",
                color=color, fontsize=fontsize,
                bbox={"facecolor": "black", "alpha": 0.55, "edgecolor": "none", "pad": 1.5})
    return ax
