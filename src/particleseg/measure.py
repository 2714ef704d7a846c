"""Particle measurements and size distributions.

:func:`measure_particles` turns an instance map into a table with one row per
particle (area, diameters, shape descriptors, position), and
:func:`size_distribution` summarises one column of that table (count, mean,
D10/D50/D90, polydispersity and a log-normal fit).

How pixels become lengths
-------------------------
A particle is the set of its pixels, each pixel a unit square centred on its
(row, column) coordinates, as in :func:`skimage.measure.regionprops`.

* **Area** is the number of pixels.
* **Equivalent diameter** is the diameter of the disc of the same area,
  ``sqrt(4 * area / pi)``.
* **Feret diameters** (caliper widths) are measured on the convex hull of the
  pixel centres, plus one pixel: each pixel is taken to be one pixel wide in
  every direction, so a single pixel has both Feret diameters equal to 1 and a
  straight row of n pixels has a maximum Feret diameter of n and a minimum of 1.
  The maximum is the largest distance between two hull vertices; the minimum
  is the smallest width of the hull measured across one of its edges (as in
  the rotating-calipers method: the narrowest width of a convex polygon is
  attained with one caliper flush with an edge). For a digitised disc of
  radius r both lie within about one pixel of 2r. ImageJ/Fiji measure the
  hull of the pixel corners instead (larger by 0 to 0.41 pixel, depending on
  the direction); ``regionprops``'s ``feret_diameter_max`` uses yet another
  outline, and is not used here.
* **Perimeter** is the Crofton estimate of the length of the boundary
  (:func:`skimage.measure.perimeter_crofton`, four directions), which is nearly
  unbiased for round particles of any size; it shortens sharp corners, so a
  square reads slightly rounder than it is.
* **Circularity** is ``4 * pi * area / perimeter**2``: 1 for a disc, less for
  anything else. Small particles can produce estimates above 1 from
  pixelation; they are clipped to 1, as ImageJ does.
* **Aspect ratio** is ``feret_diameter_max / feret_diameter_min`` (1 or more;
  always finite, unlike the ratio of fitted-ellipse axes, which is infinite for
  a one-pixel-wide particle).
* **Solidity** is ``area`` divided by the number of pixels whose centres lie
  in the convex hull of the particle's pixel centres (counted exactly with
  Pick's theorem): 1 for any digitised convex particle, less for particles
  with dents, such as two particles merged into one label.

Column names carry their unit: ``area_nm2``, ``equivalent_diameter_nm``, or
``area_px2``, ``equivalent_diameter_px`` without a pixel size.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import spatial

from ._validation import check_image, check_instance_map, check_same_shape

__all__ = [
    "measure_particles",
    "size_distribution",
    "SizeDistribution",
    "LENGTH_COLUMNS",
    "AREA_COLUMNS",
]

#: Base names of the columns measured in a length unit (the table's column is
#: the base name, an underscore and the unit, e.g. ``perimeter_nm``).
LENGTH_COLUMNS = (
    "equivalent_diameter",
    "feret_diameter_max",
    "feret_diameter_min",
    "perimeter",
)
#: Base names of the columns measured in a squared length unit (``area_nm2``).
AREA_COLUMNS = ("area",)

# Regions with the same number of hull vertices are processed in batches of at
# most this many (region, vertex, vertex) entries.
_BATCH_ENTRIES = 2_000_000
#: Rows of the map summed at a time (bounds the memory of the index arrays).
_BAND_ROWS = 1024
#: Length in the boundary of each of the 16 configurations of a 2 x 2 window
#: (bit 1: the window's lower-right pixel, 2: upper-right, 4: lower-left,
#: 8: upper-left), the table of :func:`skimage.measure.perimeter_crofton`
#: with four directions.
_CROFTON = np.array([
    0, np.pi / 4 * (1 + 1 / np.sqrt(2)), np.pi / (4 * np.sqrt(2)), np.pi / (2 * np.sqrt(2)),
    0, np.pi / 4 * (1 + 1 / np.sqrt(2)), 0, np.pi / (4 * np.sqrt(2)),
    np.pi / 4, np.pi / 2, np.pi / (4 * np.sqrt(2)), np.pi / (4 * np.sqrt(2)),
    np.pi / 4, np.pi / 2, 0, 0,
])


def _check_pixel_size(pixel_size, unit):
    if not isinstance(unit, str) or not unit.strip() or unit != unit.strip():
        raise ValueError(
            f"unit must be a non-empty string without surrounding spaces, such as "
            f"'nm'; got {unit!r}."
        )
    if pixel_size is None:
        if unit != "px":
            raise ValueError(
                f"unit={unit!r} was given without pixel_size. Pass pixel_size, the "
                f"size of one pixel in {unit} (e.g. pixel_size=0.8, unit={unit!r}), "
                "or leave unit='px' to measure in pixels."
            )
        return 1.0
    if isinstance(pixel_size, bool) or not isinstance(pixel_size, numbers.Real):
        raise TypeError(f"pixel_size must be a positive number or None; got {pixel_size!r}.")
    pixel_size = float(pixel_size)
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive, finite number; got {pixel_size}.")
    if unit == "px" and pixel_size != 1.0:
        raise ValueError(
            f"pixel_size={pixel_size} was given with unit='px'. Pass the unit of the "
            "pixel size as well, e.g. unit='nm'."
        )
    return pixel_size


def _columns(unit, with_intensity):
    names = [
        "label",
        f"area_{unit}2",
        f"equivalent_diameter_{unit}",
        f"feret_diameter_max_{unit}",
        f"feret_diameter_min_{unit}",
        f"perimeter_{unit}",
        "circularity",
        "aspect_ratio",
        "solidity",
        "centroid_row_px",
        "centroid_column_px",
        "touches_edge",
    ]
    if with_intensity:
        names.append("mean_intensity")
    return names


def _hull_points(labels):
    """Pixel centres at both ends of every run of one label along a row.

    Every pixel of a particle lies between two such points of its row, so
    their convex hull is the hull of all of the particle's pixel centres.
    Returns (values, points) sorted by label value.
    """
    changes = labels[:, 1:] != labels[:, :-1]
    ends = np.zeros(labels.shape, dtype=bool)
    ends[:, 1:] = changes  # first pixel of a run
    ends[:, :-1] |= changes  # last pixel of a run
    ends[:, [0, -1]] = True  # runs begin and end at the image's sides
    ends &= labels > 0
    rows, cols = np.nonzero(ends)
    values = labels[rows, cols]
    order = np.argsort(values, kind="stable")
    points = np.column_stack([rows[order], cols[order]]).astype(np.int64)
    return values[order], points


def _hull_vertices(values, points, n_regions):
    """Convex-hull vertices of each region, in order around the hull.

    Returns (vertices, counts): all regions' vertices stacked, and how many
    belong to each region. A region whose pixel centres are collinear gets
    the two end points of its segment (one point for a single pixel).
    """
    _, starts, sizes = np.unique(values, return_index=True, return_counts=True)
    pieces, counts = [], np.empty(n_regions, dtype=np.int64)
    for i, (start, size) in enumerate(zip(starts, sizes)):
        pts = points[start : start + size]
        try:
            vertices = pts[spatial.ConvexHull(pts).vertices]
        except spatial.QhullError:
            # Collinear (or one pixel): the lexicographic extremes are the
            # ends of the segment.
            key = pts[:, 0] * (pts[:, 1].max() + 1) + pts[:, 1]
            vertices = pts[[key.argmin(), key.argmax()]]
            if (vertices[0] == vertices[1]).all():
                vertices = vertices[:1]
        pieces.append(vertices)
        counts[i] = len(vertices)
    return np.concatenate(pieces), counts


def _hull_features(labels, n_regions):
    """Max and min Feret diameters and convex pixel count of each region."""
    values, points = _hull_points(labels)
    vertices, counts = _hull_vertices(values, points, n_regions)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    region = np.repeat(np.arange(n_regions), counts)
    within = np.arange(len(vertices)) - starts[region]
    following = starts[region] + (within + 1) % counts[region]
    edges = vertices[following] - vertices

    # Pick's theorem: lattice points in a lattice polygon = A + B/2 + 1.
    cross = vertices[:, 0] * vertices[following, 1] - vertices[:, 1] * vertices[following, 0]
    twice_area = np.abs(np.bincount(region, cross.astype(np.float64), minlength=n_regions))
    boundary = np.bincount(
        region, np.gcd(np.abs(edges[:, 0]), np.abs(edges[:, 1])).astype(np.float64),
        minlength=n_regions,
    )
    boundary[counts == 1] = 0.0
    convex_count = twice_area / 2 + boundary / 2 + 1

    feret_max = np.zeros(n_regions)
    feret_min = np.zeros(n_regions)
    # Regions with the same number of vertices are processed together, in
    # batches that bound the memory of the (region, vertex, vertex) arrays.
    for m in np.unique(counts):
        same = np.flatnonzero(counts == m)
        size = max(1, _BATCH_ENTRIES // int(m * m))
        for batch in np.array_split(same, -(-len(same) // size)):
            index = starts[batch, None] + np.arange(m)
            v = vertices[index].astype(np.float64)  # (n, m, 2)
            e = edges[index].astype(np.float64)
            diff = v[:, None, :, :] - v[:, :, None, :]  # diff[n, i, j] = v_j - v_i
            feret_max[batch] = np.sqrt((diff**2).sum(-1).max(axis=(1, 2)))
            if m < 3:  # a point or a segment has no width
                continue
            # Width across edge i: the largest distance of a vertex from the
            # line through edge i (all vertices lie on one side of it).
            heights = np.abs(e[:, :, None, 0] * diff[..., 1] - e[:, :, None, 1] * diff[..., 0])
            lengths = np.hypot(e[..., 0], e[..., 1])
            feret_min[batch] = (heights.max(axis=2) / lengths).min(axis=1)
    return feret_max + 1.0, feret_min + 1.0, convex_count


def _crofton_perimeters(labels, size):
    """Crofton perimeter (four directions) of every label value below ``size``.

    Equals :func:`skimage.measure.perimeter_crofton` of each region alone, for
    all regions at once: the 2 x 2 windows of the map are classified, for each
    label in them, by which of their pixels hold that label. Windows inside
    one label (or the background) add nothing and are skipped.
    """
    padded = np.pad(labels, 1)
    lower_right, upper_right = padded[1:, 1:], padded[:-1, 1:]
    lower_left, upper_left = padded[1:, :-1], padded[:-1, :-1]
    mixed = ((lower_right != upper_right) | (lower_right != lower_left)
             | (lower_right != upper_left))
    corners = [lower_right[mixed], upper_right[mixed], lower_left[mixed], upper_left[mixed]]
    histogram = np.zeros(size * 16, dtype=np.int64)
    for k, value in enumerate(corners):
        # Each label of a window once: at the first corner that holds it.
        counted = value > 0
        for earlier in corners[:k]:
            counted &= value != earlier
        value = value[counted]
        code = sum((corner[counted] == value) * bit
                   for corner, bit in zip(corners, (1, 2, 4, 8)))
        histogram += np.bincount(value.astype(np.intp) * 16 + code, minlength=size * 16)
    return histogram.reshape(size, 16) @ _CROFTON


def _region_sums(labels, size, image=None):
    """Pixel count, row and column sums (and intensity sum) of every label value."""
    height, width = labels.shape
    area = np.zeros(size, dtype=np.int64)
    sums = np.zeros((3, size))
    columns = np.arange(width, dtype=np.float64)
    for top in range(0, height, _BAND_ROWS):
        band = labels[top:top + _BAND_ROWS]
        rows = len(band)
        flat = band.ravel().astype(np.intp, copy=False)
        area += np.bincount(flat, minlength=size)
        sums[0] += np.bincount(flat, np.repeat(np.arange(top, top + rows, dtype=np.float64),
                                               width), minlength=size)
        sums[1] += np.bincount(flat, np.tile(columns, rows), minlength=size)
        if image is not None:
            sums[2] += np.bincount(flat, image[top:top + rows].ravel().astype(np.float64),
                                   minlength=size)
    return area, sums


def _empty_table(columns):
    data = {}
    for name in columns:
        if name == "label":
            data[name] = np.array([], dtype=np.int64)
        elif name == "touches_edge":
            data[name] = np.array([], dtype=bool)
        else:
            data[name] = np.array([], dtype=np.float64)
    return pd.DataFrame(data, columns=columns)


def measure_particles(labels, image=None, pixel_size=None, unit: str = "px",
                      confidence=None) -> pd.DataFrame:
    """Measure the size and shape of every particle in an instance map.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance map: 0 background, k > 0 the pixels of particle k, as returned
        by :func:`particleseg.label_particles`. Labels need not be consecutive.
    image : ndarray, shape (H, W) or (H, W, 3), optional
        The micrograph; when given, the table gets a ``mean_intensity`` column
        (in the image's own grey values).
    pixel_size : float, optional
        Size of one pixel in ``unit``, e.g. 0.8 for 0.8 nm per pixel (square
        pixels). Without it, everything is measured in pixels.
    unit : str, default="px"
        The unit of ``pixel_size``, used in the column names. Must be ``"px"``
        when ``pixel_size`` is None.
    confidence : array-like of float, optional
        One confidence per label value 1..max(labels), as returned by
        :func:`particleseg.postprocessing.particle_confidence`; added as the
        ``confidence`` column.

    Returns
    -------
    table : pandas.DataFrame
        One row per particle, sorted by label, with the columns (``u`` is the
        unit):

        ``label``
            The particle's value in ``labels``.
        ``area_u2``
            Area, in the unit squared.
        ``equivalent_diameter_u``
            Diameter of the disc with the same area.
        ``feret_diameter_max_u``, ``feret_diameter_min_u``
            Largest and smallest caliper width.
        ``perimeter_u``
            Crofton estimate of the boundary length.
        ``circularity``
            ``4 * pi * area / perimeter**2``, clipped to at most 1.
        ``aspect_ratio``
            ``feret_diameter_max / feret_diameter_min`` (1 or more).
        ``solidity``
            Area over the area of the (digitised) convex hull, at most 1.
        ``centroid_row_px``, ``centroid_column_px``
            Centre of mass, always in pixels so it indexes the image
            (multiply by ``pixel_size`` for a position in the unit).
        ``touches_edge``
            True when the particle has a pixel on the image border, so it
            may be cut off and its size is not trustworthy.
        ``mean_intensity``
            Mean grey value of the particle's pixels (only with ``image``).
        ``confidence``
            The network's calibrated confidence that this is a particle
            (only with ``confidence``).

        See the module documentation for how each is computed. An instance map
        without particles gives an empty table with the same columns.

    See Also
    --------
    size_distribution : Summary statistics of one column.
    skimage.measure.regionprops_table : The measurements underneath.

    Examples
    --------
    A 5x5 square and a single pixel, at 0.5 nm per pixel:

    >>> import numpy as np
    >>> from particleseg.measure import measure_particles
    >>> labels = np.zeros((8, 12), dtype=np.int32)
    >>> labels[1:6, 1:6] = 1
    >>> labels[7, 11] = 2
    >>> table = measure_particles(labels, pixel_size=0.5, unit="nm")
    >>> table[["label", "area_nm2", "feret_diameter_min_nm", "touches_edge"]]
       label  area_nm2  feret_diameter_min_nm  touches_edge
    0      1      6.25                    2.5         False
    1      2      0.25                    0.5          True
    >>> round(float(table.loc[0, "feret_diameter_max_nm"]), 3)  # 0.5 * (4 * sqrt(2) + 1)
    3.328
    """
    labels = check_instance_map(labels)
    scale = _check_pixel_size(pixel_size, unit)
    if image is not None:
        image = check_image(image)
        check_same_shape(image, labels)
    columns = _columns(unit, image is not None)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        n_labels = int(labels.max()) if labels.size else 0
        if confidence.ndim != 1 or len(confidence) < n_labels:
            raise ValueError(
                f"confidence must hold one value per label 1..{n_labels}; got shape "
                f"{confidence.shape}."
            )
        columns.append("confidence")
    if not labels.any():
        return _empty_table(columns)

    # Vectorised over all particles (scipy.ndimage and bincount), in the
    # conventions of skimage.measure.regionprops.
    size = int(labels.max()) + 1
    counts, sums = _region_sums(labels, size, image)
    present = np.flatnonzero(counts[1:]) + 1
    n_regions = len(present)
    area = counts[present].astype(np.float64)
    perimeter = _crofton_perimeters(labels, size)[present]
    feret_max, feret_min, convex_count = _hull_features(labels, n_regions)
    height, width = labels.shape
    boxes = ndi.find_objects(labels)
    bounds = np.array([(b[0].start, b[1].start, b[0].stop, b[1].stop)
                       for b in (boxes[i - 1] for i in present)])
    touches_edge = ((bounds[:, 0] == 0) | (bounds[:, 1] == 0) | (bounds[:, 2] == height)
                    | (bounds[:, 3] == width))
    props = {"label": present, "centroid-0": sums[0][present] / area,
             "centroid-1": sums[1][present] / area}
    if image is not None:
        props["intensity_mean"] = sums[2][present] / area
    values = [
        props["label"].astype(np.int64),
        area * scale**2,
        np.sqrt(4 * area / np.pi) * scale,
        feret_max * scale,
        feret_min * scale,
        perimeter * scale,
        np.minimum(4 * np.pi * area / perimeter**2, 1.0),
        feret_max / feret_min,
        area / convex_count,
        props["centroid-0"].astype(np.float64),
        props["centroid-1"].astype(np.float64),
        np.asarray(touches_edge, dtype=bool),
    ]
    if image is not None:
        values.append(props["intensity_mean"].astype(np.float64))
    if confidence is not None:
        values.append(confidence[props["label"].astype(np.int64) - 1])
    return pd.DataFrame(dict(zip(columns, values)), columns=columns)


# --------------------------------------------------------------------------
# Size distributions


def _column_unit(column: str) -> str:
    """The unit in a column name of :func:`measure_particles`'s table.

    ``"equivalent_diameter_nm"`` gives ``"nm"``, ``"area_nm2"`` gives
    ``"nm2"``, and a column without a unit (``"circularity"``) gives ``""``.
    """
    for base in LENGTH_COLUMNS + AREA_COLUMNS:
        if column.startswith(base + "_") and len(column) > len(base) + 1:
            return column[len(base) + 1 :]
    return ""


@dataclasses.dataclass(frozen=True)
class SizeDistribution:
    """Summary of a particle size distribution.

    All sizes are in :attr:`unit`. D10, D50 and D90 are number-weighted: 10 %,
    50 % and 90 % of the particles are smaller (so D50 is the median), unlike
    the volume-weighted values of laser diffraction.

    Attributes
    ----------
    column : str
        The table column that was summarised, e.g. ``"equivalent_diameter_nm"``.
    unit : str
        Its unit, e.g. ``"nm"`` (``"nm2"`` for an area, ``""`` for a ratio).
    count : int
        Number of particles summarised.
    mean, median, std : float
        Mean, median and sample standard deviation (``ddof=1``).
    d10, d50, d90 : float
        10th, 50th and 90th percentiles.
    coefficient_of_variation : float
        ``std / mean``, the polydispersity.
    lognormal_sigma : float
        Shape of the fitted log-normal distribution: the standard deviation
        of the logarithm of the size (``s`` in :data:`scipy.stats.lognorm`).
    lognormal_median : float
        Scale of the fitted log-normal, ``exp(mu)``: its median and geometric
        mean.

    Undefined values are NaN: all of them for no particles, the spread and
    the fit for a single particle.

    Examples
    --------
    >>> import pandas as pd
    >>> from particleseg.measure import size_distribution
    >>> table = pd.DataFrame({"equivalent_diameter_nm": [8.0, 10.0, 12.5]})
    >>> dist = size_distribution(table, exclude_edge=False)
    >>> dist.count, dist.d50, dist.unit
    (3, 10.0, 'nm')
    >>> round(dist.lognormal_median, 3)  # the geometric mean
    10.0
    """

    column: str
    unit: str
    count: int
    mean: float
    median: float
    std: float
    d10: float
    d50: float
    d90: float
    coefficient_of_variation: float
    lognormal_sigma: float
    lognormal_median: float

    def to_dict(self) -> dict:
        """The fields as a plain dict, in declaration order.

        Returns
        -------
        fields : dict
            Field name to value.

        Examples
        --------
        >>> import pandas as pd
        >>> from particleseg.measure import size_distribution
        >>> table = pd.DataFrame({"equivalent_diameter_nm": [1.0, 2.0, 3.0]})
        >>> size_distribution(table, exclude_edge=False).to_dict()["d50"]
        2.0
        """
        return dataclasses.asdict(self)

    def to_series(self) -> pd.Series:
        """The fields as a pandas Series (object dtype), e.g. to make a table.

        Returns
        -------
        fields : pandas.Series
            Indexed by field name.

        Examples
        --------
        One column per sample:

        >>> import pandas as pd
        >>> from particleseg.measure import size_distribution
        >>> samples = {"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0]}
        >>> summary = pd.DataFrame({
        ...     name: size_distribution(pd.DataFrame({"equivalent_diameter_nm": sizes}),
        ...                             exclude_edge=False).to_series()
        ...     for name, sizes in samples.items()
        ... })
        >>> summary.loc["count"].tolist()
        [3, 2]
        """
        return pd.Series(self.to_dict(), name=self.column, dtype=object)


def _default_column(table):
    candidates = [c for c in table.columns if str(c).startswith("equivalent_diameter_")]
    if len(candidates) != 1:
        raise ValueError(
            "table must have exactly one 'equivalent_diameter_<unit>' column to use "
            f"by default; found {candidates or 'none'} among {list(table.columns)}. "
            "Pass column= to choose one."
        )
    return candidates[0]


def _select_values(table, column, exclude_edge):
    """The finite values to summarise and the column they came from."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            "table must be a pandas DataFrame such as returned by measure_particles; "
            f"got {type(table).__name__}."
        )
    if column is None:
        column = _default_column(table)
    elif column not in table.columns:
        raise ValueError(
            f"column {column!r} is not in the table; its columns are {list(table.columns)}."
        )
    values = table[column]
    if exclude_edge:
        if "touches_edge" not in table.columns:
            raise ValueError(
                "exclude_edge=True needs a 'touches_edge' column, which this table "
                "lacks. Pass exclude_edge=False to keep every row."
            )
        values = values[~table["touches_edge"].astype(bool)]
    values = values.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(
            f"column {column!r} contains NaN or infinite values; drop those rows first."
        )
    return values, column


def size_distribution(table, column=None, exclude_edge: bool = True) -> SizeDistribution:
    """Summarise the sizes in a particle table.

    Parameters
    ----------
    table : pandas.DataFrame
        A table from :func:`measure_particles` (or any table with the column).
    column : str, optional
        The column to summarise. Defaults to the ``equivalent_diameter_<unit>``
        column, whatever its unit.
    exclude_edge : bool, default=True
        Leave out particles that touch the image edge (the ``touches_edge``
        column), whose sizes are cut off, like ImageJ's "exclude on edges".

    Returns
    -------
    distribution : SizeDistribution
        Count, mean, median, standard deviation, D10/D50/D90, coefficient of
        variation and a log-normal fit (maximum likelihood,
        :data:`scipy.stats.lognorm` with ``floc=0``). Undefined statistics are
        NaN: all of them when no particle is left, the spread and the fit
        with one particle (or a fit with a size of 0 or less).

    See Also
    --------
    measure_particles : Makes the table.
    particleseg.plotting.plot_size_distribution : Histogram with the fit.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.measure import measure_particles, size_distribution
    >>> labels = np.zeros((20, 20), dtype=np.int32)
    >>> labels[2:6, 2:6] = 1      # 16 pixels
    >>> labels[8:14, 8:14] = 2    # 36 pixels
    >>> labels[15:20, 0:5] = 3    # on the edge: left out
    >>> table = measure_particles(labels, pixel_size=2.0, unit="nm")
    >>> dist = size_distribution(table)
    >>> dist.count, dist.unit, dist.column
    (2, 'nm', 'equivalent_diameter_nm')
    >>> round(dist.d50, 3)  # mean of sqrt(4 * 64 / pi) and sqrt(4 * 144 / pi)
    11.284
    """
    values, column = _select_values(table, column, exclude_edge)
    n = len(values)
    nan = float("nan")
    if n == 0:
        mean = median = d10 = d50 = d90 = nan
    else:
        mean = float(values.mean())
        median = d50 = float(np.median(values))  # the same number, exactly
        d10, d90 = (float(v) for v in np.percentile(values, [10, 90]))
    std = float(values.std(ddof=1)) if n >= 2 else nan
    cv = std / mean if n >= 2 and mean != 0 else nan
    sigma = lognormal_median = nan
    if n >= 2 and (values > 0).all():
        if values.min() == values.max():  # no spread: the fit is exact
            sigma, lognormal_median = 0.0, float(values[0])
        else:
            from scipy import stats

            shape, _, scale = stats.lognorm.fit(values, floc=0)
            sigma, lognormal_median = float(shape), float(scale)
    return SizeDistribution(
        column=str(column),
        unit=_column_unit(str(column)),
        count=n,
        mean=mean,
        median=median,
        std=std,
        d10=d10,
        d50=d50,
        d90=d90,
        coefficient_of_variation=cv,
        lognormal_sigma=sigma,
        lognormal_median=lognormal_median,
    )
