"""Label maps made in annotation tools: labelme polygons, sparse annotations.

Training and fine-tuning take *instance maps*: 0 background, k > 0 the
pixels of particle k, and -1 for pixels nobody labelled, which the loss
skips. This module makes them from what annotation tools write:

- :func:`read_labelme` rasterises a labelme JSON file (polygons, rectangles,
  circles) into an instance map;
- :func:`mark_unlabelled` turns a partial annotation into a sparse instance
  map: everything outside the region you checked becomes -1.

napari's Labels layer and ImageJ/Fiji label images are instance maps
already (read them with ``tifffile.imread`` or ``imageio.v3.imread``); see
the user guide page on fine-tuning.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_labelme", "mark_unlabelled", "UNLABELLED_VALUE"]

#: The value of unlabelled pixels in an instance map.
UNLABELLED_VALUE = -1

_AREA_SHAPES = ("polygon", "rectangle", "circle")


def _shape_pixels(shape, image_shape, where):
    """Rows and columns of the pixels inside one labelme shape."""
    from skimage.draw import disk, polygon

    kind = shape.get("shape_type") or "polygon"
    points = np.asarray(shape.get("points", []), dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{where}: expected a list of [x, y] points; got {shape.get('points')!r}.")
    if kind == "polygon":
        if len(points) < 3:
            raise ValueError(f"{where}: a polygon needs at least 3 points; got {len(points)}.")
        return polygon(points[:, 1], points[:, 0], shape=image_shape)
    if kind == "rectangle":
        if len(points) != 2:
            raise ValueError(f"{where}: a rectangle needs 2 corner points; got {len(points)}.")
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        corners_r = [y0, y0, y1, y1]
        corners_c = [x0, x1, x1, x0]
        return polygon(corners_r, corners_c, shape=image_shape)
    if kind == "circle":
        if len(points) != 2:
            raise ValueError(f"{where}: a circle needs its centre and a point on it; got "
                             f"{len(points)} points.")
        (cx, cy), (px, py) = points
        radius = float(np.hypot(px - cx, py - cy))
        return disk((cy, cx), radius, shape=image_shape)
    raise ValueError(
        f"{where}: shape_type {kind!r} does not outline an area; particles must be drawn as "
        f"{', '.join(_AREA_SHAPES)}. Delete the shape or redraw it, or list its label in "
        "ignore_labels."
    )


def read_labelme(path, *, particle_labels=None, region_label="region",
                 unlabelled_label="unlabelled", ignore_labels=(), shape=None):
    """Read a labelme JSON file into an instance map.

    Every shape (polygon, rectangle or circle) becomes one particle, numbered
    1, 2, ... in file order; where shapes overlap, the later one wins. Two
    labels have a special meaning, so that you may outline only some
    particles (a sparse annotation):

    - shapes labelled ``region_label`` ("region") mark the areas in which
      *every* particle was outlined; when there is at least one, every pixel
      outside them is unlabelled (-1);
    - shapes labelled ``unlabelled_label`` ("unlabelled") mark areas to skip
      (-1), whatever lies under them.

    Parameters
    ----------
    path : str or path-like
        A ``.json`` file written by labelme.
    particle_labels : collection of str or None, default=None
        Labels of the shapes that are particles. None: every label other than
        ``region_label``, ``unlabelled_label`` and ``ignore_labels``.
    region_label : str or None, default="region"
        Label of the annotated regions (None: no such shapes).
    unlabelled_label : str or None, default="unlabelled"
        Label of areas left unlabelled (None: no such shapes).
    ignore_labels : collection of str, default=()
        Labels of shapes to leave out (such as points or lines drawn for
        another purpose).
    shape : (int, int), optional
        The image's (height, width). Default: ``imageHeight`` and
        ``imageWidth`` in the file.

    Returns
    -------
    instances : ndarray of int32, shape (H, W)
        0 background, k > 0 particle k, -1 unlabelled.

    See Also
    --------
    mark_unlabelled : Make a sparse map from a full one and a region.

    Examples
    --------
    >>> import json, tempfile, os
    >>> from particleseg.labels import read_labelme
    >>> doc = {"imageHeight": 8, "imageWidth": 10, "shapes": [
    ...     {"label": "particle", "shape_type": "rectangle", "points": [[1, 1], [4, 4]]},
    ...     {"label": "particle", "shape_type": "circle", "points": [[7, 5], [7, 3]]}]}
    >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> with open(path, "w") as f:
    ...     json.dump(doc, f)
    >>> labels = read_labelme(path)
    >>> labels.shape, int(labels.max())
    ((8, 10), 2)
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise ValueError(f"{path} is not a labelme file: it has no list of 'shapes'.")
    if shape is None:
        height, width = doc.get("imageHeight"), doc.get("imageWidth")
        if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
            raise ValueError(
                f"{path} does not record the image size (imageHeight, imageWidth); pass "
                "shape=(height, width)."
            )
        shape = (height, width)
    shape = tuple(int(s) for s in shape)
    ignore = set(ignore_labels)
    instances = np.zeros(shape, dtype=np.int32)
    region = np.zeros(shape, dtype=bool)
    skip = np.zeros(shape, dtype=bool)
    has_region = False
    n = 0
    for i, item in enumerate(doc["shapes"]):
        label = item.get("label")
        if label in ignore:
            continue
        where = f"{path.name}, shape {i} ({label!r})"
        if region_label is not None and label == region_label:
            rr, cc = _shape_pixels(item, shape, where)
            region[rr, cc] = True
            has_region = True
        elif unlabelled_label is not None and label == unlabelled_label:
            rr, cc = _shape_pixels(item, shape, where)
            skip[rr, cc] = True
        elif particle_labels is None or label in particle_labels:
            rr, cc = _shape_pixels(item, shape, where)
            n += 1
            instances[rr, cc] = n
    if has_region:
        instances[~region] = UNLABELLED_VALUE
    instances[skip] = UNLABELLED_VALUE
    return instances


def mark_unlabelled(instances, labelled):
    """A sparse instance map: pixels outside ``labelled`` become unlabelled (-1).

    Use it when you outlined every particle in part of an image only (for
    example in napari: paint the particles in a Labels layer, and the checked
    area in a second one): training then learns from that part and skips the
    rest, instead of learning that the particles you did not outline are
    background.

    Parameters
    ----------
    instances : ndarray of int, shape (H, W)
        Instance map: 0 background, k > 0 particle k.
    labelled : ndarray of bool, shape (H, W)
        True where the annotation is complete.

    Returns
    -------
    sparse : ndarray of int32, shape (H, W)
        ``instances`` inside ``labelled``, -1 outside.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.labels import mark_unlabelled
    >>> labels = np.array([[0, 1], [2, 2]])
    >>> mark_unlabelled(labels, np.array([[True, True], [False, True]]))
    array([[ 0,  1],
           [-1,  2]], dtype=int32)
    """
    from ._validation import check_instance_map, check_same_shape

    instances = check_instance_map(instances, "instances", allow_unlabelled=True)
    labelled = np.asarray(labelled)
    if labelled.dtype != bool:
        raise TypeError(f"labelled must be a boolean mask; got dtype {labelled.dtype}. "
                        "Pass, for example, region > 0.")
    check_same_shape(instances, labelled, "instances", "labelled")
    out = instances.astype(np.int32, copy=True)
    out[~labelled] = UNLABELLED_VALUE
    return out
