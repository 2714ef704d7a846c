"""``particleseg train`` and ``particleseg evaluate``: models and annotated folders.

Both read a folder laid out like the EMPS data set (``images/NAME.png`` and
``segmaps/NAME.png``, see :func:`particleseg.datasets.load_emps`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    check_device,
    configure_prediction,
    format_table,
    load_model,
    progress,
    resolve_model,
    say,
    segment,
)


def _load_folder(folder):
    from .datasets import load_emps

    if not Path(folder).exists():
        raise CommandError(f"No such folder: {folder}. Check the path.")
    try:
        return load_emps(folder)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot read the annotated folder {folder}: {exc}",
                           status=EXIT_FAILURE) from None


# --------------------------------------------------------------------------
# train


def _saved_backbone(path):
    """The backbone recorded in a model file's header (without loading weights)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get("particleseg", "{}"))
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise CommandError(f"--weights {path} is not a readable particleseg model file: {exc}",
                           status=EXIT_FAILURE) from None
    backbone = config.get("params", {}).get("backbone")
    if backbone is None:
        raise CommandError(f"--weights {path} is not a particleseg model file.",
                           status=EXIT_FAILURE)
    return backbone


def _starting_weights(spec):
    """``(weights, backbone)`` for ParticleSegmenter from a ``--weights`` value."""
    if spec is None or spec == "none":
        return None, None
    if spec == "imagenet":
        return "imagenet", None
    kind, where = resolve_model(spec)
    if kind == "bundled":
        from ._pretrained import pretrained_models

        where = Path(next(m["path"] for m in pretrained_models() if m["name"] == where))
    return str(where), _saved_backbone(where)


def run_train(args):
    """Run ``particleseg train``; return the exit status."""
    # Training imports albumentations, which would otherwise ask the network
    # for updates; a user's own setting is kept.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name such as model.safetensors.")
    weights, saved_backbone = _starting_weights(args.weights)
    backbone = args.backbone or saved_backbone or "resnet50"
    if saved_backbone is not None and backbone != saved_backbone:
        raise CommandError(
            f"--weights {args.weights} is a {saved_backbone} model but --backbone is "
            f"{backbone}; leave out --backbone to use {saved_backbone}."
        )
    X, y, names = _load_folder(args.folder)
    check_device(args.device)

    from .annotation import BorderAnnotator
    from .segmenter import ParticleSegmenter

    seg = ParticleSegmenter(
        backbone=backbone,
        weights=weights,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        crop_size=args.crop_size,
        augment=None if args.no_augment else "default",
        annotator=BorderAnnotator(width=args.border_width),
        validation_fraction=args.validation_fraction,
        checkpoint=args.checkpoint,
        device=args.device,
        n_threads=args.threads,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    if not args.quiet:
        resuming = args.checkpoint is not None and Path(args.checkpoint).exists()
        say(
            f"Training a DeepLabV3 {backbone} on {len(X)} images from {args.folder} for "
            f"{args.epochs} epoch{'s' * (args.epochs != 1)}"
            + (f", resuming from {args.checkpoint}" if resuming else "") + "."
        )
    try:
        seg.fit(X, y)
    except KeyboardInterrupt:
        hint = (f" Run the same command again to resume from {args.checkpoint}."
                if args.checkpoint else " Use --checkpoint to be able to resume.")
        say("Interrupted; no model was saved." + hint)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError) as exc:
        raise CommandError(f"Training failed: {exc}", status=EXIT_FAILURE) from None

    info = {"training_data": f"{len(X)} images from {Path(args.folder).name}"}
    last = seg.history_[-1] if seg.history_ else {}
    if "valid_iou" in last:
        info["validation"] = {"iou": last["valid_iou"], "loss": last["valid_loss"]}
    seg.model_info_ = info
    path = seg.save(out)
    size = path.stat().st_size / 1e6
    print(f"Saved the model to {path} ({size:.1f} MB, {seg.n_iter_} epochs). "
          f"Use it with: particleseg analyze IMAGES --model {path}", file=sys.stdout)
    return EXIT_OK


# --------------------------------------------------------------------------
# evaluate


def _scores(name, truth, labels, iou_threshold):
    import numpy as np

    from .metrics import count_error, dice_score, iou_score, match_particles

    match = match_particles(truth, labels, iou_threshold=iou_threshold)
    n_true = len(np.unique(truth[truth > 0]))
    n_pred = len(np.unique(labels[labels > 0]))
    return {
        "image": name,
        "true_count": n_true,
        "predicted_count": n_pred,
        "iou": iou_score(truth, labels),
        "dice": dice_score(truth, labels),
        "precision": match.precision,
        "recall": match.recall,
        "f1": match.f1,
        "count_error": count_error(n_true, n_pred),
        "tp": match.tp,
        "fp": match.fp,
        "fn": match.fn,
    }


def _format_scores(rows):
    """Per-image scores and their mean, as printed to stdout."""
    import numpy as np

    scores = ("iou", "dice", "f1", "count_error")
    header = ("image", "true", "found", "IoU", "Dice", "F1", "count error")
    lines = [
        (r["image"], str(r["true_count"]), str(r["predicted_count"]),
         *(f"{r[k]:.3f}" for k in scores))
        for r in rows
    ]
    if rows:
        lines.append(("mean", "", "", *(f"{np.mean([r[k] for r in rows]):.3f}" for k in scores)))
    return format_table(header, lines)


def run_evaluate(args):
    """Run ``particleseg evaluate``; return the exit status."""
    resolve_model(args.model)
    X, y, names = _load_folder(args.folder)
    seg, described = load_model(args.model, args.device)
    configure_prediction(seg, args.tile_size, args.threads, args.inference_scale,
                         args.min_confidence)
    if not args.quiet:
        say(f"Evaluating the {described} on {len(X)} annotated images from {args.folder}.")

    rows = []
    bar = progress(zip(names, X, y), total=len(X), desc="evaluate", unit="image",
                   quiet=args.quiet)
    try:
        for name, image, truth in bar:
            labels, _, _ = segment(seg, image, args)
            rows.append(_scores(name, truth, labels, args.iou_threshold))
    except KeyboardInterrupt:
        say(f"Interrupted after {len(rows)} of {len(X)} images.")
        if not rows:
            return EXIT_INTERRUPTED
    finally:
        bar.close()

    print(_format_scores(rows), file=sys.stdout)
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    pooled = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0
    print(
        f"Instances matched at IoU >= {args.iou_threshold:g}, over all images: "
        f"{tp} matched, {fp} false, {fn} missed (F1 {pooled:.3f}).",
        file=sys.stdout,
    )
    if args.out is not None:
        import pandas as pd

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out, index=False)
        print(f"Wrote {out} ({len(rows)} rows, one per image).", file=sys.stdout)
    if len(rows) < len(X):
        return EXIT_INTERRUPTED
    if any(math.isinf(r["count_error"]) for r in rows):
        say("note: count_error is infinite for images without true particles where some "
            "were found.")
    return EXIT_OK
