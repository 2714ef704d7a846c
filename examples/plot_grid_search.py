"""
A pipeline in a grid search
===========================

:class:`~particleseg.ParticleSegmenter` is a scikit-learn estimator, so it
composes with :func:`~sklearn.pipeline.make_pipeline`,
:func:`~sklearn.base.clone` and :class:`~sklearn.model_selection.GridSearchCV`.
Here a :class:`~particleseg.Normalizer` and a segmenter form a pipeline, and
a grid search picks the learning rate by two-fold cross-validation.

Everything is tiny so that the search runs in seconds: with so little
training, the scores differ mostly by chance. The point is the mechanics.
"""

# %%
# The pipeline
# ------------
# The :class:`~particleseg.Normalizer` scales each image by its own intensity
# percentiles and standardises it. Its output is marked as normalised, so the
# segmenter does not normalise it a second time.
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from particleseg import Normalizer, ParticleSegmenter
from particleseg.datasets import make_particles

X, y = make_particles(n_images=8, shape=(64, 64), n_particles=(3, 6), random_state=0)

pipe = make_pipeline(
    Normalizer(intensity_range="image"),
    ParticleSegmenter(
        backbone="mobilenet_v3_large",
        max_epochs=2,
        batch_size=4,
        crop_size=64,
        augment=None,
        random_state=0,
    ),
)
print(pipe)

# %%
# Nested parameters
# -----------------
# Every parameter of every step is reachable as ``<step>__<parameter>``;
# the augmentations are a parameter of the segmenter, so their settings
# nest one level deeper (``particlesegmenter__augment__elastic__alpha``
# when ``augment`` is an :class:`~particleseg.augmentation.Augmenter`).
params = pipe.get_params()
print({name: params[name] for name in
       ["normalizer__intensity_range", "particlesegmenter__learning_rate"]})

# %%
# The grid search
# ---------------
# The folds split the list of images: each candidate is trained on half of
# the images and scored on the other half, by the segmenter's ``score``, the
# mean foreground IoU. Then the best candidate is refitted on all images.
search = GridSearchCV(
    pipe,
    {"particlesegmenter__learning_rate": [1e-3, 3e-3]},
    cv=2,
)
search.fit(X, y)

results = pd.DataFrame(search.cv_results_)[
    ["param_particlesegmenter__learning_rate", "mean_test_score", "std_test_score",
     "mean_fit_time"]
]
print(results.round(3).to_string(index=False))
print("best:", search.best_params_)

fig, ax = plt.subplots(figsize=(4, 2.8), layout="constrained")
ax.errorbar(
    [str(v) for v in results["param_particlesegmenter__learning_rate"]],
    results["mean_test_score"], yerr=results["std_test_score"], fmt="o", capsize=4,
)
ax.set_xlabel("Learning rate")
ax.set_ylabel("Foreground IoU (2-fold CV)")

# %%
# The refitted pipeline predicts like any other; the best estimator is a
# fitted pipeline whose last step is the segmenter.
classes = search.best_estimator_.predict(X[0])
print(classes.shape, classes.dtype)

plt.show()
