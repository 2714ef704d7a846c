"""Shared pieces of the ``particleseg`` command: exit statuses, messages, models.

Nothing here imports torch, pandas or matplotlib at module level, so
``particleseg --help`` stays fast; the commands import what they need.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Everything went well.
EXIT_OK = 0
#: The command ran, but part of the work failed: an image was skipped, a model
#: file could not be read, training stopped with an error.
EXIT_FAILURE = 1
#: The command line asks for something that cannot be done, found before any
#: work starts: a bad option value (argparse), a missing file or folder, an
#: unknown model name, no images found.
EXIT_USAGE = 2
#: Interrupted with Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A clear message for the user (no traceback) and the exit status to return."""

    def __init__(self, message, status=EXIT_USAGE):
        super().__init__(message)
        self.status = status


def say(text="", *, file=None):
    """Print a line without breaking a tqdm progress bar on the same stream."""
    from tqdm import tqdm

    tqdm.write(str(text), file=file if file is not None else sys.stderr)


def progress(iterable, *, total, desc, unit, quiet):
    """A tqdm progress bar on stderr (nothing with ``quiet``)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=quiet, leave=False, dynamic_ncols=True)


def format_table(header, rows):
    """A plain text table: first column left-aligned, the others right-aligned."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Models


def bundled_model_names():
    """Names of the pretrained models bundled with the package (no torch import)."""
    from ._pretrained import pretrained_models

    return [model["name"] for model in pretrained_models()]


def _no_such_model(name):
    names = bundled_model_names()
    if names:
        available = "available bundled models: " + ", ".join(names)
    else:
        available = "this installation has no bundled models yet"
    return CommandError(
        f"--model {name!r} is neither a model file nor the name of a bundled pretrained "
        f"model ({available}). Pass the path of a model saved by `particleseg train` "
        "(a .safetensors file) or one of the names listed by `particleseg models`."
    )


def resolve_model(spec):
    """``("file", path)`` or ``("bundled", name)`` for a ``--model`` value.

    A value that names an existing file, ends in ``.safetensors`` or contains
    a path separator is a model file; anything else is the name of a bundled
    model. Raises CommandError (exit status 2) when neither exists.
    """
    path = Path(spec)
    if path.is_file():
        return "file", path
    looks_like_path = spec.endswith(".safetensors") or "/" in spec or "\\" in spec
    if looks_like_path:
        if path.is_dir():
            raise CommandError(f"--model {spec} is a folder; pass the model file inside it.")
        raise CommandError(
            f"No model file at {spec}. Check the path, or pass the name of a bundled "
            "model (see `particleseg models`)."
        )
    if spec not in bundled_model_names():
        raise _no_such_model(spec)
    return "bundled", spec


def check_device(device):
    """Raise CommandError (exit 2) when ``device`` is not usable here."""
    from ._models import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise CommandError(f"--device: {exc}") from None


def load_model(spec, device):
    """Load the fitted ParticleSegmenter that ``--model`` names.

    Returns the segmenter and a short description for messages.
    """
    from ._persistence import ModelFileError
    from .segmenter import ParticleSegmenter

    kind, where = resolve_model(spec)
    check_device(device)
    try:
        if kind == "file":
            seg = ParticleSegmenter.load(where, device=device)
            described = f"model file {where}"
        else:
            from ._pretrained import pretrained

            seg = pretrained(where, device=device)
            described = f"bundled model {where!r}"
    except ModelFileError as exc:
        raise CommandError(f"Cannot use --model {spec}: {exc}", status=EXIT_FAILURE) from None
    return seg, described


def configure_prediction(seg, tile_size, threads, inference_scale=None, min_confidence="auto"):
    """Apply ``--tile-size``, ``--threads``, ``--inference-scale`` and ``--min-confidence``.

    Without ``--inference-scale``, a model that records its typical particle
    diameter predicts at ``"auto"`` scale; other models keep their own scale.
    """
    if inference_scale is None and getattr(seg, "particle_diameter_", None):
        inference_scale = "auto"
    if inference_scale == "auto" and not getattr(seg, "particle_diameter_", None):
        raise CommandError(
            "--inference-scale auto needs a model that records the typical size of its "
            "training particles (models saved by this version of particleseg do); give a "
            "number instead, e.g. --inference-scale 1."
        )
    if inference_scale is not None:
        seg.inference_scale = inference_scale
    seg.min_confidence = min_confidence
    if tile_size is not None:
        if tile_size == 0:
            seg.tile_size = None
        else:
            seg.tile_size = tile_size
            # The saved overlap may be too wide for a small tile.
            seg.tile_overlap = min(seg.tile_overlap, tile_size // 4)
    if threads is not None:
        seg.n_threads = threads
    return seg


def load_for_prediction(args):
    """Load ``args.model`` on ``args.device`` with the command's prediction options.

    Returns the segmenter and its description, as :func:`load_model`.
    """
    seg, described = load_model(args.model, args.device)
    configure_prediction(seg, args.tile_size, args.threads, args.inference_scale,
                         args.min_confidence)
    return seg, described


def segment(seg, image, args):
    """Predict one image; return its particles' labels, their confidences and the scale used."""
    proba, scale, found = predict_image(seg, image)
    labels, confidence = label_prediction(seg, proba, args, found)
    return labels, confidence, scale


def predict_image(seg, image):
    """``segment``'s first half: the class probabilities of one image, the scale used,
    and the particles ``inference_scale="auto"`` found in them (or None)."""
    from .segmenter import _predict_proba

    found = []
    proba = _predict_proba(seg, image, labels=found)
    return proba, seg.last_scales_[0], (found or [None])[0]


def label_prediction(seg, proba, args, found=None):
    """``segment``'s second half: labels and confidences of one image's probabilities.

    The segmenter's decision rule (cores, then calibrated outlines) with the
    command's ``threshold``, ``min_size`` and ``method``; particles below the
    segmenter's ``min_confidence`` are dropped, as by ``predict_particles``.
    ``found``: the particles of :func:`predict_image`, reused when the
    command's rule is the one they were found with.
    """
    from .segmenter import _label

    return _label(seg, proba, threshold=args.threshold, min_size=args.min_size,
                  method=args.method, return_confidence=True, found=found)
