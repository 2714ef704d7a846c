"""Cost of ``inference_scale="auto"`` against a fixed scale at the scale it chose.

For each image, ``predict_proba`` is timed with ``"auto"`` and then with the
scale ``"auto"`` chose (``last_scales_``), alternately, ``--repeats`` times;
the table gives per image the chosen scale, the median seconds of each and
their ratio, and the median ratio over images. The automatic scale pays a
half-size probe pass on top, except when the chosen scale is the probe's
own (then the probe is the answer), so the ratio is at most about 1.5.

Usage::

    python benchmarks/auto_scale_cost.py --set sem --limit 8
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from counts import DEFAULT_DATA, SEM_DATA, emps_set, sem_set  # noqa: E402

from particleseg import pretrained  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=["sem", "emps"], default="sem")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    names, images, _ = (sem_set(SEM_DATA, args.limit) if args.set == "sem"
                        else emps_set(DEFAULT_DATA, args.limit))
    seg = pretrained("emps", device="cpu")
    print("| image | chosen scale | auto (s) | fixed (s) | ratio |\n|---|---|---|---|---|")
    ratios = []
    for name, image in zip(names, images):
        auto, fixed = [], []
        for _ in range(args.repeats):
            seg.set_params(inference_scale="auto")
            t0 = time.perf_counter()
            seg.predict_proba(image)
            auto.append(time.perf_counter() - t0)
            scale = seg.last_scales_[0]
            seg.set_params(inference_scale=scale)
            t0 = time.perf_counter()
            seg.predict_proba(image)
            fixed.append(time.perf_counter() - t0)
        ratio = float(np.median(auto) / np.median(fixed))
        ratios.append(ratio)
        print(f"| {name} | {scale:g} | {np.median(auto):.2f} | {np.median(fixed):.2f} | {ratio:.2f} |",
              flush=True)
    print(f"\nmedian ratio auto / fixed at the chosen scale: {np.median(ratios):.2f} "
          f"(max {np.max(ratios):.2f}) over {len(ratios)} images")


if __name__ == "__main__":
    main()
