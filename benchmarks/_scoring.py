"""Instance scores as the project reports them everywhere.

Per-image F1 at IoU 0.5 with Hungarian matching, averaged over images, and
pooled over all particles; pooled precision and recall; the median per-image
count error |n_pred - n_true| / n_true; the median relative error of the
per-image mean equivalent diameter.
"""

from __future__ import annotations

import numpy as np

from particleseg.metrics import count_error, match_particles


def mean_diameter(labels):
    """Mean equivalent diameter (px) of the particles of an instance map."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    areas = areas[areas > 0]
    return float(np.mean(2 * np.sqrt(areas / np.pi))) if len(areas) else 0.0


def n_particles(labels):
    labels = np.asarray(labels)
    return int(len(np.unique(labels[labels > 0])))


def score_images(truths, preds):
    """Scores of predicted instance maps against the true ones.

    Returns
    -------
    scores : dict
        ``F1 mean`` (per image, averaged), ``F1 pooled``, ``precision``,
        ``recall`` (pooled), ``count err. median``, ``diam. err. median``,
        ``n true``, ``n pred``, and ``matches``: per image, the set of
        matched predicted labels (for confidence calibration).
    """
    f1s, count_errs, diam_errs, matches = [], [], [], []
    tp = fp = fn = 0
    n_true = n_pred = 0
    for y, pred in zip(truths, preds):
        m = match_particles(y, pred, iou_threshold=0.5)
        f1s.append(m.f1)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
        nt, npred = n_particles(y), n_particles(pred)
        n_true, n_pred = n_true + nt, n_pred + npred
        count_errs.append(count_error(nt, npred) if nt else np.nan)
        d_true, d_pred = mean_diameter(y), mean_diameter(pred)
        diam_errs.append(abs(d_pred - d_true) / d_true if d_true and d_pred else np.nan)
        matches.append(set(int(v) for v in m.pairs[:, 1]) if len(m.pairs) else set())
    return {
        "F1 mean": float(np.mean(f1s)),
        "F1 pooled": 2 * tp / max(2 * tp + fp + fn, 1),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "count err. median": float(np.nanmedian(count_errs)),
        "diam. err. median": float(np.nanmedian(diam_errs)) if np.isfinite(diam_errs).any() else float("nan"),
        "n true": n_true,
        "n pred": n_pred,
        "per-image F1": f1s,
        "matches": matches,
    }


METRIC_COLUMNS = ("F1 mean", "F1 pooled", "precision", "recall", "count err. median",
                  "diam. err. median", "n true", "n pred")


def format_table(rows, columns=METRIC_COLUMNS, first="method"):
    """A markdown table of ``{row name: {column: value}}``."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, r in rows.items():
        cells = []
        for c in columns:
            v = r.get(c, "")
            if isinstance(v, (int, np.integer)):
                cells.append(str(int(v)))
            elif isinstance(v, (float, np.floating)):
                cells.append(f"{v:.3f}")
            else:
                cells.append(str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
