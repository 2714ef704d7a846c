"""Calibrate a model's particle confidence and choose its confidence threshold.

On the EMPS validation split (never trained on), every predicted particle
(``inference_scale="auto"``, no confidence threshold) gets its raw score
(mean particle-or-border probability over its pixels) and whether it matches
a true particle at IoU 0.5. An isotonic regression of "matched" on the raw
score is the calibration: among particles of calibrated confidence near
``c``, a fraction of about ``c`` match. The images are predicted without the
model's earlier calibration, so every particle sizes its image for the
automatic scale and the fit does not depend on an earlier one.

The threshold ``min_confidence_`` is then chosen on a grid. The images are
predicted once more as a user predicts them, with the new calibration in
place (it decides which particles size each image for the automatic scale;
a threshold does not change the scale, so each threshold only drops
particles). Of the thresholds whose mean per-image F1@0.5 is within 0.01 of
the best, the one with the smallest median count error is chosen (the rule
fine-tuning uses on its held-out data; ``--rule f1`` takes the best mean F1
instead).

Both are written into the model file (``--out``, default: in place).
``benchmarks/counts.py --reliability`` then checks the calibration on
sem-silica, which plays no part here.

Usage::

    python benchmarks/calibrate_confidence.py --model src/particleseg/models/emps.safetensors
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emps import DEFAULT_DATA  # noqa: E402
from _scoring import score_images  # noqa: E402
from counts import emps_set  # noqa: E402

from particleseg import ParticleSegmenter, label_particles  # noqa: E402
from particleseg._finetune import F1_TOLERANCE, choose_threshold  # noqa: E402
from particleseg.postprocessing import particle_confidence  # noqa: E402
from particleseg.segmenter import _drop_unsure  # noqa: E402

GRID = np.round(np.arange(0.0, 0.81, 0.05), 2)


def fit_calibration(raw, matched, n_knots=16):
    """Increasing piecewise-linear knots of the isotonic fit of ``matched`` on ``raw``."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(raw, matched.astype(float))
    knots = np.unique(np.quantile(raw, np.linspace(0, 1, n_knots)))
    knots = np.unique(np.concatenate([[0.0], knots, [1.0]]))
    values = np.maximum.accumulate(iso.predict(knots))
    return {"raw": [round(float(k), 4) for k in knots], "calibrated": [round(float(v), 4) for v in values]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--out", default=None, help="model file to write (default: --model, in place)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--rule", choices=["count", "f1"], default="count",
                   help="how the threshold is chosen (see above; default: count)")
    args = p.parse_args(argv)

    seg = ParticleSegmenter.load(args.model, device="cpu")
    seg.set_params(inference_scale="auto", min_confidence=None)
    seg.confidence_calibration_ = None  # raw scores: every particle sizes its image
    names, images, truths = emps_set(args.data, args.limit)
    probas, labels = [], []
    for image in images:
        proba = seg.predict_proba(image)
        probas.append(proba)
        labels.append(label_particles(seg._decide(proba), proba=proba))
    raw = [particle_confidence(lab, pr) for lab, pr in zip(labels, probas)]
    scores = score_images(truths, labels)
    matched = [np.isin(np.arange(1, len(r) + 1), sorted(m)) for r, m in zip(raw, scores["matches"])]
    all_raw, all_matched = np.concatenate(raw), np.concatenate(matched)
    calibration = fit_calibration(all_raw, all_matched)
    print(f"{len(images)} images, {len(all_raw)} predicted particles, {all_matched.mean():.3f} matched")
    print("calibration knots:", calibration)

    print("\nthe images predicted as a user does, with the calibration and each threshold:")
    print("\n| min_confidence | F1 mean | F1 pooled | count err. median | median scale |")
    print("|---|---|---|---|---|")
    seg.confidence_calibration_ = calibration
    found = list(zip(*seg.predict_particles(images, return_confidence=True)))
    scale = float(np.median(seg.last_scales_))
    rows = []
    for t in GRID:
        r = score_images(truths, [_drop_unsure(lab, conf, float(t))[0] for lab, conf in found])
        rows.append((float(t), r["F1 mean"], r["count err. median"]))
        print(f"| {t:.2f} | {r['F1 mean']:.3f} | {r['F1 pooled']:.3f} "
              f"| {r['count err. median']:.3f} | {scale:.3f} |", flush=True)
    if args.rule == "f1":
        top = max(f1 for _, f1, _ in rows)
        best = min(t for t, f1, _ in rows if f1 >= top - 1e-9)
    else:
        best = choose_threshold(rows)
    f1, count = next((f, c) for t, f, c in rows if t == best)
    how = ("maximises their mean per-image F1" if args.rule == "f1" else
           f"has the smallest median count error of those within {F1_TOLERANCE} of their best "
           "mean per-image F1")
    print(f"\nchosen min_confidence {best:.2f} (mean per-image F1 {f1:.3f}, "
          f"median count error {count:.3f}): it {how}")

    final = ParticleSegmenter.load(args.model, device="cpu")
    final.confidence_calibration_ = calibration
    final.min_confidence_ = best
    final.model_info_ = dict(final.model_info_)
    final.model_info_["confidence"] = (
        f"calibrated by isotonic regression on the {len(images)} EMPS validation images "
        f"({len(all_raw)} particles); min_confidence {best:.2f} {how}"
    )
    half = _is_half(args.model)
    out = final.save(args.out or args.model, half_precision=half)
    print(f"wrote {out}")


def _is_half(path):
    from particleseg._persistence import read_model_file

    config, _ = read_model_file(path)
    return bool(config.get("half_precision"))


if __name__ == "__main__":
    main()
