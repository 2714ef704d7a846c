"""ParticleSegmenter: a scikit-learn estimator around torchvision's DeepLabV3."""

from __future__ import annotations

import functools
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._validation import (
    check_class_map,
    check_image,
    check_images,
    check_instance_map,
    check_same_shape,
)
from ._autoscale import training_diameter
from .annotation import BorderAnnotator
from .normalization import RECIPE_MEAN, RECIPE_STD, NormalizedImage, scale_intensity

__all__ = ["ParticleSegmenter"]

#: The backbones of particleseg._models.BACKBONES (not imported: that module imports torch).
_BACKBONES = ("resnet50", "resnet101", "mobilenet_v3_large")


def _scaled_images(X, name, normalize, intensity_range, mean, std):
    """Validate X; return [0, 1] float32 images, the (mean, std) and ``single``.

    Images marked by a :class:`Normalizer` are brought back to [0, 1] with
    their own statistics instead of being normalised a second time.
    """
    if isinstance(X, NormalizedImage) and X.ndim == 2:
        X = [X]
        single = True
    else:
        single = None
    items = X if isinstance(X, (list, tuple)) else None
    marked = [isinstance(x, NormalizedImage) for x in items] if items is not None else []
    if any(marked) and not all(marked):
        raise ValueError(
            f"{name} mixes images normalised by a Normalizer with raw images; pass all of "
            "them through the same Normalizer, or none."
        )
    if items is not None and len(items) and all(marked):
        stats = {x.normalization for x in items}
        if len(stats) != 1:
            raise ValueError(
                f"{name} holds images normalised with different statistics {sorted(stats)}; "
                "normalise all images with one Normalizer."
            )
        (m, s), = stats
        images = [check_image(np.asarray(x), f"{name}[{i}]") * np.float32(s) + np.float32(m)
                  for i, x in enumerate(items)]
        return [im.astype(np.float32) for im in images], (m, s), bool(single)
    images, single = check_images(X, name)
    if normalize:
        return [scale_intensity(im, intensity_range) for im in images], (mean, std), single
    # normalize=False: the images are used as given (float32), no scaling.
    return [im.astype(np.float32) for im in images], None, single



# ----------------------------------------------------------------------------
# Parameter constraints: one check per parameter, run at the start of fit and
# predict (never in __init__, so that clone and set_params take anything).


def _integer(minimum, allow_none=False):
    def check(name, value):
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return check


def _positive_number(name, value):
    if not isinstance(value, numbers.Real) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


def _one_of(options, describe=None):
    def check(name, value):
        if value not in options:
            expected = describe or f"one of {options}"
            raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return check


def _inference_scale(name, value):
    if value == "auto":
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.25 <= value <= 4:
        raise ValueError(f'{name} must be "auto" or a number between 0.25 and 4; got {value!r}.')


def _min_confidence(name, value):
    if value == "auto" or value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f'{name} must be "auto", None or a number in [0, 1]; got {value!r}.')


def _fraction_or_none(name, value):
    if value is not None and not 0 < value < 1:
        raise ValueError(f"{name} must be None or between 0 and 1; got {value!r}.")


def _weights(name, value):
    if not (value is None or isinstance(value, str) or hasattr(value, "__fspath__")):
        raise TypeError(
            f'{name} must be None, "imagenet" or the path of a saved model; got {value!r}.'
        )


def _class_weight(name, value):
    if isinstance(value, str):
        if value != "balanced":
            raise ValueError(f'{name} must be "balanced", None or 3 numbers; got {value!r}.')
        return
    if value is None:
        return
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (3,) or not np.all(arr > 0):
        raise ValueError(
            f"{name} must be 3 positive numbers (background, particle, border); got {value!r}."
        )


#: Checked at the start of ``fit`` and ``predict``; ``annotator``, ``augment``,
#: ``device`` and ``random_state`` are checked when ``fit`` resolves them.
_PARAMETER_CONSTRAINTS = {
    "backbone": _one_of(_BACKBONES),
    "max_epochs": _integer(0),
    "batch_size": _integer(2),  # BatchNorm cannot train on batches of one crop
    "crop_size": _integer(16),
    "crops_per_image": _integer(1),
    "tile_size": _integer(64, allow_none=True),
    "tile_overlap": _integer(0),
    "n_threads": _integer(1, allow_none=True),
    "inference_scale": _inference_scale,
    "min_confidence": _min_confidence,
    "learning_rate": _positive_number,
    "validation_fraction": _fraction_or_none,
    "intensity_range": _one_of(("dtype", "image"), describe='"dtype" or "image"'),
    "std": _positive_number,
    "weights": _weights,
}

#: Checked at the start of ``fit`` only (prediction does not read them).
_FIT_CONSTRAINTS = {"class_weight": _class_weight}


def _check_parameters(params, constraints):
    """Run each parameter's check; then the checks that involve two parameters."""
    for name, check in constraints.items():
        check(name, params[name])
    tile_size, tile_overlap = params["tile_size"], params["tile_overlap"]
    if tile_size is not None and tile_overlap * 2 >= tile_size:
        raise ValueError(
            f"tile_overlap ({tile_overlap}) must be less than half of tile_size ({tile_size})."
        )


def _resolve_option(name, value, default, accepts, kind):
    """``"default"`` becomes ``default()``; None or an accepted object is kept as is."""
    message = f'{name} must be "default", None or {kind}; got {value!r}.'
    if isinstance(value, str):
        if value != "default":
            raise ValueError(message)
        return default()
    if value is None or accepts(value):
        return value
    raise TypeError(message)


def _default_augmenter():
    from .augmentation import default_augmenter

    return default_augmenter()


def _mean_iou(pred, y):
    """Mean foreground IoU of predicted class maps and true label maps."""
    from .metrics import iou_score

    if not isinstance(pred, list):
        pred, y = [pred], [y]
    y = _one_per_image(y, len(pred))
    return float(np.mean([iou_score(np.asarray(t) > 0, p > 0) for t, p in zip(y, pred)]))


def _seed(random_state):
    """An int seed from ``random_state`` (a fresh one for None)."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**31))
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise TypeError(f"random_state must be an int, a RandomState or None; got {random_state!r}.")


def _one_per_image(y, n_images):
    """``y`` as a list, checked to hold one label map per image."""
    y = list(y)
    if len(y) != n_images:
        raise ValueError(
            f"X and y must have the same length: got {n_images} images and {len(y)} label maps."
        )
    return y


def _training_data(X, y, params):
    """Validate training data; return [0, 1] images, targets, (mean, std) and the annotator."""
    if y is None:
        raise ValueError(
            "y is required: pass one instance map (or class map with annotator=None) per image."
        )
    images, norm, single = _scaled_images(
        X, "X", params["normalize"], params["intensity_range"], params["mean"], params["std"]
    )
    if single:
        y = [y]
    if isinstance(y, np.ndarray) and y.ndim == 2:
        raise ValueError(
            f"y is one label map but X holds {len(images)} images; pass one label map per image."
        )
    y = _one_per_image(y, len(images))
    annotator = _resolve_option("annotator", params["annotator"], BorderAnnotator,
                                lambda a: isinstance(a, BorderAnnotator), "a BorderAnnotator")
    targets = []
    for i, (image, target) in enumerate(zip(images, y)):
        targets.append(check_class_map(target, f"y[{i}]") if annotator is None
                       else check_instance_map(target, f"y[{i}]", allow_unlabelled=True))
        check_same_shape(image, targets[-1], f"X[{i}]", f"y[{i}]")
    return images, targets, norm, annotator


def _fit(est, X, y, continue_training):
    """Train ``est`` (a ParticleSegmenter) and set its fitted attributes."""
    from ._models import resolve_device
    from ._training import TrainingSettings, fit_model

    params = est.get_params(deep=False)
    _check_parameters(params, {**_PARAMETER_CONSTRAINTS, **_FIT_CONSTRAINTS})
    images, targets, norm, annotator = _training_data(X, y, params)
    augmenter = _resolve_option("augment", est.augment, _default_augmenter, callable,
                                "an Augmenter")
    device = resolve_device(est.device)
    keep = continue_training and hasattr(est, "model_")
    fitted = fit_model(
        TrainingSettings.from_params(params), images, targets, annotator=annotator,
        augmenter=augmenter, normalization=norm, device=device, seed=_seed(est.random_state),
        previous=(est.model_, est.history_) if keep else None,
    )
    est.model_, est.device_, est.classes_ = fitted.model, device, np.array([0, 1, 2])
    est.class_weight_, est.normalization_ = fitted.class_weight, norm
    est.history_, est.n_iter_ = fitted.history, len(fitted.history)
    est.border_width_ = fitted.border_width
    est.particle_diameter_ = training_diameter(targets, annotator)
    est.confidence_calibration_ = est.min_confidence_ = None
    return est


def _fine_tune(est, X, y, **options):
    """Fine-tune ``est`` (fitted) in place; ``options`` as for :func:`_finetune.fine_tune`.

    The estimator's checks (fitted, parameters, images) are made here, as for
    :func:`_fit`; the fine-tuning arguments are checked by ``_finetune``.
    """
    from ._finetune import fine_tune

    check_is_fitted(est, "model_")
    _check_parameters(est.get_params(deep=False), _PARAMETER_CONSTRAINTS)
    images, _, single = _scaled_images(X, "X", est.normalization_ is not None,
                                       est.intensity_range, *(est.normalization_ or (0.0, 1.0)))
    if single and y is not None:
        y = [y]
    return fine_tune(est, images, y, seed=_seed(est.random_state), **options)


#: The labelling with which ``inference_scale="auto"`` sizes the particles of a pass.
_PROBE_RULE = {"threshold": 0.5, "min_size": 4, "method": "components"}


def _sizing_label(est, proba):
    """Every particle of a pass by :data:`_PROBE_RULE`, with its confidence, for "auto".

    No confidence threshold: "auto" sizes with the particles it trusts
    (:data:`._autoscale.SIZING_CONFIDENCE`), and :func:`_label` drops those
    below the estimator's ``min_confidence`` afterwards.
    """
    from ._inference import label_confident_particles

    return label_confident_particles(
        est._decide(proba, _PROBE_RULE["threshold"]), proba,
        calibration=getattr(est, "confidence_calibration_", None),
        min_size=_PROBE_RULE["min_size"], method=_PROBE_RULE["method"], return_confidence=True)


def _label(est, proba, threshold=0.5, min_size=4, method="components", return_confidence=False,
           found=None):
    """Particles of one image's probabilities, without those below ``est``'s confidence.

    ``found``: the particles and confidences that ``inference_scale="auto"``
    already labelled in ``proba`` with :data:`_PROBE_RULE` (see
    :func:`_sizing_label`), or None; reused when the rule asked for is that one.
    """
    from ._inference import label_confident_particles

    calibration = getattr(est, "confidence_calibration_", None)
    minimum = getattr(est, "min_confidence_", None) if est.min_confidence == "auto" \
        else est.min_confidence
    if found is not None and dict(threshold=threshold, min_size=min_size,
                                  method=method) == _PROBE_RULE:
        labels, confidence = _drop_unsure(*found, minimum)
        return (labels, confidence) if return_confidence else labels
    return label_confident_particles(
        est._decide(proba, threshold), proba, min_confidence=minimum, calibration=calibration,
        min_size=min_size, method=method, return_confidence=return_confidence)


def _drop_unsure(labels, confidence, minimum):
    """``labels`` without the particles whose ``confidence`` is below ``minimum``, renumbered."""
    if minimum is None or minimum <= 0:
        return labels, confidence
    keep = np.r_[False, confidence >= minimum]
    renumber = np.zeros(len(keep), dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return renumber[labels], confidence[keep[1:]]


def _predict_proba(est, X, labels=None):
    """:meth:`ParticleSegmenter.predict_proba`; ``labels`` as for :func:`._inference.predict_proba`."""
    check_is_fitted(est, "model_")
    from . import _inference

    _check_parameters(est.get_params(deep=False), _PARAMETER_CONSTRAINTS)
    images, norm, single = _scaled_images(
        X, "X", est.normalization_ is not None, est.intensity_range,
        *(est.normalization_ or (0.0, 1.0)),
    )
    settings = _inference.InferenceSettings.from_params(
        est.get_params(deep=False), device=est.device_, normalization=norm,
        particle_diameter=getattr(est, "particle_diameter_", None),
        label=functools.partial(_sizing_label, est),
    )
    est.last_scales_ = []
    out = _inference.predict_proba(est.model_, images, settings, scales=est.last_scales_,
                                   labels=labels)
    return out[0] if single else out


def _predict_particles(est, X, return_confidence, threshold, min_size, method):
    """:meth:`ParticleSegmenter.predict_particles`, reusing the labels of "auto"'s last pass."""
    found = []
    proba = _predict_proba(est, X, labels=found)
    out = [_label(est, p, threshold, min_size, method, return_confidence, found=f)
           for p, f in zip(proba if isinstance(proba, list) else [proba], found)]
    if not isinstance(proba, list):
        return out[0]
    return ([f[0] for f in out], [f[1] for f in out]) if return_confidence else out


class ParticleSegmenter(BaseEstimator):
    """Segment particles in micrographs with DeepLabV3: background, particle, border.

    Learns from micrographs and their instance maps to predict, per pixel,
    0 background, 1 particle or 2 particle border; the border separates
    touching particles (see :func:`label_particles`, :meth:`predict_particles`).

    The defaults follow the published recipe (ResNet-50, weighted
    cross-entropy, Adam at 1e-3 with cosine annealing, 50 epochs of batches of
    8, its augmentations and normalisation). On a CPU, prefer
    ``backbone="mobilenet_v3_large"`` (about 8x cheaper per training step).

    Parameters
    ----------
    backbone : {"resnet50", "resnet101", "mobilenet_v3_large"}, default="resnet50"
        The DeepLabV3 backbone.
    weights : None, "imagenet" or str, default=None
        Starting weights: None trains from scratch; ``"imagenet"`` starts the
        backbone from torchvision's ImageNet weights (downloaded on first use);
        a path to a model file saved by :meth:`save` starts from its weights.
    max_epochs : int, default=50
        Number of passes over the training images.
    batch_size : int, default=8
        Crops per optimisation step; at least 2 (BatchNorm needs two samples).
    learning_rate : float, default=1e-3
        Adam's learning rate at the start; it decays to 0 along a cosine.
    class_weight : "balanced", None or array-like of 3 floats, default="balanced"
        Weights of background, particle and border in the cross-entropy.
        ``"balanced"`` weights each class by ``n_pixels / (3 * n_class_pixels)``
        over the (annotated) training maps.
    crop_size : int, default=256
        Side of the square training crops, in pixels. Images are never
        resized as a whole: crops keep small particles at their resolution.
    crops_per_image : int, default=1
        Random crops taken from every training image in each epoch.
    augment : "default", None or Augmenter, default="default"
        Augmentations of every training crop (never at prediction): ``"default"``
        is :func:`~particleseg.augmentation.default_augmenter`, the recipe's
        nine; an :class:`Augmenter` can be searched (``augment__elastic__alpha``).
    annotator : "default", None or BorderAnnotator, default="default"
        How instance maps ``y`` become class maps (after augmentation); None:
        ``y`` are class maps already (values 0, 1, 2).
    normalize : bool, default=True
        Scale images to [0, 1] (see ``intensity_range``) and standardise them
        with ``mean`` and ``std``; images from a :class:`Normalizer` are never
        normalised twice. With False, images are used as given.
    mean, std : float, default=0.4773, 0.1719
        Standardisation statistics (the recipe's).
    intensity_range : {"dtype", "image"}, default="dtype"
        How images are scaled to [0, 1] before standardisation (see
        :func:`particleseg.normalization.scale_intensity`).
    validation_fraction : float or None, default=None
        Fraction of the training images held out to measure validation loss
        and IoU after every epoch (recorded in ``history_``).
    warm_start : bool, default=False
        When True, :meth:`fit` continues training the current model.
    checkpoint : str or path-like, optional
        File where the full training state is written after every epoch; if it
        exists when :meth:`fit` starts, training resumes from it.
    tile_size : int or None, default=1024
        Larger images are predicted in the fewest tiles of at most this size
        (bounded memory) that overlap by at least ``tile_overlap`` pixels,
        spread evenly and blended. None: always whole.
    tile_overlap : int, default=128
    inference_precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        ``"auto"``: bfloat16 on CPUs with native support, float16 on a GPU,
        else float32 (``benchmarks/inference.py``); ``"float32"`` is bit-exact.
    inference_scale : float or "auto", default=1.0
        Factor by which images are resized before the network (probabilities
        come back at full size); above 1 resolves small particles at
        ``inference_scale**2`` the cost. ``"auto"`` (the bundled model's) picks
        one per image (``last_scales_``): a pass at half size measures the
        typical particle, then particles reach the network at ``particle_diameter_``.
    calibrate_outlines : bool, default=True
        Outlines from the probabilities with the loss's class weights divided
        out, so touching particles stay apart without looking larger (user
        guide, postprocessing); False: each pixel gets its most probable class.
    test_time_flips : bool, default=False
        Average the predictions over the 8 flips and rotations of each image:
        8 times the cost, slightly better segmentations (model card).
    min_confidence : "auto", None or float in [0, 1], default="auto"
        :meth:`predict_particles` drops particles less confident than this;
        ``"auto"`` uses the model's own ``min_confidence_`` (none if it has
        none), None keeps every particle. It does not change the scale that
        ``inference_scale="auto"`` chooses.
    device : str, default="auto"
        ``"auto"`` uses a CUDA GPU when present, else the CPU; or ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``...
    n_threads : int or None, default=None
        CPU threads for torch while fitting and predicting (None: torch's).
    random_state : int or None, default=None
        Seed for weights, crops and augmentations: the same seed on a CPU gives
        identical predictions.
    verbose : int, default=0
        1 shows a progress bar per epoch with the loss.

    Attributes
    ----------
    model_ : torch.nn.Module
        The trained DeepLabV3 network.
    classes_ : ndarray of shape (3,)
        ``[0, 1, 2]``: background, particle, border.
    class_weight_ : ndarray of shape (3,)
        The class weights used in the loss.
    normalization_ : tuple of (float, float) or None
        ``(mean, std)`` the network's input was standardised with.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``learning_rate``, ``seconds``
        (and ``valid_loss``, ``valid_iou`` with ``validation_fraction``).
    n_iter_ : int
        Number of epochs trained.
    device_ : torch.device
        Where the model lives.
    particle_diameter_ : float or None
        Median equivalent diameter of the training particles, in pixels.
    confidence_calibration_ : dict or None
        Raw-to-calibrated confidence map, measured on held-out images.
    min_confidence_ : float or None
        The model's own confidence threshold.
    last_scales_ : list of float
        The inference scale of each image of the last prediction.

    See Also
    --------
    label_particles : Instance labels from a predicted class map.
    Normalizer : Normalisation as a separate pipeline step.

    Examples
    --------
    >>> from particleseg import ParticleSegmenter, count_particles
    >>> from particleseg.datasets import make_particles
    >>> X, y = make_particles(n_images=4, shape=(64, 64), random_state=0)
    >>> seg = ParticleSegmenter(backbone="mobilenet_v3_large", max_epochs=1,
    ...                         crop_size=64, batch_size=4, random_state=0)
    >>> seg = seg.fit(X, y)
    >>> seg.predict(X[0]).shape
    (64, 64)
    >>> count = count_particles(seg.predict(X[0]))
    """

    def __init__(
        self,
        backbone="resnet50", weights=None,
        max_epochs=50, batch_size=8, learning_rate=1e-3, class_weight="balanced",
        crop_size=256, crops_per_image=1, augment="default", annotator="default",
        normalize=True, mean=RECIPE_MEAN, std=RECIPE_STD, intensity_range="dtype",
        validation_fraction=None, warm_start=False, checkpoint=None,
        tile_size=1024, tile_overlap=128, inference_precision="auto", inference_scale=1.0,
        calibrate_outlines=True, test_time_flips=False, min_confidence="auto",
        device="auto", n_threads=None, random_state=None, verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.crop_size = crop_size
        self.crops_per_image = crops_per_image
        self.augment = augment
        self.annotator = annotator
        self.normalize = normalize
        self.mean = mean
        self.std = std
        self.intensity_range = intensity_range
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.checkpoint = checkpoint
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.inference_precision = inference_precision
        self.inference_scale = inference_scale
        self.calibrate_outlines = calibrate_outlines
        self.test_time_flips = test_time_flips
        self.min_confidence = min_confidence
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------
    # Fitting

    def fit(self, X, y=None):
        """Train the network on micrographs and their label maps.

        Parameters
        ----------
        X : list of ndarray (H, W), or one image
            Micrographs; sizes may differ.
        y : list of ndarray (H, W)
            One instance map per image (0 background, k > 0 particle k, -1
            unlabelled: the loss skips it), or one class map per image when
            ``annotator=None``.

        Returns
        -------
        self : ParticleSegmenter
        """
        return _fit(self, X, y, continue_training=self.warm_start)

    def partial_fit(self, X, y=None):
        """Train the current model ``max_epochs`` more epochs (a warm restart).

        Parameters
        ----------
        X, y : see :meth:`fit`

        Returns
        -------
        self : ParticleSegmenter
        """
        return _fit(self, X, y, continue_training=True)

    def fine_tune(self, X, y, *, minutes=10.0, max_steps=None, validation=True, recipe=None,
                  names=None, callback=None):
        """Adapt the fitted model to a few annotated micrographs (user guide, fine-tuning).

        Parameters
        ----------
        X, y : list of ndarray (H, W)
            Micrographs and instance maps (-1: unlabelled, skipped by the loss).
        minutes, max_steps : float or None, int or None, default=10.0, None
            Budget in wall-clock minutes and/or optimisation steps.
        validation, recipe, names, callback
            Held-out choice of weights (default True), recipe changes, image names, a per-step call.

        Returns
        -------
        self : ParticleSegmenter
            With ``fine_tuning_`` (steps, seconds, held-out scores, ``message``).
        """
        return _fine_tune(self, X, y, minutes=minutes, max_steps=max_steps, validation=validation,
                         recipe=recipe, names=names, callback=callback)

    # ------------------------------------------------------------------
    # Prediction

    def predict_proba(self, X):
        """Class probabilities per pixel: background, particle, border.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            One micrograph or a list of them, any sizes.

        Returns
        -------
        proba : ndarray of float32, shape (3, H, W), or a list of them
            One per image, at the image's own full resolution.
        """
        return _predict_proba(self, X)

    def predict(self, X):
        """Class map per pixel: 0 background, 1 particle, 2 border.

        Particle cores are the pixels whose particle probability is at least
        0.5; how outlines are decided is set by ``calibrate_outlines``.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            Micrographs, as for :meth:`predict_proba`.

        Returns
        -------
        classes : ndarray of uint8, shape (H, W), or a list of them
        """
        proba = self.predict_proba(X)
        return [self._decide(p) for p in proba] if isinstance(proba, list) else self._decide(proba)

    def predict_particles(self, X, return_confidence=False, threshold=0.5, min_size=4,
                          method="components"):
        """Labelled particles of each image, and the network's confidence in each.

        :meth:`predict`, then :func:`~particleseg.label_particles`; particles
        below ``min_confidence`` are dropped.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            Micrographs, as for :meth:`predict_proba`.
        return_confidence : bool, default=False
            Also return each particle's calibrated confidence in [0, 1]: among
            particles of confidence near ``c``, about a fraction ``c`` are true.
        threshold, min_size, method
            As for :func:`~particleseg.label_particles`.

        Returns
        -------
        labels : ndarray of int32 (H, W), or a list of them
            0 background, 1..n particles.
        confidence : ndarray (n,), or a list of them
            With ``return_confidence``: ``confidence[k - 1]`` is particle k's.

        Examples
        --------
        >>> from particleseg import pretrained
        >>> from particleseg.datasets import load_sample
        >>> labels, confidence = pretrained("emps").predict_particles(
        ...     load_sample()[0], return_confidence=True)
        >>> len(confidence) == int(labels.max())
        True
        """
        return _predict_particles(self, X, return_confidence, threshold, min_size, method)

    def _decide(self, proba, threshold=0.5):
        """The class map of one image's probabilities (see :meth:`predict`)."""
        from ._inference import decide

        return decide(proba, self.class_weight_, self.calibrate_outlines, threshold)

    def score(self, X, y):
        """Mean per-image particle IoU (intersection over union of the foreground).

        Parameters
        ----------
        X, y : list of ndarray
            Micrographs and their instance (or class) maps; foreground is > 0.

        Returns
        -------
        score : float
            Mean IoU of predicted and true foreground; 1 is perfect.
        """
        return _mean_iou(self.predict(X), y)

    # ------------------------------------------------------------------
    # Persistence

    def save(self, path, half_precision=False):
        """Save the fitted model to one file that cannot run code when loaded.

        Weights in safetensors, with a JSON header of parameters, fitted
        attributes and versions, and a checksum (see the user guide).

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ending in ``.safetensors``.
        half_precision : bool, default=False
            Store the weights as float16 (half the size); they are turned back
            into float32 when loaded.

        Returns
        -------
        path : pathlib.Path
        """
        check_is_fitted(self, "model_")
        from ._persistence import write_model_file

        return write_model_file(self, path, half_precision=half_precision)

    @classmethod
    def load(cls, path, device="auto"):
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save`.
        device : str, default="auto"
            Where to put the model ("auto", "cpu", "cuda", ...). A model saved
            on a GPU loads on a CPU.

        Returns
        -------
        segmenter : ParticleSegmenter
            A fitted estimator.
        """
        from ._persistence import load_segmenter

        return load_segmenter(cls, path, device=device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags
