"""The landing-page figure: micrograph -> segmentation -> size distribution.

Run by the documentation build (matplotlib's ``plot`` directive), so no image
file is stored in the repository. It uses the built-in synthetic sample. When
the pretrained EMPS model is bundled, the middle panel shows its prediction;
otherwise it shows the sample's true particles, and says so.
"""

import matplotlib.pyplot as plt
from skimage.color import label2rgb

import particleseg
from particleseg import annotate_borders, label_particles
from particleseg.datasets import load_sample
from particleseg.measure import measure_particles
from particleseg.plotting import plot_size_distribution

image, true_labels = load_sample()
pixel_size = 0.5  # nm per pixel, as the sample is defined

if "emps" in [m["name"] for m in particleseg.pretrained_models()]:
    classes = particleseg.pretrained("emps").predict(image)
    source = "predicted by the EMPS model"
else:
    classes = annotate_borders(true_labels)
    source = "true class map (no model bundled)"
labels = label_particles(classes)
table = measure_particles(labels, pixel_size=pixel_size, unit="nm")

fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
axes[0].imshow(image, cmap="gray")
axes[0].set_title("1. Micrograph (512 x 512 px, 0.5 nm/px)")
axes[0].set_axis_off()

# Each particle in its own colour, border pixels dark: touching particles
# are told apart.
segmentation = label2rgb(labels, bg_label=0, bg_color=(0.95, 0.95, 0.95), alpha=1.0,
                         colors=plt.get_cmap("tab20").colors)
segmentation[classes == 2] = (0.25, 0.25, 0.25)
axes[1].imshow(segmentation, interpolation="nearest")
axes[1].set_title(f"2. Segmentation: {int(labels.max())} particles\n({source})", fontsize=10)
axes[1].set_axis_off()

plot_size_distribution(table, ax=axes[2])
axes[2].set_title("3. Size distribution (edge particles left out)")
