"""Model card figure: a figure-style micrograph before and after.

Run by the documentation build (matplotlib's ``plot`` directive). The
micrograph is synthetic (:func:`particleseg.datasets.make_particles`) with
figure annotations pasted on it (a scale bar with its label, panel letters,
text, an arrow; :mod:`particleseg._figures`), so the truth is known. Left:
the bundled network as the previous release used it (a fixed 2x inference
scale, every detection kept). Right: as shipped now (``inference_scale="auto"``
and its calibrated confidence threshold). Titles give the particles found and
the instance F1 at IoU 0.5, computed here.
"""

import matplotlib.pyplot as plt
import numpy as np
from skimage.segmentation import find_boundaries

import particleseg
from particleseg._figures import paste_annotations
from particleseg.datasets import make_particles
from particleseg.metrics import match_particles

X, y = make_particles(n_images=1, shape=(384, 384), n_particles=(30, 30), radius=(10, 18),
                      overlap=0.2, polarity="dark", noise=0.08, random_state=5)
image01 = X[0].astype(np.float32) / 255
figure, truth, _ = paste_annotations(image01, y[0], np.random.default_rng(7), n_max=4)
image = np.round(figure * 255).astype(np.uint8)

seg = particleseg.pretrained("emps")
settings = [
    ("fixed 2x scale, every detection kept", dict(inference_scale=2.0, min_confidence=None)),
    ('inference_scale="auto", calibrated confidence threshold',
     dict(inference_scale="auto", min_confidence="auto")),
]
fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
for ax, (title, params) in zip(axes, settings):
    labels = seg.set_params(**params).predict_particles(image)
    match = match_particles(truth, labels)
    outline = find_boundaries(labels, mode="inner")
    overlay = plt.cm.autumn(outline.astype(float))
    overlay[..., 3] = outline
    ax.imshow(image, cmap="gray")
    ax.imshow(overlay, interpolation="nearest")
    ax.set_title(f"{title}\n{labels.max()} found, {match.n_true} true, F1 {match.f1:.2f}",
                 fontsize=9)
    ax.axis("off")
