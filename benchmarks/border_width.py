"""How wide should the border class be? A round trip on the EMPS labels.

For each border width, every true instance map ``y`` of the EMPS training
split is annotated (``annotate_borders(y, width)``) and labelled back
(``label_particles``); the recovered particles are matched one to one with the
true ones at IoU >= 0.5. This is the best a perfect 3-class segmenter could do
with that border width: the upper bound that the border representation
itself allows. The baseline is what a perfect *2-class* (particle/background)
segmenter gives: the connected components of the true foreground, which
merge every group of touching particles into one.

Run from the repository root::

    python benchmarks/border_width.py                 # about a minute
    python benchmarks/border_width.py --limit 50      # a quick look

and paste the markdown table where the choice of the default width is
discussed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage import measure

from particleseg.annotation import DEFAULT_BORDER_WIDTH, annotate_borders
from particleseg.datasets import load_emps
from particleseg.metrics import match_particles
from particleseg.postprocessing import label_particles

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emps-train"


def touching_particles(labels, corners=False):
    """How many particles touch another one, and how many particles there are.

    Two particles touch when a pixel of one shares an edge (with
    ``corners=True``: an edge or a corner) with a pixel of the other.
    """
    touching = np.zeros(int(labels.max()) + 1, dtype=bool)
    neighbours = [(labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])]
    if corners:
        neighbours += [(labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])]
    for a, b in neighbours:
        contact = (a > 0) & (b > 0) & (a != b)
        touching[a[contact]] = True
        touching[b[contact]] = True
    present = np.zeros_like(touching)
    present[labels.ravel()] = True
    present[0] = False
    return int(touching[present].sum()), int(present.sum())


def score(y, predict, iou_threshold):
    """Pool tp/fp/fn over all images; also the mean IoU of matched particles."""
    tp = fp = fn = 0
    ious = []
    for truth in y:
        match = match_particles(truth, predict(truth), iou_threshold=iou_threshold)
        tp, fp, fn = tp + match.tp, fp + match.fp, fn + match.fn
        ious.append(match.ious)
    ious = np.concatenate(ious)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "mean_iou": float(ious.mean()) if len(ious) else float("nan"),
        "missed": fn,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="EMPS-style folder with images/ and segmaps/ (default: ../shared/data/emps-train "
        "next to the repository)",
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="border widths to try (default: 1 2 3 4)")
    parser.add_argument("--iou-threshold", type=float, default=0.5,
                        help="IoU at which a recovered particle matches a true one (default: 0.5)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N images (default: all)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    _, y, _ = load_emps(args.data)
    y = y[: args.limit]
    n_particles = n_edge = n_corner = images_touching = 0
    for labels in y:
        edge, n = touching_particles(labels)
        corner, _ = touching_particles(labels, corners=True)
        n_particles, n_edge, n_corner = n_particles + n, n_edge + edge, n_corner + corner
        images_touching += edge > 0

    rows = []
    for width in args.widths:
        t0 = time.perf_counter()
        result = score(y, lambda truth: label_particles(annotate_borders(truth, width)),
                       args.iou_threshold)
        default = " (default)" if width == DEFAULT_BORDER_WIDTH else ""
        rows.append((f"border width {width}{default}", result, time.perf_counter() - t0))
    t0 = time.perf_counter()
    baseline = score(y, lambda truth: measure.label(truth > 0, connectivity=1), args.iou_threshold)
    rows.append(("no border: components of the true foreground", baseline, time.perf_counter() - t0))

    print(f"EMPS round trip: {len(y)} images, {n_particles} particles; matching at "
          f"IoU >= {args.iou_threshold}.")
    print(f"Touching particles: {n_edge / n_particles:.1%} of the particles share an edge with "
          f"another ({n_corner / n_particles:.1%} an edge or a corner); "
          f"{images_touching / len(y):.1%} of the images have touching particles.\n")
    print("| labels recovered from | F1 | precision | recall | mean IoU of matches | missed | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r, seconds in rows:
        print(f"| {name} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['mean_iou']:.3f} | {r['missed']} | {seconds:.1f} |")
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
