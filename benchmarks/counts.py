"""Counts a user can trust: instance scores on held-out and unseen micrographs.

Scores, per set and per method (see ``_scoring.py``): mean per-image F1 at
IoU 0.5 (Hungarian matching) and pooled F1, pooled precision and recall, the
median per-image count error |n_pred - n_true| / n_true and the median
relative error of the per-image mean equivalent diameter.

Sets:

* ``emps``: the EMPS validation split (74 images, seed 0; never trained on);
* ``sem``: ``../shared/data/sem-silica`` (41 SEM images of another material,
  never trained on);
* ``robust``: a robustness suite from the EMPS validation images, each
  rescaled to 0.5x and 2x, inverted in contrast, given pasted figure
  annotations (scale bars, text, panel letters, arrows; the pixels under
  them are background in the truth, so a particle partly covered keeps its
  visible part), and given noise.

Methods: the previous bundled model (git revision ``PREVIOUS``) at 1x and
2x, the bundled model at 1x, 2x and ``"auto"``, and Otsu's threshold.

Usage::

    python benchmarks/counts.py                          # everything
    python benchmarks/counts.py --sets sem --methods auto,previous@1
    python benchmarks/counts.py --limit 20 --json counts.json
    python benchmarks/counts.py --sets sem --methods auto,emps@1 --per-image
    python benchmarks/counts.py --sets sem --methods auto --thresholds 0,0.1,0.2,0.3
    python benchmarks/counts.py --reliability docs/_static/reliability.png
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emps import DEFAULT_DATA, split_indices  # noqa: E402
from _scoring import format_table, n_particles, score_images  # noqa: E402
from emps_accuracy import otsu_baseline  # noqa: E402

from particleseg import ParticleSegmenter, pretrained  # noqa: E402
from particleseg.datasets import load_emps  # noqa: E402
from particleseg.segmenter import _drop_unsure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEM_DATA = ROOT / ".." / "shared" / "data" / "sem-silica"
#: The commit whose bundled model was shipped before the scale-robust one.
PREVIOUS = "e4fd14d"
COLUMNS = ("F1 mean", "F1 pooled", "precision", "recall", "count err. median",
           "diam. err. median", "n true", "n pred", "median scale", "s / image")
VARIANTS = ("plain", "0.5x", "2x", "inverted", "annotations", "noise")


# ----------------------------------------------------------------------------
# Sets


def emps_set(data, limit=None):
    X, y, names = load_emps(data)
    _, valid = split_indices(len(X))
    if limit:
        valid = valid[:limit]
    return [names[i] for i in valid], [X[i] for i in valid], [y[i] for i in valid]


def sem_set(data, limit=None):
    from imageio.v3 import imread

    files = sorted(glob.glob(str(Path(data) / "images" / "*.png")))
    if not files:
        raise SystemExit(f"no images in {data}/images")
    if limit:
        files = files[:limit]
    names = [Path(f).stem for f in files]
    images = [imread(f) for f in files]
    truths = [imread(str(Path(data) / "segmaps" / Path(f).name)).astype(np.int32) for f in files]
    return names, images, truths


def _gray01(image):
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., 0]
    return image.astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)


def variant(image, truth, kind, seed):
    """One robustness variant of an image and its truth (8-bit out)."""
    from particleseg._figures import _rescale, paste_annotations

    rng = np.random.default_rng(seed)
    im = _gray01(image)
    if kind == "plain":
        out, t = im, truth
    elif kind in ("0.5x", "2x"):
        out, t = _rescale(im, np.asarray(truth), 0.5 if kind == "0.5x" else 2.0)
    elif kind == "inverted":
        out, t = 1.0 - im, truth
    elif kind == "annotations":
        out, t, _ = paste_annotations(im, truth, rng, n_max=4)
    elif kind == "noise":
        out = np.clip(im + rng.normal(0, 0.08, im.shape), 0, 1)
        t = truth
    else:
        raise ValueError(kind)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), np.asarray(t, dtype=np.int32)


# ----------------------------------------------------------------------------
# Methods


def previous_model_path(revision=PREVIOUS):
    """The model file bundled at ``revision``, extracted from git."""
    target = Path(tempfile.gettempdir()) / f"particleseg-emps-{revision}.safetensors"
    if not target.exists():
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:src/particleseg/models/emps.safetensors"],
            check=True, capture_output=True).stdout
        target.write_bytes(blob)
    return target


def load_method(name, previous):
    """(segmenter or None, label) for a method name like ``auto`` or ``previous@2``."""
    if name == "otsu":
        return None, "Otsu + components"
    base, _, scale = name.partition("@")
    if base == "previous":
        seg = ParticleSegmenter.load(previous, device="cpu")
        label = "previous bundled model"
    elif base in ("auto", "emps", "analyze"):
        seg = pretrained("emps", device="cpu")
        label = "bundled model"
    else:
        seg = ParticleSegmenter.load(base, device="cpu")
        label = Path(base).stem
    if base in ("auto", "analyze"):
        scale = "auto"
    if scale:
        seg.set_params(inference_scale="auto" if scale == "auto" else float(scale))
    return seg, f"{label} @{seg.inference_scale if isinstance(seg.inference_scale, str) else f'{seg.inference_scale:g}x'}"


def run_method(seg, images, remove_annotations=False):
    """Instance maps, confidences, chosen scales and seconds per image.

    With ``remove_annotations``, particles lying mostly in figure annotations
    (``particleseg.scalebar.annotation_mask``) are dropped, as
    ``particleseg analyze`` does by default.
    """
    labels, confidences, scales, seconds = [], [], [], []
    for image in images:
        t0 = time.perf_counter()
        if seg is None:
            lab, conf, scale = otsu_baseline(_gray01(image)), None, None
        else:
            lab, conf = seg.predict_particles(image, return_confidence=True)
            scale = seg.last_scales_[0]
            if remove_annotations:
                from particleseg.scalebar import annotation_mask, remove_annotated_particles

                lab, _ = remove_annotated_particles(lab, annotation_mask(image))
        seconds.append(time.perf_counter() - t0)
        labels.append(lab)
        confidences.append(conf)
        scales.append(scale)
    return labels, confidences, scales, seconds


# ----------------------------------------------------------------------------
# Reliability of the confidence


def reliability(confidences, matches, bins=10):
    """Rows (low, high, n, mean confidence, fraction matched) and the ECE."""
    conf = np.concatenate([c for c in confidences if c is not None and len(c)])
    hit = np.concatenate([
        np.isin(np.arange(1, len(c) + 1), sorted(m)) for c, m in zip(confidences, matches)
        if c is not None and len(c)
    ])
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if sel.any():
            rows.append((lo, hi, int(sel.sum()), float(conf[sel].mean()), float(hit[sel].mean())))
            ece += sel.sum() / len(conf) * abs(conf[sel].mean() - hit[sel].mean())
    return rows, float(ece), conf, hit


def plot_reliability(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    for name, rows in curves.items():
        ax.plot([r[3] for r in rows], [r[4] for r in rows], marker="o", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("fraction that match a true particle (IoU ≥ 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


# ----------------------------------------------------------------------------


def score_row(args, results, curves, set_name, label, names, truths, labels, confs, scales,
              seconds):
    """Score one method on one set, print the row and keep it in ``results``."""
    r = score_images(truths, labels)
    r["s / image"] = float(np.median(seconds))
    if scales[0] is not None:
        r["median scale"] = float(np.median(scales))
    results.setdefault(set_name, {})[label] = r
    if args.json:  # after every row, so that an interrupted run keeps what it did
        _write_json(args.json, results)
    print(f"[{set_name}] {label}: F1 mean {r['F1 mean']:.3f}, count err. "
          f"{r['count err. median']:.3f}, {r['s / image']:.2f} s/image", flush=True)
    if args.per_image:
        for name, truth, lab, f1, scale in zip(names, truths, labels, r["per-image F1"],
                                                scales):
            at = "" if scale is None else f", scale {scale:g}"
            print(f"    {name}: {n_particles(truth)} true, {n_particles(lab)} found, "
                  f"F1 {f1:.3f}{at}")
    if confs[0] is not None and label.endswith("auto") and not set_name.startswith("robust"):
        rows, ece, _, _ = reliability(confs, r["matches"])
        curves[f"{set_name} (ECE {ece:.3f})"] = rows
        print(f"  reliability on {set_name}: ECE {ece:.3f}")
        for lo, hi, n, mc, fm in rows:
            print(f"    [{lo:.1f}, {hi:.1f}): n={n:5d}  confidence {mc:.3f}  matched {fm:.3f}")


def _write_json(path, results):
    keep = {s: {m: {k: v for k, v in r.items() if k not in ("matches", "per-image F1")}
                for m, r in rows.items()} for s, rows in results.items()}
    Path(path).write_text(json.dumps(keep, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emps", default=str(DEFAULT_DATA))
    p.add_argument("--sem", default=str(SEM_DATA))
    p.add_argument("--sets", default="emps,sem,robust")
    p.add_argument("--methods", default="previous@1,previous@2,emps@1,emps@2,auto,otsu",
                   help="comma-separated: previous@S, emps@S, auto, analyze (auto, then annotations "
                        "removed as particleseg analyze does), otsu, or a model path[@S]; "
                        "S is a number or auto")
    p.add_argument("--previous", default=None,
                   help=f"previous model file (default: the one bundled at git {PREVIOUS})")
    p.add_argument("--limit", type=int, default=None, help="first N images of each set")
    p.add_argument("--robust-limit", type=int, default=20,
                   help="EMPS validation images in the robustness suite (default 20)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", default=None, help="write all rows to this JSON file")
    p.add_argument("--reliability", default=None, help="write a reliability plot (PNG) here")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--tiles", default=None, metavar="SIZE,OVERLAP",
                   help="tile_size and tile_overlap of every model (default: each model's own); "
                        "the rows are labelled with them")
    p.add_argument("--merge", nargs="+", default=None,
                   help="only print the tables of these JSON files (from --json), merged")
    p.add_argument("--rst", action="store_true", help="print reStructuredText list-tables")
    p.add_argument("--thresholds", default=None, metavar="T,T,...",
                   help="score each model at these min_confidence values instead of its own "
                        "(one prediction per image, filtered per value; not with analyze)")
    p.add_argument("--per-image", action="store_true",
                   help="also print each image's true and found particles, F1 and scale")
    args = p.parse_args(argv)
    if args.merge:
        merged = {}
        for path in args.merge:
            for set_name, rows in json.loads(Path(path).read_text()).items():
                merged.setdefault(set_name, {}).update(rows)
        for set_name, rows in merged.items():
            print(f"\n**{set_name}**\n" if args.rst else f"\n### {set_name}\n")
            print(format_table(rows, COLUMNS, rst=args.rst))
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    sets = {}
    chosen = args.sets.split(",")
    if "emps" in chosen or "robust" in chosen:
        emps = emps_set(args.emps, args.limit)
        if "emps" in chosen:
            sets["EMPS validation"] = emps
    if "sem" in chosen:
        sets["sem-silica"] = sem_set(args.sem, args.limit)
    if "robust" in chosen:
        names, images, truths = (v[: args.robust_limit] for v in emps)
        for kind in args.variants.split(","):
            pairs = [variant(im, t, kind, seed=i) for i, (im, t) in enumerate(zip(images, truths))]
            sets[f"robust: {kind}"] = (names, [a for a, _ in pairs], [b for _, b in pairs])

    previous = args.previous or previous_model_path()
    results, curves = {}, {}
    for method in args.methods.split(","):
        seg, label = load_method(method, previous)
        if args.tiles and seg is not None:
            size, overlap = (int(v) for v in args.tiles.split(","))
            seg.set_params(tile_size=size, tile_overlap=overlap)
            label += f", tiles {size}/{overlap}"
        if method.startswith("analyze"):
            label += ", annotations removed"
        thresholds = [None]
        if args.thresholds and seg is not None:
            if method.startswith("analyze"):
                raise SystemExit("--thresholds does not work with analyze: drop one of them")
            thresholds = [float(t) for t in args.thresholds.split(",")]
            seg.set_params(min_confidence=None)  # filtered below; the scale does not depend on it
        for set_name, (names, images, truths) in sets.items():
            all_labels, all_confs, scales, seconds = run_method(
                seg, images, method.startswith("analyze"))
            for t in thresholds:
                name = label if t is None else f"{label}, min_confidence {t:g}"
                labels, confs = all_labels, all_confs
                if t is not None:
                    labels, confs = zip(*(_drop_unsure(lab, c, t)
                                          for lab, c in zip(all_labels, all_confs)))
                score_row(args, results, curves, set_name, name, names, truths, labels, confs,
                          scales, seconds)

    for set_name, rows in results.items():
        n = len(sets[set_name][0])
        print(f"\n### {set_name} ({n} images)\n")
        print(format_table(rows, COLUMNS))
    if args.json:
        _write_json(args.json, results)
    if args.reliability and curves:
        plot_reliability(curves, args.reliability)


if __name__ == "__main__":
    main()
