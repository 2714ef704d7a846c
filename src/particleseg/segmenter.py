"""ParticleSegmenter: a scikit-learn estimator around torchvision's DeepLabV3."""

from __future__ import annotations

import numbers
import os
import time

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
from .annotation import BorderAnnotator
from .normalization import RECIPE_MEAN, RECIPE_STD, NormalizedImage, scale_intensity

__all__ = ["ParticleSegmenter"]

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


class ParticleSegmenter(BaseEstimator):
    """Segment particles in micrographs with DeepLabV3: background, particle, border.

    A scikit-learn estimator around torchvision's DeepLabV3. It learns from
    micrographs and their instance maps (or class maps) to predict, for every
    pixel, one of three classes: 0 background, 1 particle, 2 particle border.
    The border class separates touching particles; turn predictions into
    particles with :func:`label_particles` or :func:`count_particles`.

    The defaults follow the published recipe: DeepLabV3 with a ResNet-50
    backbone, weighted cross-entropy, Adam at a learning rate of 1e-3 with
    cosine annealing, 50 epochs of batches of 8, the recipe's augmentations
    and normalisation (mean 0.4773, std 0.1719). On a CPU, prefer
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
        Augmentations applied to every training crop, freshly at each epoch
        and never at prediction time. ``"default"`` is
        :func:`particleseg.augmentation.default_augmenter` (the recipe's nine
        augmentations); pass an :class:`Augmenter` to change or search them
        (e.g. ``augment__elastic__alpha`` in a grid search); None trains on
        plain crops.
    annotator : "default", None or BorderAnnotator, default="default"
        How targets ``y`` become class maps. ``"default"`` is
        ``BorderAnnotator()``: ``y`` are instance maps whose borders are
        annotated after augmentation. None: ``y`` are class maps already
        (values 0, 1, 2).
    normalize : bool, default=True
        Scale images to [0, 1] (see ``intensity_range``) and standardise them
        with ``mean`` and ``std``. Images that come from a :class:`Normalizer`
        (for example as the first step of a ``Pipeline``) are recognised and
        never normalised twice. With False, images are used as given.
    mean, std : float, default=0.4773, 0.1719
        Standardisation statistics (the recipe's).
    intensity_range : {"dtype", "image"}, default="dtype"
        How images are scaled to [0, 1] before standardisation (see
        :func:`particleseg.normalization.scale_intensity`).
    validation_fraction : float or None, default=None
        Fraction of the training images held out to measure validation loss
        and IoU after every epoch (recorded in ``history_``).
    warm_start : bool, default=False
        When True, a new call to :meth:`fit` continues training the current
        model instead of starting again.
    checkpoint : str or path-like, optional
        File where the full training state (weights, optimiser, schedule,
        epoch, random state) is written after every epoch. If the file exists
        when :meth:`fit` starts, training resumes from it, so a long run can
        span several sessions.
    tile_size : int or None, default=1024
        At prediction, images larger than this are predicted in overlapping
        tiles of this size, so memory stays bounded. None: always whole.
    tile_overlap : int, default=128
        Overlap of neighbouring tiles, in pixels; predictions are blended
        smoothly across it.
    inference_precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Arithmetic precision of prediction (training is always float32).
        ``"auto"`` computes in bfloat16 on CPUs that support it natively
        (AVX512-BF16 or AMX; see ``benchmarks/inference.py`` for the speed-up) and in float16 on a
        GPU, else in float32. Reduced precision changes class probabilities
        by a few hundredths and the predicted class of very few pixels (see
        ``benchmarks/inference.py``); use ``"float32"`` for bit-for-bit
        comparisons across machines.
    inference_scale : float, default=1.0
        At prediction, each image (or tile) is enlarged by this factor before
        the network and its class probabilities are brought back to the
        image's own size. Values above 1 help the network resolve the borders
        of small or tightly packed particles (its features are 8 or 16 times
        coarser than the image) at the cost of ``inference_scale**2`` more
        computation. Training is unaffected.
    calibrate_outlines : bool, default=True
        How :meth:`predict` decides the classes. The class weights of the
        loss (``class_weight``) make the network favour the rare border
        class, which keeps the cores of touching particles apart but makes
        particles look larger than they are. With True, cores are taken from
        the network's probabilities as they are, and outlines (particle or
        border versus background) from the probabilities with the weighting
        undone (each class's probability divided by its weight, renormalised),
        so particles are separated *and* not inflated. With False, every
        pixel gets its most probable class. :meth:`predict_proba` always
        returns the network's probabilities as they are.
    test_time_flips : bool, default=False
        Average the predictions over the 8 flips and rotations of each image
        (test-time augmentation): 8 times the cost, slightly better
        segmentations (see the model card for the bundled model).
    device : str, default="auto"
        ``"auto"`` uses a CUDA GPU when present, else the CPU; or ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``...
    n_threads : int or None, default=None
        CPU threads for torch while fitting and predicting. None keeps torch's
        setting.
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
        One entry per epoch: ``epoch``, ``train_loss``, ``learning_rate``,
        ``seconds`` and, with ``validation_fraction``, ``valid_loss`` and
        ``valid_iou``.
    n_iter_ : int
        Number of epochs trained.
    device_ : torch.device
        Where the model lives.

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
        backbone="resnet50",
        weights=None,
        max_epochs=50,
        batch_size=8,
        learning_rate=1e-3,
        class_weight="balanced",
        crop_size=256,
        crops_per_image=1,
        augment="default",
        annotator="default",
        normalize=True,
        mean=RECIPE_MEAN,
        std=RECIPE_STD,
        intensity_range="dtype",
        validation_fraction=None,
        warm_start=False,
        checkpoint=None,
        tile_size=1024,
        tile_overlap=128,
        inference_precision="auto",
        inference_scale=1.0,
        calibrate_outlines=True,
        test_time_flips=False,
        device="auto",
        n_threads=None,
        random_state=None,
        verbose=0,
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
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------
    # Parameter checks

    def _check_params(self):
        def positive_int(name, minimum=1, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")

        if self.backbone not in _BACKBONES:
            raise ValueError(f"backbone must be one of {_BACKBONES}; got {self.backbone!r}.")
        positive_int("max_epochs", 0)
        positive_int("batch_size", 2)  # BatchNorm cannot train on batches of one crop
        positive_int("crop_size", 16)
        positive_int("crops_per_image", 1)
        positive_int("tile_size", 64, allow_none=True)
        positive_int("tile_overlap", 0)
        positive_int("n_threads", 1, allow_none=True)
        if (not isinstance(self.inference_scale, numbers.Real) or isinstance(self.inference_scale, bool)
                or not 0.25 <= self.inference_scale <= 4):
            raise ValueError(
                f"inference_scale must be a number between 0.25 and 4; got {self.inference_scale!r}."
            )
        if self.tile_size is not None and self.tile_overlap * 2 >= self.tile_size:
            raise ValueError(
                f"tile_overlap ({self.tile_overlap}) must be less than half of tile_size "
                f"({self.tile_size})."
            )
        if not isinstance(self.learning_rate, numbers.Real) or self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number; got {self.learning_rate!r}.")
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be None or between 0 and 1; got {self.validation_fraction!r}."
            )
        if self.intensity_range not in ("dtype", "image"):
            raise ValueError(
                f'intensity_range must be "dtype" or "image"; got {self.intensity_range!r}.'
            )
        if not isinstance(self.std, numbers.Real) or self.std <= 0:
            raise ValueError(f"std must be a positive number; got {self.std!r}.")
        if not (self.weights is None or isinstance(self.weights, str) or hasattr(self.weights, "__fspath__")):
            raise TypeError(
                f'weights must be None, "imagenet" or the path of a saved model; got {self.weights!r}.'
            )

    def _resolve_annotator(self):
        if isinstance(self.annotator, str):
            if self.annotator != "default":
                raise ValueError(
                    f'annotator must be "default", None or a BorderAnnotator; got {self.annotator!r}.'
                )
            return BorderAnnotator()
        if self.annotator is None or isinstance(self.annotator, BorderAnnotator):
            return self.annotator
        raise TypeError(
            f'annotator must be "default", None or a BorderAnnotator; got {self.annotator!r}.'
        )

    def _resolve_augmenter(self):
        if isinstance(self.augment, str):
            if self.augment != "default":
                raise ValueError(
                    f'augment must be "default", None or an Augmenter; got {self.augment!r}.'
                )
            from .augmentation import default_augmenter

            return default_augmenter()
        if self.augment is None or callable(self.augment):
            return self.augment
        raise TypeError(f'augment must be "default", None or an Augmenter; got {self.augment!r}.')

    def _resolve_class_weight(self, class_maps):
        from ._training import balanced_class_weight

        cw = self.class_weight
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f'class_weight must be "balanced", None or 3 numbers; got {cw!r}.')
            return balanced_class_weight(class_maps)
        if cw is None:
            return np.ones(3, dtype=np.float32)
        arr = np.asarray(cw, dtype=np.float32)
        if arr.shape != (3,) or not np.all(arr > 0):
            raise ValueError(
                f"class_weight must be 3 positive numbers (background, particle, border); got {cw!r}."
            )
        return arr

    # ------------------------------------------------------------------
    # Data

    def _validate_training_data(self, X, y):
        if y is None:
            raise ValueError(
                "y is required: pass one instance map (or class map with annotator=None) per image."
            )
        images, norm, single = _scaled_images(
            X, "X", self.normalize, self.intensity_range, self.mean, self.std
        )
        if single:
            y = [y]
        if isinstance(y, np.ndarray) and y.ndim == 2:
            raise ValueError(
                f"y is one label map but X holds {len(images)} images; pass one label map per image."
            )
        y = list(y)
        if len(y) != len(images):
            raise ValueError(
                f"X and y must have the same length: got {len(images)} images and {len(y)} label maps."
            )
        annotator = self._resolve_annotator()
        targets = []
        for i, (image, target) in enumerate(zip(images, y)):
            if annotator is None:
                target = check_class_map(target, f"y[{i}]")
            else:
                target = check_instance_map(target, f"y[{i}]", allow_unlabelled=True)
            check_same_shape(image, target, f"X[{i}]", f"y[{i}]")
            targets.append(target)
        return images, targets, norm, annotator

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
            unlabelled: the loss skips these pixels), or one class map per
            image when ``annotator=None``.

        Returns
        -------
        self : ParticleSegmenter
        """
        return self._fit(X, y, continue_training=self.warm_start)

    def partial_fit(self, X, y=None):
        """Continue training the current model for ``max_epochs`` more epochs.

        The learning-rate schedule starts again (a warm restart). Before the
        first ``fit``, this is the same as ``fit``.

        Parameters
        ----------
        X, y : see :meth:`fit`

        Returns
        -------
        self : ParticleSegmenter
        """
        return self._fit(X, y, continue_training=True)

    def fine_tune(self, X, y, *, minutes=10.0, max_steps=None, validation=True, recipe=None,
                  names=None, callback=None):
        """Adapt the fitted model to a few annotated micrographs of your own.

        Starts from the current weights (for example ``pretrained("emps")``)
        and trains for a time budget with a recipe made for few images: a
        learning rate that warms up then decays, many augmented crops per
        image rescaled around ``inference_scale``, BatchNorm statistics kept.
        Held-out data scores the model every so often with its own decision
        rule (F1 of particles matched at IoU 0.5): one whole image when there
        are 4 images or more, else the last quarter of every image. The best
        weights are kept; when no fine-tuned state beats the starting model,
        the starting weights are kept and ``fine_tuning_["message"]`` says
        why. Ctrl-C stops early and keeps the best weights so far.

        Every other setting is kept: inference scale, border width,
        normalisation, class weights (so the decision rule), tiling and
        precision. Change them with :meth:`set_params` if you want to.

        Parameters
        ----------
        X : list of ndarray (H, W)
            A few micrographs (one is enough to start; 5 is better).
        y : list of ndarray (H, W)
            One instance map per image: 0 background, k > 0 particle k, -1
            unlabelled (the loss skips these pixels, so you may outline only
            some particles; see :func:`particleseg.labels.mark_unlabelled`).
            Every map must label at least one particle.
        minutes : float or None, default=10.0
            Time budget (wall clock, including validation). None: only
            ``max_steps`` limits training.
        max_steps : int or None, default=None
            Largest number of optimisation steps.
        validation : bool, default=True
            Hold out data to keep the best weights (see above). False trains
            on everything for the whole budget and keeps the last weights.
        recipe : dict, optional
            Changes to the recipe, ``particleseg._finetune.DEFAULT_RECIPE``
            (``learning_rate``, ``warmup_fraction``, ``batch_size``,
            ``crop_size``, ``freeze_batchnorm``, ``frozen_backbone_fraction``,
            ``scale_spread``, ``validation_rounds``, ``patience``).
        names : list of str, optional
            Names of the images, recorded in the model file.
        callback : callable, optional
            Called after every step with a dict (``step``, ``seconds``,
            ``loss``, ``learning_rate``, and held-out scores when computed).
            Raising ``KeyboardInterrupt`` from it stops like Ctrl-C.

        Returns
        -------
        self : ParticleSegmenter
            With ``fine_tuning_`` (steps, seconds, how it stopped, held-out
            scores before and after, ``kept_starting_weights``, ``message``)
            and ``model_info_`` recording the parent model, the images and
            the recipe (saved with :meth:`save`).

        Examples
        --------
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
        check_is_fitted(self, "model_")
        from . import _finetune

        self._check_params()
        if minutes is None and max_steps is None:
            raise ValueError("give a time budget (minutes) or max_steps; both are None.")
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, numbers.Real)
                                    or not minutes > 0):
            raise ValueError(f"minutes must be a positive number or None; got {minutes!r}.")
        if max_steps is not None and (isinstance(max_steps, bool)
                                      or not isinstance(max_steps, numbers.Integral) or max_steps < 1):
            raise ValueError(f"max_steps must be an integer >= 1 or None; got {max_steps!r}.")
        recipe = _finetune.check_recipe(recipe)
        _finetune.check_starting_model(self)
        mean, std = self.normalization_ if self.normalization_ is not None else (0.0, 1.0)
        images, _, single = _scaled_images(X, "X", self.normalization_ is not None,
                                           self.intensity_range, mean, std)
        if single:
            y = [y] if y is not None else None
        if names is None:
            names = [f"image {i}" for i in range(len(images))]
        names = [str(n) for n in names]
        if len(names) != len(images):
            raise ValueError(f"names must have one name per image: got {len(names)} names "
                             f"and {len(images)} images.")
        targets = _finetune.check_training_maps(images, y, names)
        _finetune.fine_tune(
            self, images, targets, names, minutes=minutes, max_steps=max_steps, recipe=recipe,
            validation=validation, random_state=self._seed(), callback=callback,
            verbose=self.verbose,
        )
        return self

    def _fit(self, X, y, continue_training):
        import torch

        from . import _training as T
        from ._models import build_model

        self._check_params()
        images, targets, norm, annotator = self._validate_training_data(X, y)
        augmenter = self._resolve_augmenter()
        device = T.resolve_device(self.device)
        seed = self._seed()
        rng = np.random.default_rng(seed)

        # Validation split by image.
        n = len(images)
        valid_idx = np.array([], dtype=int)
        if self.validation_fraction:
            n_valid = max(1, int(round(self.validation_fraction * n)))
            if n_valid >= n:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no training image "
                    f"out of {n}; use a smaller fraction or more images."
                )
            valid_idx = np.sort(rng.permutation(n)[:n_valid])
        train_idx = np.setdiff1d(np.arange(n), valid_idx)
        train_images = [images[i] for i in train_idx]
        train_targets = [targets[i] for i in train_idx]
        width = annotator.width if annotator is not None else None
        if annotator is not None:
            annotator.fit(train_targets)
        full_class_maps = [
            annotator.transform(t) if annotator is not None else t for t in train_targets
        ]
        class_weight = self._resolve_class_weight(full_class_maps)
        mean, std = norm if norm is not None else (0.0, 1.0)
        # Training images are kept in [0, 1] (augmentations act there) and
        # standardised per crop.
        threads = _ThreadSetting(self.n_threads)
        with threads, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            keep = continue_training and hasattr(self, "model_")
            if not keep:
                model = self._initial_model(build_model)
                history = []
            else:
                model = self.model_
                history = list(self.history_)
            model = model.to(device).to(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(self.max_epochs, 1)
            )
            state = T.TrainState(epoch=0, history=history)
            if self.checkpoint is not None and os.path.exists(self.checkpoint):
                state = self._resume(model, optimizer, scheduler, rng, seed, device)
                history = state.history
            standardise = _Standardised(augmenter, mean, std) if augmenter is not None else None
            if augmenter is None:
                train_images = [(im - np.float32(mean)) / np.float32(std) for im in train_images]
            stride = _stride(self.backbone)
            for epoch in range(state.epoch, self.max_epochs):
                start = time.perf_counter()
                progress = self._progress(epoch, len(train_images) * self.crops_per_image)
                try:
                    train_loss = T.train_epoch(
                        model, optimizer,
                        train_images, train_targets,
                        crop_size=self.crop_size, crops_per_image=self.crops_per_image,
                        batch_size=self.batch_size,
                        augmenter=standardise,
                        border_width=width, class_weight=class_weight, device=device,
                        rng=rng, progress=progress,
                    )
                finally:
                    if progress is not None:
                        progress.close()
                record = {
                    "epoch": len(history) + 1,
                    "train_loss": train_loss,
                    "learning_rate": optimizer.param_groups[0]["lr"],
                }
                scheduler.step()
                if len(valid_idx):
                    record.update(self._validation_scores(
                        model, [images[i] for i in valid_idx], [targets[i] for i in valid_idx],
                        annotator, class_weight, mean, std, stride, device,
                    ))
                record["seconds"] = time.perf_counter() - start
                history.append(record)
                state.epoch = epoch + 1
                state.history = history
                if self.checkpoint is not None:
                    state.rng_state = rng.bit_generator.state
                    T.save_checkpoint(self.checkpoint, model, optimizer, scheduler, state,
                                      self._checkpoint_params())
                if self.verbose:
                    print(_format_record(record))
        model.eval()
        self.model_ = model
        self.device_ = device
        self.classes_ = np.array([0, 1, 2])
        self.class_weight_ = class_weight
        self.normalization_ = norm
        self.history_ = history
        self.n_iter_ = len(history)
        self.border_width_ = width
        return self

    def _resume(self, model, optimizer, scheduler, rng, seed, device):
        """Load the training state stored in ``self.checkpoint``; return it."""
        import torch

        from . import _training as T

        ckpt = T.load_checkpoint(self.checkpoint, device)
        self._check_checkpoint_params(ckpt["params"])
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        rng.bit_generator.state = ckpt["rng_state"]
        if "torch_rng_state" in ckpt:
            torch.set_rng_state(ckpt["torch_rng_state"].cpu())
        else:  # checkpoints written before the torch random state was stored
            torch.manual_seed(seed + ckpt["epoch"])
        return T.TrainState(epoch=ckpt["epoch"], history=list(ckpt["history"]))

    def _seed(self):
        if self.random_state is None:
            return int(np.random.SeedSequence().entropy % (2**31))
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(0, 2**31 - 1))
        raise TypeError(f"random_state must be an int, a RandomState or None; got {self.random_state!r}.")

    def _initial_model(self, build_model):
        weights = self.weights
        if weights is None or weights == "imagenet":
            return build_model(self.backbone, imagenet=weights == "imagenet")
        from ._persistence import read_model_file

        config, state = read_model_file(weights)
        if config["params"]["backbone"] != self.backbone:
            raise ValueError(
                f"weights file {weights} holds a {config['params']['backbone']} model but "
                f"backbone={self.backbone!r}; set backbone to match."
            )
        model = build_model(self.backbone)
        model.load_state_dict(state)
        return model

    def _checkpoint_params(self):
        return {k: self.get_params(deep=False)[k] for k in
                ("backbone", "max_epochs", "batch_size", "crop_size", "crops_per_image")}

    def _check_checkpoint_params(self, saved):
        mine = self._checkpoint_params()
        diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diff:
            details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"checkpoint {self.checkpoint} was written with other settings ({details}); "
                "use the same settings to resume, or another checkpoint file."
            )

    def _progress(self, epoch, total):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"epoch {epoch + 1}/{self.max_epochs}", unit="crop", leave=False)

    def _validation_scores(self, model, images, targets, annotator, class_weight, mean, std,
                           stride, device):
        import torch
        import torch.nn.functional as F

        from . import _training as T
        from .metrics import iou_score

        model.eval()
        losses, ious = [], []
        for image, target in zip(images, targets):
            class_map = annotator.transform(target) if annotator is not None else target
            logits = T.predict_logits_whole(model, (image - mean) / std, stride, device)
            t = torch.from_numpy(class_map.astype(np.int64)).to(device)
            losses.append(float(F.cross_entropy(logits[None], t[None], ignore_index=T.IGNORE,
                                                weight=torch.as_tensor(class_weight, device=device))))
            pred = logits.argmax(0).cpu().numpy()
            labelled = class_map != T.IGNORE
            ious.append(iou_score((class_map > 0) & labelled, (pred > 0) & labelled))
        model.train()
        return {"valid_loss": float(np.mean(losses)), "valid_iou": float(np.mean(ious))}

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
        check_is_fitted(self, "model_")
        from . import _training as T

        self._check_params()

        images, norm, single = _scaled_images(
            X, "X", self.normalization_ is not None, self.intensity_range,
            *(self.normalization_ or (0.0, 1.0)),
        )
        mean, std = norm if norm is not None else (0.0, 1.0)
        stride = _stride(self.backbone)
        autocast_dtype = T.resolve_precision(self.inference_precision, self.device_)
        out = []
        with _ThreadSetting(self.n_threads):
            self.model_.eval()
            def predict_one(standardised):
                return T.predict_proba_image(
                    self.model_, standardised, stride=stride, device=self.device_,
                    tile_size=self.tile_size, tile_overlap=self.tile_overlap, tile_batch=4,
                    autocast_dtype=autocast_dtype, scale=float(self.inference_scale),
                )

            for image in images:
                standardised = _standardise(image, mean, std)
                if self.test_time_flips:
                    out.append(T.predict_proba_flips(standardised, predict_one))
                else:
                    out.append(predict_one(standardised))
        return out[0] if single else out

    def predict(self, X):
        """Class map per pixel: 0 background, 1 particle, 2 border.

        With ``calibrate_outlines=True`` (the default) the decision is made in
        two steps: particle cores are the pixels whose particle probability is
        at least 0.5 as the network predicts it; the particle's outline (core
        or border versus background) is decided with the class weighting of
        the loss undone (see ``calibrate_outlines``). With False, each pixel
        gets its most probable class.

        Parameters
        ----------
        X : ndarray (H, W) or list of ndarray
            One micrograph or a list of them, any sizes.

        Returns
        -------
        classes : ndarray of uint8, shape (H, W), or a list of them
            One class map per image, at full resolution.
        """
        proba = self.predict_proba(X)
        if isinstance(proba, list):
            return [self._decide(p) for p in proba]
        return self._decide(proba)

    def _decide(self, proba, threshold=0.5):
        """The class map of one image's probabilities (see :meth:`predict`)."""
        from ._training import class_map, outline_class_map

        if self.calibrate_outlines:
            return outline_class_map(proba, self.class_weight_, core_threshold=threshold)
        if threshold != 0.5:
            from .postprocessing import foreground_mask, particle_mask

            classes = np.where(foreground_mask(proba, threshold), 2, 0).astype(np.uint8)
            classes[particle_mask(proba, threshold)] = 1
            return classes
        return class_map(proba)

    def score(self, X, y):
        """Mean per-image particle IoU (intersection over union of the foreground).

        Parameters
        ----------
        X : list of ndarray
            Micrographs.
        y : list of ndarray
            Their instance maps (or class maps): foreground is every value > 0.

        Returns
        -------
        score : float
            Mean IoU of predicted (particle or border) and true foreground;
            higher is better, 1 is perfect.
        """
        from .metrics import iou_score

        pred = self.predict(X)
        if not isinstance(pred, list):
            pred, y = [pred], [y]
        y = list(y)
        if len(y) != len(pred):
            raise ValueError(
                f"X and y must have the same length: got {len(pred)} images and {len(y)} label maps."
            )
        return float(np.mean([iou_score(np.asarray(t) > 0, p > 0) for t, p in zip(y, pred)]))

    # ------------------------------------------------------------------
    # Persistence

    def save(self, path, half_precision=False):
        """Save the fitted model to one file that cannot run code when loaded.

        The file holds the weights (safetensors) and, in its header, a JSON
        record of the parameters, normalisation, training history and the
        versions of particleseg and torch, with a checksum of the weights.

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


def _stride(backbone):
    from ._models import output_stride

    return output_stride(backbone)


def _standardise(image, mean, std):
    """(image - mean) / std in float32, in place when the image is already a copy."""
    out = image if image.dtype == np.float32 else image.astype(np.float32)
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


class _Standardised:
    """Augment a [0, 1] image, then standardise it with (mean, std)."""

    def __init__(self, augmenter, mean, std):
        self.augmenter, self.mean, self.std = augmenter, mean, std
        self.window_factor = getattr(augmenter, "window_factor", 1.5)

    def __call__(self, image, target, random_state=None):
        image, target = self.augmenter(image, target, random_state=random_state)
        return (image - np.float32(self.mean)) / np.float32(self.std), target


class _ThreadSetting:
    """Set torch's CPU thread count for a block, then restore it."""

    def __init__(self, n_threads):
        self.n_threads = n_threads

    def __enter__(self):
        import torch

        self.previous = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.previous)


def _format_record(record):
    return "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
    )
