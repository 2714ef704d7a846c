"""Images larger than memory: prediction, labelling and measurement in chunks with Dask.

A stitched mosaic of 50,000 x 50,000 pixels does not fit in memory, and need
not: :func:`open_mosaic` reads a Zarr array or a TIFF lazily as a Dask array
of chunks; :func:`predict_mosaic` predicts every chunk with a margin of its
neighbours (``dask.array.map_overlap``), so chunk borders leave no seam, and
at one inference scale for the whole mosaic (:func:`mosaic_scale`: a model
at ``"auto"`` chooses it once, on the mosaic's centre);
:func:`label_mosaic` labels the particles so that a particle cut by a chunk
border keeps one label (the cores are labelled chunk by chunk and the labels
that touch across chunk faces are merged, as in dask-image's
:func:`dask_image.ndmeasure.label`, with every step written to Zarr so that a
worker never holds more than a chunk);
:func:`measure_mosaic` measures every particle once, on a crop around it.
:func:`analyze_mosaic` does all of it and returns the table of
:func:`particleseg.measure.measure_particles`.

The labels and the table are those of :func:`label_particles` and
:func:`measure_particles` on the whole image, with the particles in the same
order, provided that no particle's border lies further than ``grow_depth``
pixels from its core, and that no particle is larger than a chunk plus its
margin in memory. Each task holds one chunk with its margins, so the memory of
a worker is bounded by the chunk size, not by the image.

Particles are not scored for confidence here: the table has no ``confidence``
column and the model's ``min_confidence`` is not applied (the counts are
those of ``label_particles(seg.predict(image))``, not of
``seg.predict_particles(image)``).

Dask and Zarr are optional: ``pip install "particleseg[dask]"``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["open_mosaic", "mosaic_scale", "predict_mosaic", "label_mosaic", "measure_mosaic",
           "analyze_mosaic"]

#: Default chunk side, in pixels.
DEFAULT_CHUNK = 1024
#: Default distance, in pixels, over which labels grow from the cores over the border.
DEFAULT_GROW_DEPTH = 32


def _dask():
    try:
        import dask.array as da
        import zarr  # noqa: F401
    except ImportError:
        raise ImportError(
            'Mosaics need Dask and Zarr: pip install "particleseg[dask]"'
        ) from None
    return da


class _TiffFile:
    """A TIFF page read window by window: an array-like that pickles as its path."""

    def __init__(self, path):
        import tifffile

        self.path = str(path)
        with tifffile.TiffFile(self.path) as tif:
            page = tif.series[0]
            self.shape, self.dtype = tuple(page.shape), np.dtype(page.dtype)
        self.ndim = len(self.shape)
        self._array = None

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state):
        self.__dict__.update(state, ndim=len(state["shape"]), _array=None)

    def __getitem__(self, index):
        import tifffile

        if self._array is None:
            try:
                self._array = tifffile.memmap(self.path, mode="r")
            except ValueError:  # compressed or tiled: read through tifffile's Zarr store
                self._array = False
        if self._array is not False:
            return np.array(self._array[index])
        import zarr

        # Opened and closed for every window, so no file handle outlives a task.
        with tifffile.TiffFile(self.path) as tif, tif.aszarr() as store:
            return np.asarray(zarr.open(store, mode="r")[index])


def open_mosaic(source, chunks=DEFAULT_CHUNK):
    """A large image as a Dask array, read chunk by chunk when needed.

    Parameters
    ----------
    source : path-like, ndarray or dask array
        A Zarr array (a ``.zarr`` folder), a TIFF file (memory-mapped when
        uncompressed, else read through tifffile's Zarr interface), or an
        array already in memory.
    chunks : int or tuple of int, default=1024
        Chunk side (or ``(rows, columns)``), in pixels.

    Returns
    -------
    image : dask.array.Array, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.mosaic import open_mosaic
    >>> open_mosaic(np.zeros((3000, 2000), np.uint8)).chunks  # doctest: +SKIP
    ((1024, 1024, 952), (1024, 976))
    """
    da = _dask()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"No such mosaic: {path}. Check the path.")
        if path.suffix.lower() in (".tif", ".tiff"):
            array = da.from_array(_TiffFile(path), chunks=chunks, asarray=False)
        elif path.is_dir() or path.suffix.lower() == ".zarr":
            array = da.from_zarr(str(path)).rechunk(chunks)
        else:
            raise ValueError(
                f"source must be a Zarr folder or a TIFF file; got {path}. Convert other "
                "formats to Zarr (zarr.save) or TIFF (tifffile.imwrite) first."
            )
    else:
        array = da.asarray(source).rechunk(chunks)
    if array.ndim != 2:
        raise ValueError(
            f"a mosaic must be a 2-D grey image (H, W); got shape {array.shape}. Convert an "
            "RGB mosaic to grey first."
        )
    return array


def _segmenter(model, inference_scale=None):
    """A fitted segmenter: the one given, or the one this worker loaded for a name or path.

    With ``inference_scale``, a copy that predicts at that scale (the model's
    weights are shared, not copied).
    """
    if isinstance(model, (str, os.PathLike)):
        from .batch import worker_segmenter

        return worker_segmenter(str(model), "auto", inference_scale=inference_scale)
    if inference_scale is not None and hasattr(model, "inference_scale"):
        import copy

        model = copy.copy(model)
        model.inference_scale = inference_scale
    return model


#: Largest side of the window of a mosaic on which ``inference_scale="auto"`` is chosen.
SCALE_WINDOW = 2048


def mosaic_scale(model, image, window=SCALE_WINDOW):
    """The inference scale at which every chunk of a mosaic is predicted.

    A model at ``inference_scale="auto"`` chooses a scale per image; chunks
    of one mosaic must share one, or a particle cut by a chunk border would
    be seen at two sizes. This chooses it once, as ``"auto"`` does for an
    image, on the central ``window`` x ``window`` pixels of the mosaic. Other
    models keep their own scale.

    Parameters
    ----------
    model : ParticleSegmenter, str or path-like
        As for :func:`predict_mosaic`.
    image : dask.array.Array, shape (H, W)
        The mosaic.
    window : int, default=2048
        Side of the central window that is predicted to choose the scale.

    Returns
    -------
    scale : float or None
        None for a model without an ``inference_scale``.

    Examples
    --------
    >>> from particleseg.mosaic import mosaic_scale, open_mosaic
    >>> mosaic_scale("emps", open_mosaic("mosaic.zarr"))  # doctest: +SKIP
    1.4
    """
    seg = _segmenter(model)
    scale = getattr(seg, "inference_scale", None)
    if scale != "auto":
        return scale
    height, width = image.shape
    top, left = max(0, (height - window) // 2), max(0, (width - window) // 2)
    crop = np.asarray(image[top:top + window, left:left + window])
    probe = _segmenter(model, "auto")
    probe.predict_proba(crop)
    return float(probe.last_scales_[0])


def _predict_block(block, model, threshold, inference_scale):
    seg = _segmenter(model, inference_scale)
    return seg._decide(seg.predict_proba(np.asarray(block)), threshold=threshold)


def predict_mosaic(model, image, *, overlap=None, threshold=0.5, inference_scale=None):
    """The class map of a large image, chunk by chunk.

    Every chunk is predicted with ``overlap`` pixels of its neighbours around
    it, which are then dropped, so the network sees the context of the
    chunk's edges. Every chunk is predicted at the same inference scale.

    Parameters
    ----------
    model : ParticleSegmenter, str or path-like
        A fitted segmenter, or a model file or bundled model name that each
        worker loads once (best on a distributed cluster: nothing large is
        sent with the tasks).
    image : dask.array.Array
        The image, e.g. from :func:`open_mosaic`.
    overlap : int, optional
        Margin in pixels; default: the segmenter's ``tile_overlap``.
    threshold : float, default=0.5
        Particle probability from which a pixel is a particle core.
    inference_scale : float, optional
        The scale of every chunk; default: :func:`mosaic_scale` (the model's
        own, or for ``"auto"`` the one chosen on the mosaic's centre).

    Returns
    -------
    classes : dask.array.Array of uint8, shape (H, W)
        0 background, 1 particle, 2 border, as :meth:`ParticleSegmenter.predict`.

    Examples
    --------
    >>> from particleseg import pretrained
    >>> from particleseg.mosaic import open_mosaic, predict_mosaic
    >>> image = open_mosaic("mosaic.zarr", chunks=1024)  # doctest: +SKIP
    >>> classes = predict_mosaic("emps", image)  # doctest: +SKIP
    >>> classes.to_zarr("classes.zarr")  # doctest: +SKIP
    """
    _dask()
    if inference_scale is None:
        inference_scale = mosaic_scale(model, image)
    elif inference_scale == "auto":
        raise ValueError(
            'inference_scale must be a number for a mosaic; got "auto". Leave it out to '
            "choose one scale for the whole mosaic (mosaic_scale)."
        )
    if overlap is None:
        overlap = int(getattr(_segmenter(model), "tile_overlap", 128))
    overlap = min(int(overlap), *(min(c) for c in image.chunks))
    # meta: dask would otherwise run the network on an empty block to learn the output type.
    return image.map_overlap(_predict_block, depth=overlap, boundary="none", trim=True,
                             dtype=np.uint8, meta=np.empty((0, 0), dtype=np.uint8),
                             model=model, threshold=threshold, inference_scale=inference_scale)


# --------------------------------------------------------------------------
# Labels


def _grow_block(core_labels, classes):
    """Grow core labels over the foreground, as label_particles does."""
    from .postprocessing import grow_labels

    if not core_labels.any():
        return core_labels.astype(np.int32)
    return grow_labels(core_labels.astype(np.int32), classes > 0)


def _first_pixels(core, offset, width):
    """Per core label in a block: the raster index of its first pixel in the image."""
    rows, cols = np.nonzero(core)
    owners = core[rows, cols]
    first = (rows + offset[0]).astype(np.int64) * width + (cols + offset[1])
    order = np.lexsort((first, owners))
    owners, first = owners[order], first[order]
    keep = np.ones(len(owners), dtype=bool)
    keep[1:] = owners[1:] != owners[:-1]
    return owners[keep], first[keep]


def _areas(grown, offset, width):
    """Per label in a block: its number of pixels."""
    return np.unique(grown[grown > 0], return_counts=True)


def _per_block(function, array, how):
    """Apply ``function`` to every block and combine its (labels, values) with ``how``.

    Returns a pandas Series indexed by label, sorted by label.
    """
    import dask
    import pandas as pd

    row_edges = np.cumsum((0,) + array.chunks[0])
    col_edges = np.cumsum((0,) + array.chunks[1])
    blocks = array.to_delayed()
    tasks = [dask.delayed(function)(blocks[i, j], (row_edges[i], col_edges[j]), array.shape[1])
             for i in range(blocks.shape[0]) for j in range(blocks.shape[1])]
    pairs = [(k, v) for k, v in dask.compute(*tasks) if len(k)]
    if not pairs:
        return pd.Series([], dtype=np.int64)
    labels = np.concatenate([k for k, _ in pairs])
    values = np.concatenate([v for _, v in pairs])
    return pd.Series(values, index=labels).groupby(level=0).agg(how)


def _mapping(index, values, size):
    """An array that maps each label in ``index`` to ``values`` (others to 0)."""
    mapping = np.zeros(size, dtype=np.int32)
    mapping[np.asarray(index, dtype=np.int64)] = values
    return mapping


def label_mosaic(classes, *, min_size=4, connectivity=1, grow_depth=DEFAULT_GROW_DEPTH,
                 workdir=None):
    """Label the particles of a large class map, consistently across chunks.

    The particle cores are labelled as connected components over the whole
    map (chunk by chunk, then merged across chunk borders: a core cut by a
    chunk border keeps one label) and numbered in the raster order of their first pixel,
    as :func:`particleseg.label_particles` numbers them; each label is grown
    over the border pixels next to it in overlapping blocks
    (:func:`particleseg.postprocessing.grow_labels`), particles smaller than
    ``min_size`` are dropped and the labels are renumbered 1..n, so the result
    equals ``label_particles(classes)`` on the whole map.

    Parameters
    ----------
    classes : dask.array.Array of int, shape (H, W)
        A class map (0 background, 1 particle, 2 border), e.g. from
        :func:`predict_mosaic`.
    min_size : int, default=4
        Smallest particle area, in pixels, that is kept (after growing).
    connectivity : {1, 2}, default=1
        Pixel connectivity of a core.
    grow_depth : int, default=32
        Margin of the blocks in which labels grow over the border: exact when
        every border pixel lies within this many pixels of its core.
    workdir : path-like, optional
        Folder for the label arrays (Zarr); default: a temporary folder,
        removed when Python exits. On a cluster of several machines, give a
        folder they share.

    Returns
    -------
    labels : dask.array.Array of int32, shape (H, W)
        0 background, 1..n particles, backed by a Zarr array in ``workdir``.
    n : int
        The number of particles.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from particleseg.mosaic import label_mosaic
    >>> classes = np.zeros((8, 8), dtype=np.uint8)
    >>> classes[1:7, 2:6] = 1  # one particle across the four chunks
    >>> labels, n = label_mosaic(da.from_array(classes, chunks=4))
    >>> n
    1
    """
    import dask

    da = _dask()

    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2; got {connectivity!r}.")
    workdir = Path(workdir) if workdir is not None else _scratch_folder()
    workdir.mkdir(parents=True, exist_ok=True)
    classes = da.asarray(classes)
    core, n_cores = _label_cores(classes, connectivity, workdir)
    if not n_cores:
        empty = da.zeros(classes.shape, dtype=np.int32, chunks=classes.chunks)
        return empty, 0

    depth = min(int(grow_depth), *(min(c) for c in classes.chunks))
    grown = da.map_overlap(_grow_block, core, classes, depth=depth, boundary="none",
                           trim=True, dtype=np.int32)
    grown = _store(grown, workdir / "grown.zarr")

    areas = _per_block(_areas, grown, "sum")
    kept = areas.index[areas.to_numpy() >= min_size]
    final = _mapping(kept, np.arange(1, len(kept) + 1), n_cores + 1)
    labels = _store(grown.map_blocks(_relabel, mapping=dask.delayed(final, pure=True),
                                     meta=np.array((), dtype=np.int32)),
                    workdir / "labels.zarr")
    for step in ("local.zarr", "cores.zarr", "grown.zarr"):
        shutil.rmtree(workdir / step, ignore_errors=True)
    return labels, len(kept)


def _label_block(block, connectivity):
    """Connected components of the particle cores of one block, 1..n in the block."""
    from scipy import ndimage as ndi

    structure = ndi.generate_binary_structure(2, connectivity)
    return ndi.label(block == 1, structure=structure)[0].astype(np.int32)


def _face_pairs(strip, before, after, connectivity):
    """Pairs of global labels that touch across one chunk border.

    ``strip`` holds the two lines of pixels on either side of the border
    (shape (2, n)), ``before`` and ``after`` the label offset of the block
    each of their pixels belongs to.
    """
    a = np.where(strip[0] > 0, strip[0] + before, 0)
    b = np.where(strip[1] > 0, strip[1] + after, 0)
    n = len(a)
    pairs = []
    for shift in ((0,) if connectivity == 1 else (-1, 0, 1)):
        x = a[max(0, -shift):n - max(0, shift)]
        y = b[max(0, shift):n - max(0, -shift)]
        touching = (x > 0) & (y > 0)
        pairs.append(np.column_stack([x[touching], y[touching]]))
    return np.unique(np.concatenate(pairs), axis=0)


def _globalise(block, mapping, offsets, block_id=None):
    """Block labels to their final number: ``mapping[label + the block's offset]``."""
    offset = offsets[block_id[0], block_id[1]]
    return np.where(block > 0, mapping[block.astype(np.int64) + offset], 0).astype(np.int32)


def _label_cores(classes, connectivity, workdir):
    """The particle cores of a class map, labelled across chunk borders.

    As :func:`dask_image.ndmeasure.label` does: every chunk is labelled on
    its own, the labels that touch across chunk borders are joined as the
    connected components of a graph, and the chunks are relabelled. Here
    the chunk labels are written to Zarr and read back for each step, so a
    worker holds one chunk (or one line of pixels along a border) at a time,
    whatever the size of the mosaic. The cores are numbered 1..n in the
    raster order of their first pixel, as :func:`particleseg.label_particles`
    numbers them.

    Returns ``(cores, n)``: a Dask array backed by Zarr, and the number of cores.
    """
    import dask
    from scipy import sparse

    da = _dask()
    local = _store(classes.map_blocks(_label_block, connectivity=connectivity, dtype=np.int32),
                   workdir / "local.zarr")
    row_edges = np.cumsum((0,) + local.chunks[0])
    col_edges = np.cumsum((0,) + local.chunks[1])
    blocks = local.to_delayed()
    shape = blocks.shape
    # A block's labels are 1..n: its count is the number of labels found in it.
    found = dask.compute(*[dask.delayed(_first_pixels)(blocks[i, j],
                                                       (row_edges[i], col_edges[j]),
                                                       local.shape[1])
                           for i in range(shape[0]) for j in range(shape[1])])
    counts = np.array([len(labels) for labels, _ in found], dtype=np.int64)
    offsets = (np.cumsum(counts) - counts).reshape(shape)
    total = int(counts.sum())
    if total == 0:
        return None, 0

    # Labels that touch across a border between two rows, or two columns, of chunks.
    tasks = []
    for i in range(1, shape[0]):
        y = row_edges[i]
        tasks.append(dask.delayed(_face_pairs)(
            local[y - 1:y + 1, :], np.repeat(offsets[i - 1], local.chunks[1]),
            np.repeat(offsets[i], local.chunks[1]), connectivity))
    for j in range(1, shape[1]):
        x = col_edges[j]
        tasks.append(dask.delayed(_face_pairs)(
            local[:, x - 1:x + 1].T, np.repeat(offsets[:, j - 1], local.chunks[0]),
            np.repeat(offsets[:, j], local.chunks[0]), connectivity))
    pairs = [p for p in dask.compute(*tasks) if len(p)]
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                              shape=(total + 1, total + 1))
    _, component = sparse.csgraph.connected_components(graph, directed=False)

    # Each core's first pixel is the first of its pieces; number the cores in that order.
    ids = np.concatenate([labels + offset for (labels, _), offset
                          in zip(found, offsets.ravel())]).astype(np.int64)
    firsts = np.concatenate([first for _, first in found])
    piece_component = component[ids]
    first_of = np.full(component.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first_of, piece_component, firsts)
    present = np.flatnonzero(first_of < np.iinfo(np.int64).max)
    rank = np.zeros(component.max() + 1, dtype=np.int64)
    rank[present[np.argsort(first_of[present], kind="stable")]] = np.arange(1, len(present) + 1)
    mapping = np.zeros(total + 1, dtype=np.int64)
    mapping[ids] = rank[piece_component]
    # A delayed mapping travels to each worker once, not inside every task.
    cores = _store(local.map_blocks(_globalise, mapping=dask.delayed(mapping, pure=True),
                                    offsets=offsets, meta=np.array((), dtype=np.int32)),
                   workdir / "cores.zarr")
    return cores, len(present)


def _scratch_folder():
    """A temporary folder, removed when Python exits."""
    import atexit

    path = tempfile.mkdtemp(prefix="particleseg-mosaic-")
    atexit.register(shutil.rmtree, path, True)
    return Path(path)


def _relabel(block, mapping):
    return mapping[block]


def _store(array, path):
    """Compute ``array`` into a Zarr folder and read it back lazily."""
    da = _dask()
    da.to_zarr(array, str(path), overwrite=True)
    return da.from_zarr(str(path))


def _store_by_rows(array, path):
    """As :func:`_store`, computing one row of chunks at a time.

    Reading and slicing chunks is cheap and the network is slow: given the
    whole map at once, the scheduler may read and cut margins far ahead of
    the network and hold them. One row of chunks at a time bounds what is
    in flight by the mosaic's width.
    """
    da = _dask()
    import zarr

    target = zarr.open_array(str(path), mode="w", shape=array.shape, dtype=array.dtype,
                             chunks=(array.chunks[0][0], array.chunks[1][0]))
    top = 0
    for height in array.chunks[0]:
        rows = slice(top, top + height)
        # Rows of whole chunks: no two tasks write to one Zarr chunk.
        da.store(array[rows], target, regions=(rows, slice(None)), lock=False)
        top += height
    return da.from_zarr(str(path))


# --------------------------------------------------------------------------
# Measurements


def _block_boxes(labels, offset, width):
    """Bounding box (global, inclusive) of every label in a block: (labels, boxes)."""
    rows, cols = np.nonzero(labels)
    values = labels[rows, cols]
    order = np.argsort(values, kind="stable")
    values, rows, cols = values[order], rows[order] + offset[0], cols[order] + offset[1]
    if not len(values):
        return values, np.zeros((0, 4), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    boxes = np.column_stack([np.minimum.reduceat(rows, starts), np.maximum.reduceat(rows, starts),
                             np.minimum.reduceat(cols, starts), np.maximum.reduceat(cols, starts)])
    return values[starts], boxes


def _measure_group(crop, pixels, offset, wanted, pixel_size, unit):
    """Measure the particles ``wanted`` in a window of the mosaic at ``offset``."""
    from .measure import measure_particles

    top, left = offset
    crop = np.where(np.isin(crop, wanted), crop, 0)
    table = measure_particles(crop, pixels, pixel_size=pixel_size, unit=unit)
    table["centroid_row_px"] += top
    table["centroid_column_px"] += left
    return table


def measure_mosaic(labels, image=None, pixel_size=None, unit="px"):
    """Measure every particle of a large instance map once, into one table.

    Each particle is measured on a crop of the map around the chunk in which
    its bounding box starts, so a particle cut by chunk borders is measured
    whole, once.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (H, W)
        Instance map, e.g. from :func:`label_mosaic`.
    image : dask.array.Array, optional
        The mosaic, for the ``mean_intensity`` column.
    pixel_size : float, optional
        Size of one pixel in ``unit``.
    unit : str, default="px"
        Unit of ``pixel_size``.

    Returns
    -------
    table : pandas.DataFrame
        The table of :func:`particleseg.measure.measure_particles` on the
        whole map, one row per particle, sorted by label.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from particleseg.mosaic import measure_mosaic
    >>> labels = np.zeros((8, 8), dtype=np.int32)
    >>> labels[1:7, 2:6] = 1  # one particle across the four chunks
    >>> table = measure_mosaic(da.from_array(labels, chunks=4))
    >>> table["area_px2"].tolist()
    [24.0]
    """
    da = _dask()
    import dask
    import pandas as pd

    from .measure import _columns, _empty_table

    labels = da.asarray(labels)
    columns = _columns(unit, image is not None)
    row_edges = np.cumsum((0,) + labels.chunks[0])
    col_edges = np.cumsum((0,) + labels.chunks[1])
    blocks = labels.to_delayed()
    tasks = [dask.delayed(_block_boxes)(blocks[i, j], (row_edges[i], col_edges[j]),
                                        labels.shape[1])
             for i in range(blocks.shape[0]) for j in range(blocks.shape[1])]
    found = [(k, b) for k, b in dask.compute(*tasks) if len(k)]
    if not found:
        return _empty_table(columns)
    table = pd.DataFrame(np.concatenate([b for _, b in found]), columns=["r0", "r1", "c0", "c1"],
                         index=np.concatenate([k for k, _ in found]))
    table = table.groupby(level=0).agg({"r0": "min", "r1": "max", "c0": "min", "c1": "max"})
    table["block_row"] = np.searchsorted(row_edges, table["r0"], side="right") - 1
    table["block_col"] = np.searchsorted(col_edges, table["c0"], side="right") - 1
    tasks = []
    for _, group in table.groupby(["block_row", "block_col"]):
        top, bottom = int(group["r0"].min()), int(group["r1"].max()) + 1
        left, right = int(group["c0"].min()), int(group["c1"].max()) + 1
        # Only the window is read (dask computes the slices, not the arrays).
        tasks.append(dask.delayed(_measure_group)(
            labels[top:bottom, left:right],
            None if image is None else image[top:bottom, left:right],
            (top, left), group.index.to_numpy(), pixel_size, unit))
    result = pd.concat(dask.compute(*tasks), ignore_index=True)
    result = result.sort_values("label", ignore_index=True)
    height, width = labels.shape
    bounds = table.loc[result["label"].to_numpy()]
    result["touches_edge"] = ((bounds["r0"].to_numpy() == 0) | (bounds["c0"].to_numpy() == 0)
                              | (bounds["r1"].to_numpy() == height - 1)
                              | (bounds["c1"].to_numpy() == width - 1))
    return result[columns]


def analyze_mosaic(source, model="emps", *, chunks=DEFAULT_CHUNK, overlap=None,
                   pixel_size=None, unit="px", threshold=0.5, min_size=4,
                   inference_scale=None, grow_depth=DEFAULT_GROW_DEPTH, workdir=None):
    """Predict, label and measure the particles of an image larger than memory.

    Runs on Dask's current scheduler: the threads of this process, or the
    workers of a ``distributed.Client`` when one is active.

    Parameters
    ----------
    source : path-like, ndarray or dask array
        The mosaic (see :func:`open_mosaic`).
    model : ParticleSegmenter, str or path-like, default="emps"
        A fitted segmenter, or a model file or bundled name that each worker
        loads once.
    chunks : int, default=1024
        Chunk side in pixels: the memory of a task grows with its square.
    overlap : int, optional
        Prediction margin around every chunk (default: the model's tile overlap).
    pixel_size : float, optional
        Size of one pixel in ``unit``.
    unit : str, default="px"
        Unit of ``pixel_size``.
    threshold : float, default=0.5
        Particle probability from which a pixel is a particle core.
    min_size : int, default=4
        Smallest particle area kept, in pixels.
    inference_scale : float, optional
        The scale at which the network sees every chunk; default: the
        model's, or for ``"auto"`` one scale chosen on the mosaic's centre
        (:func:`mosaic_scale`).
    grow_depth : int, default=32
        See :func:`label_mosaic`.
    workdir : path-like, optional
        Folder for the intermediate class and label maps (Zarr); default: a
        temporary folder, removed at the end.

    Returns
    -------
    table : pandas.DataFrame
        One row per particle, as :func:`particleseg.measure.measure_particles`.

    Examples
    --------
    >>> from particleseg.mosaic import analyze_mosaic
    >>> table = analyze_mosaic("mosaic.zarr", pixel_size=0.8, unit="nm")  # doctest: +SKIP
    """
    image = open_mosaic(source, chunks)
    scratch = None
    if workdir is None:
        scratch = tempfile.mkdtemp(prefix="particleseg-mosaic-")
        workdir = scratch
    try:
        classes = _store_by_rows(predict_mosaic(model, image, overlap=overlap,
                                                threshold=threshold,
                                                inference_scale=inference_scale),
                                 Path(workdir) / "classes.zarr")
        labels, _ = label_mosaic(classes, min_size=min_size, grow_depth=grow_depth,
                                 workdir=workdir)
        return measure_mosaic(labels, image, pixel_size=pixel_size, unit=unit)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
