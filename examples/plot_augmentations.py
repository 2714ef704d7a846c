"""
Augmentations, one at a time
============================

While it trains, :class:`~particleseg.ParticleSegmenter` shows the network a
freshly augmented version of every crop at every epoch: the recipe's nine
augmentations, :func:`~particleseg.augmentation.default_augmenter`. Each step
moves the label map together with the image (nearest-neighbour, so no new
label values appear) or, for intensity changes, leaves it alone.

Here every step is applied on its own, with probability 1, to one image and
its instance map.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone

from particleseg.augmentation import default_augmenter
from particleseg.datasets import make_particles

images, instance_maps = make_particles(
    n_images=1, shape=(96, 96), n_particles=8, radius=(8, 14), overlap=0.3, random_state=7
)
# Augmentations act on float images in [0, 1].
image = images[0].astype(np.float32) / 255
labels = instance_maps[0]

augmenter = default_augmenter()
print("steps:", ", ".join(augmenter.named_steps))

# %%
# Each step with p=1
# ------------------
# The steps are small scikit-learn-style estimators; ``set_params(p=1.0)``
# makes each one always act. Image and label map are drawn one above the
# other, so one can check that they move together. The same integer
# ``random_state`` always gives the same draw. Each particle keeps its colour
# in every panel.
colors = np.random.default_rng(0).uniform(0.2, 1.0, size=(labels.max() + 1, 3))
colors[0] = 0


def show_pair(axes, image, labels, title):
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(title, fontsize=9)
    axes[1].imshow(colors[labels], interpolation="nearest")
    for ax in axes:
        ax.set_axis_off()


steps = list(augmenter.named_steps.items())
fig, axes = plt.subplots(2, len(steps) + 1, figsize=(13, 3.4), layout="constrained")
show_pair(axes[:, 0], image, labels, f"original\n{image.shape[0]}x{image.shape[1]}")
for column, (name, step) in enumerate(steps, start=1):
    step = clone(step).set_params(p=1.0)  # a copy: the augmenter keeps its p
    out_image, out_labels = step(image, labels, random_state=1)
    assert set(np.unique(out_labels)) <= set(np.unique(labels))  # no new label values
    shape = f"{out_image.shape[0]}x{out_image.shape[1]}"
    show_pair(axes[:, column], out_image, out_labels, f"{name}\n{shape}")

# %%
# All steps together
# ------------------
# The augmenter applies its steps in order, each with its default
# probability. A :class:`numpy.random.RandomState` passed to successive calls
# gives a new draw each time, as the training loop needs.
rng = np.random.RandomState(0)
fig, axes = plt.subplots(2, 6, figsize=(10, 3.6), layout="constrained")
show_pair(axes[:, 0], image, labels, "original")
for column in range(1, 6):
    out_image, out_labels = augmenter(image, labels, random_state=rng)
    show_pair(axes[:, column], out_image, out_labels, f"draw {column}")

# %%
# Changing the augmentations
# --------------------------
# An augmenter's settings are nested parameters, reachable with
# ``set_params`` -- and, through ``ParticleSegmenter(augment=augmenter)``, as
# ``augment__elastic__alpha`` in a grid search. ``"passthrough"`` switches a
# step off.
gentle = default_augmenter().set_params(elastic__alpha=30.0, optical="passthrough")
print(gentle.get_params()["elastic__alpha"], gentle.named_steps["optical"])

plt.show()
