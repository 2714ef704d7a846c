"""Many micrographs: resumable batches, in one process or on a Dask cluster.

:func:`analyze_images` counts and measures the particles of many images and
returns two tables, one row per particle and one row per image, as
``particleseg analyze`` writes them to ``particles.csv`` and ``summary.csv``.

Every image is analysed by the same function whether it runs in this process
or on a Dask worker (``client=``), so a cluster gives the same tables as a
single process. Each image's results are written to a *part file* as soon as
they exist (written to a temporary name, then renamed, so a part is complete
or absent), and the final tables are assembled from the parts. A run that was
killed is continued with ``resume=True`` (``--resume``): the images whose parts
exist are not analysed again, and the final tables are those of an
uninterrupted run.

Dask is optional: ``pip install "particleseg[dask]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["analyze_images"]

#: The folder, inside the output folder, that holds the part files.
PARTS_FOLDER = "parts"
#: Version of the part-file layout, recorded in ``parts/options.json``.
PARTS_FORMAT = 1
#: The options that change the results; a resumed run must repeat them.
_RESULT_OPTIONS = ("pixel_size", "unit", "scale_bar", "drop_annotations", "threshold",
                   "min_size", "method", "exclude_edge", "tile_size", "inference_scale",
                   "min_confidence")
#: Columns read back as text, whatever they look like ("001" stays "001").
_TEXT_COLUMNS = {"file": str, "unit": str, "pixel_size_from": str, "scale_bar_text": str}

_INSTALL_DASK = 'pip install "particleseg[dask]"'


def require_dask(option="client"):
    """Import ``distributed``, or say how to install it.

    Raises
    ------
    CommandError
        With the pip command to run, when Dask is not installed.
    """
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        from ._cli_common import CommandError

        raise CommandError(
            f"{option} runs the analysis on Dask, which is not installed. Install it with: "
            f"{_INSTALL_DASK}"
        ) from None


# --------------------------------------------------------------------------
# Part files


def _atomic_write(path, data: bytes):
    """Write ``data`` to ``path`` so that the file is either complete or absent."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_csv(source, **kwargs):
    """A CSV written by pandas, read back to the same values (floats exactly)."""
    import pandas as pd

    if int(pd.__version__.split(".")[0]) < 3:  # pandas 3 reads floats exactly by default
        kwargs.setdefault("float_precision", "round_trip")
    return pd.read_csv(source, dtype=_TEXT_COLUMNS, keep_default_na=False, na_values=[""],
                       **kwargs)


def options_record(args, model):
    """The options of a run that change its results, as recorded with its parts."""
    record = {name: getattr(args, name, None) for name in _RESULT_OPTIONS}
    record["model"] = str(model)
    return record


class PartStore:
    """Per-image part files in ``out/parts/``, and the tables assembled from them.

    An image is done when its summary part exists. Its particle part is
    written first, so a process killed between the two leaves the image not
    done (it is analysed again; the leftover is overwritten). Every part is
    written under a temporary name and renamed into place, so a kill never
    leaves a half-written part.

    Parameters
    ----------
    out : path-like
        The output folder.
    options : dict
        The options that change the results (:func:`options_record`).
    resume : bool, default=False
        Keep the parts of an earlier run made with the same options. Without
        it, :meth:`start` removes earlier parts.
    """

    def __init__(self, out, options, resume=False):
        self.out = Path(out)
        self.parts = self.out / PARTS_FOLDER
        self.options = {"format": PARTS_FORMAT, **options}
        self.resumed = False
        self._done = set()
        if resume:
            self._load_earlier()

    def _load_earlier(self):
        record = self.parts / "options.json"
        if not record.is_file():
            return
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        if earlier != json.loads(json.dumps(self.options)):
            from ._cli_common import CommandError

            changed = sorted(
                k for k in set(self.options) | set(earlier or {})
                if (earlier or {}).get(k) != self.options.get(k)
            )
            raise CommandError(
                f"--resume: the results in {self.out} were made with other options "
                f"({', '.join(changed) or 'unreadable record'} differ). Repeat the options "
                "of the first run, or run without --resume to start again."
            )
        self._done = {p.name[: -len(".summary.csv")] for p in self.parts.glob("*.summary.csv")}
        self.resumed = True

    @staticmethod
    def key(name):
        """The part-file name of an image (a hash of its name, as listed in the tables)."""
        return hashlib.sha256(name.encode("utf-8")).hexdigest()[:20]

    def done(self, name):
        """Whether the image named ``name`` has its results in a part."""
        return self.key(name) in self._done

    def start(self):
        """Create the folders; without ``resume``, remove the parts of an earlier run."""
        self.parts.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            for old in self.parts.glob("*.csv"):
                old.unlink()
            self._done = set()
        _atomic_write(self.parts / "options.json",
                      json.dumps(self.options, indent=1).encode("utf-8"))

    def write(self, outcome):
        """Write an analysed image's parts and figures (figures first, summary last)."""
        import pandas as pd

        key = self.key(outcome.name)
        for file_name, data in outcome.figures.items():
            _atomic_write(self.out / file_name, data)
        _atomic_write(self.parts / f"{key}.particles.csv",
                      outcome.table.to_csv(index=False).encode("utf-8"))
        _atomic_write(self.parts / f"{key}.summary.csv",
                      pd.DataFrame([outcome.row]).to_csv(index=False).encode("utf-8"))
        self._done.add(key)

    def summary_rows(self, names):
        """The summary rows of the images done, in the order of ``names``."""
        rows = []
        for name in names:
            path = self.parts / f"{self.key(name)}.summary.csv"
            if self.key(name) in self._done and path.is_file():
                rows.append({k: _plain(v) for k, v in
                             _read_csv(path).to_dict("records")[0].items()})
        return rows

    def assemble(self, names):
        """Write ``particles.csv`` and ``summary.csv`` from the parts of ``names``.

        The particle table is copied one image at a time, so memory does not
        grow with the number of images. Nothing is written when no image is
        done.

        Returns
        -------
        n_particles : int
        summary : list of dict
            The rows of ``summary.csv``.
        """
        import pandas as pd

        rows = self.summary_rows(names)
        if not rows:
            return 0, rows
        done = [n for n in names if self.key(n) in self._done]
        paths = [self.parts / f"{self.key(n)}.particles.csv" for n in done]
        # The union of the columns, in order of appearance, as pandas.concat makes it.
        columns = list(dict.fromkeys(c for p in paths for c in _read_csv(p, nrows=0).columns))
        n_particles = 0
        target = self.out / "particles.csv"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(pd.DataFrame(columns=columns).to_csv(index=False))
            for path in paths:
                table = _read_csv(path)
                if len(table):
                    table.reindex(columns=columns).to_csv(f, header=False, index=False)
                    n_particles += len(table)
        os.replace(tmp, target)
        _atomic_write(self.out / "summary.csv",
                      pd.DataFrame(rows).to_csv(index=False).encode("utf-8"))
        return n_particles, rows


def _plain(value):
    """A numpy scalar as the Python value it holds."""
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------
# Running the analysis: in this process, or on Dask workers


def outcomes_in_process(seg, jobs, args):
    """Analyse ``jobs`` ((source, stem) pairs) here, yielding outcomes in order.

    Each image goes through :func:`~particleseg._cli_analyze.analyze_source`'s
    two halves: reading and the network run in this thread, labelling,
    measuring and drawing in a second thread, while the network predicts the
    next image.
    """
    from ._cli_analyze import finish_source, predict_source

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="particleseg-finish") as pool:
        pending = None
        try:
            for source, stem in jobs:
                predicted = predict_source(seg, source, stem, args)
                if pending is not None:
                    yield pending.result()
                pending = pool.submit(finish_source, seg, predicted, args)
            if pending is not None:
                outcome, pending = pending.result(), None
                yield outcome
        finally:
            if pending is not None:
                pending.cancel()


_MODELS_LOCK = threading.Lock()


def _holder():
    """The object that keeps this worker's models: the Dask worker, or this module."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return sys.modules[__name__]


#: The options of :func:`~particleseg._cli_common.load_for_prediction`.
_MODEL_OPTIONS = ("model", "device", "tile_size", "threads", "inference_scale", "min_confidence")


def worker_segmenter(model, device="auto", tile_size=None, threads=None, inference_scale=None,
                     min_confidence="auto"):
    """The segmenter of ``model`` on this worker, loaded at its first task.

    The models are kept on the Dask worker object, so each worker loads a
    model once, and two workers in one process do not share one. The
    options are those of ``particleseg analyze`` (see
    :func:`~particleseg._cli_common.load_for_prediction`).
    """
    from ._cli_common import load_for_prediction

    options = dict(zip(_MODEL_OPTIONS, (str(model), str(device), tile_size, threads,
                                        inference_scale, min_confidence)))
    key = tuple(options.values())
    holder = _holder()
    with _MODELS_LOCK:
        cache = getattr(holder, "_particleseg_models", None)
        if cache is None:
            cache = {}
            setattr(holder, "_particleseg_models", cache)
        if key not in cache:
            cache[key], _ = load_for_prediction(Namespace(**options))
            holder._particleseg_model_loads = getattr(holder, "_particleseg_model_loads", 0) + 1
        return cache[key]


def _analyze_on_worker(source, stem, args):
    """One image on a Dask worker (the task function)."""
    from ._cli_analyze import Outcome, _reason, analyze_source

    try:
        seg = worker_segmenter(*(getattr(args, name) for name in _MODEL_OPTIONS))
    except Exception as exc:  # noqa: BLE001 - e.g. the model file is not on this worker
        return Outcome(source.name, error=f"cannot load the model on a worker: {_reason(exc)}")
    return analyze_source(seg, source, stem, args)


def outcomes_on_cluster(client, jobs, args, in_flight=None):
    """Analyse ``jobs`` on the workers of ``client``, yielding outcomes as they finish.

    At most ``in_flight`` images (default: twice the worker threads) are
    submitted at a time, so the results never pile up in memory.
    """
    from distributed import as_completed

    from ._cli_analyze import Outcome, _reason

    if in_flight is None:
        in_flight = max(2, 2 * sum(client.nthreads().values()))
    jobs = iter(jobs)
    names = {}
    running = as_completed()

    def submit():
        for source, stem in jobs:
            future = client.submit(_analyze_on_worker, source, stem, args, pure=False,
                                   key=f"particleseg-analyze-{PartStore.key(source.name)}")
            names[future.key] = source.name
            running.add(future)
            return True
        return False

    for _ in range(in_flight):
        if not submit():
            break
    try:
        for future in running:
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died on it, for example
                outcome = Outcome(names[future.key], error=_reason(exc))
            names.pop(future.key, None)
            future.release()
            submit()
            yield outcome
    finally:
        for future in list(running.futures):
            future.cancel()


def start_client(workers=None, scheduler=None, threads=None):
    """A Dask client: on a new local cluster of ``workers`` processes, or at ``scheduler``.

    Returns the client and the local cluster (None for a scheduler).
    """
    require_dask("--workers" if workers else "--scheduler")
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    return Client(cluster), cluster


def stop_client(client, cluster):
    """Close a client and the local cluster it was started with."""
    import logging

    client.close()
    if cluster is not None:
        # Workers busy with torch threads can take a few seconds to stop; the
        # nanny then says it is killing them, which is expected here.
        logger = logging.getLogger("distributed.nanny")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            cluster.close()
        finally:
            logger.setLevel(level)


def describe_cluster(client):
    """"2 Dask workers (2 threads)", for messages."""
    nthreads = client.nthreads()
    n = len(nthreads)
    return f"{n} Dask worker{'s' * (n != 1)} ({sum(nthreads.values())} threads)"


def _threads_per_worker(client):
    """CPU threads for torch on each worker of a local cluster: the cores shared out."""
    n = max(1, sum(client.nthreads().values()))
    return max(1, (os.cpu_count() or 1) // n)


# --------------------------------------------------------------------------
# The Python entry point


def analyze_images(paths, model="emps", *, out=None, resume=False, client=None,
                   pixel_size=None, unit=None, scale_bar=True, drop_annotations=True,
                   threshold=0.5, min_size=4, method="components", exclude_edge=True,
                   inference_scale=None, min_confidence="auto", tile_size=None,
                   n_threads=None, device="auto", errors="warn"):
    """Count and measure the particles of many micrographs, optionally on Dask.

    Every image is read with its calibration, predicted, labelled and measured
    as ``particleseg analyze`` does it; the results are the same whether the
    images are analysed here or on the workers of a Dask ``client``.

    Parameters
    ----------
    paths : list of path-like
        The image files.
    model : str or path-like, default="emps"
        A model file saved by :meth:`ParticleSegmenter.save` or the name of a
        bundled model. Each worker loads it once.
    out : path-like, optional
        A folder for ``particles.csv``, ``summary.csv`` and the part files of
        every image. Without it, the parts go to a temporary folder.
    resume : bool, default=False
        Continue an interrupted run in ``out``: the images with results there
        are not analysed again. The options must be those of the first run.
    client : distributed.Client, optional
        Analyse the images on this Dask cluster; at most twice as many images
        as worker threads are in flight, and their results are written as
        they arrive. The workers must see the image (and model) files.
    pixel_size : float, optional
        Size of one pixel in ``unit`` for every image; default: the pixel
        size each file records, else the one its scale bar gives, else sizes
        in pixels.
    unit : str, optional
        The unit of ``pixel_size`` (default "nm").
    scale_bar : bool, default=True
        Read the scale bar of images whose file records no pixel size
        (see :func:`particleseg.scalebar.calibrate`).
    drop_annotations : bool, default=True
        Drop particles inside figure annotations (scale bar, labels); the
        summary counts them in ``annotations_removed``.
    threshold : float, default=0.5
        Particle probability from which a pixel is a particle core.
    min_size : int, default=4
        Smallest particle area kept, in pixels.
    method : {"components", "watershed"}, default="components"
        How touching particles are separated (see :func:`label_particles`).
    exclude_edge : bool, default=True
        Leave particles that touch the image edge out of the summary statistics.
    inference_scale : float or "auto", optional
        Scale at which the network sees each image; default: ``"auto"`` for
        models that support it, else the model's own.
    min_confidence : float, "auto" or None, default="auto"
        Drop particles whose confidence is below this; "auto": the model's
        own threshold; None keeps every particle.
    tile_size : int, optional
        Tile side for large images (0 for whole images); default: the model's.
    n_threads : int, optional
        CPU threads for the network per process (on a local cluster, the
        cores shared out among the workers).
    device : str, default="auto"
        Where the network runs.
    errors : {"warn", "raise"}, default="warn"
        An image that cannot be analysed is skipped with a warning, or raises
        a ``RuntimeError``.

    Returns
    -------
    particles : pandas.DataFrame
        One row per particle, with a ``file`` column (``particles.csv``).
    summary : pandas.DataFrame
        One row per analysed image (``summary.csv``).

    See Also
    --------
    particleseg.mosaic.analyze_mosaic : One image larger than memory.

    Examples
    --------
    >>> from particleseg.batch import analyze_images
    >>> particles, summary = analyze_images(["a.png", "b.tif"])  # doctest: +SKIP

    On a local cluster of two worker processes:

    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> particles, summary = analyze_images(paths, client=client)  # doctest: +SKIP
    """
    import tempfile
    import warnings

    import pandas as pd

    from ._cli_analyze import _Source, _model_key, _unique_stems
    from ._cli_common import load_for_prediction

    if errors not in ("warn", "raise"):
        raise ValueError(f'errors must be "warn" or "raise"; got {errors!r}.')
    if unit is not None and pixel_size is None:
        raise ValueError(f"unit={unit!r} is the unit of pixel_size; pass pixel_size as well.")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    sources = [_Source(str(p), Path(p)) for p in paths]
    if client is not None:
        require_dask("client")
        if n_threads is None:
            n_threads = _threads_per_worker(client)
    args = Namespace(model=str(model), device=device, tile_size=tile_size, threads=n_threads,
                     inference_scale=inference_scale, min_confidence=min_confidence,
                     pixel_size=pixel_size, unit=unit, scale_bar=scale_bar,
                     drop_annotations=drop_annotations, threshold=threshold,
                     min_size=min_size, method=method, exclude_edge=exclude_edge, plots=False)
    with tempfile.TemporaryDirectory(prefix="particleseg-") as scratch:
        folder = Path(out) if out is not None else Path(scratch)
        store = PartStore(folder, options_record(args, _model_key(str(model))), resume=resume)
        jobs = [(s, stem) for s, stem in zip(sources, _unique_stems(sources))
                if not store.done(s.name)]
        if jobs and client is None:
            seg, _ = load_for_prediction(args)
        store.start()
        if jobs:
            outcomes = (outcomes_on_cluster(client, jobs, args) if client is not None
                        else outcomes_in_process(seg, jobs, args))
            try:
                for outcome in outcomes:
                    if outcome.error is not None:
                        message = f"skipped {outcome.name}: {outcome.error}"
                        if errors == "raise":
                            raise RuntimeError(message)
                        warnings.warn(message, UserWarning, stacklevel=2)
                        continue
                    store.write(outcome)
            finally:
                outcomes.close()
        names = [s.name for s in sources]
        store.assemble(names)
        if not store.summary_rows(names):
            return pd.DataFrame(), pd.DataFrame()
        particles = _read_csv(folder / "particles.csv")
        summary = _read_csv(folder / "summary.csv")
    return particles, summary
