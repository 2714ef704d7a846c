"""Few-shot fine-tuning: adapt a fitted segmenter to a handful of annotated micrographs.

:meth:`ParticleSegmenter.fine_tune` delegates to ``segmenter._fine_tune``
(the estimator's checks, as for ``fit``), then to :func:`fine_tune` here,
which checks the fine-tuning arguments and runs :func:`train`. The recipe
(:data:`DEFAULT_RECIPE`; its effect is measured on micrographs the starting
model never saw by ``benchmarks/finetune.py``):

- training runs for a time budget, not a number of epochs; the learning rate
  warms up linearly, then decays along a cosine to the end of the budget;
- each step draws a batch of random crops from the images (many crops per
  image), augmented like the bundled model's training, and rescaled around
  the scale each image will be predicted at (``inference_scale``; with
  "auto", the scale that brings its labelled particles to
  ``particle_diameter_``), so that the network learns particles at the size
  it will see them at prediction;
- BatchNorm statistics stay those of the starting model (a few images give
  poor statistics); the backbone can be frozen for the first part of the
  budget;
- held-out data scores the model every so often with the model's own
  decision rule (F1 of matched particles at IoU 0.5): the last quarter of
  every image (its labels are then hidden from training) when there are
  fewer than 8 images, else one whole image (``held_out`` chooses either
  whatever the number of images). On 5 sem-silica images, the strips gave
  the lower count error on each of five draws of images. The best weights
  are kept; if no fine-tuned state scores better than the starting model,
  the starting weights are kept, and the reason is reported.
- Ctrl-C (``KeyboardInterrupt``) stops training; the best weights so far are
  kept.

Nothing in the model's inference settings changes: inference scale (and
``particle_diameter_``, which "auto" aims at), border width, normalisation,
class weights (and so the decision rule), tiling and precision carry over
from the starting model.

Particle confidence carries over too, by default. The starting model's
calibration (``confidence_calibration_``) was measured for its weights on
its own held-out images; a few annotated images are too few to measure a new
one (the held-out image also chooses the weights), and fine-tuning moves the
weights only a little from the start. Held-out checks score every state with
the starting model's calibration and threshold (``min_confidence_``), so
the weights are chosen for the rule they will be used with; on test images,
keeping it gave higher F1 than dropping it
(``benchmarks/finetune_confidence.py``). The threshold alone is then chosen
anew on the held-out data (``tune_confidence``, :func:`tune_confidence`):
on a new material, particles the starting model was unsure of become ones
the fine-tuned model finds with a middling confidence, and the starting
threshold drops too many of them. Without held-out data
(``validation=False``), with fewer than :data:`MIN_TUNING_PARTICLES`
labelled particles held out, or when the starting weights are kept, the
starting threshold stays. The recipe's ``keep_confidence=False`` drops
calibration and threshold instead: ``predict_particles`` then reports the
raw score as confidence and drops nothing unless ``min_confidence`` is set
to a number; the message says so.

Example::

    >>> from particleseg import ParticleSegmenter
    >>> from particleseg.datasets import make_particles
    >>> X, y = make_particles(n_images=2, shape=(64, 64), random_state=0)
    >>> seg = ParticleSegmenter(backbone="mobilenet_v3_large", max_epochs=1, crop_size=64,
    ...                         batch_size=2, random_state=0).fit(X, y)
    >>> seg = seg.fine_tune(X, y, minutes=None, max_steps=2,
    ...                     recipe={"crop_size": 64, "batch_size": 2})
    >>> seg.fine_tuning_["steps"]
    2
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from dataclasses import dataclass, field

import numpy as np

#: The fine-tuning recipe (see the module docstring and the user guide).
DEFAULT_RECIPE = {
    "learning_rate": 3e-4,
    "warmup_fraction": 0.1,
    "batch_size": 8,
    "crop_size": 256,
    "freeze_batchnorm": True,
    "frozen_backbone_fraction": 0.0,
    "scale_spread": 1.5,
    "validation_rounds": 8,
    "patience": 6,
    "keep_confidence": True,
    "held_out": "auto",
    "tune_confidence": True,
}

#: Fraction of each image held out (as a strip) when there are fewer than
#: ``MIN_IMAGES_FOR_HOLDOUT`` images.
STRIP_FRACTION = 0.25
#: From this many images on, "auto" holds out one whole image: an eighth of
#: the data or less, where the strips of every image would cost two images'
#: worth of predictions at each held-out check.
MIN_IMAGES_FOR_HOLDOUT = 8
#: What the ``held_out`` setting accepts: "auto" holds out one whole image when
#: there are ``MIN_IMAGES_FOR_HOLDOUT`` images or more, else a strip of every one.
HELD_OUT = ("auto", "image", "strip")
#: The thresholds ``tune_confidence`` tries for ``min_confidence_``.
CONFIDENCE_GRID = tuple(round(0.05 * k, 2) for k in range(15))
#: ``tune_confidence`` takes, of the thresholds whose held-out F1@0.5 is within
#: this of the best, the one with the smallest count error.
F1_TOLERANCE = 0.01
#: Fewest labelled particles held out for ``tune_confidence`` to choose a
#: threshold (on fewer, a count error of one particle is several percent).
MIN_TUNING_PARTICLES = 40
#: Largest side of the held-out region scored during training: a centred
#: window of a larger held-out image keeps each validation cheap.
VALIDATION_SIDE = 1024


@dataclass
class FineTuneResult:
    """What happened during fine-tuning (stored as ``fine_tuning_``)."""

    steps: int = 0
    seconds: float = 0.0
    stopped: str = "budget"
    validation: dict | None = None
    kept_starting_weights: bool = False
    message: str = ""
    history: list = field(default_factory=list)

    def as_dict(self):
        return {
            "steps": self.steps, "seconds": round(self.seconds, 1), "stopped": self.stopped,
            "validation": self.validation, "kept_starting_weights": self.kept_starting_weights,
            "message": self.message, "history": self.history,
        }


# ----------------------------------------------------------------------------
# Checks


def check_recipe(recipe):
    """The full recipe: the defaults updated by ``recipe``; unknown keys refused."""
    recipe = dict(recipe or {})
    unknown = sorted(set(recipe) - set(DEFAULT_RECIPE))
    if unknown:
        raise ValueError(
            f"unknown fine-tuning setting(s) {unknown}; the settings are "
            f"{sorted(DEFAULT_RECIPE)}."
        )
    out = {**DEFAULT_RECIPE, **recipe}
    for name in ("learning_rate", "scale_spread"):
        if not isinstance(out[name], (int, float)) or isinstance(out[name], bool) or out[name] <= 0:
            raise ValueError(f"{name} must be a positive number; got {out[name]!r}.")
    if out["scale_spread"] < 1:
        raise ValueError(f"scale_spread must be at least 1; got {out['scale_spread']!r}.")
    for name in ("warmup_fraction", "frozen_backbone_fraction"):
        if not isinstance(out[name], (int, float)) or not 0 <= out[name] < 1:
            raise ValueError(f"{name} must be a number in [0, 1); got {out[name]!r}.")
    for name, low in (("batch_size", 2), ("crop_size", 32), ("validation_rounds", 1),
                      ("patience", 1)):
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    if out["held_out"] not in HELD_OUT:
        raise ValueError(f"held_out must be one of {list(HELD_OUT)}; got {out['held_out']!r}.")
    for name in ("keep_confidence", "tune_confidence"):
        if not isinstance(out[name], bool):
            raise ValueError(f"{name} must be True or False; got {out[name]!r}.")
    return out


def check_starting_model(seg):
    """Refuse a starting model that fine-tuning cannot continue."""
    from ._persistence import FORMAT_VERSION

    source = getattr(seg, "model_file_", None) or {}
    version = source.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"the starting model {source.get('path', '')} is in model format {version}; "
            f"fine-tuning needs format {FORMAT_VERSION}, the one this particleseg writes. "
            "Start from a bundled model (such as 'emps') or a model saved by this version."
        )
    if getattr(seg, "border_width_", None) is None:
        raise ValueError(
            "the starting model was trained on class maps (annotator=None); fine-tuning "
            "needs a model trained on instance maps with a border width, such as 'emps'."
        )


def fine_tune(seg, images, y, *, seed, minutes=10.0, max_steps=None, validation=True,
              recipe=None, names=None, callback=None, clock=None):
    """Check the fine-tuning arguments, then :func:`train` ``seg`` in place.

    :meth:`ParticleSegmenter.fine_tune` reaches this through
    ``segmenter._fine_tune``, which checks the estimator's side first (fitted,
    parameters, images scaled to [0, 1], the seed).

    Parameters
    ----------
    seg : ParticleSegmenter
        A fitted segmenter (the starting model), fine-tuned in place.
    images : list of ndarray (H, W)
        A few micrographs, checked and scaled to [0, 1] (float32).
    y : list of ndarray (H, W)
        One instance map per image: 0 background, k > 0 particle k, -1
        unlabelled (the loss skips these pixels, so only some particles need
        outlining; see :func:`particleseg.labels.mark_unlabelled`). Every map
        must label at least one particle.
    seed : int
        Seed of the held-out choice, the crops and the augmentations.
    minutes : float or None, default=10.0
        Time budget (including held-out checks). None: only ``max_steps``.
    max_steps : int or None, default=None
        Largest number of optimisation steps.
    validation : bool, default=True
        Hold out the last quarter of every image (fewer than 8 images) or
        one image, score it every so often, keep the best weights. False
        trains on everything for the whole budget and keeps the last weights.
    recipe : dict, optional
        Changes to :data:`DEFAULT_RECIPE`.
    names : list of str, optional
        Names of the images, recorded in the model file.
    callback : callable, optional
        Called after every step with a dict (``step``, ``seconds``, ``loss``,
        ``learning_rate``, and held-out scores when computed). Raising
        ``KeyboardInterrupt`` from it stops like Ctrl-C.
    clock : callable, optional
        Measures the budget in seconds (default ``time.monotonic``).

    Returns
    -------
    seg : ParticleSegmenter
        With ``fine_tuning_`` (see :class:`FineTuneResult`) and ``model_info_``
        recording the parent model, the images and the recipe.
    """
    if minutes is None and max_steps is None:
        raise ValueError("give a time budget (minutes) or max_steps; both are None.")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, numbers.Real)
                                or not minutes > 0):
        raise ValueError(f"minutes must be a positive number or None; got {minutes!r}.")
    if max_steps is not None and (isinstance(max_steps, bool)
                                  or not isinstance(max_steps, numbers.Integral) or max_steps < 1):
        raise ValueError(f"max_steps must be an integer >= 1 or None; got {max_steps!r}.")
    recipe = check_recipe(recipe)
    check_starting_model(seg)
    names = [f"image {i}" for i in range(len(images))] if names is None else [str(n) for n in names]
    if len(names) != len(images):
        raise ValueError(f"names must have one name per image: got {len(names)} names "
                         f"and {len(images)} images.")
    targets = check_training_maps(images, y, names)
    train(seg, images, targets, names, minutes=minutes, max_steps=max_steps, recipe=recipe,
          validation=validation, random_state=seed, callback=callback, verbose=seg.verbose,
          clock=clock)
    return seg


def check_training_maps(images, y, names):
    """Instance maps (-1 unlabelled allowed), one per image, each with a particle."""
    from ._validation import check_instance_map, check_same_shape

    if y is None:
        raise ValueError(
            "fine-tuning needs labels: pass one instance map per image (0 background, "
            "k > 0 particle k, -1 unlabelled)."
        )
    if isinstance(y, np.ndarray) and y.ndim == 2:
        y = [y]
    y = list(y)
    if len(y) != len(images):
        raise ValueError(
            f"X and y must have the same length: got {len(images)} images and {len(y)} "
            "label maps. Every image needs its label map."
        )
    maps = []
    for i, (image, labels) in enumerate(zip(images, y)):
        what = f"y[{i}] ({names[i]})" if names is not None else f"y[{i}]"
        if labels is None:
            raise ValueError(f"{what} is missing: every image needs its label map.")
        labels = check_instance_map(labels, what, allow_unlabelled=True)
        check_same_shape(image, labels, f"X[{i}]", what)
        if not (labels > 0).any():
            raise ValueError(
                f"{what} labels no particle (every pixel is background or unlabelled). "
                "Outline at least one particle in every image, or leave the image out."
            )
        maps.append(labels.astype(np.int32, copy=False))
    return maps


# ----------------------------------------------------------------------------
# Data: validation split, augmentation


@dataclass
class _Validation:
    """Held-out data: whole images or strips; their [0, 1] images and truths."""

    method: str
    names: list
    images: list
    truths: list


def split_validation(images, targets, names, rng, validation, held_out="auto"):
    """``(train_images, train_targets, _Validation or None)``.

    ``held_out="image"`` holds out one whole image (chosen by ``rng``);
    ``"strip"`` the last quarter of every image along its longer side, whose
    labels are hidden from training (set to -1); ``"auto"`` a whole image when
    there are 8 images or more, else the strips.
    """
    if not validation:
        return images, targets, None
    n = len(images)
    if held_out == "image" and n < 2:
        raise ValueError("held_out='image' needs at least 2 images; use 'strip' or 'auto'.")
    if held_out == "image" or (held_out == "auto" and n >= MIN_IMAGES_FOR_HOLDOUT):
        held = int(rng.integers(n))
        keep = [i for i in range(n) if i != held]
        window = _centre(images[held].shape)
        return ([images[i] for i in keep], [targets[i] for i in keep],
                _Validation("image", [names[held]], [images[held][window]],
                            [targets[held][window]]))
    train_targets, strip_images, strip_truths = [], [], []
    for image, target in zip(images, targets):
        region = _strip(image.shape)
        hidden = target.copy()
        hidden[region] = -1
        image, target = image[region], target[region]
        window = _centre(image.shape)
        strip_images.append(image[window])
        strip_truths.append(target[window])
        train_targets.append(hidden)
    return images, train_targets, _Validation(
        f"strip ({STRIP_FRACTION:.0%} of every image)", list(names), strip_images, strip_truths)


def _centre(shape, side=VALIDATION_SIDE):
    """A centred window of at most ``side`` x ``side`` pixels."""
    return tuple(slice((n - min(n, side)) // 2, (n - min(n, side)) // 2 + min(n, side))
                 for n in shape)


def _strip(shape):
    """The last ``STRIP_FRACTION`` of an image along its longer side."""
    h, w = shape
    if h >= w:
        return (slice(h - max(1, int(round(h * STRIP_FRACTION))), h), slice(0, w))
    return (slice(0, h), slice(w - max(1, int(round(w * STRIP_FRACTION))), w))


def training_scale(seg, target):
    """The scale ``target``'s image will be predicted at.

    A numeric ``inference_scale`` is that number; "auto" is the scale
    :mod:`particleseg._autoscale` chooses for particles of the size labelled in
    ``target`` (their true size, where prediction estimates it).
    """
    from ._autoscale import choose_scale, typical_diameter

    scale = seg.inference_scale
    if scale != "auto":
        return float(scale)
    diameter = typical_diameter(np.where(target > 0, target, 0))
    return choose_scale(diameter, seg.particle_diameter_)[0]


def make_augmenter(seg, crop_size, spread, scale):
    """The bundled model's scale-robust augmentation, centred on ``scale``.

    Every training window is rescaled by a factor drawn log-uniformly in
    ``[scale / spread, scale * spread]``, then augmented like the bundled
    model's training (flips, rotations, elastic, intensity, noise; a few
    pasted figure annotations). Returns the augmenter and its scale range.
    """
    from ._figures import ScaleRobustAugmenter
    from .augmentation import Augmenter, default_augmenter

    scale_range = (float(scale) / spread, float(scale) * spread)
    steps = [(name, "passthrough" if name == "resize" else step)
             for name, step in default_augmenter().steps]
    return ScaleRobustAugmenter(Augmenter(steps), crop_size=crop_size, scale_range=scale_range,
                                p_rescale=1.0, p_background=0.0, p_annotations=0.1), scale_range


# ----------------------------------------------------------------------------
# Scores


def _view(seg, model, images, keep_confidence=True):
    """``seg`` with ``model`` in it, and ``images`` ([0, 1] float32) ready for it."""
    from .normalization import NormalizedImage

    view = copy.copy(seg)
    view.model_ = model
    if not keep_confidence:
        view.confidence_calibration_ = view.min_confidence_ = None
    if seg.normalization_ is not None:
        mean, std = seg.normalization_
        batch = [NormalizedImage((im - np.float32(mean)) / np.float32(std), mean, std)
                 for im in images]
    else:
        batch = list(images)
    model.eval()
    return view, batch


def _particles(seg, model, images, keep_confidence=True):
    """Instance maps of ``images`` ([0, 1] float32) predicted with ``model``.

    The segmenter's own prediction path and decision rule are used, with its
    model replaced by ``model``, and its confidence calibration and threshold
    unless ``keep_confidence`` is False (module docstring).
    """
    view, batch = _view(seg, model, images, keep_confidence)
    return view.predict_particles(batch)


def tune_confidence(seg, validation):
    """The ``min_confidence`` of :data:`CONFIDENCE_GRID` that scores best on held-out data.

    Best: of the thresholds whose mean F1@0.5 is within :data:`F1_TOLERANCE`
    of the highest, the one with the smallest mean count error, then the
    lowest. (On a held-out image, F1 hardly moves over a range of thresholds
    while the count moves a lot; the count is what users read first.) The
    held-out images are predicted once; only the threshold changes. Returns
    ``(threshold, {"f1": ..., "count_error": ...})``.
    """
    from ._inference import label_confident_particles

    view, batch = _view(seg, seg.model_, validation.images)
    calibration = getattr(seg, "confidence_calibration_", None)
    # Every particle and its confidence, once per image; a threshold only drops some.
    found = [label_confident_particles(view._decide(proba), proba, calibration=calibration,
                                       return_confidence=True)
             for proba in (view.predict_proba(image) for image in batch)]
    scores = []
    for threshold in CONFIDENCE_GRID:
        pairs = [score_particles(truth, np.where(
                     np.r_[False, confidence >= threshold][labels], labels, 0))
                 for truth, (labels, confidence) in zip(validation.truths, found)]
        scores.append((threshold, {"f1": float(np.mean([f for f, _ in pairs])),
                                   "count_error": float(np.mean([c for _, c in pairs]))}))
    threshold = choose_threshold([(t, score["f1"], score["count_error"]) for t, score in scores])
    return threshold, dict(scores)[threshold]


def choose_threshold(rows):
    """The threshold of ``rows`` ``(threshold, f1, count_error)`` that the count rule picks.

    Of the thresholds whose F1 is within :data:`F1_TOLERANCE` of the highest,
    the one with the smallest count error, then the lowest.
    """
    top = max(f1 for _, f1, _ in rows)
    return min((count, t) for t, f1, count in rows if f1 >= top - F1_TOLERANCE)[1]


def score_particles(truth, labels):
    """``(f1, count_error)`` of predicted ``labels`` against ``truth`` (-1 unlabelled).

    Predicted particles lying mostly on unlabelled pixels are left out, so a
    sparse annotation does not count its unlabelled particles as false.
    """
    return _scores(truth, labels)[:2]


def _scores(truth, labels):
    """``(f1, count_error, n_labelled, n_found)``, as :func:`score_particles` counts them."""
    from .metrics import count_error, match_particles

    truth = np.asarray(truth)
    labels = _drop_unlabelled(truth, labels)
    truth = np.where(truth < 0, 0, truth)
    match = match_particles(truth, labels, iou_threshold=0.5)
    n_true, n_pred = _n_particles(truth), _n_particles(labels)
    error = float(count_error(n_true, n_pred)) if n_true else float(n_pred > 0)
    return float(match.f1), error, n_true, n_pred


def _drop_unlabelled(truth, labels):
    """``labels`` without the particles lying mostly on unlabelled (-1) pixels of ``truth``."""
    unlabelled = np.asarray(truth) < 0
    if not unlabelled.any():
        return labels
    n = int(labels.max()) + 1
    total = np.bincount(labels.ravel(), minlength=n)
    inside = np.bincount(labels[unlabelled].ravel(), minlength=n)
    drop = inside * 2 > total
    drop[0] = False
    return np.where(drop[labels], 0, labels)


def _n_particles(labels):
    """How many particles an instance map holds (labels > 0; -1 is unlabelled)."""
    labels = np.asarray(labels)
    return len(np.unique(labels[labels > 0]))


def validation_score(seg, model, validation, keep_confidence=True):
    """Mean F1@0.5 and mean count error on the held-out data.

    Also the labelled and found particles, summed over the held-out images
    (``n_labelled``, ``n_found``; found particles lying mostly on unlabelled
    pixels are left out). The model is left in evaluation mode.
    """
    predicted = _particles(seg, model, validation.images, keep_confidence)
    f1, error, n_labelled, n_found = zip(*(_scores(t, p)
                                           for t, p in zip(validation.truths, predicted)))
    return {"f1": float(np.mean(f1)), "count_error": float(np.mean(error)),
            "n_labelled": sum(n_labelled), "n_found": sum(n_found)}


def _better(new, old):
    """F1 first; at equal F1, the smaller count error."""
    if new["f1"] != old["f1"]:
        return new["f1"] > old["f1"]
    return new["count_error"] < old["count_error"]


# ----------------------------------------------------------------------------
# The loop


class _Budget:
    """Progress through the budget: time (``seconds``) and/or ``max_steps``."""

    def __init__(self, seconds, max_steps, clock):
        self.seconds, self.max_steps, self.clock = seconds, max_steps, clock
        self.start = clock()

    def elapsed(self):
        return self.clock() - self.start

    def fraction(self, step):
        parts = []
        if self.seconds is not None:
            parts.append(self.elapsed() / self.seconds)
        if self.max_steps is not None:
            parts.append(step / self.max_steps)
        return min(max(parts), 1.0)

    def done(self, step, reserve=0.0):
        """True when the next step would overrun (``reserve``: seconds kept for the end)."""
        if self.max_steps is not None and step >= self.max_steps:
            return True
        return self.seconds is not None and self.elapsed() + reserve >= self.seconds


def learning_rate(base, fraction, warmup):
    """Linear warm-up over ``warmup`` of the budget, then a cosine down to 0."""
    if warmup > 0 and fraction < warmup:
        return base * (fraction + 1e-3) / warmup
    rest = (fraction - warmup) / max(1 - warmup, 1e-9)
    return base * 0.5 * (1 + math.cos(math.pi * min(rest, 1.0)))


def _training_mode(model, freeze_batchnorm):
    """Training mode; BatchNorm layers keep their running statistics if asked."""
    import torch.nn as nn

    model.train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _set_backbone_trainable(model, trainable):
    for p in model.backbone.parameters():
        p.requires_grad_(trainable)


def _train_step(model, optimizer, batch, weight, device):
    """One optimisation step on a list of (image, class map) crops; the loss."""
    from ._training import train_step

    return train_step(model, optimizer, batch, weight, device)


def _sampler(n_images, rng):
    """Image indices in shuffled rounds, so every image gives as many crops."""
    while True:
        yield from rng.permutation(n_images)


def _progress_bar(budget, quiet):
    from tqdm.auto import tqdm

    if budget.seconds is not None:
        total, unit = int(math.ceil(budget.seconds)), "s"
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left{postfix}"
    else:
        total, unit = budget.max_steps, "step"
        fmt = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps, {remaining} left"
               "{postfix}")
    return tqdm(total=total, unit=unit, desc="fine-tuning", bar_format=fmt, leave=False,
                disable=quiet, dynamic_ncols=True)


def train(seg, images, targets, names, *, minutes, max_steps=None, recipe=None,
          validation=True, random_state=None, callback=None, verbose=0, clock=None):
    """Fine-tune ``seg`` (fitted) on [0, 1] images and instance maps, in place.

    Parameters are those of :func:`fine_tune`, checked; ``images`` are
    already scaled to [0, 1] (float32), ``targets`` checked instance maps,
    ``names`` one string per image.

    Returns
    -------
    result : FineTuneResult
    """
    import torch

    from . import _training as T
    from ._models import ThreadSetting

    recipe = check_recipe(recipe)
    clock = clock or time.monotonic
    seed = int(np.random.SeedSequence().entropy % (2**31)) if random_state is None else int(
        random_state)
    rng = np.random.default_rng(seed)
    device = seg.device_
    train_images, train_targets, held = split_validation(images, targets, names, rng, validation,
                                                         recipe["held_out"])
    mean, std = seg.normalization_ if seg.normalization_ is not None else (0.0, 1.0)
    scales = [training_scale(seg, t) for t in train_targets]
    augments = [T.Standardised(make_augmenter(seg, recipe["crop_size"], recipe["scale_spread"],
                                              s)[0], mean, std) for s in scales]
    weight = torch.as_tensor(np.asarray(seg.class_weight_, dtype=np.float32), device=device)
    result = FineTuneResult()
    budget = _Budget(None if minutes is None else 60.0 * minutes, max_steps, clock)
    rounds = recipe["validation_rounds"]

    with ThreadSetting(seg.n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = copy.deepcopy(seg.model_).to(device)
        frozen = recipe["frozen_backbone_fraction"] > 0
        _set_backbone_trainable(model, not frozen)
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["learning_rate"])

        best_state, best, before, reserve = None, None, None, 0.0
        bad_rounds, next_round, losses = 0, 1, []
        bar = _progress_bar(budget, quiet=not verbose)
        images_in_turn = _sampler(len(train_images), rng)
        step = 0
        try:
            if held is not None:
                t0 = clock()
                before = best = validation_score(seg, model, held)
                # A validation's cost kept free at the end (two with tune_confidence).
                reserve = (clock() - t0) * (2 if recipe["tune_confidence"] else 1)
                result.history.append({"step": 0, "seconds": round(budget.elapsed(), 1),
                                       **{f"valid_{k}": v for k, v in before.items()}})
            _training_mode(model, recipe["freeze_batchnorm"])
            while not budget.done(step, reserve):
                fraction = budget.fraction(step)
                if frozen and fraction >= recipe["frozen_backbone_fraction"]:
                    _set_backbone_trainable(model, True)
                    frozen = False
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(recipe["learning_rate"], fraction,
                                                recipe["warmup_fraction"])
                batch = [
                    T.make_sample(train_images[i], train_targets[i],
                                  crop_size=recipe["crop_size"], augmenter=augments[i],
                                  border_width=seg.border_width_, rng=rng)
                    for i in (next(images_in_turn) for _ in range(recipe["batch_size"]))
                ]
                loss = _train_step(model, optimizer, batch, weight, device)
                step += 1
                if loss is not None:
                    losses.append(loss)
                progress = int(budget.elapsed()) if budget.seconds is not None else step
                bar.n = min(bar.total, progress)
                bar.set_postfix_str(_postfix(losses, best, before), refresh=False)
                bar.refresh()
                record = {"step": step, "seconds": round(budget.elapsed(), 1), "loss": loss,
                          "learning_rate": optimizer.param_groups[0]["lr"]}
                if held is not None and budget.fraction(step) >= next_round / rounds:
                    next_round = int(budget.fraction(step) * rounds) + 1
                    score = validation_score(seg, model, held, recipe["keep_confidence"])
                    _training_mode(model, recipe["freeze_batchnorm"])
                    record.update({f"valid_{k}": v for k, v in score.items()})
                    if _better(score, best):
                        best, best_state, bad_rounds = score, _copy_state(model), 0
                    else:
                        bad_rounds += 1
                    result.history.append(record)
                    if bad_rounds >= recipe["patience"]:
                        result.stopped = "early stopping"
                        break
                if callback is not None:
                    callback(dict(record))
            else:
                result.stopped = "budget"
            if held is not None and result.stopped == "budget" and step and (
                    not result.history or result.history[-1]["step"] != step):
                score = validation_score(seg, model, held, recipe["keep_confidence"])
                result.history.append({"step": step, "seconds": round(budget.elapsed(), 1),
                                       **{f"valid_{k}": v for k, v in score.items()}})
                if _better(score, best):
                    best, best_state = score, _copy_state(model)
        except KeyboardInterrupt:
            result.stopped = "interrupted"
        finally:
            bar.close()
        result.steps = step
        result.seconds = budget.elapsed()
        if held is None:
            final_state = _copy_state(model) if step else None
        else:
            final_state = best_state
        _finish(seg, model, final_state, result, held, before, best, recipe, scales, seed,
                names, losses)
        if (recipe["tune_confidence"] and recipe["keep_confidence"] and held is not None
                and final_state is not None):
            _retune_confidence(seg, held, result)
    return result


def _retune_confidence(seg, held, result):
    """Choose ``min_confidence_`` anew on the held-out data; record and report it.

    Not with fewer than :data:`MIN_TUNING_PARTICLES` labelled particles held
    out: the starting threshold is kept, and the message says so.
    """
    starting = getattr(seg, "min_confidence_", None)
    n_held = sum(_n_particles(truth) for truth in held.truths)
    if n_held < MIN_TUNING_PARTICLES:
        result.message += (f" min_confidence kept at {starting}: the held-out {held.method} "
                           f"holds {n_held} labelled particles, too few to choose it by "
                           f"(at least {MIN_TUNING_PARTICLES}).")
        seg.fine_tuning_["message"] = result.message
        return
    threshold, score = tune_confidence(seg, held)
    seg.min_confidence_ = threshold
    seg.model_info_["fine_tuned"]["min_confidence"] = {
        "starting": starting, "chosen": threshold, "held_out": score,
        "rule": f"smallest held-out count error within {F1_TOLERANCE} of the highest "
                "F1@0.5 (tune_confidence)"}
    result.message += (f" min_confidence chosen on the held-out {held.method}: {starting} -> "
                       f"{threshold} (F1@0.5 {score['f1']:.3f}, count error "
                       f"{score['count_error']:.3f}).")
    seg.fine_tuning_["message"] = result.message


def _copy_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _postfix(losses, best, before):
    parts = []
    if losses:
        parts.append(f"loss {np.mean(losses[-20:]):.3f}")
    if best is not None:
        parts.append(f"held-out F1 {before['f1']:.3f} -> best {best['f1']:.3f}")
    return ", ".join(parts)


#: A held-out part where the starting model finds more than this many times
#: the labelled particles looks partly labelled (see ``_partial_labels_hint``).
PARTIAL_LABELS_RATIO = 3


def _partial_labels_hint(held, before):
    """A hint when the starting model finds far more particles than are labelled.

    Particles that are there but not labelled count as false, so no
    fine-tuned state can score better on such held-out data: the usual cause
    is an image whose labels outline only some of its particles, with the
    rest left as background (0) instead of unlabelled (-1).
    """
    n_labelled, n_found = before.get("n_labelled"), before.get("n_found")
    if not n_labelled or n_found is None or n_found <= PARTIAL_LABELS_RATIO * n_labelled:
        return ""
    return (f" On the held-out {held.method} ({', '.join(held.names)}), the starting model "
            f"finds {n_found} particles where {n_labelled} are labelled: if its labels outline "
            "only some of the particles, mark the rest of the image unlabelled (-1) so that "
            "they are neither trained on nor scored as false, or label them all.")


def _finish(seg, model, state, result, held, before, best, recipe, scales, seed, names,
            losses):
    """Put the chosen weights into ``seg`` and record what was done."""
    if held is not None:
        result.validation = {
            "method": held.method, "images": held.names,
            "before": before, "after": best,
        }
    confidence = ""
    if state is None:
        result.kept_starting_weights = True
        checked = [r for r in result.history if r["step"] > 0 and "valid_f1" in r]
        if result.steps == 0:
            result.message = ("Stopped before the first training step; the starting weights "
                              "are kept.")
        elif not checked:
            result.message = (f"Stopped after {result.steps} steps, before the first held-out "
                              "check; the starting weights are kept.")
        else:
            result.message = (
                f"Fine-tuning did not beat the starting model on the held-out "
                f"{held.method} ({', '.join(held.names)}): F1@0.5 {before['f1']:.3f} before, "
                f"no fine-tuned state scored higher in {result.steps} steps "
                f"({len(checked)} checks). The starting "
                "weights are kept. More (or more varied) annotated images, or a longer "
                "budget, may help; check that the labels outline every particle in the "
                "labelled area." + _partial_labels_hint(held, before)
            )
    else:
        model.load_state_dict(state)
        model.eval()
        seg.model_ = model
        confidence = "" if recipe["keep_confidence"] else _drop_confidence(seg)
        if held is not None:
            result.message = (
                f"Held-out {held.method}: F1@0.5 {before['f1']:.3f} before, "
                f"{best['f1']:.3f} after fine-tuning (count error {before['count_error']:.3f} "
                f"-> {best['count_error']:.3f})."
            )
        else:
            result.message = ("Fine-tuned without held-out data (validation off): the weights "
                              "after the last step are kept, unchecked.")
        if confidence:
            result.message += " " + confidence
    parent = _parent_record(seg)
    parent_info = dict(getattr(seg, "model_info_", {}) or {})
    parent["model_info"] = parent_info
    tuned = {
        "parent": parent,
        "images": list(names),
        "recipe": {**recipe, "training_scales": [round(s, 4) for s in scales], "seed": seed,
                   "steps": result.steps, "seconds": round(result.seconds, 1),
                   "stopped": result.stopped},
        "validation": result.validation,
        "kept_starting_weights": result.kept_starting_weights,
        "confidence_calibration": ("dropped: measured for the starting weights"
                                   if confidence else "kept"),
    }
    parent_data = parent_info.get("training_data")
    seg.model_info_ = {
        "training_data": (f"{parent_data}; " if parent_data else "")
        + f"fine-tuned on {len(names)} image{'s' * (len(names) != 1)}",
        "fine_tuned": tuned,
    }
    if result.validation is not None and not result.kept_starting_weights:
        seg.model_info_["validation"] = {"held_out_f1": round(best["f1"], 4),
                                         "held_out_count_error": round(best["count_error"], 4)}
    seg.fine_tuning_ = result.as_dict()
    seg.fine_tuning_["mean_loss"] = float(np.mean(losses)) if losses else None


def _drop_confidence(seg):
    """Drop the starting weights' confidence calibration and threshold; say so (or "")."""
    had = (getattr(seg, "confidence_calibration_", None) is not None
           or getattr(seg, "min_confidence_", None) is not None)
    seg.confidence_calibration_ = seg.min_confidence_ = None
    if not had:
        return ""
    return ("The starting model's confidence calibration and threshold were measured for its "
            "own weights and are dropped (keep_confidence=False): confidence is now the raw "
            "score and no particle is dropped for it unless you set min_confidence to a number.")


def _parent_record(seg):
    """The starting model: its file name, checksum and format, when loaded from a file."""
    import json
    from pathlib import Path

    from ._persistence import FORMAT_VERSION

    source = dict(getattr(seg, "model_file_", None) or {})
    record = {"format_version": source.get("format_version", FORMAT_VERSION)}
    path = source.get("path")
    if path is None:
        record["file"] = None
        return record
    path = Path(path)
    record["file"] = path.name
    if path.parent.name == "models" and path.parent.parent.name == "particleseg":
        record["bundled"] = path.stem
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        record["sha256"] = metadata.get("sha256")
        config = json.loads(metadata.get("particleseg", "{}"))
        record["particleseg_version"] = config.get("particleseg_version")
    except Exception:  # noqa: BLE001 - the file may have moved since it was loaded
        pass
    return record
