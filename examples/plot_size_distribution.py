"""
A calibrated size distribution
==============================

From an instance map to particle sizes in nanometres: measure every particle
with :func:`~particleseg.measure.measure_particles`, summarise the sizes with
:func:`~particleseg.measure.size_distribution`, and draw them with
:func:`~particleseg.plotting.plot_size_distribution`.

The built-in sample micrograph (:func:`~particleseg.datasets.load_sample`)
comes with its true particles, which stand in here for a segmentation; its
pixel size is 0.5 nm.
"""

# %%
import matplotlib.pyplot as plt

from particleseg.datasets import load_sample
from particleseg.measure import measure_particles, size_distribution
from particleseg.plotting import plot_overlay, plot_size_distribution

image, labels = load_sample()
pixel_size = 0.5  # nm per pixel

# %%
# The particles on the micrograph
# -------------------------------
# :func:`~particleseg.plotting.plot_overlay` outlines and numbers every
# particle; the numbers are the ``label`` column of the table below, and the
# scale bar comes from the pixel size.
ax = plot_overlay(image, labels, pixel_size=pixel_size, unit="nm")
ax.set_title(f"{labels.max()} particles")

# %%
# One row per particle
# --------------------
# With ``pixel_size`` and ``unit``, lengths are in nm and areas in nm²; the
# unit is part of every column name. Centroids stay in pixels, so they index
# the image. ``touches_edge`` marks particles cut off by the image edge.
table = measure_particles(labels, image=image, pixel_size=pixel_size, unit="nm")
columns = ["label", "area_nm2", "equivalent_diameter_nm", "feret_diameter_max_nm",
           "circularity", "touches_edge"]
print(table[columns].head().round(2).to_string())
print("all columns:", ", ".join(table.columns))
print(f"... {len(table)} rows; {int(table['touches_edge'].sum())} particles touch the edge")

# %%
# The same particles measured without a pixel size are in pixels, and the
# ratio of the two tables is the pixel size:
in_pixels = measure_particles(labels)
ratio = table["equivalent_diameter_nm"] / in_pixels["equivalent_diameter_px"]
print(f"equivalent_diameter_nm / equivalent_diameter_px = {ratio.iloc[0]:.2f}")

# %%
# Summary statistics
# ------------------
# :func:`~particleseg.measure.size_distribution` summarises the equivalent
# diameter by default: count, mean, median, the number-weighted D10, D50 and
# D90, the coefficient of variation, and a log-normal fit. Particles touching
# the edge are left out (``exclude_edge=True``), since their size is cut off.
dist = size_distribution(table)
print(dist.to_series().to_string())

# %%
# The histogram
# -------------
# Counts per bin, the log-normal fit scaled to the counts, and D50.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
plot_size_distribution(table, ax=axes[0])
axes[0].set_title("Equivalent diameter")
plot_size_distribution(table, column="feret_diameter_max_nm", ax=axes[1])
axes[1].set_title("Maximum Feret diameter")

plt.show()
