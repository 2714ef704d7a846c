"""
Segment and count particles
===========================

Train a small :class:`~particleseg.ParticleSegmenter` on synthetic
micrographs, predict the three classes (background, particle, border) of an
image it has not seen, then label, count and outline its particles.

To build in seconds on a CPU, the model here is tiny: the MobileNetV3
backbone, ten short epochs on a dozen 96 x 96 images, no augmentation. It is far
from converged, so expect a rough segmentation; the recipe trains for 50
epochs on full-size micrographs, and :func:`particleseg.pretrained` gives a
model trained that way (see :ref:`sphx_glr_auto_examples_plot_pretrained.py`).
"""

# %%
# Training data
# -------------
# :func:`~particleseg.datasets.make_particles` draws EM-like images of round,
# partly touching particles, with their instance maps: 0 is background and
# each particle has its own number.
import matplotlib.pyplot as plt
from skimage.color import label2rgb

from particleseg import ParticleSegmenter, count_particles, label_particles
from particleseg.datasets import make_particles
from particleseg.metrics import iou_score, match_particles
from particleseg.plotting import plot_overlay

settings = dict(shape=(96, 96), n_particles=(4, 10), radius=(6, 12))
X_train, y_train = make_particles(n_images=12, random_state=0, **settings)
X_test, y_test = make_particles(n_images=1, random_state=1, **settings)
image, truth = X_test[0], y_test[0]

fig, axes = plt.subplots(1, 2, figsize=(6, 3.2), layout="constrained")
axes[0].imshow(X_train[0], cmap="gray")
axes[0].set_title("A training image")
axes[1].imshow(label2rgb(y_train[0], bg_label=0, colors=plt.get_cmap("tab20").colors))
axes[1].set_title("Its instance map")
for ax in axes:
    ax.set_axis_off()

# %%
# Training
# --------
# ``fit`` takes a list of images and a list of instance maps; the border
# class is annotated from the instance maps on the fly. ``random_state``
# makes the run reproducible.
seg = ParticleSegmenter(
    backbone="mobilenet_v3_large",  # the CPU-friendly backbone
    max_epochs=10,
    batch_size=4,
    crop_size=96,
    crops_per_image=3,  # three random crops of every image per epoch
    augment=None,  # no augmentation: fastest on a toy problem
    random_state=0,
)
seg.fit(X_train, y_train)

fig, ax = plt.subplots(figsize=(4, 2.6), layout="constrained")
ax.plot([r["epoch"] for r in seg.history_], [r["train_loss"] for r in seg.history_], "o-")
ax.set_xlabel("Epoch")
ax.set_ylabel("Training loss")

# %%
# Prediction, labelling and counting
# ----------------------------------
# ``predict`` returns the class map: 0 background, 1 particle, 2 border.
# :func:`~particleseg.label_particles` labels the particle cores, which the
# border keeps apart, and grows them back over the border;
# :func:`~particleseg.count_particles` only counts them.
classes = seg.predict(image)
labels = label_particles(classes)
print(f"counted {count_particles(classes)} particles; the truth has {truth.max()}")
match = match_particles(truth, labels)
print(f"foreground IoU {iou_score(truth, classes):.2f}; particle F1 {match.f1:.2f}")

fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
axes[0].imshow(image, cmap="gray")
axes[0].set_title("New image")
axes[1].imshow(classes, cmap="viridis", vmin=0, vmax=2, interpolation="nearest")
axes[1].set_title("Predicted classes")
axes[1].set_axis_off()
plot_overlay(image, labels, ax=axes[2])
axes[2].set_title(f"{labels.max()} particles")
axes[0].set_axis_off()

# %%
# Next steps
# ----------
# ``seg.save("model.safetensors")`` keeps the model in a file that cannot run
# code when loaded, and ``seg.score(X, y)`` gives the mean foreground IoU on
# annotated images. For real micrographs, train with the recipe's defaults
# (on a GPU), or start from the pretrained model.

plt.show()
