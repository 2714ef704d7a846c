"""Data augmentation: image and label map transformed together, while fitting.

Each augmentation of the training recipe is a small scikit-learn-style object
(:class:`RandomResize`, :class:`Flip`, :class:`RandomCrop`,
:class:`RandomRotation`, :class:`BrightnessContrast`, :class:`Gamma`,
:class:`ElasticTransform`, :class:`GridDistortion`, :class:`OpticalDistortion`,
and the optional :class:`InvertContrast`, :class:`GaussianNoise` and
:class:`LowResolution`) and :class:`Augmenter` chains them
under names, like a :class:`~sklearn.pipeline.Pipeline`. The geometry is
albumentations' (2.0.8, the last MIT-licensed release); these classes choose
its arguments, validate them, and look after the label map.

Why augmentation is a parameter of the estimator, not a Pipeline step
----------------------------------------------------------------------
A :class:`~sklearn.pipeline.Pipeline` step transforms ``X`` only, and it runs
again at predict time. Augmentation must do neither: it has to move the label
map together with the image (a rotated micrograph needs a rotated label map),
and it must only happen while fitting, with fresh random draws at every epoch,
never on the images a user asks to segment. So the segmenter takes the
augmenter as a parameter and calls it inside its training loop::

    ParticleSegmenter(augment=default_augmenter())

Being a scikit-learn estimator (``get_params``/``set_params``, ``__init__``
only stores its arguments), an augmenter's settings are the segmenter's nested
parameters: ``augment__elastic__alpha`` can be set with ``set_params`` or
searched with :class:`~sklearn.model_selection.GridSearchCV`, and a step is
switched off with ``augment__elastic="passthrough"``.

Calling an augmentation
-----------------------
Every augmentation and the augmenter are called as
``image, labels = augmentation(image, labels, random_state=rng)``:

- ``image`` is a 2-D float image with values in [0, 1]; a float32 image,
  clipped to [0, 1], is returned.
- ``labels`` is a 2-D integer (or boolean) map of the same shape: an instance
  map (one id per particle) or a class map (background/particle/border). It is
  returned with the same dtype, and the same shape as the returned image (the
  shape changes under :class:`RandomResize`, :class:`RandomCrop` and the
  transposing symmetries of :class:`Flip`).
- Labels are moved with nearest-neighbour interpolation only, so the returned
  map contains no value that was not in the given one. The single exception
  is background, 0, which fills the area brought in from outside the image
  when ``border_mode="constant"`` (see below). Internally the map is passed to
  albumentations as uint8 or uint16 (maps with negative values or values above
  65535 are renumbered first and restored afterwards).
- ``random_state`` (None, an int, a :class:`numpy.random.RandomState` or a
  :class:`numpy.random.Generator`) seeds the draw: the same int gives the same
  result; one ``RandomState`` passed to successive calls gives a new
  augmentation each call, as a training loop needs at every epoch. numpy's
  global seed is never set.

Borders: reflect, or a constant fill
------------------------------------
Rotations and distortions bring in pixels from outside the image. With
``border_mode="reflect"`` (the default) the image *and* the label map are
mirrored at the edge (OpenCV's ``BORDER_REFLECT_101``); with
``border_mode="constant"`` the image is filled with ``fill`` and the labels
with 0 (background). albumentations uses one border mode for the image and
its mask, and it has to: reflecting the image but filling the labels with
background would teach the network that the mirrored particles are
background.

We reflect by default because the network then always sees micrograph-like
texture, whereas a constant fill paints flat areas that look like no
micrograph (and a dark fill looks like a huge particle in a bright-field
image). The price: a mirrored particle keeps its id, so in an instance map
one id can then mark two separate regions. That does not matter for training
on class maps (:func:`particleseg.annotation.annotate_borders` draws borders between
*different* ids and against background, and a particle mirrored across the
edge it touches becomes one symmetric blob, just as the image shows), but it
does for anything that counts or measures instances in augmented maps. For
that, choose ``border_mode="constant"``: ids then stay unique.

Seeding albumentations
----------------------
``albumentations.Compose(seed=s)`` gives *each* transform its own generators
seeded with the same ``s``, so their random draws are correlated: with
``Compose([HorizontalFlip(p=0.5), VerticalFlip(p=0.5)], seed=s)`` both flips
happen or neither does, for every ``s``. We therefore build the ``Compose``
with the seed and then give all transforms one shared pair of generators
(``Compose.set_random_state``), which makes their draws independent.

albumentations is imported on first use only (with
``NO_ALBUMENTATIONS_UPDATE=1`` so that it never asks the network for
updates): ``import particleseg`` neither waits on a network nor pays its
import cost.
"""

from __future__ import annotations

import numbers
import os
import random

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.metaestimators import _BaseComposition

__all__ = [
    # the composer and the recipe
    "Augmenter", "default_augmenter",
    # geometric
    "RandomResize", "Flip", "RandomCrop", "RandomRotation", "ElasticTransform",
    "GridDistortion", "OpticalDistortion",
    # intensity (labels untouched)
    "BrightnessContrast", "Gamma", "InvertContrast", "GaussianNoise", "LowResolution",
]

_BORDER_MODES = ("reflect", "constant")


def _is_passthrough(step) -> bool:
    return step is None or (isinstance(step, str) and step == "passthrough")


# --------------------------------------------------------------------------
# Lazy imports
# --------------------------------------------------------------------------
def _albumentations():
    """Import albumentations without its network update check."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def _cv2():
    import cv2

    return cv2


# --------------------------------------------------------------------------
# Parameter checks (run at call time, never in __init__)
# --------------------------------------------------------------------------
def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _check_number(owner, name, value, low=None, high=None, low_open=False, integer=False):
    kind = "an integer" if integer else "a number"
    ok = (
        isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if integer
        else _is_real(value)
    )
    if not ok:
        raise TypeError(f"{owner}: {name} must be {kind}; got {value!r}.")
    if low is not None and (value <= low if low_open else value < low):
        relation = ">" if low_open else ">="
        raise ValueError(f"{owner}: {name} must be {relation} {low}; got {value!r}.")
    if high is not None and value > high:
        raise ValueError(f"{owner}: {name} must be <= {high}; got {value!r}.")
    return value


def _check_probability(owner, p):
    if not _is_real(p) or not 0 <= p <= 1:
        raise ValueError(f"{owner}: p is a probability and must be in [0, 1]; got {p!r}.")
    return float(p)


def _check_range(owner, name, value, low=None, high=None, low_open=False, symmetric=True):
    """A (low, high) pair, or a number x meaning (-x, x) (``symmetric``) or (x, x)."""
    if _is_real(value):
        if symmetric:
            if value < 0:
                raise ValueError(
                    f"{owner}: {name} given as one number x means the range (-x, x), so it "
                    f"must be >= 0; got {value!r}. Pass a (low, high) pair for another range."
                )
            pair = (-float(value), float(value))
        else:
            pair = (float(value), float(value))
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(_is_real(v) for v in pair):
            raise TypeError(
                f"{owner}: {name} must be a number or a (low, high) pair of numbers; "
                f"got {value!r}."
            )
        pair = (float(pair[0]), float(pair[1]))
        if pair[0] > pair[1]:
            raise ValueError(
                f"{owner}: {name} must be a (low, high) pair with low <= high; got {value!r}."
            )
    too_low = low is not None and (pair[0] <= low if low_open else pair[0] < low)
    too_high = high is not None and pair[1] > high
    if too_low or too_high:
        left = "(-inf" if low is None else f"{'(' if low_open else '['}{low}"
        right = "inf)" if high is None else f"{high}]"
        bounds = f"{left}, {right}"
        meaning = f" (read as the range {pair})" if _is_real(value) else ""
        raise ValueError(
            f"{owner}: {name} must lie within {bounds}; got {value!r}{meaning}."
        )
    return pair


def _check_border(owner, border_mode, fill):
    if border_mode not in _BORDER_MODES:
        raise ValueError(
            f"{owner}: border_mode must be 'reflect' or 'constant'; got {border_mode!r}."
        )
    _check_number(owner, "fill", fill, low=0, high=1)
    cv2 = _cv2()
    code = cv2.BORDER_REFLECT_101 if border_mode == "reflect" else cv2.BORDER_CONSTANT
    return {"border_mode": code, "fill": float(fill), "fill_mask": 0}


# --------------------------------------------------------------------------
# Arrays in and out
# --------------------------------------------------------------------------
def _check_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"image must be a non-empty 2-D array (H, W); got shape {arr.shape}. "
            "Augment the images of a stack one at a time."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"image must be a float array with values in [0, 1]; got dtype {arr.dtype}. "
            "Convert first, e.g. image.astype(np.float32) / 255 for a uint8 image."
        )
    low, high = float(arr.min()), float(arr.max())
    tolerance = 1e-5  # rounding in a caller's rescaling is not an error
    if not (low >= -tolerance and high <= 1 + tolerance):  # also catches NaN
        raise ValueError(
            f"image values must lie in [0, 1]; got values from {low} to {high}. "
            "Rescale the image first."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return np.clip(arr, 0, 1, out=arr.copy()) if low < 0 or high > 1 else arr


def _check_labels(labels, image_shape) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"labels must be an integer label map (instance or class map); got dtype "
            f"{arr.dtype}."
        )
    if arr.shape != tuple(image_shape):
        raise ValueError(
            f"labels must have the shape of image {tuple(image_shape)}; got shape {arr.shape}."
        )
    return arr


def _encode_labels(labels):
    """Labels as a map albumentations moves safely (uint8/uint16), and a decoder.

    Value 0 always encodes background 0, so that a constant fill of 0 in the
    encoded map decodes to background.
    """
    dtype = labels.dtype
    if dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(labels), lambda out: out
    if dtype == bool:
        return labels.astype(np.uint8), lambda out: out.astype(bool)
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high <= np.iinfo(np.uint16).max:
        return labels.astype(np.uint16), lambda out: out.astype(dtype)
    # Negative values or ids beyond uint16: renumber 0..n-1 with 0 kept at 0.
    values, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(labels.shape)
    zero = np.searchsorted(values, 0)
    if zero < len(values) and values[zero] == 0:
        order = np.concatenate([[zero], np.delete(np.arange(len(values)), zero)])
        values = values[order]
        codes = np.argsort(order)[codes]
    else:
        values = np.concatenate([np.zeros(1, dtype=values.dtype), values])
        codes = codes + 1
    if len(values) > np.iinfo(np.uint16).max + 1:
        raise ValueError(
            f"labels hold {len(values)} distinct values; at most 65536 are supported."
        )
    return codes.astype(np.uint16), lambda out: values[out].astype(dtype, copy=False)


def _draw_seed(random_state) -> int:
    """An int seed for albumentations, drawn from ``random_state``."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    try:
        rng = check_random_state(random_state)
    except ValueError:
        raise ValueError(
            "random_state must be None, an int, a numpy RandomState or a numpy "
            f"Generator; got {random_state!r}."
        ) from None
    return int(rng.randint(np.iinfo(np.int32).max))


def _compose(transforms, seed):
    """An albumentations Compose whose transforms share one pair of generators."""
    A = _albumentations()
    compose = A.Compose(list(transforms), p=1.0, seed=seed)
    # Compose(seed=s) seeds every transform with the same s, which correlates
    # their draws; one shared pair of generators makes them independent.
    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return compose


def _apply(transforms, image, labels, random_state):
    image = _check_image(image)
    labels = _check_labels(labels, image.shape)
    if not transforms:
        return image.copy(), labels.copy()
    encoded, decode = _encode_labels(labels)
    result = _compose(transforms, _draw_seed(random_state))(image=image, mask=encoded)
    out_image = np.clip(result["image"], 0.0, 1.0, dtype=np.float32)
    out_labels = np.ascontiguousarray(decode(np.asarray(result["mask"])))
    if np.shares_memory(out_labels, labels):  # intensity-only steps pass the map through
        out_labels = out_labels.copy()
    return np.ascontiguousarray(out_image), out_labels


# --------------------------------------------------------------------------
# One class per augmentation
# --------------------------------------------------------------------------
class _AlbumentationsMixin:
    """Apply what ``_albumentations_transforms`` builds: to arrays, or as a Compose."""

    def _albumentations_transforms(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image, labels, random_state=None):
        """Augment an image and its label map together (an Augmenter: step by step).

        Parameters
        ----------
        image : ndarray of shape (H, W), float
            Image with values in [0, 1].
        labels : ndarray of shape (H, W), int or bool
            Instance map or class map of ``image``.
        random_state : None, int, RandomState or Generator, default=None
            Seeds the random draw; the same int gives the same result, one
            RandomState passed to successive calls a new draw each time.

        Returns
        -------
        image : ndarray of shape (H', W'), float32
            Augmented image, clipped to [0, 1].
        labels : ndarray of shape (H', W')
            Augmented label map, with the dtype of ``labels``.
        """
        return _apply(self._albumentations_transforms(), image, labels, random_state)

    def to_albumentations(self, seed=None):
        """Return the equivalent ``albumentations.Compose``.

        Parameters
        ----------
        seed : int or None, default=None
            Seed of the Compose's (shared) random generators.

        Returns
        -------
        albumentations.Compose
            Takes ``image=`` (float32 in [0, 1] or uint8) and ``mask=``
            (uint8 or uint16); converting other label dtypes and clipping
            the image is left to the caller.

        Examples
        --------
        >>> from particleseg.augmentation import default_augmenter
        >>> compose = default_augmenter().to_albumentations(seed=0)
        >>> [type(t).__name__ for t in compose.transforms][:3]
        ['RandomScale', 'D4', 'RandomCropFromBorders']
        """
        return _compose(self._albumentations_transforms(), seed)


class _Augmentation(_AlbumentationsMixin, BaseEstimator):
    """One augmentation: a subclass validates its parameters in ``_transform``.

    ``_transform(A, owner)`` returns one albumentations transform (``A`` is
    the albumentations module, ``owner`` the class name for error messages).
    """

    def _albumentations_transforms(self):
        return [self._transform(_albumentations(), type(self).__name__)]

    def _probability(self):
        return _check_probability(type(self).__name__, self.p)


class _Geometric(_Augmentation):
    """An augmentation that moves pixels: bilinear image, nearest labels, a border mode."""

    def __init__(self, border_mode="reflect", fill=0.0, p=0.5):
        self.border_mode = border_mode
        self.fill = fill
        self.p = p

    def _warp(self, owner):
        """Keyword arguments of a geometric transform: interpolation, border and ``p``."""
        cv2 = _cv2()
        return {
            "interpolation": cv2.INTER_LINEAR,
            "mask_interpolation": cv2.INTER_NEAREST,
            **_check_border(owner, self.border_mode, self.fill),
            "p": self._probability(),
        }


class RandomResize(_Augmentation):
    """Resize image and labels by a random factor.

    Parameters
    ----------
    scale : (float, float) or float, default=(0.75, 1.33)
        Range of the resize factor, drawn uniformly; a number is a fixed
        factor. Both sides are scaled by the same factor, so shapes change.
    p : float, default=0.5
        Probability of resizing.

    Notes
    -----
    Wraps ``albumentations.RandomScale``: bilinear interpolation when
    enlarging, area averaging when shrinking; nearest neighbour (OpenCV's
    ``INTER_NEAREST_EXACT``, centred on pixels) for the labels.

    Examples
    --------
    >>> from particleseg.augmentation import RandomResize
    >>> from particleseg.datasets import make_particles
    >>> (image,), (labels,) = make_particles(n_images=1, shape=(64, 64), random_state=0)
    >>> half_size = RandomResize(scale=0.5, p=1.0)
    >>> out_image, out_labels = half_size(image / 255, labels)
    >>> out_image.shape, out_labels.shape, out_labels.dtype
    ((32, 32), (32, 32), dtype('int32'))
    """

    def __init__(self, scale=(0.75, 1.33), p=0.5):
        self.scale = scale
        self.p = p

    def _transform(self, A, owner):
        low, high = _check_range(owner, "scale", self.scale, low=0, low_open=True, symmetric=False)
        p = self._probability()
        cv2 = _cv2()
        return A.RandomScale(
            scale_limit=(low - 1.0, high - 1.0),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST_EXACT,
            area_for_downscale="image",
            p=p,
        )


class Flip(_Augmentation):
    """Apply a random symmetry: flips, and optionally transposes.

    Parameters
    ----------
    transpose : bool, default=True
        If True, draw uniformly among the 8 symmetries of a square (identity,
        rotations by 90, 180 and 270 degrees, and 4 reflections); a
        non-square image then has height and width swapped in half of the
        draws. If False, draw among identity, horizontal flip, vertical flip
        and both.
    p : float, default=1.0
        Probability of drawing a symmetry. Identity is one of the
        symmetries drawn, so the image may come back unchanged even with
        ``p=1``.

    Notes
    -----
    Wraps ``albumentations.D4`` (``transpose=True``) or
    ``HorizontalFlip(p=0.5)`` and ``VerticalFlip(p=0.5)``. Flips move pixels
    exactly, so no interpolation happens.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import Flip
    >>> labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> image = (labels / 11).astype(np.float32)
    >>> out_image, out_labels = Flip()(image, labels, random_state=2)
    >>> out_labels
    array([[ 3,  7, 11],
           [ 2,  6, 10],
           [ 1,  5,  9],
           [ 0,  4,  8]], dtype=uint8)
    >>> bool(np.allclose(out_image * 11, out_labels))
    True
    """

    def __init__(self, transpose=True, p=1.0):
        self.transpose = transpose
        self.p = p

    def _transform(self, A, owner):
        if not isinstance(self.transpose, (bool, np.bool_)):
            raise TypeError(f"{owner}: transpose must be True or False; got {self.transpose!r}.")
        p = self._probability()
        if self.transpose:
            return A.D4(p=p)
        return A.Sequential([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)], p=p)


class RandomCrop(_Augmentation):
    """Crop a random part of the image, keeping its pixel size.

    The crop keeps between ``min_fraction`` and all of the height, and
    independently of the width, at a random position; it is not resized. (The
    segmenter cuts its fixed-size training crops after augmentation; this
    step varies the field of view those crops come from.)

    Parameters
    ----------
    min_fraction : float, default=0.5
        Smallest fraction of the height and of the width kept, in (0, 1].
    p : float, default=0.5
        Probability of cropping.

    Notes
    -----
    Wraps ``albumentations.RandomCropFromBorders`` with up to
    ``(1 - min_fraction) / 2`` of each side cut from each border.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import RandomCrop
    >>> image = np.zeros((64, 64), dtype=np.float32)
    >>> labels = np.zeros((64, 64), dtype=np.int32)
    >>> out_image, out_labels = RandomCrop(min_fraction=0.5, p=1.0)(image, labels, random_state=0)
    >>> out_image.shape == out_labels.shape
    True
    >>> all(32 <= side <= 64 for side in out_image.shape)
    True
    """

    def __init__(self, min_fraction=0.5, p=0.5):
        self.min_fraction = min_fraction
        self.p = p

    def _transform(self, A, owner):
        fraction = _check_number(owner, "min_fraction", self.min_fraction, low=0, high=1,
                                 low_open=True)
        p = self._probability()
        cut = (1.0 - float(fraction)) / 2
        return A.RandomCropFromBorders(
            crop_left=cut, crop_right=cut, crop_top=cut, crop_bottom=cut, p=p
        )


class RandomRotation(_Geometric):
    """Rotate image and labels by a random angle about the image centre.

    Parameters
    ----------
    limit : float or (float, float), default=180.0
        Angle range in degrees: a number x means (-x, x), so 180 allows any
        orientation; within [-180, 180].
    border_mode : {"reflect", "constant"}, default="reflect"
        How to fill the corners brought in from outside the image: mirror
        image and labels, or fill the image with ``fill`` and the labels with
        background 0 (see the module notes).
    fill : float, default=0.0
        Image value of the fill when ``border_mode="constant"``, in [0, 1].
    p : float, default=0.5
        Probability of rotating.

    Notes
    -----
    Wraps ``albumentations.Rotate`` (bilinear for the image, nearest
    neighbour for the labels). The output has the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import RandomRotation
    >>> labels = np.zeros((64, 64), dtype=np.int32)
    >>> labels[10:30, 20:40] = 7

    A range of one angle turns every image by it; here a quarter turn
    (counter-clockwise, as ``np.rot90``):

    >>> quarter_turn = RandomRotation(limit=(90, 90), p=1.0)
    >>> _, turned = quarter_turn(labels * np.float32(0.1), labels, random_state=0)
    >>> bool((turned == np.rot90(labels)).all())
    True
    """

    def __init__(self, limit=180.0, border_mode="reflect", fill=0.0, p=0.5):
        self.limit = limit
        super().__init__(border_mode=border_mode, fill=fill, p=p)

    def _transform(self, A, owner):
        limit = _check_range(owner, "limit", self.limit, low=-180, high=180)
        return A.Rotate(limit=limit, crop_border=False, **self._warp(owner))


class BrightnessContrast(_Augmentation):
    """Change brightness and contrast at random; labels are untouched.

    The image becomes ``(1 + c) * image + b`` with ``c`` drawn from
    ``contrast_limit`` and ``b`` from ``brightness_limit`` (clipped to
    [0, 1]), by ``albumentations.RandomBrightnessContrast``.

    Parameters
    ----------
    brightness_limit : float or (float, float), default=0.2
        Range of the added brightness ``b``: a number x means (-x, x);
        within [-1, 1].
    contrast_limit : float or (float, float), default=0.2
        Range of the contrast change ``c``: a number x means (-x, x); the
        low end must be > -1.
    p : float, default=0.5
        Probability of changing the image.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import BrightnessContrast
    >>> image = np.full((8, 8), 0.5, dtype=np.float32)
    >>> labels = np.ones((8, 8), dtype=np.uint8)
    >>> out_image, out_labels = BrightnessContrast(brightness_limit=(0.1, 0.1),
    ...                                            contrast_limit=0, p=1.0)(image, labels)
    >>> round(float(out_image[0, 0]), 3)
    0.6
    >>> bool((out_labels == labels).all())
    True
    """

    def __init__(self, brightness_limit=0.2, contrast_limit=0.2, p=0.5):
        self.brightness_limit = brightness_limit
        self.contrast_limit = contrast_limit
        self.p = p

    def _transform(self, A, owner):
        brightness = _check_range(owner, "brightness_limit", self.brightness_limit, low=-1, high=1)
        contrast = _check_range(owner, "contrast_limit", self.contrast_limit, low=-1,
                                low_open=True)
        return A.RandomBrightnessContrast(
            brightness_limit=brightness, contrast_limit=contrast, brightness_by_max=True,
            p=self._probability(),
        )


class Gamma(_Augmentation):
    """Apply a random gamma correction; labels are untouched.

    The image becomes ``image ** gamma``, with ``gamma`` drawn from
    ``gamma_limit / 100`` (``albumentations.RandomGamma``).

    Parameters
    ----------
    gamma_limit : (float, float), default=(80, 120)
        Range of gamma *in percent*, as in albumentations: (80, 120) draws
        gamma between 0.8 and 1.2. Both ends must be > 0.
    p : float, default=0.5
        Probability of a gamma correction.

    Examples
    --------
    A gamma of 0.5 takes the square root of the intensities:

    >>> import numpy as np
    >>> from particleseg.augmentation import Gamma
    >>> gamma = Gamma(gamma_limit=(50, 50), p=1.0)
    >>> out_image, _ = gamma(np.full((8, 8), 0.25, dtype=np.float32), np.ones((8, 8), dtype=np.uint8))
    >>> round(float(out_image[0, 0]), 3)
    0.5
    """

    def __init__(self, gamma_limit=(80, 120), p=0.5):
        self.gamma_limit = gamma_limit
        self.p = p

    def _transform(self, A, owner):
        limit = _check_range(owner, "gamma_limit", self.gamma_limit, low=0, low_open=True,
                             symmetric=False)
        return A.RandomGamma(gamma_limit=limit, p=self._probability())


class ElasticTransform(_Geometric):
    """Deform image and labels with a smooth random displacement field.

    Parameters
    ----------
    alpha : float, default=120.0
        Strength of the displacement (>= 0).
    sigma : float, default=6.0
        Smoothness: standard deviation, in pixels, of the Gaussian that
        smooths the random field (>= 1). Larger is smoother, and weaker for
        the same ``alpha``.
    border_mode, fill : {"reflect", "constant"} and float, default="reflect" and 0.0
        How pixels pulled in from outside the image are filled, and the
        image value of a constant fill, as in :class:`RandomRotation`.
    p : float, default=0.25
        Probability of deforming.

    Notes
    -----
    Wraps ``albumentations.ElasticTransform``. albumentations 2 scales the
    white noise to a maximum of 1 before smoothing, so the displacement
    depends on ``alpha``, ``sigma`` and (weakly) the image size: with the
    defaults on a 512 x 512 image it is about 1 pixel rms and up to about 10
    pixels, varying over a few pixels, which roughens particle outlines
    without moving particles. (albumentations' own defaults, ``alpha=1,
    sigma=50``, move pixels by less than 0.1 pixel.)

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import ElasticTransform
    >>> from particleseg.datasets import make_particles
    >>> images, instance_maps = make_particles(n_images=1, shape=(64, 64), random_state=0)
    >>> image = images[0].astype(np.float32) / 255
    >>> out_image, out_labels = ElasticTransform(p=1.0)(image, instance_maps[0], random_state=0)
    >>> out_labels.dtype, out_labels.shape
    (dtype('int32'), (64, 64))
    >>> set(np.unique(out_labels)) <= set(np.unique(instance_maps[0]))
    True
    """

    def __init__(self, alpha=120.0, sigma=6.0, border_mode="reflect", fill=0.0, p=0.25):
        self.alpha = alpha
        self.sigma = sigma
        super().__init__(border_mode=border_mode, fill=fill, p=p)

    def _transform(self, A, owner):
        alpha = _check_number(owner, "alpha", self.alpha, low=0)
        sigma = _check_number(owner, "sigma", self.sigma, low=1)
        return A.ElasticTransform(alpha=float(alpha), sigma=float(sigma), **self._warp(owner))


class GridDistortion(_Geometric):
    """Stretch and squeeze image and labels along a random coarse grid.

    Wraps ``albumentations.GridDistortion`` (``normalized=True``, so the
    distortion stays within the image).

    Parameters
    ----------
    num_steps : int, default=5
        Number of grid cells along each side (>= 1).
    distort_limit : float or (float, float), default=0.3
        Range of the relative change of each cell's size: a number x means
        (-x, x); within [-1, 1].
    border_mode, fill : {"reflect", "constant"} and float, default="reflect" and 0.0
        How pixels pulled in from outside the image are filled, and the
        image value of a constant fill, as in :class:`RandomRotation`.
        It matters little here: the image edges stay in place, so at most
        a sliver is filled.
    p : float, default=0.25
        Probability of distorting.

    Examples
    --------
    A square stays one particle, its sides bent along the grid:

    >>> import numpy as np
    >>> from particleseg.augmentation import GridDistortion
    >>> labels = np.zeros((64, 64), dtype=np.uint8)
    >>> labels[20:40, 20:40] = 1
    >>> image = labels.astype(np.float32)
    >>> out_image, out_labels = GridDistortion(p=1.0)(image, labels, random_state=0)
    >>> out_labels.shape, sorted(np.unique(out_labels).tolist())
    ((64, 64), [0, 1])
    """

    def __init__(self, num_steps=5, distort_limit=0.3, border_mode="reflect", fill=0.0,
                 p=0.25):
        self.num_steps = num_steps
        self.distort_limit = distort_limit
        super().__init__(border_mode=border_mode, fill=fill, p=p)

    def _transform(self, A, owner):
        num_steps = _check_number(owner, "num_steps", self.num_steps, low=1, integer=True)
        limit = _check_range(owner, "distort_limit", self.distort_limit, low=-1, high=1)
        return A.GridDistortion(num_steps=int(num_steps), distort_limit=limit, normalized=True,
                                **self._warp(owner))


class OpticalDistortion(_Geometric):
    """Apply a random barrel or pincushion (lens-like) distortion.

    Wraps ``albumentations.OpticalDistortion`` in its ``"camera"`` mode
    (albumentations 2 dropped the ``shift_limit`` of 1.x).

    Parameters
    ----------
    distort_limit : float or (float, float), default=0.05
        Range of the radial distortion coefficient ``k``: a number x means
        (-x, x). On a 512 x 512 image, ``k = 0.05`` moves the corners by
        about 14 pixels and ``k = 0.2`` by about 55.
    p : float, default=0.25
        Probability of distorting.
    border_mode, fill : {"reflect", "constant"} and float, default="reflect" and 0.0
        As in :class:`RandomRotation`.

    Examples
    --------
    The distortion grows from the centre of the image outwards; every
    particle keeps its label:

    >>> from particleseg.augmentation import OpticalDistortion
    >>> from particleseg.datasets import make_particles
    >>> (image,), (labels,) = make_particles(n_images=1, shape=(64, 64), random_state=0)
    >>> lens = OpticalDistortion(distort_limit=0.3, p=1.0)
    >>> _, distorted = lens(image / 255, labels, random_state=0)
    >>> set(distorted.ravel().tolist()) == set(labels.ravel().tolist())
    True
    """

    def __init__(self, distort_limit=0.05, border_mode="reflect", fill=0.0, p=0.25):
        self.distort_limit = distort_limit
        super().__init__(border_mode=border_mode, fill=fill, p=p)

    def _transform(self, A, owner):
        limit = _check_range(owner, "distort_limit", self.distort_limit)
        return A.OpticalDistortion(distort_limit=limit, mode="camera", **self._warp(owner))


class InvertContrast(_Augmentation):
    """Invert the image (``1 - image``) at random; labels are untouched.

    Particles are darker than the background in bright-field TEM and brighter
    in dark-field or SEM images; inverting some training images teaches the
    network both polarities. Not part of :func:`default_augmenter`.

    Parameters
    ----------
    p : float, default=0.5
        Probability of inverting.

    Notes
    -----
    Wraps ``albumentations.InvertImg``.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import InvertContrast
    >>> image = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    >>> labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    >>> out_image, out_labels = InvertContrast(p=1.0)(image, labels)
    >>> out_image.tolist()
    [[1.0, 0.75], [0.5, 0.0]]
    """

    def __init__(self, p=0.5):
        self.p = p

    def _transform(self, A, owner):
        return A.InvertImg(p=self._probability())


class GaussianNoise(_Augmentation):
    """Add Gaussian noise to the image; labels are untouched.

    Low-dose and fast-scan micrographs are grainy. Each pixel gets an
    independent normal deviate of standard deviation ``std``, drawn from
    ``std_limit`` (in units of the image's [0, 1] range), by
    ``albumentations.GaussNoise``. Not part of :func:`default_augmenter`.

    Parameters
    ----------
    std_limit : (float, float), default=(0.01, 0.1)
        Range of the noise's standard deviation, within [0, 1].
    p : float, default=0.3
        Probability of adding noise.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import GaussianNoise
    >>> image = np.full((64, 64), 0.5, dtype=np.float32)
    >>> out, _ = GaussianNoise(std_limit=(0.05, 0.05), p=1.0)(image, np.zeros((64, 64), int),
    ...                                                       random_state=0)
    >>> 0.04 < float(out.std()) < 0.06
    True
    """

    def __init__(self, std_limit=(0.01, 0.1), p=0.3):
        self.std_limit = std_limit
        self.p = p

    def _transform(self, A, owner):
        limit = _check_range(owner, "std_limit", self.std_limit, low=0, high=1, symmetric=False)
        return A.GaussNoise(std_range=limit, p=self._probability())


class LowResolution(_Augmentation):
    """Lose detail as an enlarged image does; shape and labels are untouched.

    The image is shrunk by a factor drawn from ``scale_limit`` (area
    averaging) and enlarged back to its size (bilinear), by
    ``albumentations.Downscale``: particles keep their place and size but
    get the soft edges of a micrograph enlarged from fewer pixels, as
    figures in papers and slides often are. Not part of
    :func:`default_augmenter`.

    Parameters
    ----------
    scale_limit : (float, float), default=(0.25, 0.7)
        Range of the shrinking factor, within (0, 1).
    p : float, default=0.2
        Probability of the round trip.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import LowResolution
    >>> image = np.zeros((64, 64), dtype=np.float32)
    >>> image[:, 32:] = 1.0
    >>> out, _ = LowResolution(scale_limit=(0.25, 0.25), p=1.0)(image, np.zeros((64, 64), int))
    >>> out.shape, bool(0.0 < out[0, 31] < 1.0 or 0.0 < out[0, 32] < 1.0)
    ((64, 64), True)
    """

    def __init__(self, scale_limit=(0.25, 0.7), p=0.2):
        self.scale_limit = scale_limit
        self.p = p

    def _transform(self, A, owner):
        limit = _check_range(owner, "scale_limit", self.scale_limit, low=0, high=1,
                             low_open=True, symmetric=False)
        if limit[1] >= 1:
            raise ValueError(f"{owner}: scale_limit must lie below 1; got {self.scale_limit!r}.")
        cv2 = _cv2()
        return A.Downscale(scale_range=limit, p=self._probability(),
                           interpolation_pair={"downscale": cv2.INTER_AREA,
                                               "upscale": cv2.INTER_LINEAR})


# --------------------------------------------------------------------------
# The composer
# --------------------------------------------------------------------------
class Augmenter(_AlbumentationsMixin, _BaseComposition):
    """Chain named augmentations, applied in order to image and labels.

    Like a :class:`~sklearn.pipeline.Pipeline`, the steps are named, and
    their parameters are reachable as ``<step>__<parameter>`` through
    ``get_params``/``set_params`` (so a segmenter built with
    ``augment=Augmenter(...)`` exposes ``augment__<step>__<parameter>`` to
    :class:`~sklearn.model_selection.GridSearchCV`). A step set to
    ``"passthrough"`` or None is skipped.

    Parameters
    ----------
    steps : list of (str, augmentation) tuples
        The augmentations of this module (e.g. :class:`Flip`,
        :class:`ElasticTransform`), in the order they are applied, each with
        a unique name free of ``"__"``.

    See Also
    --------
    default_augmenter : The recipe's nine steps.

    Notes
    -----
    One call runs one albumentations ``Compose`` over all steps, seeded from
    ``random_state``. Steps are validated when called, not when built.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import Augmenter, ElasticTransform, Flip
    >>> from particleseg.datasets import make_particles
    >>> augmenter = Augmenter([("flip", Flip()), ("elastic", ElasticTransform(p=1.0))])
    >>> augmenter.get_params()["elastic__alpha"]
    120.0
    >>> augmenter = augmenter.set_params(elastic__alpha=60.0, flip="passthrough")
    >>> images, instance_maps = make_particles(n_images=1, shape=(64, 64), random_state=0)
    >>> image = images[0].astype(np.float32) / 255
    >>> rng = np.random.RandomState(0)
    >>> out_image, out_labels = augmenter(image, instance_maps[0], random_state=rng)
    >>> out_image.dtype, out_labels.dtype, out_image.shape == out_labels.shape
    (dtype('float32'), dtype('int32'), True)
    """

    def __init__(self, steps):
        self.steps = steps

    def get_params(self, deep=True):
        """Get the parameters of the augmenter and, if ``deep``, of its steps.

        Parameters
        ----------
        deep : bool, default=True
            If True, also return the steps by name and their parameters as
            ``<step>__<parameter>``.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return self._get_params("steps", deep=deep)

    def set_params(self, **params):
        """Set parameters of the augmenter or of its steps.

        Parameters
        ----------
        **params : dict
            ``steps``, a step name (to replace that step, or switch it off
            with ``"passthrough"``), or ``<step>__<parameter>``.

        Returns
        -------
        self : Augmenter
            This augmenter.
        """
        self._set_params("steps", **params)
        return self

    @property
    def named_steps(self):
        """The steps by name, as a :class:`~sklearn.utils.Bunch`."""
        return Bunch(**dict(self._checked_steps()))

    def _checked_steps(self):
        """Validate ``steps``; return them as a list of (name, step) pairs."""
        steps = self.steps
        hint = 'e.g. Augmenter([("flip", Flip()), ("elastic", ElasticTransform())])'
        if not isinstance(steps, (list, tuple)):
            raise TypeError(
                f"Augmenter: steps must be a list of (name, augmentation) tuples, {hint}; "
                f"got {steps!r}."
            )
        seen = set()
        for item in steps:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError(
                    f"Augmenter: each step must be a (name, augmentation) tuple, {hint}; "
                    f"got {item!r}."
                )
            name, step = item
            if not isinstance(name, str) or not name:
                raise TypeError(f"Augmenter: step names must be non-empty strings; got {name!r}.")
            if "__" in name:
                raise ValueError(
                    f"Augmenter: step name {name!r} contains '__', which separates nested "
                    "parameter names; choose another name."
                )
            if name == "steps":
                raise ValueError("Augmenter: 'steps' cannot be a step name; choose another name.")
            if name in seen:
                raise ValueError(
                    f"Augmenter: step names must be unique; {name!r} appears more than once."
                )
            seen.add(name)
            if not (_is_passthrough(step) or isinstance(step, _Augmentation)):
                raise TypeError(
                    f"Augmenter: step {name!r} must be an augmentation of "
                    "particleseg.augmentation (such as Flip() or ElasticTransform()), "
                    f"'passthrough' or None; got {step!r}."
                )
        return list(steps)

    # Listed here too, so that the API reference shows them on Augmenter's page.
    __call__ = _AlbumentationsMixin.__call__
    to_albumentations = _AlbumentationsMixin.to_albumentations

    def _albumentations_transforms(self):
        transforms = []
        for _, step in self._checked_steps():
            if not _is_passthrough(step):
                transforms.extend(step._albumentations_transforms())
        return transforms


def default_augmenter():
    """Return the published recipe's nine augmentations as an :class:`Augmenter`.

    The steps, in order and by name: ``"resize"`` (:class:`RandomResize`),
    ``"flip"`` (:class:`Flip`), ``"crop"`` (:class:`RandomCrop`),
    ``"rotate"`` (:class:`RandomRotation`), ``"brightness_contrast"``
    (:class:`BrightnessContrast`), ``"gamma"`` (:class:`Gamma`),
    ``"elastic"`` (:class:`ElasticTransform`), ``"grid"``
    (:class:`GridDistortion`) and ``"optical"`` (:class:`OpticalDistortion`),
    each with its default parameters.

    Returns
    -------
    Augmenter
        A new augmenter; change it with ``set_params`` (for example
        ``elastic__alpha=60`` or ``optical="passthrough"``).

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.augmentation import default_augmenter
    >>> augmenter = default_augmenter()
    >>> print(*augmenter.named_steps)
    resize flip crop rotate brightness_contrast gamma elastic grid optical
    >>> image = np.zeros((64, 64), dtype=np.float32)
    >>> labels = np.zeros((64, 64), dtype=np.uint8)
    >>> out_image, out_labels = augmenter(image, labels, random_state=0)
    >>> out_image.shape == out_labels.shape
    True
    """
    return Augmenter(
        [
            ("resize", RandomResize()),
            ("flip", Flip()),
            ("crop", RandomCrop()),
            ("rotate", RandomRotation()),
            ("brightness_contrast", BrightnessContrast()),
            ("gamma", Gamma()),
            ("elastic", ElasticTransform()),
            ("grid", GridDistortion()),
            ("optical", OpticalDistortion()),
        ]
    )
