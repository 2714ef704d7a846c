"""Calibrate a model's particle confidence and choose its confidence threshold.

On the EMPS validation split (never trained on), every predicted particle
(``inference_scale="auto"``, no confidence threshold) gets its raw score
(mean particle-or-border probability over its pixels) and whether it matches
a true particle at IoU 0.5. An isotonic regression of "matched" on the raw
score is the calibration: among particles of calibrated confidence near
``c``, a fraction of about ``c`` match. The threshold ``min_confidence_`` is
the one, on a grid, that maximises the mean per-image F1.

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
from particleseg.postprocessing import particle_confidence  # noqa: E402

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
    args = p.parse_args(argv)

    seg = ParticleSegmenter.load(args.model, device="cpu")
    seg.set_params(inference_scale="auto", min_confidence=None)
    seg.confidence_calibration_ = None
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

    print("\n| min_confidence | F1 mean | F1 pooled | count err. median |\n|---|---|---|---|")
    best, best_f1 = 0.0, -1.0
    for t in GRID:
        kept = [label_particles(seg._decide(pr), proba=pr, min_confidence=float(t), calibration=calibration)
                for pr in probas]
        r = score_images(truths, kept)
        print(f"| {t:.2f} | {r['F1 mean']:.3f} | {r['F1 pooled']:.3f} | {r['count err. median']:.3f} |")
        if r["F1 mean"] > best_f1 + 1e-9:
            best, best_f1 = float(t), r["F1 mean"]
    print(f"\nchosen min_confidence {best:.2f} (mean per-image F1 {best_f1:.3f})")

    final = ParticleSegmenter.load(args.model, device="cpu")
    final.confidence_calibration_ = calibration
    final.min_confidence_ = best
    final.model_info_ = dict(final.model_info_)
    final.model_info_["confidence"] = (
        f"calibrated by isotonic regression on the {len(images)} EMPS validation images "
        f"({len(all_raw)} particles); min_confidence {best:.2f} maximises their mean per-image F1"
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
