"""How well :func:`particleseg.scalebar.find_scale_bar` reads scale bars.

Three sets:

* **synthetic figures**: micrographs from :func:`~particleseg.datasets.make_particles`
  with a scale bar drawn by ``particleseg._figures.draw_scale_bar`` (six
  DejaVu fonts, 9 to ~60 px text, every corner, label above, below, left or
  right, light and dark, boxed or not, end ticks), on 256 to 4096 px images,
  some stored as 16-bit, some JPEG-compressed (quality 50-95), some drawn
  larger and then downscaled (0.4-0.9x, so the true length is fractional),
  with up to two other labels (panel letters, words) placed, as in a real
  figure, apart from the bar, its label and each other;
* **synthetic figures without a bar**: the same micrographs with panel letters,
  words and arrows but no scale bar (false detections);
* **real figures**: EMPS images whose scale bar was measured by hand,
  ``benchmarks/data/emps_scale_bars.csv`` (name, bar length in pixels between
  the outer ends, value, unit). Needs ``../shared/data/emps-train``.

Scores, per set:

* detected: a bar was returned whose length is within 3 % (or 1.5 px) of the truth;
* read exactly: detected, calibrated (confidence >= MIN_CONFIDENCE), with the
  value and unit of the label;
* within 3 %: read exactly and the pixel size within 3 % of the truth;
* median |relative pixel-size error| of the calibrated readings;
* wrong calibrations: calibrated readings that are not within 3 % (the
  silent errors the confidence threshold must keep near zero);
* false detections (sets without a bar): a calibration returned at all.

A fourth set, ``annotations`` (not in the default run: it runs the bundled
model), asks whether dropping the particles inside figure annotations
(:func:`~particleseg.scalebar.remove_annotated_particles`, as ``particleseg
analyze`` does) removes false particles without losing true ones. On the EMPS
figures of the CSV above, the bundled model (``pretrained("emps")``,
``inference_scale="auto"``) predicts once; its particles are then scored with
and without the removal: false particles (predicted, matched to no true
particle at IoU 0.5, Hungarian), recall and F1, pooled over the images and
per image. It reports the images of the EMPS validation split (seed 0,
``benchmarks/_emps.py``) and all of them (most were trained on).

Usage::

    python benchmarks/scale_bar.py                       # all sets
    python benchmarks/scale_bar.py --sets annotations    # false particles, with the model
    python benchmarks/scale_bar.py --synthetic 300 --negatives 200
    python benchmarks/scale_bar.py --sets synthetic --synthetic 600 --first 400
    python benchmarks/scale_bar.py --sets synthetic --seed 1   # 200 other figures
    python benchmarks/scale_bar.py --ocr tesseract       # compare the OCR engines
    python benchmarks/scale_bar.py --sets real --verbose # print every reading
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from particleseg import scalebar
from particleseg._figures import FONT_FILES, _draw_arrow, _draw_text, _PANELS, _WORDS, draw_scale_bar
from particleseg.datasets import make_particles

HERE = Path(__file__).resolve().parent
EMPS = HERE.parent.parent / "shared" / "data" / "emps-train" / "images"
TRUTH_CSV = HERE / "data" / "emps_scale_bars.csv"
_UNIT = {"um": "\N{MICRO SIGN}m", "\N{GREEK SMALL LETTER MU}m": "\N{MICRO SIGN}m",
         "A": "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}",
         "\N{ANGSTROM SIGN}": "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}"}


def _unit(u):
    return _UNIT.get(u, u)


_BASES = []


def _bases():
    """A few 384 px micrographs, made once (make_particles is slow at large sizes)."""
    if not _BASES:
        for seed, polarity in enumerate(["dark", "bright", "dark", "bright", "dark", "dark"]):
            X, _ = make_particles(1, (384, 384), n_particles=(25, 60), radius=(5, 20),
                                  polarity=polarity, noise=0.05, random_state=100 + seed)
            x = X[0].astype(np.float32)
            _BASES.append((x - x.min()) / max(float(x.max() - x.min()), 1e-6))
    return _BASES


def _micrograph(rng, size):
    """A micrograph of ``size`` px high: a base resized, flipped, with fresh noise."""
    import cv2

    base = _bases()[int(rng.integers(len(_bases())))]
    if rng.random() < 0.5:
        base = base[:, ::-1]
    h = int(size)
    w = int(size * rng.choice([1.0, 1.0, 1.33, 1.5]))
    x = cv2.resize(np.ascontiguousarray(base), (w, h), interpolation=cv2.INTER_LINEAR)
    x = x + rng.normal(0, rng.uniform(0.01, 0.06), x.shape).astype(np.float32)
    lo, hi = sorted(rng.uniform(0.05, 0.95, 2))  # not every micrograph spans 0..1
    lo, hi = (lo, hi) if hi - lo > 0.3 else (0.15, 0.85)
    return np.clip(lo + (hi - lo) * x, 0, 1).astype(np.float32)


def _finish(img, rng, scale_factor=1.0):
    """Downscale, store as 8/16-bit, JPEG-compress: returns (array, factor, notes)."""
    from PIL import Image

    notes = []
    if scale_factor != 1.0:
        h, w = img.shape
        pil = Image.fromarray((img * 65535).astype(np.uint16).astype(np.int32), mode="I").convert("F")
        pil = pil.resize((max(int(round(w * scale_factor)), 16), max(int(round(h * scale_factor)), 16)),
                         Image.Resampling.LANCZOS if rng.random() < 0.5 else Image.Resampling.BILINEAR)
        img = np.clip(np.asarray(pil) / 65535, 0, 1)
        scale_factor = img.shape[1] / w
        notes.append(f"downscaled {scale_factor:.2f}")
    kind = rng.choice(["png8", "png16", "jpeg"], p=[0.35, 0.25, 0.4])
    if kind == "png16":
        return (img * 65535).astype(np.uint16), scale_factor, notes + ["16-bit"]
    out = (img * 255).round().astype(np.uint8)
    if kind == "jpeg":
        quality = int(rng.integers(50, 96))
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=quality)
        out = np.asarray(Image.open(buffer))
        notes.append(f"JPEG q{quality}")
    return out, scale_factor, notes


def synthetic_figures(n, seed=0):
    """(image, truth dict) with a bar, built reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    sizes = [256, 384, 512, 512, 768, 1024, 1024, 2048, 4096]
    for i in range(n):
        size = sizes[i % len(sizes)]
        down = float(rng.uniform(0.4, 0.9)) if rng.random() < 0.3 and size >= 512 else 1.0
        img = _micrograph(rng, size)
        short = min(img.shape)
        font_size = int(np.clip(rng.uniform(0.025, 0.06) * short, 11 / down, 400))
        try:
            img, _, truth = draw_scale_bar(img, rng, font=FONT_FILES[i % len(FONT_FILES)],
                                           font_size=font_size)
        except ValueError:
            continue
        # Other annotations, apart from the bar, its label and each other (as in a real figure).
        t, l, b, r = truth.box
        drawn = [(t - font_size, l - font_size, b + font_size, r + font_size)]
        for _ in range(int(rng.integers(0, 3))):
            mask = np.zeros(img.shape, bool)
            box = _draw_text(img, mask, rng, str(rng.choice(_PANELS + _WORDS)), int(font_size * 1.3),
                             avoid=drawn)
            if box is not None:
                drawn.append(box)
        arr, factor, notes = _finish(img, rng, down)
        yield arr, {"name": f"synthetic-{i:03d}", "length_px": truth.length_px * factor,
                    "value": truth.value, "unit": _unit(truth.unit), "notes": ", ".join(notes),
                    "text": truth.text}


def negative_figures(n, seed=1):
    """Micrographs with panel letters, words and arrows, but no scale bar."""
    rng = np.random.default_rng(seed)
    sizes = [256, 512, 512, 1024, 2048]
    for i in range(n):
        img = _micrograph(rng, sizes[i % len(sizes)])
        mask = np.zeros(img.shape, bool)
        short = min(img.shape)
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.choice(["panel", "text", "arrow"])
            size = int(np.clip(rng.uniform(0.04, 0.12) * short, 10, 200))
            if kind == "arrow":
                _draw_arrow(img, mask, rng)
            else:
                _draw_text(img, mask, rng, str(rng.choice(_PANELS if kind == "panel" else _WORDS)), size)
        arr, _, _ = _finish(img, rng)
        yield arr, {"name": f"negative-{i:03d}", "length_px": None}


def real_figures():
    from particleseg.io import imread

    with open(TRUTH_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        path = EMPS / f"{row['name']}.png"
        yield imread(path).image, {"name": row["name"], "length_px": float(row["bar_length_px"]),
                                   "value": float(row["value"]), "unit": _unit(row["unit"])}


def _tesseract_reader():
    """Swap RapidOCR for Tesseract (through pytesseract) in the label reader."""
    import pytesseract

    def recognise(engine, crop):
        data = pytesseract.image_to_data(crop, config="--psm 7", output_type=pytesseract.Output.DICT)
        words = [(w, float(c)) for w, c in zip(data["text"], data["conf"]) if w.strip() and float(c) >= 0]
        if not words:
            return "", 0.0
        return " ".join(w for w, _ in words), min(c for _, c in words) / 100

    def detect(engine, crop):
        return []

    scalebar._recognise = recognise
    scalebar._detect_text = detect


def score(images, verbose=False):
    n = detected = exact = within = wrong = returned = 0
    errors, seconds = [], []
    for image, truth in images:
        n += 1
        start = time.perf_counter()
        bar = scalebar.find_scale_bar(image)
        seconds.append(time.perf_counter() - start)
        returned += bar is not None
        if truth["length_px"] is None:  # a negative: any calibration is a false detection
            wrong += bar is not None and bar.calibrated
            if verbose and bar is not None:
                print(f"  {truth['name']}: {bar.describe()} conf {bar.confidence:.2f} {bar.bar_box}")
            continue
        length = truth["length_px"]
        found = bar is not None and abs(bar.length_px - length) <= max(1.5, 0.03 * length)
        detected += found
        ok = found and bar.calibrated and bar.value == truth["value"] and bar.unit == truth["unit"]
        exact += ok
        if bar is not None and bar.calibrated:
            true_size = truth["value"] / length
            error = bar.pixel_size_nm / (true_size * scalebar._NM_PER_UNIT[truth["unit"]]) - 1
            errors.append(abs(error))
            within += ok and abs(error) <= 0.03
            wrong += abs(error) > 0.03 or not ok
        if verbose and not (ok and abs(error) <= 0.03):
            got = "none" if bar is None else (
                f"{bar.describe()} conf {bar.confidence:.2f} {bar.bar_box} {bar.message}")
            print(f"  {truth['name']}: truth {truth['value']:g} {truth['unit']} = {length:.1f} px "
                  f"{truth.get('notes', '')}; got {got}")
    return {
        "images": n, "detected": detected, "exact": exact, "within": within, "wrong": wrong,
        "returned": returned,
        "median_error": statistics.median(errors) if errors else float("nan"),
        "seconds": statistics.mean(seconds) if seconds else float("nan"),
    }


def annotation_counts():
    """Score the bundled model's particles with and without dropping annotated ones."""
    from imageio.v3 import imread as read_png

    from particleseg import pretrained
    from particleseg.io import imread
    from particleseg.metrics import match_particles

    sys.path.insert(0, str(HERE))
    from _emps import DEFAULT_DATA, split_indices

    all_names = sorted(p.stem for p in (DEFAULT_DATA / "images").glob("*.png"))
    _, valid = split_indices(len(all_names))
    validation = {all_names[i] for i in valid}
    with open(TRUTH_CSV, newline="", encoding="utf-8") as f:
        names = [row["name"] for row in csv.DictReader(f)]
    seg = pretrained("emps", device="cpu").set_params(inference_scale="auto")
    matches = {"model": [], "model, annotations dropped": []}
    removed, seconds = [], []
    for name in names:
        image = imread(EMPS / f"{name}.png").image
        truth = read_png(DEFAULT_DATA / "segmaps" / f"{name}.png")
        labels = seg.predict_particles(image)
        start = time.perf_counter()
        mask = scalebar.annotation_mask(image, scale_bar=scalebar.find_scale_bar(image))
        kept, n_removed = scalebar.remove_annotated_particles(labels, mask)
        seconds.append(time.perf_counter() - start)
        removed.append(n_removed)
        matches["model"].append(match_particles(truth, labels, iou_threshold=0.5))
        matches["model, annotations dropped"].append(match_particles(truth, kept, iou_threshold=0.5))
    subsets = {f"validation ({sum(n in validation for n in names)})":
               [n in validation for n in names],
               f"all ({len(names)})": [True] * len(names)}
    print(f"\nBundled model, inference_scale auto; {statistics.mean(seconds):.2f} s per image "
          "for the annotation mask and removal\n")
    print("| images | method | false particles | false / image | recall pooled "
          "| recall / image | F1 pooled | F1 / image | particles dropped |")
    print("|---|---|---|---|---|---|---|---|---|")
    for subset, chosen in subsets.items():
        for method, ms in matches.items():
            ms = [m for m, keep in zip(ms, chosen) if keep]
            tp, fp, fn = (sum(getattr(m, k) for m in ms) for k in ("tp", "fp", "fn"))
            dropped = sum(r for r, keep in zip(removed, chosen) if keep) if "dropped" in method else 0
            print(f"| {subset} | {method} | {fp} | {statistics.mean(m.fp for m in ms):.2f} "
                  f"| {tp / max(tp + fn, 1):.3f} | {statistics.mean(m.recall for m in ms):.3f} "
                  f"| {2 * tp / max(2 * tp + fp + fn, 1):.3f} | {statistics.mean(m.f1 for m in ms):.3f} "
                  f"| {dropped} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", type=int, default=200, help="synthetic figures with a bar")
    p.add_argument("--first", type=int, default=0,
                   help="score the synthetic figures from this one on (the same figures as "
                        "without it: e.g. --synthetic 600 --first 400 scores figures 400-599)")
    p.add_argument("--seed", type=int, default=0,
                   help="draw the synthetic figures from this seed: another seed gives figures "
                        "no change was tuned on")
    p.add_argument("--negatives", type=int, default=150, help="synthetic figures without a bar")
    p.add_argument("--sets", nargs="+", default=["synthetic", "negatives", "real"],
                   choices=["synthetic", "negatives", "real", "annotations"])
    p.add_argument("--ocr", choices=["rapidocr", "tesseract"], default="rapidocr")
    p.add_argument("--verbose", action="store_true", help="print every miss")
    args = p.parse_args(argv)
    if args.ocr == "tesseract":
        _tesseract_reader()
    sets = {
        "synthetic": lambda: itertools.islice(
            synthetic_figures(args.synthetic, args.seed), args.first, None),
        "negatives": lambda: negative_figures(args.negatives),
        "real": real_figures,
    }
    rows = []
    if "annotations" in args.sets:
        if not EMPS.is_dir():
            print(f"skipping the annotations: {EMPS} is absent")
        else:
            annotation_counts()
        args.sets = [name for name in args.sets if name != "annotations"]
        if not args.sets:
            return
    for name in args.sets:
        if name == "real" and not EMPS.is_dir():
            print(f"skipping the real figures: {EMPS} is absent")
            continue
        if args.verbose:
            print(f"{name}:")
        rows.append((name, score(sets[name](), args.verbose)))
    print(f"\nOCR: {args.ocr}; confidence threshold {scalebar.MIN_CONFIDENCE}\n")
    print("| set | images | detected | read exactly | pixel size within 3 % | median pixel-size error "
          "| wrong or false calibrations | s / image |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in rows:
        n = s["images"]
        if name == "negatives":
            print(f"| {name} (no bar) | {n} | - | - | - | - | {s['wrong']} ({s['wrong'] / n:.1%}) "
                  f"| {s['seconds']:.2f} |")
            continue
        print(f"| {name} | {n} | {s['detected'] / n:.1%} | {s['exact'] / n:.1%} | {s['within'] / n:.1%} "
              f"| {s['median_error']:.2%} | {s['wrong']} ({s['wrong'] / n:.1%}) | {s['seconds']:.2f} |")


if __name__ == "__main__":
    main()
