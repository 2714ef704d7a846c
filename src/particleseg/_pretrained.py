"""Pretrained models that ship inside the package (no download, works offline)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["pretrained", "pretrained_models"]

_MODELS_PACKAGE = "particleseg.models"


def _model_files():
    folder = resources.files(_MODELS_PACKAGE)
    return {
        Path(entry.name).stem: entry
        for entry in folder.iterdir()
        if entry.name.endswith(".safetensors")
    }


def pretrained_models():
    """List the pretrained models bundled with particleseg.

    Returns
    -------
    models : list of dict
        One dict per model with ``name``, ``backbone``, ``border_width``,
        ``training_data``, ``validation`` (metrics on held-out images, when
        recorded), ``epochs``, ``file_size_mb`` and ``path``.

    Examples
    --------
    >>> from particleseg import pretrained_models
    >>> names = [m["name"] for m in pretrained_models()]
    """
    from safetensors import safe_open

    out = []
    for name, entry in sorted(_model_files().items()):
        with resources.as_file(entry) as path:
            with safe_open(str(path), framework="pt") as f:
                config = json.loads((f.metadata() or {}).get("particleseg", "{}"))
            extra = config.get("extra", {})
            out.append({
                "name": name,
                "backbone": config.get("params", {}).get("backbone"),
                "border_width": config.get("border_width"),
                "training_data": extra.get("training_data"),
                "validation": extra.get("validation"),
                "epochs": config.get("n_iter"),
                "file_size_mb": round(Path(path).stat().st_size / 1e6, 1),
                "path": str(path),
            })
    return out


def pretrained(name: str = "emps", device: str = "auto"):
    """Load a pretrained, fitted :class:`ParticleSegmenter` bundled with particleseg.

    The weights are stored inside the installed package and loaded without
    executing code (safetensors), so this works offline.

    Parameters
    ----------
    name : str, default="emps"
        Model name; see :func:`pretrained_models`.
    device : str, default="auto"
        "auto" (a CUDA GPU when present, else the CPU), "cpu" or "cuda".

    Returns
    -------
    segmenter : ParticleSegmenter
        Ready for ``predict``; ``segmenter.model_info_`` describes how it was
        trained.

    Examples
    --------
    >>> from particleseg import pretrained, count_particles
    >>> from particleseg.datasets import load_sample
    >>> image, _ = load_sample()
    >>> seg = pretrained("emps")  # doctest: +SKIP
    >>> n = count_particles(seg.predict(image))  # doctest: +SKIP
    """
    from .segmenter import ParticleSegmenter

    files = _model_files()
    if name not in files:
        available = ", ".join(sorted(files)) or "none"
        raise ValueError(
            f"No pretrained model named {name!r}; available: {available}. "
            "See particleseg.pretrained_models()."
        )
    with resources.as_file(files[name]) as path:
        return ParticleSegmenter.load(path, device=device)
