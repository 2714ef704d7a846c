"""Training the network: crops, batches, loss, the training loop and checkpoints.

:func:`fit_model` is what :meth:`ParticleSegmenter.fit` calls: it splits off
validation images, weighs the classes, builds (or continues) the model and
runs the epochs, resuming from a checkpoint when there is one. Prediction
lives in :mod:`particleseg._inference`.

Nothing here validates user input: :mod:`particleseg.segmenter` does that and
hands over clean arrays (images scaled to [0, 1] as float32, targets as
instance or class maps).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

from ._inference import predict_logits_whole
from ._models import ThreadSetting, build_model, forward_logits, output_stride
from .annotation import annotate_borders

IGNORE = 255  # target value of padding: the loss ignores it


# ----------------------------------------------------------------------------
# Training samples


def random_crop(image, target, size, rng):
    """A random ``size`` x ``size`` window of an image and its target.

    Images smaller than ``size`` are padded: the image by reflection, the
    target with :data:`IGNORE` so the loss skips the padding.
    """
    h, w = image.shape
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    if pad_h or pad_w:
        mode = "reflect" if (h > pad_h and w > pad_w) else "edge"
        image = np.pad(image, ((0, pad_h), (0, pad_w)), mode=mode)
        target = np.pad(target, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
        h, w = image.shape
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return image[top : top + size, left : left + size], target[top : top + size, left : left + size]


def make_sample(image, target, *, crop_size, augmenter, border_width, rng):
    """One training crop: a window, augmented, annotated, cropped to size.

    ``target`` is an instance map when ``border_width`` is an int (borders
    are annotated *after* the geometric augmentation, so they stay exactly
    ``border_width`` wide), or a class map when it is None.
    """
    if augmenter is not None:
        # Augment a window somewhat larger than the crop (rotation, elastic
        # and resizing need context), not the whole micrograph.
        # An augmenter that rescales asks for a larger window (``window_factor``).
        factor = getattr(augmenter, "window_factor", 1.5)
        window = min(max(image.shape), int(math.ceil(crop_size * factor)))
        if image.shape[0] > window or image.shape[1] > window:
            image, target = _window(image, target, window, rng)
        seed = int(rng.integers(0, 2**31 - 1))
        image, target = augmenter(image, target, random_state=seed)
    if border_width is not None:
        target = annotate_borders(target, border_width)
    return random_crop(image, target.astype(np.uint8), crop_size, rng)


def _window(image, target, size, rng):
    h, w = image.shape
    th, tw = min(size, h), min(size, w)
    top = int(rng.integers(0, h - th + 1))
    left = int(rng.integers(0, w - tw + 1))
    return image[top : top + th, left : left + tw], target[top : top + th, left : left + tw]


def balanced_class_weight(class_maps, n_classes=3):
    """scikit-learn's "balanced" weights, ``n / (n_classes * count)``."""
    counts = np.zeros(n_classes, dtype=np.float64)
    for cm in class_maps:
        counts += np.bincount(cm.ravel(), minlength=n_classes)[:n_classes]
    counts = np.maximum(counts, 1.0)
    return (counts.sum() / (n_classes * counts)).astype(np.float32)


def resolve_class_weight(class_weight, class_maps):
    """The estimator's (validated) ``class_weight`` as 3 float32 weights."""
    if isinstance(class_weight, str):  # "balanced"
        return balanced_class_weight(class_maps)
    if class_weight is None:
        return np.ones(3, dtype=np.float32)
    return np.asarray(class_weight, dtype=np.float32)


class Standardised:
    """Augment a [0, 1] image, then standardise it with (mean, std)."""

    def __init__(self, augmenter, mean, std):
        self.augmenter, self.mean, self.std = augmenter, mean, std
        self.window_factor = getattr(augmenter, "window_factor", 1.5)

    def __call__(self, image, target, random_state=None):
        image, target = self.augmenter(image, target, random_state=random_state)
        return (image - np.float32(self.mean)) / np.float32(self.std), target


# ----------------------------------------------------------------------------
# The loop


@dataclass
class TrainState:
    """Everything needed to continue training where it stopped."""

    epoch: int = 0
    history: list = field(default_factory=list)
    rng_state: dict | None = None



def train_step(model, optimizer, pairs, weight, device):
    """One optimisation step on (image, class map) crops.

    Returns the loss, or None (and no step) when no pixel of the crops is
    labelled (all ``IGNORE``).
    """
    x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None]).to(device)
    t = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64)).to(device)
    if not bool((t != IGNORE).any()):
        return None
    logits = forward_logits(model, x.contiguous(memory_format=torch.channels_last))
    loss = F.cross_entropy(logits, t, weight=weight, ignore_index=IGNORE)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.item())

def train_epoch(model, optimizer, images, targets, *, crop_size, crops_per_image, batch_size,
                augmenter, border_width, class_weight, device, rng, progress=None):
    """One pass: ``crops_per_image`` random crops of every image, shuffled."""
    model.train()
    order = np.repeat(np.arange(len(images)), crops_per_image)
    if len(order) == 1:
        order = np.repeat(order, 2)  # BatchNorm cannot train on one sample: take two crops
    rng.shuffle(order)
    weight = torch.as_tensor(class_weight, device=device)
    total, n_seen = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2 and start > 0:
            break  # BatchNorm cannot train on one sample; skip a last single crop
        pairs = [
            make_sample(images[i], targets[i], crop_size=crop_size, augmenter=augmenter,
                        border_width=border_width, rng=rng)
            for i in idx
        ]
        loss = train_step(model, optimizer, pairs, weight, device)
        if loss is not None:
            total += loss * len(idx)
            n_seen += len(idx)
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{total / n_seen:.4f}")
    return total / max(n_seen, 1)


# ----------------------------------------------------------------------------
# Fitting: what ParticleSegmenter.fit runs


@dataclass(frozen=True)
class TrainingSettings:
    """The estimator's parameters that training reads (same names, same meaning)."""

    backbone: str
    weights: object
    max_epochs: int
    batch_size: int
    learning_rate: float
    class_weight: object
    crop_size: int
    crops_per_image: int
    validation_fraction: float | None
    checkpoint: object
    n_threads: int | None
    verbose: int

    @classmethod
    def from_params(cls, params):
        """Pick the fields from an estimator's ``get_params(deep=False)``."""
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    def checkpoint_params(self):
        """The settings a checkpoint must have been written with to resume from it."""
        return {k: getattr(self, k) for k in
                ("backbone", "max_epochs", "batch_size", "crop_size", "crops_per_image")}


@dataclass
class FittedModel:
    """What :func:`fit_model` learned."""

    model: torch.nn.Module
    history: list
    class_weight: np.ndarray
    border_width: int | None


def fit_model(settings, images, targets, *, annotator, augmenter, normalization, device, seed,
              previous=None):
    """Train a DeepLabV3 on images and targets; return a :class:`FittedModel`.

    Parameters
    ----------
    settings : TrainingSettings
        The estimator's training parameters.
    images : list of ndarray of float32
        Images scaled to [0, 1].
    targets : list of ndarray
        Instance maps, or class maps when ``annotator`` is None.
    annotator : BorderAnnotator or None
        Turns instance maps into class maps.
    augmenter : callable or None
        Augments a [0, 1] image and its target.
    normalization : tuple of (float, float) or None
        ``(mean, std)`` to standardise with; None uses images as given.
    device : torch.device
        Where to train.
    seed : int
        Seeds the validation split, crops, augmentations and weights.
    previous : tuple of (torch.nn.Module, list) or None
        A model and its history to continue training (warm start).

    Returns
    -------
    fitted : FittedModel
    """
    rng = np.random.default_rng(seed)
    valid_idx = _validation_split(len(images), settings.validation_fraction, rng)
    train_idx = np.setdiff1d(np.arange(len(images)), valid_idx)
    train_images = [images[i] for i in train_idx]
    train_targets = [targets[i] for i in train_idx]
    width = annotator.width if annotator is not None else None
    if annotator is not None:
        annotator.fit(train_targets)
    full_class_maps = [
        annotator.transform(t) if annotator is not None else t for t in train_targets
    ]
    class_weight = resolve_class_weight(settings.class_weight, full_class_maps)
    mean, std = normalization if normalization is not None else (0.0, 1.0)
    valid = ([images[i] for i in valid_idx], [targets[i] for i in valid_idx])
    # Training images are kept in [0, 1] (augmentations act there) and
    # standardised per crop.
    with ThreadSetting(settings.n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if previous is None:
            model, history = initial_model(settings.backbone, settings.weights), []
        else:
            model, history = previous[0], list(previous[1])
        model = model.to(device).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(settings.max_epochs, 1)
        )
        state = TrainState(epoch=0, history=history)
        if settings.checkpoint is not None and os.path.exists(settings.checkpoint):
            state = resume(settings, model, optimizer, scheduler, rng, seed, device)
        standardise = Standardised(augmenter, mean, std) if augmenter is not None else None
        if augmenter is None:
            train_images = [(im - np.float32(mean)) / np.float32(std) for im in train_images]
        for epoch in range(state.epoch, settings.max_epochs):
            start = time.perf_counter()
            train_loss = _train_one_epoch(
                settings, model, optimizer, train_images, train_targets, epoch,
                augmenter=standardise, border_width=width, class_weight=class_weight,
                device=device, rng=rng,
            )
            record = {
                "epoch": len(state.history) + 1,
                "train_loss": train_loss,
                "learning_rate": optimizer.param_groups[0]["lr"],
            }
            scheduler.step()
            if len(valid_idx):
                record.update(validation_scores(
                    model, *valid, annotator, class_weight, mean, std,
                    output_stride(settings.backbone), device,
                ))
            record["seconds"] = time.perf_counter() - start
            state.history.append(record)
            state.epoch = epoch + 1
            if settings.checkpoint is not None:
                state.rng_state = rng.bit_generator.state
                save_checkpoint(settings.checkpoint, model, optimizer, scheduler, state,
                                settings.checkpoint_params())
            if settings.verbose:
                print(_format_record(record))
    model.eval()
    return FittedModel(model, state.history, class_weight, width)


def _validation_split(n, fraction, rng):
    """Indices of the images held out for validation (sorted), by image."""
    if not fraction:
        return np.array([], dtype=int)
    n_valid = max(1, int(round(fraction * n)))
    if n_valid >= n:
        raise ValueError(
            f"validation_fraction={fraction} leaves no training image "
            f"out of {n}; use a smaller fraction or more images."
        )
    return np.sort(rng.permutation(n)[:n_valid])


def _train_one_epoch(settings, model, optimizer, images, targets, epoch, **kwargs):
    """:func:`train_epoch` with a progress bar when verbose; the mean training loss."""
    progress = _progress(settings, epoch, len(images) * settings.crops_per_image)
    try:
        train_loss = train_epoch(
            model, optimizer, images, targets,
            crop_size=settings.crop_size, crops_per_image=settings.crops_per_image,
            batch_size=settings.batch_size, progress=progress, **kwargs,
        )
    finally:
        if progress is not None:
            progress.close()
    return train_loss


def initial_model(backbone, weights):
    """A new model: from scratch, from ImageNet weights, or from a saved model file."""
    if weights is None or weights == "imagenet":
        return build_model(backbone, imagenet=weights == "imagenet")
    from ._persistence import read_model_file

    config, state = read_model_file(weights)
    if config["params"]["backbone"] != backbone:
        raise ValueError(
            f"weights file {weights} holds a {config['params']['backbone']} model but "
            f"backbone={backbone!r}; set backbone to match."
        )
    model = build_model(backbone)
    model.load_state_dict(state)
    return model


def resume(settings, model, optimizer, scheduler, rng, seed, device):
    """Load the training state stored in ``settings.checkpoint``; return it."""
    ckpt = load_checkpoint(settings.checkpoint, device)
    mine = settings.checkpoint_params()
    saved = ckpt["params"]
    diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"checkpoint {settings.checkpoint} was written with other settings ({details}); "
            "use the same settings to resume, or another checkpoint file."
        )
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rng.bit_generator.state = ckpt["rng_state"]
    if "torch_rng_state" in ckpt:
        torch.set_rng_state(ckpt["torch_rng_state"].cpu())
    else:  # checkpoints written before the torch random state was stored
        torch.manual_seed(seed + ckpt["epoch"])
    return TrainState(epoch=ckpt["epoch"], history=list(ckpt["history"]))


def validation_scores(model, images, targets, annotator, class_weight, mean, std, stride, device):
    """Mean cross-entropy and foreground IoU of held-out images."""
    from .metrics import iou_score

    model.eval()
    losses, ious = [], []
    for image, target in zip(images, targets):
        class_map = annotator.transform(target) if annotator is not None else target
        logits = predict_logits_whole(model, (image - mean) / std, stride, device)
        t = torch.from_numpy(class_map.astype(np.int64)).to(device)
        losses.append(float(F.cross_entropy(logits[None], t[None], ignore_index=IGNORE,
                                            weight=torch.as_tensor(class_weight, device=device))))
        pred = logits.argmax(0).cpu().numpy()
        labelled = class_map != IGNORE  # unlabelled pixels (-1 in an instance map)
        ious.append(iou_score((class_map > 0) & labelled, (pred > 0) & labelled))
    model.train()
    return {"valid_loss": float(np.mean(losses)), "valid_iou": float(np.mean(ious))}


def _progress(settings, epoch, total):
    if not settings.verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{settings.max_epochs}", unit="crop",
                leave=False)


def _format_record(record):
    return "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
    )


# ----------------------------------------------------------------------------
# Checkpoints (training state; not the user-facing model file)


def save_checkpoint(path, model, optimizer, scheduler, state: TrainState, params: dict):
    """Write the full training state with ``torch.save`` (tensors and plain data)."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": state.epoch,
            "history": json.dumps(state.history),
            "rng_state": json.dumps(state.rng_state),
            "torch_rng_state": torch.get_rng_state(),
            "params": json.dumps(params),
        },
        str(path) + ".tmp",
    )
    os.replace(str(path) + ".tmp", path)


def load_checkpoint(path, device):
    """Read a checkpoint written by :func:`save_checkpoint` (no code runs)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    ckpt["history"] = json.loads(ckpt["history"])
    ckpt["rng_state"] = json.loads(ckpt["rng_state"])
    ckpt["params"] = json.loads(ckpt["params"])
    return ckpt
