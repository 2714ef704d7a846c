"""Intensity normalization of micrographs.

:class:`Normalizer` scales each image to [0, 1] (by its dtype, or by its own
intensity percentiles) and then standardises it with a mean and standard
deviation, as the network expects. Its output is marked
(:class:`NormalizedImage`), so that a :class:`ParticleSegmenter` placed after
it in a ``Pipeline`` knows the images are already normalised and does not
normalise them a second time.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import check_images

__all__ = ["Normalizer", "NormalizedImage", "scale_intensity", "RECIPE_MEAN", "RECIPE_STD"]

#: Mean of the published recipe (EMPS images scaled to [0, 1]).
RECIPE_MEAN = 0.4773
#: Standard deviation of the published recipe.
RECIPE_STD = 0.1719

_RANGES = ("dtype", "image")


class NormalizedImage(np.ndarray):
    """A float32 image standardised by a :class:`Normalizer`.

    A plain numpy array that remembers the ``(mean, std)`` it was standardised
    with, in the attribute ``normalization``; ``image * std + mean`` gives the
    [0, 1] image back. :class:`ParticleSegmenter` recognises such images and
    does not normalise them again.

    Parameters
    ----------
    array : array-like
        The standardised image.
    mean : float
        The mean that was subtracted.
    std : float
        The standard deviation that was divided by.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.normalization import NormalizedImage
    >>> image = NormalizedImage(np.zeros((2, 2)), mean=0.5, std=0.25)
    >>> image.normalization
    (0.5, 0.25)
    >>> float(np.asarray(image * 0.25 + 0.5)[0, 0])
    0.5
    """

    def __new__(cls, array, mean, std):
        obj = np.asarray(array, dtype=np.float32).view(cls)
        obj.normalization = (float(mean), float(std))
        return obj

    def __array_finalize__(self, obj):
        self.normalization = getattr(obj, "normalization", None)

    def __reduce__(self):
        # Keep the marker through pickling (joblib, GridSearchCV with n_jobs).
        return (NormalizedImage, (np.asarray(self), *self.normalization))


def scale_intensity(image, intensity_range: str = "dtype") -> np.ndarray:
    """Scale one image to float32 values in [0, 1].

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A micrograph (uint8, uint16, other integers, or float).
    intensity_range : {"dtype", "image"}, default="dtype"
        ``"dtype"``: divide by the largest value of the dtype (255 for uint8,
        65535 for uint16); float images are taken to be in [0, 1] already and
        are only clipped. ``"image"``: stretch the image's own 0.5th to 99.5th
        percentile to [0, 1]; robust to 16-bit images that use only part of
        their range and to differences in exposure between microscopes.

    Returns
    -------
    scaled : ndarray of float32, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.normalization import scale_intensity
    >>> scale_intensity(np.array([[0, 255]], dtype=np.uint8))
    array([[0., 1.]], dtype=float32)
    """
    if intensity_range not in _RANGES:
        raise ValueError(f"intensity_range must be one of {_RANGES}; got {intensity_range!r}.")
    image = np.asarray(image)
    if intensity_range == "image":
        low, high = np.percentile(image, [0.5, 99.5])
        if high <= low:
            low, high = float(image.min()), float(image.max())
        if high <= low:
            return np.zeros(image.shape, dtype=np.float32)
        scaled = (image.astype(np.float32) - np.float32(low)) / np.float32(high - low)
    elif np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        scaled = (image.astype(np.float32) - info.min) / np.float32(info.max - info.min)
    else:
        scaled = image.astype(np.float32)
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def _check_stat(value, name):
    if isinstance(value, str):
        if value != "fit":
            raise ValueError(f'{name} must be a number or "fit"; got {value!r}.')
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f'{name} must be a number or "fit"; got {value!r}.')
    if name == "std" and value <= 0:
        raise ValueError(f"std must be positive; got {value}.")
    return float(value)


class Normalizer(TransformerMixin, BaseEstimator):
    """Scale micrographs to [0, 1] and standardise them.

    Each image is first scaled to [0, 1] (see :func:`scale_intensity`), then
    standardised: ``(scaled - mean) / std``. The defaults are the published
    recipe's statistics of the EMPS images.

    Parameters
    ----------
    mean : float or "fit", default=0.4773
        Mean to subtract. ``"fit"`` learns it from the training images.
    std : float or "fit", default=0.1719
        Standard deviation to divide by. ``"fit"`` learns it.
    intensity_range : {"dtype", "image"}, default="dtype"
        How images are scaled to [0, 1] first.

    Attributes
    ----------
    mean_ : float
        The mean used.
    std_ : float
        The standard deviation used.

    Notes
    -----
    **Cooperation with ParticleSegmenter.** A :class:`ParticleSegmenter`
    normalises its input itself (``normalize=True``). The images that a
    ``Normalizer`` returns are :class:`NormalizedImage` arrays that carry their
    ``(mean, std)``; the segmenter recognises them and does not normalise them
    again, so ``make_pipeline(Normalizer(), ParticleSegmenter())`` normalises
    once. (The segmenter undoes the standardisation internally when it
    augments, since brightness and gamma changes act on [0, 1] images.)

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg import Normalizer
    >>> image = np.array([[0, 128, 255]], dtype=np.uint8)
    >>> out = Normalizer(mean=0.5, std=0.25).fit_transform(image)
    >>> np.round(np.asarray(out), 3)
    array([[-2.   ,  0.008,  2.   ]], dtype=float32)
    >>> out.normalization
    (0.5, 0.25)
    """

    def __init__(self, mean=RECIPE_MEAN, std=RECIPE_STD, intensity_range="dtype"):
        self.mean = mean
        self.std = std
        self.intensity_range = intensity_range

    def fit(self, X, y=None):
        """Learn ``mean_`` and ``std_`` (when set to ``"fit"``).

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            Training images (sizes may differ).
        y : ignored

        Returns
        -------
        self : Normalizer
        """
        mean = _check_stat(self.mean, "mean")
        std = _check_stat(self.std, "std")
        if self.intensity_range not in _RANGES:
            raise ValueError(
                f"intensity_range must be one of {_RANGES}; got {self.intensity_range!r}."
            )
        images, _ = check_images(X)
        if mean == "fit" or std == "fit":
            # Pixel-weighted statistics over all images.
            total = count = sq = 0.0
            for image in images:
                scaled = scale_intensity(image, self.intensity_range).astype(np.float64)
                total += scaled.sum()
                sq += np.square(scaled).sum()
                count += scaled.size
            fitted_mean = total / count
            fitted_std = float(np.sqrt(max(sq / count - fitted_mean**2, 0.0)))
            if mean == "fit":
                mean = float(fitted_mean)
            if std == "fit":
                std = fitted_std if fitted_std > 0 else 1.0
        self.mean_ = mean
        self.std_ = std
        return self

    def transform(self, X):
        """Normalise images.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            One image or a list of images.

        Returns
        -------
        Xt : NormalizedImage or list of NormalizedImage
            float32 images, one per input; a single image for a single input.
        """
        check_is_fitted(self, ["mean_", "std_"])
        images, single = check_images(X)
        out = [self._normalize(image) for image in images]
        return out[0] if single else out

    def _normalize(self, image):
        scaled = scale_intensity(image, self.intensity_range)
        return NormalizedImage((scaled - self.mean_) / self.std_, self.mean_, self.std_)

    def inverse_transform(self, X):
        """Undo the standardisation: back to [0, 1] float32 images.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            Normalised images.

        Returns
        -------
        images : ndarray or list of ndarray
        """
        check_is_fitted(self, ["mean_", "std_"])
        images, single = check_images(X)
        out = [np.asarray(x, dtype=np.float32) * self.std_ + self.mean_ for x in images]
        return out[0] if single else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
