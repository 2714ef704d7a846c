"""
Reading the scale bar of a figure
=================================

A micrograph taken from a paper or a slide has its scale burnt into the
pixels: a bar and a label such as "50 nm". :func:`~particleseg.scalebar.find_scale_bar`
finds the bar, measures its length in pixels and reads the label, which gives
the pixel size; :func:`~particleseg.scalebar.annotation_mask` marks the bar,
the label and other figure text, so that particles found there can be
dropped. Reading the label needs the OCR extra
(``pip install "particleseg[scalebar]"``); without it the bar is still found
and measured.

The figure here is synthetic: a micrograph from
:func:`~particleseg.datasets.make_particles` with a scale bar of 120 pixels
for 50 nm drawn on it, so the true pixel size is 50 / 120 = 0.417 nm.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from particleseg._figures import draw_scale_bar
from particleseg.datasets import make_particles
from particleseg.plotting import plot_scale_bar
from particleseg.scalebar import annotation_mask, find_scale_bar

X, labels = make_particles(1, (384, 384), n_particles=(25, 25), radius=(8, 16), random_state=2)
micrograph = 0.2 + 0.6 * (X[0] - X[0].min()) / np.ptp(X[0])
figure, _, truth = draw_scale_bar(
    micrograph, np.random.default_rng(0), length_px=120, value=50, unit="nm",
    font="DejaVuSans-Bold.ttf", font_size=20, polarity="light", boxed=True, ticks=False,
    label_side="above", corner=("bottom", "right"),
)
print(f"drawn: {truth.text!r}, {truth.length_px} px")

# %%
# Find, measure and read the bar
# ------------------------------
bar = find_scale_bar(figure)
print(f"found: {bar.describe()}, confidence {bar.confidence:.2f}")
if bar.calibrated:
    print(f"pixel size: {bar.pixel_size_nm:.4f} nm (true: {50 / 120:.4f} nm)")
else:
    print(bar.message)  # e.g. without the OCR extra

# %%
# What was read, on the image
# ---------------------------
# :func:`~particleseg.plotting.plot_scale_bar` outlines the bar and the label
# that were read, and writes the reading, so it can be checked at a glance.
# ``particleseg analyze`` draws the same outlines on its overlay figures.
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.6), layout="constrained")
left.imshow(figure, cmap="gray")
plot_scale_bar(bar, ax=left, fontsize=8)
left.set_title("the bar and label read")
left.set_axis_off()

# %%
# The annotations, to keep out of the particle results
# ----------------------------------------------------
# Particles that lie mostly inside this mask are dropped by ``particleseg
# analyze`` (see :func:`~particleseg.scalebar.remove_annotated_particles`).
mask = annotation_mask(figure, scale_bar=bar)
right.imshow(figure, cmap="gray")
right.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.6)
right.set_title("annotation mask")
right.set_axis_off()
plt.show()
