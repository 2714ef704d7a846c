"""Prediction: from standardised micrographs to class probabilities and classes.

The estimator (:mod:`particleseg.segmenter`) validates its input, scales it to
[0, 1] and calls two functions here, once per batch of images:

- :func:`predict_proba` standardises each image, runs the network on it in
  one piece or in blended tiles, at the inference scale, in the requested
  precision and, if asked, averaged over flips;
- :func:`decide` turns one image's probabilities into a class map.

Everything the prediction depends on is in :class:`InferenceSettings`, a
plain record: to predict one image differently (another scale, for example),
pass ``dataclasses.replace(settings, scale=...)`` for that image.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ._models import ThreadSetting, fold_batch_norms, forward_logits, output_stride

__all__ = [
    "InferenceSettings",
    "class_map",
    "decide",
    "label_confident_particles",
    "outline_class_map",
    "predict_proba",
    "resolve_precision",
]


# ----------------------------------------------------------------------------
# Entry points


@dataclass(frozen=True)
class InferenceSettings:
    """How the network is run on an image (see :func:`predict_proba`).

    Attributes
    ----------
    device : torch.device
        Where the model lives.
    stride : int
        The backbone's output stride; inputs are padded to a multiple of it.
    mean, std : float
        Standardisation of the [0, 1] images.
    tile_size : int or None
        Images larger than this are predicted in tiles; None: always whole.
    tile_overlap : int
        Overlap of neighbouring tiles, in pixels.
    autocast_dtype : torch.dtype or None
        Reduced precision of the computation; None for float32.
    scale : float or "auto"
        Factor by which each image (or tile) is enlarged before the network;
        ``"auto"`` chooses it per image (:mod:`particleseg._autoscale`).
    particle_diameter : float or None
        For ``scale="auto"``: the diameter (px) particles are brought to.
    label : callable or None
        For ``scale="auto"``: ``label(proba) -> (instance map, confidence)`` of
        a pass (see :func:`particleseg._autoscale.predict_proba_auto`).
    flips : bool
        Average over the 8 flips and rotations of each image.
    n_threads : int or None
        CPU threads for torch; None keeps torch's setting.
    tile_batch : int
        Tiles sent through the network at a time.
    """

    device: torch.device
    stride: int
    mean: float = 0.0
    std: float = 1.0
    tile_size: int | None = 1024
    tile_overlap: int = 128
    autocast_dtype: torch.dtype | None = None
    scale: float | str = 1.0
    flips: bool = False
    particle_diameter: float | None = None
    label: Callable | None = None
    n_threads: int | None = None
    tile_batch: int = 4

    @classmethod
    def from_params(cls, params, *, device, normalization, particle_diameter=None, label=None):
        """Settings from a :class:`ParticleSegmenter`'s ``get_params(deep=False)``.

        Parameters
        ----------
        params : dict
            The estimator's (validated) parameters: ``backbone``,
            ``tile_size``, ``tile_overlap``, ``inference_precision``,
            ``inference_scale``, ``test_time_flips`` and ``n_threads``.
        device : torch.device
            Where the model lives.
        normalization : tuple of (float, float) or None
            ``(mean, std)``, or None for images used as given.
        particle_diameter, label : optional
            For ``inference_scale="auto"`` (see the attributes).

        Returns
        -------
        settings : InferenceSettings
        """
        mean, std = normalization if normalization is not None else (0.0, 1.0)
        scale = params["inference_scale"]
        scale = scale if scale == "auto" else float(scale)
        if scale == "auto" and not particle_diameter:
            raise ValueError(
                'inference_scale="auto" needs the typical particle diameter of the training '
                "data (particle_diameter_), which this model does not record (saved by an "
                "older particleseg?). Set inference_scale to a number, e.g. 1.0."
            )
        return cls(
            device=device, stride=output_stride(params["backbone"]), mean=mean, std=std,
            tile_size=params["tile_size"], tile_overlap=params["tile_overlap"],
            autocast_dtype=resolve_precision(params["inference_precision"], device),
            scale=scale, flips=bool(params["test_time_flips"]),
            n_threads=params["n_threads"], particle_diameter=particle_diameter, label=label,
        )


def predict_proba(model, images, settings, scales=None, labels=None):
    """Class probabilities (3, H, W) float32 of each image.

    Parameters
    ----------
    model : torch.nn.Module
        The network, on ``settings.device``.
    images : list of ndarray of float32
        Images scaled to [0, 1]. They belong to the caller, who no longer
        needs them: each is standardised in place to save memory.
    settings : InferenceSettings
        How to run the network.
    scales : list, optional
        The scale used for each image is appended to it.
    labels : list, optional
        For each image, ``settings.label(proba)`` is appended to it when
        ``scale="auto"`` made it to choose the scale, else None: the caller
        who labels the probabilities with the same rule can reuse it.

    Returns
    -------
    probas : list of ndarray of float32, shape (3, H, W)
        One per image, at the image's own size.
    """
    out = []
    with ThreadSetting(settings.n_threads):
        model = inference_model(model)
        for image in images:
            standardised = standardise(image, settings.mean, settings.std)
            found = None
            if settings.scale == "auto":
                from ._autoscale import predict_proba_auto

                proba, scale, found = predict_proba_auto(
                    standardised,
                    lambda im, s: predict_proba_one(model, im, replace(settings, scale=s)),
                    settings.label, settings.particle_diameter)
            else:
                proba, scale = predict_proba_one(model, standardised, settings), settings.scale
            out.append(proba)
            if scales is not None:
                scales.append(scale)
            if labels is not None:
                labels.append(found)
    return out


#: Folded copies of the models predicted with, while their weights stay the same.
_FOLDED = weakref.WeakKeyDictionary()
_FOLDED_LOCK = threading.Lock()


def inference_model(model):
    """``model`` in evaluation mode with its BatchNorms folded (:func:`fold_batch_norms`).

    The folded copy is kept with the model and made again when any of its
    weights or buffers changes (training updates them in place, which torch
    counts in every tensor's version).
    """
    model.eval()
    try:
        key = tuple((t.data_ptr(), t._version) for t in model.state_dict().values())
    except RuntimeError:  # tensors made under inference_mode keep no version
        return fold_batch_norms(model)
    with _FOLDED_LOCK:
        kept = _FOLDED.get(model)
        if kept is None or kept[0] != key:
            kept = _FOLDED[model] = (key, fold_batch_norms(model))
    return kept[1]


def predict_proba_one(model, image, settings):
    """Class probabilities (3, H, W) of one standardised image."""
    def predict_one(view):
        return predict_proba_image(
            model, view, stride=settings.stride, device=settings.device,
            tile_size=settings.tile_size, tile_overlap=settings.tile_overlap,
            tile_batch=settings.tile_batch, autocast_dtype=settings.autocast_dtype,
            scale=settings.scale,
        )

    if settings.flips:
        return predict_proba_flips(image, predict_one)
    return predict_one(image)


def decide(proba, class_weight, calibrate_outlines=True, threshold=0.5):
    """The class map (H, W) uint8 of one image's probabilities.

    Parameters
    ----------
    proba : ndarray of float32, shape (3, H, W)
        Probabilities of background, particle and border.
    class_weight : array-like of 3 floats
        The class weights of the loss the network was trained with.
    calibrate_outlines : bool, default=True
        Cores from ``proba``, outlines from ``proba`` with the class weights
        divided out (:func:`outline_class_map`); with False, the most
        probable class, or with another ``threshold`` the classes of
        :func:`particleseg.postprocessing.particle_mask` and
        :func:`~particleseg.postprocessing.foreground_mask`.
    threshold : float, default=0.5
        Particle probability from which a pixel is a particle core.

    Returns
    -------
    classes : ndarray of uint8, shape (H, W)
        0 background, 1 particle, 2 border.
    """
    if calibrate_outlines:
        return outline_class_map(proba, class_weight, core_threshold=threshold)
    if threshold != 0.5:
        from .postprocessing import foreground_mask, particle_mask

        classes = np.where(foreground_mask(proba, threshold), 2, 0).astype(np.uint8)
        classes[particle_mask(proba, threshold)] = 1
        return classes
    return class_map(proba)


def label_confident_particles(classes, proba, *, min_confidence=None, calibration=None,
                              min_size=4, method="components", return_confidence=False):
    """Instance map of a class map, without particles below ``min_confidence``.

    Returns the labels, or ``(labels, confidence)`` with ``return_confidence``
    (see :func:`particleseg.postprocessing.particle_confidence`).
    """
    from .postprocessing import _keep_and_renumber, label_particles

    if not return_confidence:
        return label_particles(classes, min_size=min_size, method=method, proba=proba,
                               min_confidence=min_confidence, calibration=calibration)
    # All particles first, then one pass drops the small and the doubtful ones,
    # renumbers and scores the rest.
    labels = label_particles(classes, min_size=0, method=method)
    return _keep_and_renumber(labels, min_size, min_confidence, proba, calibration,
                              confidence=True)


def standardise(image, mean, std):
    """(image - mean) / std in float32, in place when the image is already float32."""
    out = image if image.dtype == np.float32 else image.astype(np.float32)
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


# ----------------------------------------------------------------------------
# Tiles, scale and precision


def _ramp(size, overlap):
    """A tile's weight along one side: from ~0 at its edges to 1 inside.

    The outer product of two ramps weights a tile's pixels when tiles are
    blended.
    """
    ramp = np.ones(size, dtype=np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = r
        ramp[-overlap:] = r[::-1]
    return ramp


def _pad_to(x, multiple):
    """Reflect-pad a (N, 1, H, W) tensor so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def bf16_supported() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX).

    oneDNN also reports bfloat16 support on AVX-512 processors without these
    instructions, where it emulates them: there bfloat16 runs the network at
    about half the speed of float32, so such processors count as unsupported.
    """
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without these checks
        return False


def resolve_precision(precision, device) -> torch.dtype | None:
    """The autocast dtype for inference, or None for plain float32."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16":
        return torch.float16
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if bf16_supported() else None
    raise ValueError(
        'inference_precision must be "auto", "float32", "bfloat16" or "float16"; '
        f"got {precision!r}."
    )


def _run(model, x, stride, autocast_dtype=None, scale=1.0):
    """Logits (N, 3, h, w) of a (N, 1, h, w) batch of standardised images.

    The batch is enlarged by ``scale`` (bilinear) when it is not 1, padded to
    a multiple of the network's stride, run under autocast when a reduced
    precision is asked for, and the logits are brought back to (h, w).
    """
    h, w = x.shape[-2:]
    if scale != 1.0:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    sh, sw = x.shape[-2:]
    x = _pad_to(x, stride).contiguous(memory_format=torch.channels_last)
    if autocast_dtype is None:
        logits = forward_logits(model, x)
    else:
        with torch.autocast(device_type=x.device.type, dtype=autocast_dtype):
            logits = forward_logits(model, x)
    logits = logits[:, :, :sh, :sw].float()
    if scale != 1.0:
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits


@torch.inference_mode()
def predict_logits_whole(model, image, stride, device, autocast_dtype=None, scale=1.0):
    """Logits (3, H, W) of one standardised image in one piece."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    return _run(model, x, stride, autocast_dtype, scale)[0]


def tile_starts(length, tile_size, overlap, multiple=1):
    """Tile side and start positions that cover ``length`` pixels evenly.

    The fewest tiles of at most ``tile_size`` pixels that overlap by at least
    ``overlap``; their side is then shrunk to the smallest multiple of
    ``multiple`` that still covers ``length`` with that overlap, and the
    tiles are spread evenly. A length no larger than ``tile_size`` is one
    tile of its own length.

    Parameters
    ----------
    length, tile_size, overlap : int
        In pixels; ``overlap < tile_size / 2``.
    multiple : int, default=1
        The tile side is rounded up to a multiple of this (the network's
        stride), unless that exceeds ``tile_size``.

    Returns
    -------
    side : int
    starts : list of int
        From 0 to ``length - side``, increasing.

    Examples
    --------
    >>> tile_starts(2048, 1024, 128, multiple=16)
    (768, [0, 640, 1280])
    >>> tile_starts(900, 1024, 128)
    (900, [0])
    """
    if length <= tile_size:
        return length, [0]
    n = -(-(length - overlap) // (tile_size - overlap))
    side = -(-(length + (n - 1) * overlap) // n)
    side = min(-(-side // multiple) * multiple, tile_size)
    starts = np.linspace(0, length - side, n).round().astype(int)
    return side, starts.tolist()


@torch.inference_mode()
def predict_proba_image(model, image, *, stride, device, tile_size, tile_overlap, tile_batch,
                        autocast_dtype=None, scale=1.0):
    """Class probabilities (3, H, W) float32 of one standardised image.

    Images no larger than ``tile_size`` go through in one piece. Larger ones
    are cut into the fewest tiles of at most ``tile_size`` pixels that
    overlap by at least ``tile_overlap`` pixels, spread evenly
    (:func:`tile_starts`), predicted ``tile_batch`` at a time, and blended
    with weights that fade towards each tile's edge, so that memory is
    bounded by the tile batch.
    """
    h, w = image.shape
    if tile_size is None or (h <= tile_size and w <= tile_size):
        logits = predict_logits_whole(model, image, stride, device, autocast_dtype, scale)
        return torch.softmax(logits, 0).cpu().numpy()
    th, tops = tile_starts(h, tile_size, tile_overlap, stride)
    tw, lefts = tile_starts(w, tile_size, tile_overlap, stride)
    weights = np.outer(_ramp(th, tile_overlap), _ramp(tw, tile_overlap))
    acc = np.zeros((3, h, w), dtype=np.float32)
    norm = np.zeros((h, w), dtype=np.float32)
    corners = [(t, l) for t in tops for l in lefts]
    for start in range(0, len(corners), tile_batch):
        chunk = corners[start : start + tile_batch]
        batch = np.stack([image[t : t + th, l : l + tw] for t, l in chunk])[:, None]
        x = torch.from_numpy(batch).to(device)
        proba = torch.softmax(_run(model, x, stride, autocast_dtype, scale), 1).cpu().numpy()
        for (t, l), p in zip(chunk, proba):
            p *= weights
            acc[:, t : t + th, l : l + tw] += p
            norm[t : t + th, l : l + tw] += weights
    acc /= norm  # in place: the probabilities are the largest array here
    return acc


# ----------------------------------------------------------------------------
# Flips


def predict_proba_flips(image, predict_one):
    """Mean of ``predict_one`` over the 8 flips and rotations of ``image``.

    Each prediction is turned back to the image's orientation before it is
    added; the result is (3, H, W) float32 like ``predict_one``'s.
    """
    acc = None
    for k in range(4):
        for flip in (False, True):
            view = np.rot90(image, k)
            view = view[:, ::-1] if flip else view
            p = predict_one(np.ascontiguousarray(view))
            p = p[:, :, ::-1] if flip else p
            p = np.rot90(p, -k, axes=(1, 2))
            if acc is None:
                acc = np.ascontiguousarray(p)
            else:
                acc += p
    acc /= 8
    return acc


# ----------------------------------------------------------------------------
# From probabilities to classes


def outline_class_map(proba, class_weight, core_threshold=0.5, rows_per_chunk=1024):
    """Class map with cores from ``proba`` and outlines from re-weighted ``proba``.

    Core (1): particle probability >= ``core_threshold``. Foreground (core or border, 2):
    ``p1/w1 + p2/w2 >= p0/w0``, i.e. particle-or-border wins once the class
    weights ``w`` of the loss are divided out. Background (0) elsewhere.
    Computed in row chunks to bound memory.
    """
    w = np.asarray(class_weight, dtype=np.float32)
    out = np.empty(proba.shape[1:], dtype=np.uint8)
    for start in range(0, proba.shape[1], rows_per_chunk):
        p = proba[:, start : start + rows_per_chunk]
        chunk = np.where(p[1] / w[1] + p[2] / w[2] >= p[0] / w[0], 2, 0).astype(np.uint8)
        chunk[p[1] >= core_threshold] = 1
        out[start : start + rows_per_chunk] = chunk
    return out


def class_map(proba, rows_per_chunk=1024):
    """``proba.argmax(0)`` as uint8, in row chunks (argmax makes int64)."""
    out = np.empty(proba.shape[1:], dtype=np.uint8)
    for start in range(0, proba.shape[1], rows_per_chunk):
        out[start : start + rows_per_chunk] = proba[:, start : start + rows_per_chunk].argmax(0)
    return out
