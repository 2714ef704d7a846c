"""``particleseg finetune``: adapt a model to a few annotated micrographs.

The folder holds images and their labels, in either layout:

- ``images/NAME.png`` (or .tif, .jpg) with ``segmaps/NAME.png`` (or .tif):
  instance maps, 0 background, k > 0 particle k (a signed TIFF may use -1
  for unlabelled pixels);
- images with a labelme file of the same name, ``NAME.json``, beside them
  (in the folder itself or in ``images/``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    check_device,
    load_model,
    resolve_model,
    say,
)

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_MAP_SUFFIXES = (".png", ".tif", ".tiff")


def add_parser(subparsers, formatter_class, positive_float, integer):
    """Add the ``finetune`` command to the ``particleseg`` parser."""
    p = subparsers.add_parser(
        "finetune",
        help="adapt a model to a few annotated micrographs of your own",
        formatter_class=formatter_class,
        description=(
            "Fine-tune a model (default: the bundled 'emps') on a few annotated\n"
            "micrographs, for a time budget, and save it to one .safetensors file.\n"
            "FOLDER holds the images and their labels, either as\n"
            "  FOLDER/images/NAME.png and FOLDER/segmaps/NAME.png (instance maps:\n"
            "  0 background, k > 0 particle k), or as\n"
            "  FOLDER/NAME.png with a labelme file FOLDER/NAME.json (polygons).\n"
            "The last quarter of each image is held out (with 8 images or more, one image):\n"
            "the model is scored on it as it trains and the best weights are kept. If\n"
            "fine-tuning does not beat the starting model there, the starting weights\n"
            "are kept and the command says so. The new model keeps the starting model's\n"
            "settings (inference scale, border width, normalisation, decision rule,\n"
            "confidence calibration); its confidence threshold is chosen anew on the\n"
            "held-out part (the right count, at about the best F1).\n"
            "Shows a progress bar with the time left; Ctrl-C stops and saves the best\n"
            "model so far."
        ),
        epilog=(
            "examples:\n"
            "  particleseg finetune my_images/ --out my_model.safetensors\n"
            "  particleseg finetune my_images/ --from emps --minutes 5 --out my_model.safetensors\n"
            "  particleseg analyze new_images/ --model my_model.safetensors --out results/"
        ),
    )
    p.add_argument("folder", metavar="FOLDER", help="annotated images (see above)")
    p.add_argument("-o", "--out", metavar="FILE", required=True,
                   help="where to save the fine-tuned model, e.g. my_model.safetensors (required)")
    p.add_argument("--from", dest="start", metavar="MODEL", default="emps",
                   help="the starting model: a bundled model name (see `particleseg models`) "
                        "or a model file; default: %(default)s")
    p.add_argument("--minutes", type=positive_float("minutes of training, e.g. 10"),
                   metavar="MINUTES", default=10.0,
                   help="time budget, validation included; default: %(default)s")
    p.add_argument("--learning-rate", type=positive_float("Adam's learning rate"), metavar="RATE",
                   default=None, help="peak learning rate; default: the recipe's (3e-4)")
    p.add_argument("--no-validation", action="store_true",
                   help="train on all labels for the whole budget and keep the last weights, "
                        "unchecked (default: hold out data and keep the best weights)")
    from .cli import _inference_scale

    p.add_argument("--inference-scale", type=_inference_scale, metavar="SCALE", default=None,
                   help='change the model\'s inference scale: "auto" or a factor by which '
                        "images are enlarged before the network; default: the starting model's")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (crops, augmentations, held-out image); default: %(default)s")
    p.add_argument("--device", default="auto",
                   help='"auto" (a CUDA GPU when present, else the CPU), "cpu", "cuda" or '
                        '"cuda:N"; default: %(default)s')
    p.add_argument("--threads", type=integer(1), metavar="N", default=None,
                   help="CPU threads for torch; default: torch's choice (all cores)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no progress messages")
    return p


# --------------------------------------------------------------------------
# Reading the folder


def _find(folder, stem, suffixes):
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def read_folder(folder):
    """``(images, label maps, names)`` of an annotated folder; CommandError if unusable."""
    import numpy as np

    from .io import imread

    folder = Path(folder)
    if not folder.is_dir():
        raise CommandError(f"No such folder: {folder}. Check the path.")
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    paths = sorted(p for p in image_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not paths:
        raise CommandError(f"No images (.png, .tif, .jpg) found in {image_dir}.")
    pairs, missing = [], []
    for path in paths:
        labels = _find(folder / "segmaps", path.stem, _MAP_SUFFIXES)
        if labels is None:
            labels = _find(image_dir, path.stem, (".json",)) or _find(folder, path.stem, (".json",))
        if labels is None:
            missing.append(path.name)
        else:
            pairs.append((path, labels))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CommandError(
            f"{len(missing)} of {len(paths)} images in {image_dir} have no labels: {shown}. "
            f"Give each image NAME a label map {folder / 'segmaps'}/NAME.png or a labelme "
            "file NAME.json beside it, or move the image out of the folder."
        )
    X, y, names = [], [], []
    for image_path, label_path in pairs:
        try:
            image = imread(image_path).image
            labels = _read_labels(label_path, image.shape[:2])
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {image_path.name} or its labels: {exc}",
                               status=EXIT_FAILURE) from None
        X.append(image)
        y.append(np.asarray(labels))
        names.append(image_path.stem)
    return X, y, names


def _read_labels(path, shape):
    import numpy as np

    if path.suffix.lower() == ".json":
        from .labels import read_labelme

        return read_labelme(path, shape=shape)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        labels = tifffile.imread(path)
    else:
        import imageio.v3 as iio

        labels = iio.imread(path)
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    if labels.dtype.kind == "f":
        raise ValueError(f"{path.name} holds floating-point values; a label map holds integers.")
    return labels.astype(np.int32)


# --------------------------------------------------------------------------
# The command


def run_finetune(args):
    """Run ``particleseg finetune``; return the exit status."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name such as model.safetensors.")
    X, y, names = read_folder(args.folder)
    check_device(args.device)
    try:
        resolve_model(args.start)
        seg, described = load_model(args.start, args.device)
    except CommandError as exc:
        raise CommandError(str(exc).replace("--model", "--from"), status=exc.status) from None
    if args.threads is not None:
        seg.set_params(n_threads=args.threads)
    if args.inference_scale is not None:
        seg.set_params(inference_scale=args.inference_scale)
    seg.set_params(random_state=args.seed, verbose=0 if args.quiet else 1)
    recipe = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    if not args.quiet:
        say(f"Fine-tuning the {described} on {len(X)} image{'s' * (len(X) != 1)} from "
            f"{args.folder} for {args.minutes:g} minutes.")
    interrupted = False
    try:
        seg.fine_tune(X, y, minutes=args.minutes, validation=not args.no_validation,
                      recipe=recipe, names=names)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"Cannot fine-tune: {exc}") from None
    interrupted = seg.fine_tuning_["stopped"] == "interrupted"
    info = seg.fine_tuning_
    seg.model_info_["fine_tuned"]["parent"]["from"] = args.start
    path = seg.save(out)
    say(info["message"])
    verb = "Interrupted after" if interrupted else "Trained"
    print(f"{verb} {info['steps']} step{'s' * (info['steps'] != 1)} in {info['seconds'] / 60:.1f} min. Saved the "
          f"{'starting' if info['kept_starting_weights'] else 'fine-tuned'} model to {path}. "
          f"Use it with: particleseg analyze IMAGES --model {path}", file=sys.stdout)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK

