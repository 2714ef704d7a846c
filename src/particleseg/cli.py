"""The ``particleseg`` command: analyse micrographs, train and evaluate models.

Subcommands
-----------
``particleseg analyze IMAGES_OR_FOLDERS... --out results/``
    Count and size the particles in micrographs; write ``particles.csv``,
    ``summary.csv`` and, per image, an overlay and a size histogram (PNG).
``particleseg train FOLDER --out model.safetensors``
    Train a model on an EMPS-style folder (``images/``, ``segmaps/``).
``particleseg evaluate FOLDER --model MODEL``
    Score a model against an annotated EMPS-style folder.
``particleseg finetune FOLDER --from emps --out my_model.safetensors``
    Adapt a model to a few annotated micrographs of your own.
``particleseg models``
    List the pretrained models bundled with the package.

Exit status
-----------
0
    Everything went well.
1
    The command ran but part of it failed: an image could not be read or
    analysed and was skipped (the results of the others are written), a
    model file is corrupt, training stopped with an error.
2
    The command line asks for something that cannot be done, found before any
    work starts: an unknown option or a bad value (such as a pixel size
    <= 0), a missing file or folder, a model name that is not bundled, a
    folder without images.
130
    Interrupted with Ctrl-C (``analyze`` still writes the images done so far).

:func:`main` takes the arguments as a list and returns the exit status, so
the command can be run, and tested, from Python: ``main(["models"])``.
"""

from __future__ import annotations

import argparse
import math
import sys

from . import __version__
from ._cli_common import EXIT_INTERRUPTED, EXIT_OK, CommandError, say

__all__ = ["main", "build_parser"]

_SEGMENTATION_METHODS = ("components", "watershed")
_BACKBONES = ("resnet50", "resnet101", "mobilenet_v3_large")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the line breaks of descriptions and examples; wrap option help."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=30)


# --------------------------------------------------------------------------
# Option values, checked by argparse (a bad value exits with status 2)


def _positive_float(what):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({what}); got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"must be a positive number ({what}); got {text}"
            )
        return value

    return parse


def _fraction(text):
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1; got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1; got {text}")
    return value


def _iou_fraction(text):
    """A number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1]; got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], such as 0.5; got {text}")
    return value


def _integer(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    return parse


def _number_or_word(words, low, high):
    """A parser of a number in [low, high], or one of ``words`` (a dict word -> value)."""
    expected = " or ".join(f'"{w}"' for w in words) + f" or a number between {low:g} and {high:g}"

    def parse(text):
        word = text.strip().lower()
        if word in words:
            return words[word]
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_inference_scale = _number_or_word({"auto": "auto"}, 0.25, 4)
_min_confidence = _number_or_word({"auto": "auto", "none": None}, 0, 1)


def _tile_size(text):
    """A tile side of 64 pixels or more, or "none" (0) to predict whole images."""
    if text.strip().lower() in ("none", "0"):
        return 0
    return _integer(64)(text)


def _unit(text):
    """A length unit for column names: letters only, and not "px"."""
    unit = text.strip().replace("\N{MICRO SIGN}", "u").replace("\N{GREEK SMALL LETTER MU}", "u")
    if not unit.isascii() or not unit.isalpha():
        raise argparse.ArgumentTypeError(
            f"must be a length unit made of letters, such as nm or um; got {text!r}"
        )
    if unit == "px":
        raise argparse.ArgumentTypeError(
            "px is what sizes are measured in without a pixel size; give the unit "
            "of --pixel-size, such as nm"
        )
    return unit


# --------------------------------------------------------------------------
# The parser


def _add_model_options(parser, default_model="emps"):
    group = parser.add_argument_group("model and prediction")
    group.add_argument(
        "--model", metavar="MODEL", default=default_model,
        help="a model file saved by `particleseg train` (a .safetensors file) or the name "
             "of a bundled pretrained model (see `particleseg models`); default: %(default)s",
    )
    group.add_argument(
        "--device", default="auto",
        help='where to run the network: "auto" (a CUDA GPU when present, else the CPU), '
             '"cpu", "cuda" or "cuda:N"; default: %(default)s',
    )
    group.add_argument(
        "--tile-size", type=_tile_size, metavar="PIXELS", default=None,
        help="predict images larger than this in overlapping square tiles of this side "
             "(64 or more), which bounds memory; \"none\" predicts every image whole; "
             "default: the model's setting (1024)",
    )
    group.add_argument(
        "--threads", type=_integer(1), metavar="N", default=None,
        help="CPU threads for the network; default: torch's choice (all cores)",
    )
    group.add_argument(
        "--inference-scale", type=_inference_scale, metavar="SCALE", default=None,
        help='"auto" chooses, per image, the scale that brings its particles to the size '
             "the model knows best; a number (0.25 to 4) enlarges every image by it; "
             'default: "auto" for models that support it (the bundled ones), else the '
             "model's setting",
    )
    seg = parser.add_argument_group("particles")
    seg.add_argument(
        "--threshold", type=_fraction, default=0.5,
        help="a pixel belongs to a particle when its predicted particle probability is "
             "at least this (between 0 and 1); default: %(default)s",
    )
    seg.add_argument(
        "--min-confidence", type=_min_confidence, metavar="C", default="auto",
        help="drop particles whose confidence (0 to 1, the column 'confidence' of "
             "particles.csv) is below C; \"auto\" uses the model's own threshold, \"none\" "
             "keeps every particle; default: %(default)s",
    )
    seg.add_argument(
        "--min-size", type=_integer(0), metavar="PIXELS", default=4,
        help="drop particles smaller than this area, in pixels; default: %(default)s",
    )
    seg.add_argument(
        "--method", choices=_SEGMENTATION_METHODS, default="components",
        help="how touching particles are separated: \"components\" uses the predicted "
             "borders only (the published recipe); \"watershed\" also splits particles "
             "joined by a thin neck; default: %(default)s",
    )


def _subparser(subparsers, name, **kwargs):
    """A sub-command's parser, formatted like the others."""
    return subparsers.add_parser(name, formatter_class=_Formatter, **kwargs)


def _add_annotated_folder(parser):
    parser.add_argument(
        "folder", metavar="FOLDER",
        help="annotated folder with images/ and segmaps/ sub-folders of PNG files",
    )


def _add_quiet(parser):
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bar and no progress messages (errors and results are still shown)",
    )


def _analyze_parser(subparsers):
    p = _subparser(
        subparsers, "analyze",
        help="count and size the particles in micrographs",
        description=(
            "Count and size the particles in micrographs. For every image the model\n"
            "predicts particles and their borders; the particles are labelled and\n"
            "measured. Writes to the --out folder:\n"
            "  particles.csv        one row per particle, with a 'file' column; sizes in\n"
            "                       the unit of the column name (equivalent_diameter_nm)\n"
            "  summary.csv          one row per image: count, mean, median, D10/D50/D90 of\n"
            "                       the equivalent diameter, pixel size and unit used\n"
            "  <stem>_overlay.png   particle outlines and numbers over the image\n"
            "  <stem>_sizes.png     histogram of the equivalent diameters\n"
            "  parts/               each image's results as soon as they exist, so that\n"
            "                       --resume continues an interrupted run\n"
            "and prints a short table. The pixel size is --pixel-size when given, else\n"
            "the one the file records (calibrated TIFF, DM3/DM4), else the scale bar\n"
            "burnt into the image when it is read with confidence (needs\n"
            "pip install \"particleseg[scalebar]\"); without any, sizes are in pixels\n"
            "(px). summary.csv says which was used (pixel_size_from). Particles inside\n"
            "figure annotations (scale bar, labels, panel letters) are dropped.\n"
            "Files that cannot be read are reported and skipped; the exit status is then 1."
        ),
        epilog=(
            "examples:\n"
            "  particleseg analyze --sample --out results/\n"
            "  particleseg analyze micrographs/ --pixel-size 0.8 --unit nm --out results/\n"
            "  particleseg analyze a.tif b.tif --model my_model.safetensors --out results/\n"
            "  particleseg analyze data/ --recursive --method watershed --no-plots --out results/\n"
            "  particleseg analyze data/ --workers 4 --no-plots --out results/\n"
            "  particleseg analyze data/ --workers 4 --no-plots --out results/ --resume"
        ),
    )
    p.add_argument(
        "inputs", nargs="*", metavar="IMAGES_OR_FOLDERS",
        help="image files, or folders searched for .png, .jpg, .jpeg, .tif, .tiff, .dm3 "
             "and .dm4 files (DM3/DM4 need: pip install \"particleseg[dm]\")",
    )
    p.add_argument(
        "-o", "--out", metavar="FOLDER", default="results",
        help="folder for the results, created if needed; files in it are overwritten; "
             "default: %(default)s",
    )
    p.add_argument(
        "--sample", action="store_true",
        help="also analyse the built-in sample micrograph (synthetic, 512 x 512 pixels of "
             "0.5 nm unless --pixel-size is given): no data needed to try the tool",
    )
    p.add_argument(
        "-r", "--recursive", action="store_true",
        help="search folders and their sub-folders for images",
    )
    cal = p.add_argument_group("calibration")
    cal.add_argument(
        "--pixel-size", type=_positive_float("the size of one pixel, e.g. 0.8"),
        metavar="SIZE", default=None,
        help="size of one pixel in --unit, used for every image instead of the pixel size "
             "the files record; default: the file's own calibration, else sizes in px",
    )
    cal.add_argument(
        "--unit", type=_unit, default=None,
        help="unit of --pixel-size, used in the column names (e.g. nm, um); "
             "default: nm. Needs --pixel-size",
    )
    cal.add_argument(
        "--no-scale-bar", dest="scale_bar", action="store_false",
        help="do not read the scale bar of images without a pixel size in their file "
             "(their sizes are then in px unless --pixel-size is given)",
    )
    cal.add_argument(
        "--keep-annotations", dest="drop_annotations", action="store_false",
        help="keep particles that lie mostly inside figure annotations (scale bar, text "
             "labels, panel letters and their boxes); by default they are dropped and "
             "counted in summary.csv (annotations_removed)",
    )
    _add_model_options(p)
    stats = p.add_argument_group("statistics and output")
    edge = stats.add_mutually_exclusive_group()
    edge.add_argument(
        "--exclude-edge", dest="exclude_edge", action="store_true", default=True,
        help="leave particles that touch the image edge (cut off, so their size is wrong) "
             "out of the summary statistics and histograms (the default); they stay in "
             "particles.csv with touches_edge=True",
    )
    edge.add_argument(
        "--include-edge", dest="exclude_edge", action="store_false",
        help="include particles that touch the image edge in the summary statistics and "
             "histograms",
    )
    stats.add_argument(
        "--no-plots", dest="plots", action="store_false",
        help="write only the CSV files, no overlay or histogram PNGs (faster)",
    )
    _add_quiet(stats)
    large = p.add_argument_group("large jobs")
    where = large.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_integer(1), metavar="N", default=None,
        help="analyse the images on a local Dask cluster of N worker processes, each "
             "loading the model once and using its share of the cores (needs: pip install "
             "\"particleseg[dask]\"); the CSVs are those of one process with the same "
             "--threads; default: one process",
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="analyse the images on the workers of a running Dask cluster, e.g. "
             "tcp://10.0.0.5:8786; the workers must see the image and model files",
    )
    large.add_argument(
        "--resume", action="store_true",
        help="continue a run that was interrupted: images whose results are already in "
             "--out (its parts/ folder) are not analysed again; use the options of the "
             "first run",
    )
    return p


def _train_parser(subparsers):
    p = _subparser(
        subparsers, "train",
        help="train a model on an annotated folder",
        description=(
            "Train a particle segmentation model (DeepLabV3) on an annotated folder\n"
            "laid out like the EMPS data set:\n"
            "  FOLDER/images/NAME.png    micrographs\n"
            "  FOLDER/segmaps/NAME.png   16-bit instance maps: 0 background, k > 0 particle k\n"
            "and save it to one .safetensors file (weights and settings; loading it\n"
            "cannot run code). Use the file with `analyze --model` and `evaluate --model`.\n"
            "Shows a progress bar per epoch and prints the loss after each epoch."
        ),
        epilog=(
            "examples:\n"
            "  particleseg train emps/ --out emps.safetensors --backbone mobilenet_v3_large \\\n"
            "      --epochs 50 --validation-fraction 0.1 --checkpoint emps.ckpt\n"
            "  particleseg train my_data/ --weights emps --epochs 10 --out tuned.safetensors"
        ),
    )
    _add_annotated_folder(p)
    p.add_argument("-o", "--out", metavar="FILE", required=True,
                   help="where to save the trained model, e.g. model.safetensors (required)")
    net = p.add_argument_group("network")
    net.add_argument(
        "--backbone", choices=_BACKBONES, default=None,
        help="the DeepLabV3 backbone; mobilenet_v3_large is about 8x cheaper on a CPU; "
             "default: resnet50 (the published recipe), or the backbone of --weights",
    )
    net.add_argument(
        "--weights", metavar="START", default=None,
        help="start from these weights instead of from scratch: \"imagenet\" (backbone "
             "pretrained on ImageNet, downloaded once), a model file, or a bundled model "
             "name (to fine-tune it on your data); default: from scratch",
    )
    recipe = p.add_argument_group("training")
    recipe.add_argument("--epochs", type=_integer(1), metavar="N", default=50,
                        help="passes over the training images; default: %(default)s")
    recipe.add_argument("--crop-size", type=_integer(16), metavar="PIXELS", default=256,
                        help="side of the square random crops trained on; images are never "
                             "resized; default: %(default)s")
    recipe.add_argument("--batch-size", type=_integer(2), metavar="N", default=8,
                        help="crops per optimisation step (2 or more); default: %(default)s")
    recipe.add_argument("--learning-rate", type=_positive_float("Adam's learning rate"),
                        metavar="RATE", default=1e-3,
                        help="Adam's initial learning rate, decayed along a cosine; "
                             "default: %(default)s")
    recipe.add_argument("--border-width", type=_integer(1), metavar="PIXELS", default=1,
                        help="width of the particle-border class drawn inside each particle's "
                             "edge, which separates touching particles; default: %(default)s")
    recipe.add_argument("--validation-fraction", type=_fraction, metavar="FRACTION",
                        default=None,
                        help="hold out this fraction of the images (e.g. 0.1) and report their "
                             "loss and IoU after every epoch; default: train on all")
    recipe.add_argument("--no-augment", action="store_true",
                        help="train on plain crops, without the recipe's random augmentations "
                             "(flips, rotations, elastic, noise, ...)")
    run = p.add_argument_group("run")
    run.add_argument("--checkpoint", metavar="FILE", default=None,
                     help="save the full training state here after every epoch; if the file "
                          "exists, training resumes from it (same settings needed)")
    run.add_argument("--seed", type=int, default=None,
                     help="random seed for weights, crops and augmentations (the same seed "
                          "on a CPU gives the same model); default: random")
    run.add_argument("--device", default="auto",
                     help='"auto" (a CUDA GPU when present, else the CPU), "cpu", "cuda" or '
                          '"cuda:N"; default: %(default)s')
    run.add_argument("--threads", type=_integer(1), metavar="N", default=None,
                     help="CPU threads for torch; default: torch's choice (all cores)")
    _add_quiet(run)
    return p


def _evaluate_parser(subparsers):
    p = _subparser(
        subparsers, "evaluate",
        help="score a model against an annotated folder",
        description=(
            "Score a model against an annotated folder laid out like the EMPS data set\n"
            "(images/ and segmaps/, as for `particleseg train`). For every image:\n"
            "  IoU, Dice     overlap of predicted and true particle pixels\n"
            "  F1            particles found: true and predicted particles are paired\n"
            "                one to one when their IoU is at least --iou-threshold\n"
            "  count error   |found - true| / true\n"
            "Prints a table with the mean over images and writes every image's scores\n"
            "(with precision, recall, tp, fp, fn) to --out."
        ),
        epilog=(
            "examples:\n"
            "  particleseg evaluate emps-test/ --model emps.safetensors\n"
            "  particleseg evaluate emps-test/ --model emps --method watershed --out scores.csv"
        ),
    )
    _add_annotated_folder(p)
    p.add_argument("-o", "--out", metavar="CSV", default=None,
                   help="also write the per-image scores to this CSV file (one row per image)")
    p.add_argument("--iou-threshold", type=_iou_fraction, metavar="IOU", default=0.5,
                   help="smallest IoU at which a predicted and a true particle count as the "
                        "same particle, in (0, 1]; default: %(default)s")
    _add_model_options(p)
    _add_quiet(p)
    return p


def _models_parser(subparsers):
    return _subparser(
        subparsers, "models",
        help="list the bundled pretrained models",
        description=(
            "List the pretrained models bundled with particleseg: their names (for\n"
            "--model), backbones, training data and validation scores. They work\n"
            "offline; no download is needed."
        ),
        epilog="example:\n  particleseg models",
    )


def build_parser():
    """The argument parser of the ``particleseg`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="particleseg",
        description=(
            "Count and size nanoparticles in electron micrographs (TEM, SEM) with a\n"
            "DeepLabV3 segmentation model."
        ),
        epilog=(
            "examples:\n"
            "  particleseg analyze --sample --out results/       # try it, no data needed\n"
            "  particleseg analyze micrographs/ --pixel-size 0.8 --unit nm --out results/\n"
            "  particleseg train emps/ --out model.safetensors --epochs 50\n"
            "  particleseg evaluate emps-test/ --model model.safetensors\n"
            "  particleseg finetune my_images/ --from emps --out my_model.safetensors\n"
            "  particleseg models\n"
            "\n"
            "Run `particleseg COMMAND --help` for the options of a command.\n"
            "exit status: 0 success; 1 some files skipped or a step failed (the\n"
            "results of the others are written); 2 bad command line (unknown option,\n"
            "bad value, missing file or folder, unknown model name, no images found);\n"
            "130 interrupted."
        ),
    )
    parser.add_argument("-V", "--version", action="version",
                        version=f"%(prog)s {__version__}",
                        help="show the version of particleseg and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       title="commands")
    _analyze_parser(subparsers)
    _train_parser(subparsers)
    _evaluate_parser(subparsers)
    _models_parser(subparsers)
    from ._cli_finetune import add_parser as _finetune_parser

    _finetune_parser(subparsers, _Formatter, _positive_float, _integer)
    return parser


# --------------------------------------------------------------------------
# Commands


def _run_models(args):
    from ._cli_common import format_table
    from ._pretrained import pretrained_models

    models = pretrained_models()
    if not models:
        print(f"No pretrained models are bundled with particleseg {__version__} yet. "
              "Train one with `particleseg train` and pass its file with --model.")
        return EXIT_OK
    rows = []
    for m in models:
        rows.append((
            m["name"], m["backbone"] or "?", "?" if m["epochs"] is None else m["epochs"],
            f"{m['file_size_mb']:g} MB", m["training_data"] or "", _scores(m["validation"]),
        ))
    print(format_table(("name", "backbone", "epochs", "size", "training data", "validation"),
                       rows))
    return EXIT_OK


def _scores(validation):
    """``{"iou": 0.871, ...}`` as ``"iou 0.871, ..."``."""
    if not isinstance(validation, dict):
        return "" if validation is None else str(validation)
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in validation.items()
    )


def _dispatch(args):
    if args.command == "analyze":
        from ._cli_analyze import run

        return run(args)
    if args.command == "train":
        from ._cli_train import run_train

        return run_train(args)
    if args.command == "finetune":
        from ._cli_finetune import run_finetune

        return run_finetune(args)
    if args.command == "evaluate":
        from ._cli_train import run_evaluate

        return run_evaluate(args)
    return _run_models(args)


def main(argv=None):
    """Run the ``particleseg`` command and return its exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 when part of the work failed (e.g. an image was
        skipped), 2 for a bad command line (including missing files, an
        unknown model name, no images found), 130 when interrupted.

    Examples
    --------
    >>> from particleseg.cli import main
    >>> main(["models"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return _dispatch(args)
    except CommandError as exc:
        say(f"particleseg {args.command}: error: {exc}")
        return exc.status
    except KeyboardInterrupt:
        say("Interrupted.")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # python -m particleseg.cli
    sys.exit(main())
