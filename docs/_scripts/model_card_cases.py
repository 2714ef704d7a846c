"""Model card figure: the bundled EMPS model on four kinds of synthetic micrograph.

Run by the documentation build (matplotlib's ``plot`` directive): the
pictures are made from :func:`particleseg.datasets.make_particles`, never
from the EMPS images, and the numbers printed in each title (particles found
and instance F1 at IoU 0.5 against the known truth) are computed here.
"""

import matplotlib.pyplot as plt
from skimage.segmentation import find_boundaries

import particleseg
from particleseg import label_particles
from particleseg.datasets import make_particles
from particleseg.metrics import match_particles

CASES = [
    ("Dark, touching (bright-field TEM)",
     dict(n_particles=(45, 45), radius=(8, 16), overlap=0.25, polarity="dark", random_state=1)),
    ("Dense cluster",
     dict(n_particles=(120, 120), radius=(7, 11), overlap=0.35, polarity="dark", random_state=2)),
    ("Small particles (radius 3-5 px)",
     dict(n_particles=(80, 80), radius=(3, 5), overlap=0.2, polarity="dark", random_state=3)),
    ("Bright on dark (SEM / dark field)",
     dict(n_particles=(45, 45), radius=(8, 16), overlap=0.25, polarity="bright", random_state=4)),
]

have_model = "emps" in [m["name"] for m in particleseg.pretrained_models()]
fig, axes = plt.subplots(1, len(CASES), figsize=(14, 4), layout="constrained")
for ax, (title, params) in zip(axes, CASES):
    X, y = make_particles(n_images=1, shape=(256, 256), noise=0.08, **params)
    image, truth = X[0], y[0]
    ax.imshow(image, cmap="gray")
    if have_model:
        labels = label_particles(particleseg.pretrained("emps").predict(image))
        match = match_particles(truth, labels)
        outline = find_boundaries(labels, mode="inner")
        overlay = plt.cm.autumn(outline.astype(float))
        overlay[..., 3] = outline
        ax.imshow(overlay, interpolation="nearest")
        title += f"\nfound {int(labels.max())} of {int(truth.max())}, F1 {match.f1:.2f}"
    else:
        title += "\n(no bundled model)"
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
