"""Train the pretrained EMPS particle model that ships with particleseg.

Reproduces ``src/particleseg/models/emps.safetensors``. Training is resumable:
the full training state is written to ``--checkpoint`` after every epoch, and
running the same command again continues from it, so a long run can span
several working sessions. ``--export`` writes the model file from the latest
checkpoint without training.

The shipped model was trained in two stages with this script; the exact
commands of both are in docs/model_card.rst ("Recipe"), and the model file
records its own (``model_info_["command"]``).

The validation split (20 %, seed 0, see ``_emps.split_indices``) is never
trained on; ``benchmarks/emps_accuracy.py`` evaluates on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emps import DEFAULT_DATA, SPLIT_SEED, VALID_FRACTION, split_indices  # noqa: E402

from particleseg.annotation import BorderAnnotator  # noqa: E402
from particleseg.datasets import load_emps  # noqa: E402
from particleseg.segmenter import ParticleSegmenter  # noqa: E402


def make_augmenter(invert: bool, scale_robust: bool = False, crop_size: int = 256,
                   degrade: bool = False):
    """The recipe's nine augmentations, plus contrast inversion (polarity).

    With ``degrade``, noise (:class:`~particleseg.augmentation.GaussianNoise`)
    and the soft edges of an enlarged image
    (:class:`~particleseg.augmentation.LowResolution`) are added.

    With ``scale_robust``, the recipe's mild resize is replaced by a
    log-uniform rescale over 0.5-2x, and figure annotations (labelled
    background) and particle-free backgrounds are mixed in
    (:class:`particleseg._figures.ScaleRobustAugmenter`).
    """
    from particleseg._figures import ScaleRobustAugmenter
    from particleseg.augmentation import (Augmenter, GaussianNoise, InvertContrast,
                                          LowResolution, default_augmenter)

    aug = default_augmenter()
    steps = list(aug.steps)
    if invert:
        steps.append(("invert", InvertContrast(p=0.5)))
    if degrade:
        steps += [("low_resolution", LowResolution()), ("noise", GaussianNoise())]
    if not scale_robust:
        return Augmenter(steps)
    steps = [(name, "passthrough" if name == "resize" else step) for name, step in steps]
    return ScaleRobustAugmenter(Augmenter(steps), crop_size=crop_size)


def build_segmenter(args):
    return ParticleSegmenter(
        backbone=args.backbone,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        crop_size=args.crop_size,
        crops_per_image=args.crops_per_image,
        augment=make_augmenter(args.invert, args.scale_robust, args.crop_size, args.degrade),
        weights=args.weights,
        annotator=BorderAnnotator(width=args.border_width),
        intensity_range=args.intensity_range,
        checkpoint=args.checkpoint,
        n_threads=args.threads,
        device=args.device,
        random_state=args.seed,
        verbose=1,
    )


def training_command(args):
    """The command that trains this model (export-only options left out)."""
    parts = ["python benchmarks/train_emps.py",
             f"--backbone {args.backbone}", f"--border-width {args.border_width}",
             f"--epochs {args.epochs}", f"--batch-size {args.batch_size}",
             f"--learning-rate {args.learning_rate:g}", f"--crop-size {args.crop_size}",
             f"--crops-per-image {args.crops_per_image}",
             f"--intensity-range {args.intensity_range}", f"--seed {args.seed}"]
    if not args.invert:
        parts.append("--no-invert")
    if args.all_images:
        parts.append("--all-images")
    if args.scale_robust:
        parts.append("--scale-robust")
    if args.degrade:
        parts.append("--degrade")
    if args.weights:
        parts.append("--weights PREVIOUS_MODEL")
    return " ".join(parts) + " --checkpoint CHECKPOINT --out MODEL"


def export_from_checkpoint(seg, args, train_images, train_targets):
    """Turn the latest checkpoint into a fitted segmenter and save it."""
    import torch

    from particleseg import _training as T
    from particleseg._models import build_model

    ckpt = T.load_checkpoint(args.checkpoint, "cpu")
    model = build_model(args.backbone)
    model.load_state_dict(ckpt["model"])
    seg.model_ = model.eval().to(memory_format=torch.channels_last)
    seg.device_ = torch.device("cpu")
    seg.classes_ = np.array([0, 1, 2])
    annot = BorderAnnotator(width=args.border_width)
    seg.class_weight_ = T.balanced_class_weight([annot.transform(t) for t in train_targets])
    seg.normalization_ = (seg.mean, seg.std)
    seg.history_ = ckpt["history"]
    seg.n_iter_ = ckpt["epoch"]
    seg.border_width_ = args.border_width
    from particleseg._autoscale import training_diameter

    seg.particle_diameter_ = training_diameter(train_targets, annot)
    seg.confidence_calibration_ = None
    seg.min_confidence_ = None
    seg.model_info_ = {
        "training_data": f"EMPS training split, {len(train_images)} of 366 images "
                         f"(validation: {VALID_FRACTION:.0%} held out, seed {SPLIT_SEED})",
        "seed": args.seed,
        "command": training_command(args),
        "epochs_trained": ckpt["epoch"],
        "training_seconds": float(sum(r.get("seconds", 0.0) for r in ckpt["history"])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
    }
    seg.set_params(inference_scale=args.inference_scale)
    if args.validation_json:
        with open(args.validation_json) as f:
            seg.model_info_["validation"] = json.load(f)
    path = seg.save(args.out, half_precision=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {ckpt['epoch']} epochs")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="EMPS-style folder (images/, segmaps/)")
    p.add_argument("--backbone", default="mobilenet_v3_large")
    p.add_argument("--border-width", type=int, default=1)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--crop-size", type=int, default=256)
    p.add_argument("--crops-per-image", type=int, default=4)
    p.add_argument("--intensity-range", default="image", choices=["dtype", "image"])
    p.add_argument("--no-invert", dest="invert", action="store_false",
                   help="do not add contrast inversion to the augmentations")
    p.add_argument("--scale-robust", action="store_true",
                   help="rescale 0.5-2x, paste figure annotations, add particle-free backgrounds")
    p.add_argument("--degrade", action="store_true",
                   help="add noise and the soft edges of enlarged images (LowResolution)")
    p.add_argument("--weights", default=None,
                   help="start from this model file (e.g. the previous bundled model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", required=True, help="training-state file (resumed if present)")
    p.add_argument("--out", required=True, help="model file to write (.safetensors)")
    p.add_argument("--all-images", action="store_true",
                   help="train on all images (no validation hold-out)")
    p.add_argument("--export", action="store_true", help="only write --out from the checkpoint")
    p.add_argument("--inference-scale", type=lambda s: s if s == "auto" else float(s), default=1.0,
                   help="inference_scale stored in the exported model (chosen by validation F1)")
    p.add_argument("--validation-json", default=None,
                   help="JSON file of validation metrics (from emps_accuracy.py --json) to store "
                        "in the exported model's description")
    args = p.parse_args(argv)

    X, y, names = load_emps(args.data)
    if args.all_images:
        train = np.arange(len(X))
    else:
        train, _ = split_indices(len(X))
    train_images = [X[i] for i in train]
    train_targets = [y[i] for i in train]
    print(json.dumps({k: v for k, v in vars(args).items()}), flush=True)
    seg = build_segmenter(args)
    if not args.export:
        seg.fit(train_images, train_targets)
    export_from_checkpoint(seg, args, train_images, train_targets)


if __name__ == "__main__":
    main()
