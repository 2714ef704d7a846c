"""``particleseg analyze``: count and size the particles in micrographs.

For every image: read it with its calibration, predict, label the particles,
measure them, and draw an overlay and a size histogram. Unreadable images are
reported and skipped; the results of the others are always written.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    configure_prediction,
    format_table,
    load_model,
    progress,
    resolve_model,
    say,
    segment,
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
    fig.savefig(path, dpi=min(max(150, max(height, width) / 6), 300))


def _save_histogram(path, table, name, exclude_edge):
    from matplotlib.figure import Figure

    from .plotting import plot_size_distribution

    fig = Figure(figsize=(5.0, 3.5), layout="constrained")
    ax = fig.add_subplot()
    plot_size_distribution(table, ax=ax, exclude_edge=exclude_edge)
    note = "edge particles excluded" if exclude_edge else "edge particles included"
    ax.set_title(f"{name} ({note})", fontsize=9, loc="left")
    fig.savefig(path, dpi=150)


def _combine(tables):
    """One table from per-image tables whose columns may differ in unit."""
    import pandas as pd

    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    filled = [t for t in tables if len(t)]
    # Concatenating empty tables is deprecated in pandas; leave them out.
    combined = pd.concat(filled, ignore_index=True) if filled else pd.DataFrame(columns=columns)
    return combined.reindex(columns=columns)


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

    seg, described = load_model(args.model, args.device)
    configure_prediction(seg, args.tile_size, args.threads, args.inference_scale,
                         args.min_confidence)
    if not args.quiet:
        say(f"Analysing {len(sources)} image{'s' * (len(sources) != 1)} with the {described}.")

    from .measure import measure_particles

    out_dir.mkdir(parents=True, exist_ok=True)
    tables, summary, skipped, uncalibrated, figures = [], [], [], [], 0
    interrupted = False
    stems = _unique_stems(sources)
    bar = progress(zip(sources, stems), total=len(sources), desc="analyze", unit="image",
                   quiet=args.quiet)
    try:
        for source, stem in bar:
            try:
                image, file_pixel_size, file_unit, notes = _read(source)
                for note in notes:
                    say(f"warning: {note}")
                calibration = _calibration(source, image, file_pixel_size, file_unit, args)
                pixel_size, unit, origin = calibration.pixel_size, calibration.unit, calibration.source
                for message in calibration.messages:
                    say(f"warning: {source.name}: {message}")
                if origin == "scale bar" and not args.quiet:
                    say(f"note: {source.name}: {pixel_size:.4g} nm per pixel from its scale bar, "
                        f"{calibration.scale_bar.describe()}")
                if origin == "none":
                    if not uncalibrated:
                        no_bar = "" if not args.scale_bar else ", no readable scale bar"
                        say(
                            f"warning: {source.name} records no pixel size{no_bar} and "
                            "--pixel-size was not given: its sizes are in pixels (px). Pass "
                            "--pixel-size to measure in nm. (Said once; summary.csv lists the "
                            "unit of every image.)"
                        )
                    uncalibrated.append(source.name)
                labels, confidence, scale = segment(seg, image, args)
                n_removed = 0
                if args.drop_annotations and source.path is not None:
                    from .scalebar import annotation_mask, remove_annotated_particles

                    mask = annotation_mask(image, scale_bar=calibration.scale_bar)
                    # labels keep their values, so confidence[label - 1] stays right
                    labels, n_removed = remove_annotated_particles(labels, mask)
                table = measure_particles(labels, image, pixel_size=pixel_size, unit=unit,
                                          confidence=confidence)
                table.insert(0, "file", source.name)
                row = _summary_row(source, table, pixel_size, unit, origin, args.exclude_edge)
                row.update(_scale_bar_columns(calibration, n_removed))
                row["inference_scale"] = scale
                if args.plots:
                    _save_overlay(out_dir / f"{stem}_overlay.png", image, labels, pixel_size, unit,
                                  calibration.scale_bar)
                    _save_histogram(out_dir / f"{stem}_sizes.png", table, source.name,
                                    args.exclude_edge)
                    figures += 2
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
                expected = isinstance(exc, (OSError, ValueError, ImportError)) and str(exc)
                reason = str(exc) if expected else f"{type(exc).__name__}: {exc}"
                say(f"error: skipped {source.name}: {reason}")
                skipped.append(source.name)
                continue
            tables.append(table)
            summary.append(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()

    done = len(summary)
    if not done:
        raise CommandError(
            "Interrupted before any image was analysed; nothing was written."
            if interrupted else
            f"None of the {len(sources)} images could be analysed (see the errors above); "
            "nothing was written.",
            status=EXIT_INTERRUPTED if interrupted else EXIT_FAILURE,
        )
    import pandas as pd

    particles = _combine(tables)
    particles.to_csv(out_dir / "particles.csv", index=False)
    pd.DataFrame(summary).to_csv(out_dir / "summary.csv", index=False)

    print(_format_summary(summary), file=sys.stdout)
    print(
        f"Wrote particles.csv ({len(particles)} particles), summary.csv ({done} "
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
