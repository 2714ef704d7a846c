"""Border annotation: from instance maps to 3-class maps.

A network cannot separate two touching particles if it is only told "particle"
or "background": their pixels form one blob. Marking the pixels of every
particle that lie next to the background *or to another particle* as a third
class, *border*, puts a line of border pixels between touching particles, so
that the particle cores (class 1) of different particles never touch and can be
labelled apart (see :func:`particleseg.label_particles`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, TransformerMixin

from ._validation import check_instance_map

__all__ = ["annotate_borders", "BorderAnnotator", "BACKGROUND", "PARTICLE", "BORDER", "UNLABELLED"]

#: Class value of background pixels in a class map.
BACKGROUND = 0
#: Class value of particle-core pixels in a class map.
PARTICLE = 1
#: Class value of particle-border pixels in a class map.
BORDER = 2
#: Class value of unlabelled pixels (-1 in an instance map); training skips them.
UNLABELLED = 255

#: Default border width in pixels, chosen by measurement (see
#: ``benchmarks/border_width.py``).
DEFAULT_BORDER_WIDTH = 1


def _footprint(width: int) -> np.ndarray:
    """A disk of radius ``width`` in the city-block metric (a diamond).

    With a diamond footprint, a core pixel of one particle can never be an
    8-neighbour of a core pixel of another particle, so the cores come apart
    under any connectivity.
    """
    return ndi.generate_binary_structure(2, 1) if width == 1 else ndi.iterate_structure(
        ndi.generate_binary_structure(2, 1), width
    )


def _check_width(width, name="width"):
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer (pixels); got {width!r}.")
    if width < 1:
        raise ValueError(f"{name} must be at least 1 pixel; got {width}.")
    return int(width)


def annotate_borders(instances, width: int = DEFAULT_BORDER_WIDTH) -> np.ndarray:
    """Turn an instance map into a class map with a particle-border class.

    Every pixel of a particle that lies within ``width`` pixels (city-block
    distance) of the background *or of another particle* becomes border (2);
    the remaining particle pixels are particle core (1); background stays 0.
    The image edge is not a boundary: a particle cut by the edge keeps its core
    up to the edge.

    Pixels labelled -1 are *unlabelled* (a sparse annotation: only some
    particles were outlined). They become :data:`UNLABELLED` (255), which the
    training loss skips; towards them, a particle's edge is a border, as
    towards background.

    Parameters
    ----------
    instances : ndarray of int, shape (H, W)
        Instance map: 0 is background, ``k > 0`` marks the pixels of particle k,
        -1 marks unlabelled pixels.
    width : int, default=1
        Border width in pixels. The default was chosen on the EMPS training
        images: a 1-pixel border followed by :func:`label_particles` recovers
        more than 98 % of the particles (``benchmarks/border_width.py``).

    Returns
    -------
    classes : ndarray of uint8, shape (H, W)
        Class map: 0 background, 1 particle core, 2 particle border (and 255
        unlabelled).

    See Also
    --------
    BorderAnnotator : The same as a scikit-learn transformer.
    label_particles : The inverse: from a class map back to instances.

    Examples
    --------
    Two touching 4x4 squares become two cores separated by border pixels:

    >>> import numpy as np
    >>> from particleseg.annotation import annotate_borders
    >>> labels = np.zeros((6, 10), dtype=int)
    >>> labels[1:5, 1:5] = 1
    >>> labels[1:5, 5:9] = 2
    >>> annotate_borders(labels)
    array([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
           [0, 2, 2, 2, 2, 2, 2, 2, 2, 0],
           [0, 2, 1, 1, 2, 2, 1, 1, 2, 0],
           [0, 2, 1, 1, 2, 2, 1, 1, 2, 0],
           [0, 2, 2, 2, 2, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    labels = check_instance_map(instances, "instances", allow_unlabelled=True)
    width = _check_width(width)
    unlabelled = labels < 0
    if unlabelled.any():
        labels = np.where(unlabelled, 0, labels)
    else:
        unlabelled = None
    footprint = _footprint(width)
    # A pixel is core when every pixel within `width` carries its own label:
    # then the smallest and largest label in its neighbourhood are equal.
    # mode="nearest" repeats the edge, so the image edge is no boundary.
    low = ndi.grey_erosion(labels, footprint=footprint, mode="nearest")
    high = ndi.grey_dilation(labels, footprint=footprint, mode="nearest")
    foreground = labels > 0
    classes = np.zeros(labels.shape, dtype=np.uint8)
    classes[foreground] = BORDER
    classes[foreground & (low == high)] = PARTICLE
    if unlabelled is not None:
        classes[unlabelled] = UNLABELLED
    return classes


class BorderAnnotator(TransformerMixin, BaseEstimator):
    """Transformer that turns instance maps into class maps with a border class.

    A scikit-learn wrapper of :func:`annotate_borders`, used by
    :class:`ParticleSegmenter` to prepare its training targets. It is
    stateless: ``fit`` learns nothing.

    Parameters
    ----------
    width : int, default=1
        Border width in pixels (see :func:`annotate_borders`).

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.annotation import BorderAnnotator
    >>> labels = np.zeros((5, 5), dtype=int)
    >>> labels[1:4, 1:4] = 7
    >>> BorderAnnotator(width=1).fit_transform([labels])[0]
    array([[0, 0, 0, 0, 0],
           [0, 2, 2, 2, 0],
           [0, 2, 1, 2, 0],
           [0, 2, 2, 2, 0],
           [0, 0, 0, 0, 0]], dtype=uint8)
    """

    def __init__(self, width: int = DEFAULT_BORDER_WIDTH):
        self.width = width

    def fit(self, X, y=None):
        """Check the parameters; nothing is learned.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            Instance maps; only checked, nothing is learned from them.
        y : None
            Ignored.

        Returns
        -------
        self : BorderAnnotator
        """
        _check_width(self.width)
        maps = [X] if isinstance(X, np.ndarray) and X.ndim == 2 else X
        for i, labels in enumerate(maps):
            check_instance_map(labels, f"X[{i}]", allow_unlabelled=True)
        return self

    def transform(self, X):
        """Annotate the borders of each instance map.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            One instance map or a list of them.

        Returns
        -------
        classes : ndarray or list of ndarray
            One class map per instance map (a single array for a single map).
        """
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return annotate_borders(X, self.width)
        return [annotate_borders(x, self.width) for x in X]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
