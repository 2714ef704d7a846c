"""Model files that cannot execute code: safetensors weights + a JSON header.

A model file is one ``.safetensors`` file. Its metadata holds a JSON record
(format version, versions of particleseg and torch, the estimator's
parameters, normalisation, history) and the SHA-256 of the weights, so that a
file changed after saving is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

#: Version of the file layout. Files with a larger number come from a newer,
#: incompatible particleseg and are refused.
FORMAT_VERSION = 1

_PARAMS_SAVED = (
    "backbone", "max_epochs", "batch_size", "learning_rate", "crop_size", "crops_per_image",
    "normalize", "mean", "std", "intensity_range", "validation_fraction", "tile_size",
    "tile_overlap", "inference_precision", "inference_scale", "calibrate_outlines", "test_time_flips",
    "min_confidence", "random_state",
)


class ModelFileError(ValueError):
    """A model file is corrupt, tampered with, or from an incompatible version."""


def _digest(tensors):
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_model_file(seg, path, half_precision=False):
    """Write a fitted ParticleSegmenter to ``path`` (see module docstring)."""
    import torch
    from safetensors.torch import save_file

    from . import __version__

    state = seg.model_.state_dict()
    tensors = {}
    for name, t in state.items():
        t = t.detach().to("cpu").contiguous()
        if half_precision and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[name] = t
    params = seg.get_params(deep=False)
    config = {
        "format_version": FORMAT_VERSION,
        "particleseg_version": __version__,
        "torch_version": torch.__version__,
        "params": {k: _jsonable(params[k]) for k in _PARAMS_SAVED},
        "border_width": seg.border_width_,
        "normalization": list(seg.normalization_) if seg.normalization_ is not None else None,
        "class_weight": _jsonable(seg.class_weight_),
        "history": seg.history_,
        "n_iter": seg.n_iter_,
        "half_precision": bool(half_precision),
        "particle_diameter": getattr(seg, "particle_diameter_", None),
        "confidence_calibration": getattr(seg, "confidence_calibration_", None),
        "min_confidence": getattr(seg, "min_confidence_", None),
        "extra": getattr(seg, "model_info_", {}),
    }
    metadata = {
        "particleseg": json.dumps(config),
        "sha256": _digest(tensors),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_model_file(path):
    """Read and verify a model file; return ``(config, float32 state_dict)``."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path} is not a readable particleseg model file (corrupt or truncated?): {exc}"
        ) from None
    if "particleseg" not in metadata:
        raise ModelFileError(
            f"{path} is a safetensors file but not a particleseg model (no 'particleseg' header)."
        )
    try:
        config = json.loads(metadata["particleseg"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path} has a damaged header: {exc}") from None
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by particleseg {config.get('particleseg_version', '?')} in "
            f"model format {version}; this particleseg reads formats up to {FORMAT_VERSION}. "
            "Upgrade particleseg to load it."
        )
    if metadata.get("sha256") != _digest(tensors):
        raise ModelFileError(
            f"{path} has been modified since it was saved: its weights do not match their "
            "checksum. Use an intact copy."
        )
    state = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in tensors.items()}
    return config, state


def load_segmenter(cls, path, device="auto"):
    """Build a fitted ``cls`` (ParticleSegmenter) from a model file."""
    from ._models import build_model
    from ._models import resolve_device

    config, state = read_model_file(path)
    params = dict(config["params"])
    known = set(cls().get_params(deep=False))
    seg = cls(**{k: v for k, v in params.items() if k in known}, device=device)
    dev = resolve_device(device)
    model = build_model(params["backbone"])
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"{path} does not match a {params['backbone']} model: {exc}") from None
    import torch

    seg.model_ = model.to(dev).to(memory_format=torch.channels_last).eval()
    seg.device_ = dev
    seg.classes_ = np.array([0, 1, 2])
    seg.class_weight_ = np.asarray(config["class_weight"], dtype=np.float32)
    norm = config["normalization"]
    seg.normalization_ = tuple(norm) if norm is not None else None
    seg.history_ = config["history"]
    seg.n_iter_ = config["n_iter"]
    seg.border_width_ = config["border_width"]
    seg.model_info_ = config.get("extra", {})
    # Added after format 1 was first written; older files have none of them.
    seg.particle_diameter_ = config.get("particle_diameter")
    seg.confidence_calibration_ = config.get("confidence_calibration")
    seg.min_confidence_ = config.get("min_confidence")
    # Where the model came from, for the record of a model fine-tuned from it.
    seg.model_file_ = {"path": str(path), "format_version": config["format_version"]}
    if config["border_width"] is not None:
        from .annotation import BorderAnnotator

        seg.annotator = BorderAnnotator(width=config["border_width"])
    return seg
