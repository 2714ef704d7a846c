"""
The pretrained EMPS model
=========================

particleseg ships with a model trained on the EMPS data set of TEM
micrographs (see the model card). It is stored inside the package, so
:func:`particleseg.pretrained` loads it without a network, and
:func:`particleseg.pretrained_models` lists what is bundled.

This example segments a synthetic micrograph with it. In an installation
without the bundled model, it says so and trains a tiny stand-in instead, so
the rest of the example still runs.
"""

# %%
# What is bundled
# ---------------
import matplotlib.pyplot as plt

import particleseg
from particleseg import count_particles, label_particles
from particleseg.datasets import make_particles
from particleseg.metrics import match_particles
from particleseg.plotting import plot_overlay

models = particleseg.pretrained_models()
for info in models:
    print(f"{info['name']}: {info['backbone']}, {info['epochs']} epochs, "
          f"{info['file_size_mb']} MB, trained on {info['training_data']}")
    print(f"  validation: {info['validation']}")

# %%
# Loading the model
# -----------------
# ``pretrained("emps")`` returns a fitted
# :class:`~particleseg.ParticleSegmenter`, ready to predict; ``model_info_``
# records how it was trained.
if "emps" in [m["name"] for m in models]:
    seg = particleseg.pretrained("emps")
    title = "EMPS model"
    print(seg.backbone, seg.model_info_)
else:
    print("No pretrained 'emps' model is bundled with this installation of "
          "particleseg; training a tiny stand-in model instead (expect a rough "
          "result).")
    X_train, y_train = make_particles(n_images=12, shape=(96, 96), random_state=0)
    seg = particleseg.ParticleSegmenter(
        backbone="mobilenet_v3_large", max_epochs=10, batch_size=4, crop_size=96,
        crops_per_image=3, augment=None, random_state=0,
    ).fit(X_train, y_train)
    title = "tiny stand-in model"

# %%
# Segmenting a micrograph
# -----------------------
# A synthetic 192 x 192 bright-field image with touching particles. The
# model predicts the class of every pixel; the particles are labelled from
# the cores and counted.
images, instance_maps = make_particles(
    n_images=1, shape=(192, 192), n_particles=(25, 30), radius=(6, 14), overlap=0.3,
    random_state=11,
)
image, truth = images[0], instance_maps[0]

proba = seg.predict_proba(image)  # (3, H, W): background, particle, border
classes = seg.predict(image)  # 0 background, 1 particle core, 2 border
labels = label_particles(classes)
match = match_particles(truth, labels)
print(f"{count_particles(classes)} particles counted, {truth.max()} true; "
      f"F1 {match.f1:.2f} (precision {match.precision:.2f}, recall {match.recall:.2f})")

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
axes[0].imshow(image, cmap="gray")
axes[0].set_title("Micrograph")
axes[0].set_axis_off()
axes[1].imshow(proba[2], cmap="magma", vmin=0, vmax=1)
axes[1].set_title("Border probability")
axes[1].set_axis_off()
plot_overlay(image, labels, ax=axes[2], fontsize=6)
axes[2].set_title(f"{title}: {labels.max()} particles")

plt.show()
