"""``particleseg analyze``: count and size the particles in micrographs.

For every image: read it with its calibration, predict, label the particles,
measure them, and draw an overlay and a size histogram. Unreadable images are
reported and skipped; the results of the others are always written.

One image is analysed by :func:`analyze_source` (read, predict, finish), which
the single-process loop and the Dask workers of :mod:`particleseg.batch` both
call; every image's results go to a part file as soon as they exist, and the
CSV files are assembled from the parts (see :class:`particleseg.batch.PartStore`).
"""

from __future__ import annotations

import argparse
import logging
import io
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    format_table,
    label_prediction,
    load_for_prediction,
    predict_image,
    progress,
    resolve_model,
    say,
)

#: File name endings searched for in folders (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dm3", ".dm4")
#: Pixel size of the built-in sample micrograph, in nm.
SAMPLE_PIXEL_SIZE = 0.5


@dataclass
class _Source:
    """One image to analyse: a file, or the built-in sample (path None)."""

    name: str  # as shown in the tables: the path as found, or "sample"
    path: Path | None


def find_images(inputs, recursive=False, exclude=None):
    """The image files named by ``inputs`` (files and folders), without duplicates.

    Files given by name are taken whatever their extension; folders are
    searched for :data:`IMAGE_SUFFIXES` (hidden files, such as macOS ``._``
    files, are left out, as is anything inside ``exclude``, the output
    folder). Returns the files and the folders in which nothing was found.
    """
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise CommandError(
            "No such file or folder: " + ", ".join(missing) + ". Check the path(s)."
        )
    exclude = Path(exclude).resolve() if exclude is not None else None
    files, seen, empty = [], set(), []
    for given in map(Path, inputs):
        if given.is_dir():
            # The output folder is left out, unless it is the folder asked for.
            skip = exclude if exclude is not None and not given.resolve().is_relative_to(
                exclude) else None
            candidates = given.rglob("*") if recursive else given.glob("*")
            found = sorted(
                f for f in candidates
                if f.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(given).parts)
                and f.is_file()
                and not (skip is not None and f.resolve().is_relative_to(skip))
            )
            if not found:
                empty.append(given)
        else:
            found = [given]
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, empty


def _unique_stems(sources):
    """A file-name stem per source for its figures; repeated stems get -2, -3..."""
    used, stems = set(), []
    for source in sources:
        base = source.path.stem if source.path is not None else source.name
        stem, k = base, 1
        while stem in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        stems.append(stem)
    return stems


def _read(source):
    """(image, pixel_size, unit, warnings) of a source."""
    if source.path is None:
        from .datasets import load_sample

        image, _ = load_sample()
        return image, SAMPLE_PIXEL_SIZE, "nm", []
    from .io import imread

    # Warnings of the readers become one-line messages; tifffile's log records
    # too, unless the file cannot be read at all (the error then says why).
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tifffile")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            micrograph = imread(source.path)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    notes = [str(w.message) for w in caught]
    notes += [f"{source.name}: {r.getMessage()}" for r in records if r.levelno >= logging.WARNING]
    return micrograph.image, micrograph.pixel_size, micrograph.unit, notes


def _calibration(source, image, pixel_size, unit, args):
    """The :class:`~particleseg.scalebar.Calibration` used to measure a source.

    In order: --pixel-size, the file's metadata, the scale bar in the image
    (unless --no-scale-bar).
    """
    from .scalebar import Calibration, calibrate

    if source.path is None and args.pixel_size is None:
        return Calibration(pixel_size, unit, "sample")
    return calibrate(image, pixel_size=args.pixel_size, unit=args.unit or "nm",
                     metadata=(pixel_size, unit), scale_bar=args.scale_bar)


def _scale_bar_columns(calibration, n_removed):
    bar = calibration.scale_bar
    return {
        "scale_bar_text": bar.text if bar is not None and bar.text is not None else "",
        "scale_bar_length_px": round(bar.length_px, 2) if bar is not None else math.nan,
        "scale_bar_confidence": round(bar.confidence, 3) if bar is not None else math.nan,
        "annotations_removed": n_removed,
    }


def _summary_row(source, table, pixel_size, unit, origin, exclude_edge):
    from .measure import size_distribution

    dist = size_distribution(table, exclude_edge=exclude_edge)
    column = f"equivalent_diameter_{unit}"
    return {
        "file": source.name,
        "count": len(table),
        "count_in_statistics": dist.count,
        f"mean_{column}": dist.mean,
        f"median_{column}": dist.median,
        f"std_{column}": dist.std,
        f"d10_{column}": dist.d10,
        f"d50_{column}": dist.d50,
        f"d90_{column}": dist.d90,
        "coefficient_of_variation": dist.coefficient_of_variation,
        "pixel_size": pixel_size if pixel_size is not None else math.nan,
        "unit": unit,
        "pixel_size_from": origin,
        "edge_particles_excluded": bool(exclude_edge),
    }


def _save_overlay(path, image, labels, pixel_size, unit, scale_bar=None):
    """Draw the overlay into ``path``, a file name or a binary file object (PNG)."""
    from matplotlib.figure import Figure

    from .plotting import plot_overlay, plot_scale_bar

    height, width = image.shape[:2]
    scale = 6.0 / max(height, width)
    # A Figure without pyplot: no backend to choose, nothing left open.
    fig = Figure(figsize=(width * scale, height * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    # With a scale bar read from the image, its outline replaces a drawn one.
    drawn = scale_bar is None or not scale_bar.calibrated
    plot_overlay(image, labels, ax=ax, pixel_size=pixel_size if drawn else None, unit=unit)
    if scale_bar is not None:
        plot_scale_bar(scale_bar, ax=ax)
    fig.savefig(path, dpi=min(max(150, max(height, width) / 6), 300), format="png")


def _save_histogram(path, table, name, exclude_edge):
    from matplotlib.figure import Figure

    from .plotting import plot_size_distribution

    fig = Figure(figsize=(5.0, 3.5), layout="constrained")
    ax = fig.add_subplot()
    plot_size_distribution(table, ax=ax, exclude_edge=exclude_edge)
    note = "edge particles excluded" if exclude_edge else "edge particles included"
    ax.set_title(f"{name} ({note})", fontsize=9, loc="left")
    fig.savefig(path, dpi=150, format="png")


@dataclass
class Outcome:
    """What analysing one source gave: its tables and figures, or why it failed."""

    name: str
    table: object = None  # pandas.DataFrame of its particles, with a "file" column
    row: dict | None = None  # its line of summary.csv
    origin: str | None = None  # where its pixel size came from (Calibration.source)
    notes: list = field(default_factory=list)  # messages to print, "warning: ..." or "note: ..."
    figures: dict = field(default_factory=dict)  # file name -> PNG bytes
    error: str | None = None  # why it was skipped


@dataclass
class _Predicted:
    """A source read and predicted, waiting to be calibrated, labelled and measured."""

    source: _Source
    stem: str
    image: object
    file_calibration: tuple  # (pixel size or None, unit) from the file's metadata
    notes: list
    proba: object
    scale: float
    found: object = None  # the particles "auto" found in proba, or None


def _reason(exc):
    """The message of an exception that made an image be skipped."""
    expected = isinstance(exc, (OSError, ValueError, ImportError)) and str(exc)
    return str(exc) if expected else f"{type(exc).__name__}: {exc}"


def predict_source(seg, source, stem, args):
    """Read and predict one source: a :class:`_Predicted`, or an error :class:`Outcome`.

    The first half of :func:`analyze_source`; the network runs here. The
    scale bar is read in the second half, so that in
    :func:`~particleseg.batch.outcomes_in_process` it runs beside the
    network's next image.
    """
    notes = []
    try:
        image, file_pixel_size, file_unit, read_notes = _read(source)
        notes += [f"warning: {note}" for note in read_notes]
        proba, scale, found = predict_image(seg, image)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return Outcome(source.name, notes=notes, error=_reason(exc))
    return _Predicted(source, stem, image, (file_pixel_size, file_unit), notes, proba, scale,
                      found)


def finish_source(seg, predicted, args):
    """Calibrate, label, measure and draw a predicted source: its :class:`Outcome`.

    The second half of :func:`analyze_source`; an error :class:`Outcome` of
    :func:`predict_source` is passed through.
    """
    if isinstance(predicted, Outcome):
        return predicted
    source, image, notes = predicted.source, predicted.image, list(predicted.notes)
    try:
        from .measure import measure_particles

        calibration = _calibration(source, image, *predicted.file_calibration, args)
        notes += [f"warning: {source.name}: {message}" for message in calibration.messages]
        if calibration.source == "scale bar":
            notes.append(f"note: {source.name}: {calibration.pixel_size:.4g} nm per pixel from "
                         f"its scale bar, {calibration.scale_bar.describe()}")
        pixel_size, unit, origin = calibration.pixel_size, calibration.unit, calibration.source

        labels, confidence = label_prediction(seg, predicted.proba, args, predicted.found)
        n_removed = 0
        if args.drop_annotations and source.path is not None:
            from .scalebar import annotation_mask, remove_annotated_particles

            # calibrate() has already looked for the bar unless told not to
            searched = args.scale_bar and args.pixel_size is None
            mask = annotation_mask(image, scale_bar=calibration.scale_bar,
                                   search_bar=not searched)
            # labels keep their values, so confidence[label - 1] stays right
            labels, n_removed = remove_annotated_particles(labels, mask)
        table = measure_particles(labels, image, pixel_size=pixel_size, unit=unit,
                                  confidence=confidence)
        table.insert(0, "file", source.name)
        row = _summary_row(source, table, pixel_size, unit, origin, args.exclude_edge)
        row.update(_scale_bar_columns(calibration, n_removed))
        row["inference_scale"] = predicted.scale
        figures = {}
        if args.plots:
            stem = predicted.stem
            for name, draw in (
                (f"{stem}_overlay.png", lambda f: _save_overlay(
                    f, image, labels, pixel_size, unit, calibration.scale_bar)),
                (f"{stem}_sizes.png", lambda f: _save_histogram(
                    f, table, source.name, args.exclude_edge)),
            ):
                buffer = io.BytesIO()
                draw(buffer)
                figures[name] = buffer.getvalue()
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return Outcome(source.name, notes=notes, error=_reason(exc))
    return Outcome(source.name, table, row, origin, notes, figures)


def analyze_source(seg, source, stem, args):
    """Analyse one source with a loaded segmenter; never raises for a bad image.

    Every image of ``particleseg analyze`` goes through here, in this process
    (:func:`particleseg.batch.outcomes_in_process` runs the two halves in
    turn on consecutive images) or on a Dask worker. ``args`` holds the
    command's options (``pixel_size``, ``unit``, ``scale_bar``,
    ``drop_annotations``, ``threshold``, ``min_size``, ``method``,
    ``exclude_edge``, ``plots``).
    """
    return finish_source(seg, predict_source(seg, source, stem, args), args)


def _format_summary(summary):
    """The short table printed to stdout."""
    header = ("file", "particles", "mean", "D10", "D50", "D90", "unit")
    rows = []
    for row in summary:
        column = f"equivalent_diameter_{row['unit']}"
        rows.append((
            row["file"], row["count"],
            *(_number(row[f"{stat}_{column}"]) for stat in ("mean", "d10", "d50", "d90")),
            row["unit"],
        ))
    return format_table(header, rows)


def _number(value):
    """A size for the printed table: 3 significant digits, "-" when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


def _model_key(spec):
    """``--model`` as recorded with the part files: a resolved path or a name."""
    kind, where = resolve_model(spec)
    return str(Path(where).resolve()) if kind == "file" else where


def run(args):
    """Run ``particleseg analyze``; return the exit status."""
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"--out {out_dir} is a file; give a folder for the results.")
    if not args.inputs and not args.sample:
        raise CommandError(
            "Nothing to analyse: give image files or folders, or --sample to try the "
            "built-in sample micrograph."
        )
    if args.unit is not None and args.pixel_size is None:
        raise CommandError(
            f"--unit {args.unit} is the unit of --pixel-size; pass --pixel-size as well "
            "(e.g. --pixel-size 0.8 --unit nm). Without it, the pixel size recorded in "
            "each file is used, in nm."
        )
    files, empty = find_images(args.inputs, args.recursive, exclude=out_dir)
    if not files and not args.sample:
        hint = "" if args.recursive else "; add --recursive to search sub-folders too"
        raise CommandError(
            "No image files found in " + ", ".join(str(p) for p in empty)
            + f" (looked for {', '.join(IMAGE_SUFFIXES)}{hint})."
        )
    resolve_model(args.model)  # a wrong name or path fails before anything is read
    for folder in empty:
        say(f"note: no image files in {folder}")
    sources = [_Source(str(f), f) for f in files]
    if args.sample:
        sources.append(_Source("sample", None))

    from . import batch

    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers or scheduler:
        batch.require_dask("--workers" if workers else "--scheduler")
    # A --resume with other options than the first run fails here, before any work.
    store = batch.PartStore(out_dir, options=batch.options_record(args, _model_key(args.model)),
                            resume=getattr(args, "resume", False))
    stems = _unique_stems(sources)
    jobs = [(source, stem) for source, stem in zip(sources, stems) if not store.done(source.name)]
    if store.resumed and not args.quiet:
        say(f"Resuming: {len(sources) - len(jobs)} of {len(sources)} images were analysed "
            f"before; {len(jobs)} to go.")

    uncalibrated, skipped, interrupted, figures = [], [], False, 0
    if jobs:
        client, cluster, described = None, None, None
        if workers or scheduler:
            client, cluster = batch.start_client(workers, scheduler)
            described = f"{args.model} model on {batch.describe_cluster(client)}"
            # The workers find the model by absolute path and share the cores out.
            args = argparse.Namespace(**{**vars(args), "model": _model_key(args.model)})
            if args.threads is None and cluster is not None:
                args.threads = batch._threads_per_worker(client)
        else:
            seg, described = load_for_prediction(args)
        store.start()
        if not args.quiet:
            say(f"Analysing {len(jobs)} image{'s' * (len(jobs) != 1)} with the {described}.")
        if client is not None:
            outcomes = batch.outcomes_on_cluster(client, jobs, args)
        else:
            outcomes = batch.outcomes_in_process(seg, jobs, args)
        bar = progress(outcomes, total=len(jobs), desc="analyze", unit="image",
                       quiet=args.quiet)
        try:
            for outcome in bar:
                for note in outcome.notes:
                    if not (args.quiet and note.startswith("note:")):
                        say(note)
                if outcome.error is not None:
                    say(f"error: skipped {outcome.name}: {outcome.error}")
                    skipped.append(outcome.name)
                    continue
                if outcome.origin == "none" and not uncalibrated:
                    no_bar = "" if not args.scale_bar else ", no readable scale bar"
                    say(
                        f"warning: {outcome.name} records no pixel size{no_bar} and "
                        "--pixel-size was not given: its sizes are in pixels (px). Pass "
                        "--pixel-size to measure in nm. (Said once; summary.csv lists the "
                        "unit of every image.)"
                    )
                if outcome.origin == "none":
                    uncalibrated.append(outcome.name)
                store.write(outcome)
                figures += len(outcome.figures)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            outcomes.close()
            if client is not None:
                batch.stop_client(client, cluster)

    n_particles, summary = store.assemble([source.name for source in sources])
    done = len(summary)
    if not done:
        raise CommandError(
            "Interrupted before any image was analysed; nothing was written."
            if interrupted else
            f"None of the {len(sources)} images could be analysed (see the errors above); "
            "nothing was written.",
            status=EXIT_INTERRUPTED if interrupted else EXIT_FAILURE,
        )
    uncalibrated = [row["file"] for row in summary if row["pixel_size_from"] == "none"]
    print(_format_summary(summary), file=sys.stdout)
    print(
        f"Wrote particles.csv ({n_particles} particles), summary.csv ({done} "
        f"image{'s' * (done != 1)})" + (f" and {figures} figures" if figures else "")
        + f" to {out_dir}.",
        file=sys.stdout,
    )
    if uncalibrated:
        say(
            f"note: sizes of {len(uncalibrated)} image{'s' * (len(uncalibrated) != 1)} are in "
            "pixels (no pixel size in the file, no readable scale bar and no --pixel-size)."
        )
    if interrupted:
        say(f"Interrupted: {done} of {len(sources)} images were analysed; their results "
            "were written.")
        return EXIT_INTERRUPTED
    if skipped:
        say(
            f"{len(skipped)} of {len(sources)} files could not be analysed and were skipped: "
            + ", ".join(skipped) + f". The results of the other {done} were written."
        )
        return EXIT_FAILURE
    return EXIT_OK
