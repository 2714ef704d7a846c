"""particleseg: count and size nanoparticles in electron micrographs.

A DeepLabV3 network predicts three classes per pixel (background, particle,
particle border); the border class separates touching particles, which are
then labelled, counted and measured.

The public API (scikit-learn style estimators and scikit-image style array
functions) is re-exported here; see the documentation for a guide.
"""

__version__ = "0.1.0.dev0"

from .annotation import BorderAnnotator, annotate_borders
from .normalization import Normalizer
from .postprocessing import count_particles, label_particles, particle_mask
from ._pretrained import pretrained, pretrained_models
from .segmenter import ParticleSegmenter

__all__ = [
    "__version__",
    "BorderAnnotator",
    "Normalizer",
    "ParticleSegmenter",
    "annotate_borders",
    "count_particles",
    "label_particles",
    "particle_mask",
    "pretrained",
    "pretrained_models",
]
