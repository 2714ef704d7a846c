"""Which particles should size an image for ``inference_scale="auto"``?

``"auto"`` measures the particles of a pass to choose the scale. Unsure
particles (texture, fragments) pull the measured size down and the scale up,
so only particles of calibrated confidence at least
``particleseg._autoscale.SIZING_CONFIDENCE`` size a pass, whatever
``min_confidence`` a user asks for. This benchmark predicts the EMPS
validation split (never trained on) once per candidate value of that
constant, with no confidence threshold, and scores the particles kept at each
threshold of a grid: mean per-image F1@0.5 (Hungarian matching), pooled F1,
median count error and the median scale chosen.

Usage::

    python benchmarks/sizing_confidence.py                      # 0.2 0.3 0.4 0.5
    python benchmarks/sizing_confidence.py --sizing 0.3 0.5 --limit 20
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

from particleseg import ParticleSegmenter, pretrained  # noqa: E402
from particleseg import _autoscale  # noqa: E402
from particleseg.segmenter import _drop_unsure  # noqa: E402

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--sizing", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    p.add_argument("--limit", type=int, default=None, help="first N validation images")
    args = p.parse_args(argv)

    seg = (pretrained("emps", device="cpu") if args.model is None
           else ParticleSegmenter.load(args.model, device="cpu"))
    seg.set_params(inference_scale="auto", min_confidence=None)
    _, images, truths = emps_set(args.data, args.limit)
    print(f"{len(images)} EMPS validation images; model min_confidence_ "
          f"{seg.min_confidence_}; library SIZING_CONFIDENCE {_autoscale.SIZING_CONFIDENCE}\n")
    print("| sizing confidence | min_confidence | F1 mean | F1 pooled | count err. median "
          "| median scale |")
    print("|---|---|---|---|---|---|")
    default = _autoscale.SIZING_CONFIDENCE
    try:
        for sizing in args.sizing:
            _autoscale.SIZING_CONFIDENCE = sizing
            found = list(zip(*seg.predict_particles(images, return_confidence=True)))
            scale = float(np.median(seg.last_scales_))
            for t in THRESHOLDS:
                r = score_images(truths, [_drop_unsure(lab, conf, t)[0] for lab, conf in found])
                print(f"| {sizing:.2f} | {t:.2f} | {r['F1 mean']:.3f} | {r['F1 pooled']:.3f} "
                      f"| {r['count err. median']:.3f} | {scale:.3f} |", flush=True)
    finally:
        _autoscale.SIZING_CONFIDENCE = default


if __name__ == "__main__":
    main()
