"""Accuracy on the EMPS validation split: classical baseline vs the models.

Evaluates on the 20 % of the 366 EMPS images held out with seed 0
(``_emps.split_indices``); the models evaluated here never trained on them.
Prints one markdown table row per method:

* mean / median / min / max foreground IoU and Dice, pixel accuracy (as in
  the published recipe);
* instance F1 at IoU 0.5 (one-to-one Hungarian matching, pooled over images);
* median and mean count error ``|n_pred - n_true| / n_true``;
* median relative error of the mean equivalent diameter per image.

Rows per model: "argmax classes" is the plain 3-class recipe (each pixel
its most probable class, border -> background, connected components, cores
grown back); "predict (calibrated outlines)" is ``ParticleSegmenter.predict``
with its default decision rule. ``--variants`` adds watershed splitting,
8-fold flip/rotation averaging, the other inference scale and float32
inference.

Usage::

    python benchmarks/emps_accuracy.py                       # the shipped model
    python benchmarks/emps_accuracy.py --model a.safetensors --model b.safetensors
    python benchmarks/emps_accuracy.py --variants watershed,flips,scale,float32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
from skimage import filters, measure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emps import DEFAULT_DATA, split_indices  # noqa: E402

from particleseg import ParticleSegmenter, label_particles, pretrained  # noqa: E402
from particleseg.datasets import load_emps  # noqa: E402
from particleseg.metrics import count_error, dice_score, iou_score, match_particles, pixel_accuracy  # noqa: E402


def otsu_baseline(image):
    """Otsu threshold + connected components; the particle side is the one
    that covers less of the image's outer frame (particles rarely fill it)."""
    t = filters.threshold_otsu(image)
    dark = image <= t
    frame = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
    mask = dark if frame.mean() < 0.5 else ~dark
    labels = measure.label(mask, connectivity=1)
    areas = np.bincount(labels.ravel())
    small = areas < 4
    small[0] = False
    labels[small[labels]] = 0
    return measure.label(labels > 0, connectivity=1)


def mean_diameter(labels):
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.mean(2 * np.sqrt(areas / np.pi))) if len(areas) else 0.0


def scores(rows_true, rows_pred, images):
    ious, dices, accs, count_errs, diam_errs = [], [], [], [], []
    tp = fp = fn = 0
    for y, pred in zip(rows_true, rows_pred):
        ious.append(iou_score(y > 0, pred > 0))
        dices.append(dice_score(y > 0, pred > 0))
        accs.append(pixel_accuracy(y > 0, pred > 0))
        m = match_particles(y, pred, iou_threshold=0.5)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
        count_errs.append(count_error(int(len(np.unique(y)) - 1), int(pred.max())))
        d_true, d_pred = mean_diameter(y), mean_diameter(pred)
        diam_errs.append(abs(d_pred - d_true) / d_true if d_true else np.nan)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    return {
        "IoU mean": np.mean(ious), "IoU median": np.median(ious), "IoU min": np.min(ious),
        "IoU max": np.max(ious), "Dice mean": np.mean(dices), "Dice median": np.median(dices),
        "Dice min": np.min(dices), "Dice max": np.max(dices), "pixel acc.": np.mean(accs),
        "F1@0.5": f1, "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
        "count err. median": np.median(count_errs), "count err. mean": np.mean(count_errs),
        "diam. err. median": np.nanmedian(diam_errs),
    }


def print_table(results):
    cols = list(next(iter(results.values())).keys())
    print("| method | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--model", action="append",
                   help="model file(s) to evaluate (default: the bundled 'emps' model)")
    p.add_argument("--variants", default="",
                   help="comma-separated options to evaluate too: watershed, flips, scale, float32 "
                        "(e.g. --variants watershed,flips)")
    p.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    p.add_argument("--inference-scale", type=float, default=None,
                   help="override the models' inference_scale")
    p.add_argument("--json", default=None,
                   help="write the rows as JSON to this file (method -> metrics)")
    args = p.parse_args(argv)

    X, y, names = load_emps(args.data)
    _, valid = split_indices(len(X))
    if args.limit:
        valid = valid[: args.limit]
    images = [X[i] for i in valid]
    truth = [y[i] for i in valid]
    print(f"{len(images)} validation images of {len(X)} (seed 0); data {args.data}")

    results = {}
    results["Otsu + connected components"] = scores(truth, [otsu_baseline(im) for im in images], images)

    models = args.model or [None]
    for path in models:
        seg = pretrained("emps", device="cpu") if path is None else ParticleSegmenter.load(path, device="cpu")
        label = "emps (bundled)" if path is None else Path(path).stem
        if args.inference_scale is not None:
            seg.set_params(inference_scale=args.inference_scale)
        if seg.inference_scale != 1.0:
            label += f" @{seg.inference_scale:g}x"
        width = seg.border_width_ or 1
        t0 = time.perf_counter()
        probas = [seg.predict_proba(im) for im in images]
        seconds = (time.perf_counter() - t0) / len(images)
        print(f"{label}: {seconds:.2f} s per image (median size {np.median([im.size for im in images]) ** 0.5:.0f} px)")
        argmax = [seg.set_params(calibrate_outlines=False)._decide(pr) for pr in probas]
        decided = [seg.set_params(calibrate_outlines=True)._decide(pr) for pr in probas]
        results[f"{label}: argmax classes, components"] = scores(
            truth, [label_particles(c) for c in argmax], images)
        results[f"{label}: predict (calibrated outlines), components"] = scores(
            truth, [label_particles(c) for c in decided], images)
        variants = set(filter(None, args.variants.split(",")))
        unknown = variants - {"watershed", "flips", "scale", "float32"}
        if unknown:
            p.error(f"unknown variants {sorted(unknown)}")
        if "watershed" in variants:
            results[f"{label}: predict (calibrated outlines), watershed"] = scores(
                truth, [label_particles(c, method="watershed", min_distance=width) for c in decided], images)
        if "float32" in variants:
            seg.set_params(inference_precision="float32")
            p32 = [seg.predict_proba(im) for im in images]
            seg.set_params(inference_precision="auto")
            differ = np.mean([(a.argmax(0) != b.argmax(0)).mean() for a, b in zip(p32, probas)])
            print(f"{label}: float32 vs auto precision: {differ:.4%} of pixels change class")
            results[f"{label}: float32, predict, components"] = scores(
                truth, [label_particles(seg._decide(pr)) for pr in p32], images)
        if "flips" in variants:
            seg.set_params(test_time_flips=True)
            flipped = [seg.predict_proba(im) for im in images]
            seg.set_params(test_time_flips=False)
            results[f"{label}: 8 flips, predict, components"] = scores(
                truth, [label_particles(seg._decide(pr)) for pr in flipped], images)
        if "scale" in variants:
            # The other inference scale (1 <-> 2), to choose it by F1.
            other = 1.0 if seg.inference_scale != 1.0 else 2.0
            seg.set_params(inference_scale=other)
            alt = [seg.predict_proba(im) for im in images]
            results[f"{label} at {other:g}x: argmax classes, components"] = scores(
                truth, [label_particles(seg.set_params(calibrate_outlines=False)._decide(pr)) for pr in alt], images)
            results[f"{label} at {other:g}x: predict (calibrated outlines), components"] = scores(
                truth, [label_particles(seg.set_params(calibrate_outlines=True)._decide(pr)) for pr in alt], images)
    print()
    print_table(results)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"split": f"EMPS validation: {len(images)} images held out (seed 0)",
                       "rows": {k: {c: round(float(v), 4) for c, v in r.items()} for k, r in results.items()}},
                      f, indent=1)


if __name__ == "__main__":
    main()
