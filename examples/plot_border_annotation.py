"""
Border annotation: why touching particles come apart
====================================================

Particles in micrographs often touch. Labelling the connected particle pixels
then counts two touching particles as one. particleseg marks the pixels of
each particle next to the background *or to another particle* as a third
class, *border*. Labelling only the remaining *core* pixels separates the
particles; growing each label back over the border restores their areas.
"""

# %%
# Touching particles
# ------------------
# :func:`~particleseg.datasets.make_particles` with a large ``overlap`` makes
# many particles touch. ``labels`` is the true instance map: 0 is background
# and every particle has its own number.
import matplotlib.pyplot as plt
import numpy as np
from skimage.color import label2rgb
from skimage.measure import label

from particleseg import annotate_borders, label_particles
from particleseg.datasets import make_particles
from particleseg.metrics import match_particles

images, instance_maps = make_particles(
    n_images=1, shape=(96, 96), n_particles=12, radius=(9, 14), overlap=0.35,
    random_state=3,
)
image, labels = images[0], instance_maps[0]
COLORS = plt.get_cmap("tab20").colors  # one colour per particle label
print(f"{labels.max()} particles in the true instance map")

# %%
# The three classes
# -----------------
# :func:`~particleseg.annotate_borders` turns the instance map into the class
# map the network learns: 0 background, 1 particle core, 2 border. A line of
# border pixels now runs between touching particles.
classes = annotate_borders(labels, width=1)

fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
axes[0].imshow(image, cmap="gray")
axes[0].set_title("Micrograph")
axes[1].imshow(label2rgb(labels, bg_label=0, colors=COLORS))
axes[1].set_title("True particles (instance map)")
axes[2].imshow(classes, cmap="viridis", interpolation="nearest")
axes[2].set_title("Classes: background, core, border")
for ax in axes:
    ax.set_axis_off()

# %%
# Connected components versus core labelling
# ------------------------------------------
# Labelling all particle pixels (core and border) joins touching particles
# into blobs. :func:`~particleseg.label_particles` labels the cores only, so
# the border pixels cut touching particles apart, and then grows every label
# back over its border.
blobs = label(classes > 0, connectivity=1)
particles = label_particles(classes)
print(f"connected components of particle pixels: {blobs.max()}")
print(f"particles labelled from the cores:      {particles.max()}")
match = match_particles(labels, particles)
print(f"matched to true particles: {match.tp} of {labels.max()}, mean IoU {match.ious.mean():.3f}")

fig, axes = plt.subplots(1, 2, figsize=(6.6, 3.8), layout="constrained")
axes[0].imshow(label2rgb(blobs, bg_label=0, colors=COLORS))
axes[0].set_title(f"Connected components: {blobs.max()}")
axes[1].imshow(label2rgb(particles, bg_label=0, colors=COLORS))
axes[1].set_title(f"Cores, grown back: {particles.max()}")
for ax in axes:
    ax.set_axis_off()

# %%
# A close look at one contact
# ---------------------------
# Two touching squares: the border (2) surrounds each core (1), including
# along the line where they touch.
square = np.zeros((6, 10), dtype=int)
square[1:5, 1:5] = 1
square[1:5, 5:9] = 2
print(annotate_borders(square))

# %%
# Wider borders
# -------------
# A wider border separates particles that touch along a broader contact, but
# a particle thinner than ``2 * width + 1`` pixels has no core left and is
# lost. The default, one pixel, was chosen by measurement on the EMPS
# training images.
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
for ax, width in zip(axes, (1, 2, 4)):
    wide = annotate_borders(labels, width=width)
    found = label_particles(wide).max()
    ax.imshow(wide, cmap="viridis", interpolation="nearest")
    ax.set_title(f"width={width}: {found} of {labels.max()} found")
    ax.set_axis_off()

plt.show()
