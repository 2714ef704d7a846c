"""How much ``label_particles`` changed when labels began to grow with ``grow_labels``.

Until this release, ``label_particles`` grew the core labels over the border
with ``skimage.segmentation.watershed`` on a flat image, whose ties (a border
pixel as close to two cores) were broken by heap order. ``grow_labels``
gives a tie to the smaller label. This compares the two on class maps made
from real and synthetic instance maps (``annotate_borders``, border width 3
as for the bundled model) and prints how many particles, pixels and areas
differ. The particle count cannot change unless a particle's area crosses
``min_size``.

Usage::

    python benchmarks/grow_labels_change.py                  # EMPS if present, and synthetic
    python benchmarks/grow_labels_change.py --emps PATH --limit 100
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

EMPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emps-train"


def _old_grow(labels, foreground):
    from skimage import segmentation

    return segmentation.watershed(np.zeros(labels.shape, dtype=np.uint8), labels,
                                  mask=foreground, connectivity=2).astype(np.int32)


def compare(instance_maps, border_width=3, min_size=4):
    """Totals over the maps: particles, particles changed, pixels changed, count changes."""
    from particleseg import annotate_borders, label_particles
    from particleseg.postprocessing import foreground_mask, grow_labels

    totals = dict(maps=0, particles=0, changed=0, pixels=0, foreground=0, count_changes=0,
                  largest_area_change=0.0)
    for instances in instance_maps:
        classes = annotate_borders(instances, width=border_width)
        cores = label_particles(classes, grow=False, min_size=0)
        foreground = foreground_mask(classes) | (classes == 1)
        new, old = grow_labels(cores, foreground), _old_grow(cores, foreground)
        n = int(cores.max())
        differ = new != old
        totals["maps"] += 1
        totals["particles"] += n
        totals["pixels"] += int(differ.sum())
        totals["foreground"] += int(foreground.sum())
        if n:
            changed = np.union1d(new[differ], old[differ])
            totals["changed"] += int(np.count_nonzero(changed))
            a_new = np.bincount(new.ravel(), minlength=n + 1)[1:].astype(float)
            a_old = np.bincount(old.ravel(), minlength=n + 1)[1:].astype(float)
            kept = a_old > 0
            if kept.any():
                totals["largest_area_change"] = max(
                    totals["largest_area_change"],
                    float(np.max(np.abs(a_new[kept] - a_old[kept]) / a_old[kept])))
        counts = (int(label_particles(classes, min_size=min_size).max()),
                  int((np.bincount(old.ravel())[1:] >= min_size).sum()) if n else 0)
        totals["count_changes"] += counts[0] != counts[1]
    return totals


def _emps_maps(folder, limit):
    import imageio.v3 as iio
    from skimage.measure import label

    files = sorted((folder / "segmaps").glob("*.png"))[:limit]
    for f in files:
        seg = np.asarray(iio.imread(f))
        if seg.ndim == 3:
            seg = seg[..., 0]
        # EMPS segmaps are instance maps: one grey level per particle.
        yield seg.astype(np.int32) if seg.max() > 1 else label(seg > 0)


def _synthetic_maps(n):
    from particleseg.datasets import make_particles

    _, y = make_particles(n_images=n, shape=(512, 512), n_particles=150, random_state=0)
    yield from (np.asarray(t) for t in y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emps", type=Path, default=EMPS, help="EMPS folder (images/, segmaps/)")
    p.add_argument("--limit", type=int, default=None, help="at most this many EMPS maps")
    p.add_argument("--synthetic", type=int, default=20, help="synthetic 512² maps")
    args = p.parse_args(argv)
    sets = []
    if (args.emps / "segmaps").is_dir():
        sets.append(("EMPS segmaps", _emps_maps(args.emps, args.limit)))
    sets.append(("make_particles 512², 150 particles", _synthetic_maps(args.synthetic)))
    print("| maps | particles | particles whose pixels changed | foreground pixels changed | "
          "largest area change | count changed (min_size 4) |")
    print("|---|---|---|---|---|---|")
    for name, maps in sets:
        t = compare(maps)
        print(f"| {name}: {t['maps']} | {t['particles']} | {t['changed']} "
              f"({t['changed'] / max(t['particles'], 1):.1%}) | {t['pixels']} "
              f"({t['pixels'] / max(t['foreground'], 1):.3%}) | "
              f"{t['largest_area_change']:.1%} | {t['count_changes']} maps |")


if __name__ == "__main__":
    main()
