"""The torch side of ParticleSegmenter: crops, batches, loss, training loop,
tiled prediction and checkpoints.

Nothing here validates user input: :mod:`particleseg.segmenter` does that and
hands over clean arrays (images scaled to [0, 1] as float32, targets as
instance or class maps).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ._models import forward_logits
from .annotation import annotate_borders

IGNORE = 255  # target value of padding: the loss ignores it


# ----------------------------------------------------------------------------
# Devices and threads


def resolve_device(device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else as given."""
    if device == "auto" or device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f'device must be "auto", "cpu", "cuda" or "cuda:N"; got {device!r}.'
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f'device={device!r} was asked for but no CUDA GPU is available; use device="cpu" '
            'or "auto".'
        )
    return dev


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


# ----------------------------------------------------------------------------
# The loop


@dataclass
class TrainState:
    """Everything needed to continue training where it stopped."""

    epoch: int = 0
    history: list = field(default_factory=list)
    rng_state: dict | None = None


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
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None]).to(device)
        t = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64)).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        logits = forward_logits(model, x)
        loss = F.cross_entropy(logits, t, weight=weight, ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        n_seen += len(idx)
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{total / n_seen:.4f}")
    return total / max(n_seen, 1)


# ----------------------------------------------------------------------------
# Prediction


def _window_weights(size, overlap):
    """A separable weight that ramps from ~0 at a tile's edge to 1 inside."""
    ramp = np.ones(size, dtype=np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = r
        ramp[-overlap:] = r[::-1]
    return np.outer(ramp, ramp)


def _pad_to(x, multiple):
    """Reflect-pad a (N, 1, H, W) tensor so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def bf16_supported() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
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


@torch.inference_mode()
def predict_proba_image(model, image, *, stride, device, tile_size, tile_overlap, tile_batch,
                        autocast_dtype=None, scale=1.0):
    """Class probabilities (3, H, W) float32 of one standardised image.

    Images no larger than ``tile_size`` go through in one piece. Larger ones
    are cut into ``tile_size`` tiles overlapping by ``tile_overlap`` pixels,
    predicted ``tile_batch`` at a time, and blended with weights that fade
    towards each tile's edge, so that memory is bounded by the tile batch.
    """
    h, w = image.shape
    if tile_size is None or (h <= tile_size and w <= tile_size):
        logits = predict_logits_whole(model, image, stride, device, autocast_dtype, scale)
        return torch.softmax(logits, 0).cpu().numpy()
    tile = tile_size
    step = tile - tile_overlap
    padded = image
    if h < tile or w < tile:  # one side smaller than a tile: reflect-pad it
        padded = np.pad(image, ((0, max(tile - h, 0)), (0, max(tile - w, 0))), mode="reflect")
    ph, pw = padded.shape
    tops = list(range(0, max(ph - tile, 0) + 1, step))
    lefts = list(range(0, max(pw - tile, 0) + 1, step))
    if tops[-1] + tile < ph:
        tops.append(ph - tile)
    if lefts[-1] + tile < pw:
        lefts.append(pw - tile)
    weights = _window_weights(tile, tile_overlap)
    acc = np.zeros((3, ph, pw), dtype=np.float32)
    norm = np.zeros((ph, pw), dtype=np.float32)
    corners = [(t, l) for t in tops for l in lefts]
    for start in range(0, len(corners), tile_batch):
        chunk = corners[start : start + tile_batch]
        batch = np.stack([padded[t : t + tile, l : l + tile] for t, l in chunk])[:, None]
        x = torch.from_numpy(batch).to(device)
        proba = torch.softmax(_run(model, x, stride, autocast_dtype, scale), 1).cpu().numpy()
        for (t, l), p in zip(chunk, proba):
            acc[:, t : t + tile, l : l + tile] += p * weights
            norm[t : t + tile, l : l + tile] += weights
    acc /= norm  # in place: the probabilities are the largest array here
    return acc[:, :h, :w]


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
