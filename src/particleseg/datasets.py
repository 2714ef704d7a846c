"""Data sets: synthetic EM-like particles, the EMPS data set, a built-in sample.

:func:`make_particles` plays the role of scikit-learn's ``make_blobs``: tests,
docs and examples use it. :func:`load_emps` reads a folder laid out like the
Electron Microscopy Particle Segmentation (EMPS) data set, and
:func:`fetch_emps` downloads that data set for users who have a network.
"""

from __future__ import annotations

import numbers
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from sklearn.utils import check_random_state

__all__ = ["make_particles", "load_emps", "fetch_emps", "load_sample", "EMPS_URL"]

#: Where :func:`fetch_emps` downloads the EMPS data set from (a zip archive of
#: its public repository, MIT licence).
EMPS_URL = "https://github.com/by256/emps/archive/refs/heads/main.zip"


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def _check_number(value, name, low, high=None):
    """A real number in [low, high] (no upper bound when ``high`` is None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{name} must be a number; got {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}.")
    if value < low or (high is not None and value > high):
        expected = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise ValueError(f"{name} must be {expected}; got {value}.")
    return value


def _as_range(value, name):
    """A number or a (low, high) pair, as a (low, high) pair of floats."""
    if isinstance(value, (str, bytes)) or np.ndim(value) not in (0, 1):
        raise TypeError(f"{name} must be a number or a (low, high) pair; got {value!r}.")
    if np.ndim(value) == 0:
        low = high = _check_number(value, name, 0.0)
    else:
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) pair; got {value!r}.")
        low, high = (_check_number(v, name, 0.0) for v in value)
    if low > high:
        raise ValueError(f"{name} must satisfy 0 <= low <= high; got {value!r}.")
    return low, high


def make_particles(
    n_images: int = 4,
    shape=(128, 128),
    n_particles=(5, 15),
    radius=(5.0, 12.0),
    overlap: float = 0.3,
    noise: float = 0.05,
    polarity: str = "dark",
    blur: float = 1.0,
    random_state=None,
):
    """Make EM-like images of round particles and their instance maps.

    Each image shows roughly circular particles (slightly elliptical, random
    orientation) with some touching or overlapping, a smooth background
    gradient, blur and Gaussian noise, as in a bright-field TEM micrograph
    (``polarity="dark"``) or an SEM / dark-field image (``polarity="bright"``).

    Parameters
    ----------
    n_images : int, default=4
        Number of images.
    shape : (int, int), default=(128, 128)
        Height and width of each image in pixels.
    n_particles : int or (int, int), default=(5, 15)
        Number of particles per image, or a range drawn from uniformly.
    radius : float or (float, float), default=(5.0, 12.0)
        Particle radius in pixels, or a range drawn from uniformly.
    overlap : float, default=0.3
        How close particles may come: 0 keeps them apart (at least one pixel of
        background between them), 1 allows centres to coincide. Values around
        0.2-0.4 give many touching, partly overlapping particles. Where
        particles overlap, the one placed later lies on top.
    noise : float, default=0.05
        Standard deviation of the Gaussian noise, relative to the contrast
        between particle and background.
    polarity : {"dark", "bright", "mixed"}, default="dark"
        ``"dark"``: dark particles on a light background (bright-field TEM);
        ``"bright"``: the reverse; ``"mixed"``: chosen per image.
    blur : float, default=1.0
        Standard deviation, in pixels, of the Gaussian blur (the microscope's
        resolution).
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible data.

    Returns
    -------
    X : list of ndarray of uint8, shape (H, W)
        The images.
    y : list of ndarray of int32, shape (H, W)
        Instance maps: 0 background, 1..n particles.

    Examples
    --------
    >>> from particleseg.datasets import make_particles
    >>> X, y = make_particles(n_images=2, shape=(64, 64), random_state=0)
    >>> len(X), X[0].shape, X[0].dtype, y[0].dtype
    (2, (64, 64), dtype('uint8'), dtype('int32'))
    >>> int(y[0].max()) > 0
    True
    """
    n_images = _check_positive_int(n_images, "n_images")
    if np.ndim(shape) != 1 or len(shape) != 2:
        raise ValueError(f"shape must be a (height, width) pair; got {shape!r}.")
    height, width = (_check_positive_int(s, "shape") for s in shape)
    n_low, n_high = _as_range(n_particles, "n_particles")
    r_low, r_high = _as_range(radius, "radius")
    if r_low < 1:
        raise ValueError(f"radius must be at least 1 pixel; got {radius!r}.")
    overlap = _check_number(overlap, "overlap", 0.0, 1.0)
    noise = _check_number(noise, "noise", 0.0)
    blur = _check_number(blur, "blur", 0.0)
    if polarity not in ("dark", "bright", "mixed"):
        raise ValueError(f"polarity must be 'dark', 'bright' or 'mixed'; got {polarity!r}.")
    rng = check_random_state(random_state)

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    X, y = [], []
    for _ in range(n_images):
        n = int(rng.randint(int(n_low), int(n_high) + 1))
        labels = np.zeros((height, width), dtype=np.int32)
        centres, radii = [], []
        attempts = 0
        while len(centres) < n and attempts < 50 * max(n, 1):
            attempts += 1
            r = rng.uniform(r_low, r_high)
            c = (rng.uniform(0, height), rng.uniform(0, width))
            # Distance at which two particles just touch is r + r'; overlap
            # lets them come closer by that fraction.
            ok = all(
                np.hypot(c[0] - c2[0], c[1] - c2[1]) >= (1 - overlap) * (r + r2) + (1.5 if overlap == 0 else 0)
                for c2, r2 in zip(centres, radii)
            )
            if not ok:
                continue
            centres.append(c)
            radii.append(r)
        for k, (c, r) in enumerate(zip(centres, radii), start=1):
            ecc = rng.uniform(0.8, 1.0)
            angle = rng.uniform(0, np.pi)
            dr, dc = rows - c[0], cols - c[1]
            u = dr * np.cos(angle) + dc * np.sin(angle)
            v = -dr * np.sin(angle) + dc * np.cos(angle)
            inside = (u / r) ** 2 + (v / (r * ecc)) ** 2 <= 1.0
            labels[inside] = k
        # Drop particles hidden or cut into pieces by the ones on top, then
        # renumber 1..n.
        labels = _clean_instances(labels)

        dark = polarity == "dark" or (polarity == "mixed" and rng.rand() < 0.5)
        gradient = 0.1 * (rows / height * rng.uniform(-1, 1) + cols / width * rng.uniform(-1, 1))
        background = 0.75 + gradient
        particle_level = rng.uniform(0.25, 0.4)
        # Particles are a little brighter at their rim than at their centre, as
        # thick particles absorb more in their middle.
        inside = labels > 0
        depth = ndi.distance_transform_edt(inside)
        shading = np.where(inside, np.minimum(depth / 4.0, 1.0), 0.0)
        img = np.where(inside, particle_level + 0.1 * (1 - shading), background)
        img = ndi.gaussian_filter(img, blur) if blur > 0 else img
        contrast = np.mean(background) - particle_level
        img = img + rng.normal(0, noise * contrast, size=img.shape)
        if not dark:
            img = 1.0 - img
        X.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
        y.append(labels)
    return X, y


def _clean_instances(labels):
    """Keep the largest connected piece of each label; renumber 1..n."""
    out = np.zeros_like(labels)
    new = 0
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        piece, n = ndi.label(labels[sl] == k)
        if n == 0:
            continue
        sizes = np.bincount(piece.ravel())[1:]
        largest = piece == (np.argmax(sizes) + 1)
        if largest.sum() < 4:
            continue
        new += 1
        out[sl][largest] = new
    return out


def _read_png(path):
    import imageio.v3 as iio

    return iio.imread(path)


def load_emps(path, return_names: bool = True):
    """Read a folder laid out like the EMPS data set.

    The folder holds ``images/NAME.png`` (micrographs; RGB with equal channels
    is reduced to one channel) and ``segmaps/NAME.png`` (16-bit instance maps:
    0 background, k > 0 particle k) with the same names.

    Parameters
    ----------
    path : str or path-like
        The folder (for example ``fetch_emps()`` or a local copy).
    return_names : bool, default=True
        Also return the image names (file names without extension).

    Returns
    -------
    X : list of ndarray of uint8, shape (H, W)
        The micrographs, sorted by name. Sizes may differ.
    y : list of ndarray of int32, shape (H, W)
        The instance maps, each the shape of its image.
    names : list of str
        Only when ``return_names`` is true.

    Examples
    --------
    >>> from particleseg.datasets import load_emps
    >>> X, y, names = load_emps("../shared/data/emps-train")  # doctest: +SKIP
    >>> len(X)  # doctest: +SKIP
    366
    """
    from ._validation import check_image, check_same_shape

    root = Path(path)
    images_dir, segmaps_dir = root / "images", root / "segmaps"
    if not images_dir.is_dir() or not segmaps_dir.is_dir():
        raise FileNotFoundError(
            f"{root} is not an EMPS-style folder: expected the sub-folders 'images/' "
            "and 'segmaps/' with PNG files of the same names."
        )
    names = sorted(p.stem for p in images_dir.glob("*.png"))
    if not names:
        raise FileNotFoundError(f"No PNG images found in {images_dir}.")
    X, y = [], []
    for name in names:
        seg_path = segmaps_dir / f"{name}.png"
        if not seg_path.exists():
            raise FileNotFoundError(
                f"Image {name}.png has no label map: expected {seg_path}."
            )
        image = check_image(_read_png(images_dir / f"{name}.png"), f"image {name}")
        labels = np.asarray(_read_png(seg_path))
        if labels.ndim == 3:
            labels = labels[..., 0]
        labels = labels.astype(np.int32)
        check_same_shape(image, labels, f"image {name}", f"label map {name}")
        X.append(image)
        y.append(labels)
    if return_names:
        return X, y, names
    return X, y


def _default_data_home():
    return Path(
        os.environ.get("PARTICLESEG_DATA", Path.home() / ".cache" / "particleseg")
    )


def fetch_emps(data_home=None, download_if_missing: bool = True):
    """Download (once) the public EMPS data set and return its folder.

    Parameters
    ----------
    data_home : str or path-like, optional
        Cache folder. Defaults to ``$PARTICLESEG_DATA`` or
        ``~/.cache/particleseg``. If it already holds ``emps/images`` and
        ``emps/segmaps`` (or is itself such a folder), nothing is downloaded,
        so an existing copy works offline.
    download_if_missing : bool, default=True
        Download when no copy is found; with ``False``, raise instead.

    Returns
    -------
    path : pathlib.Path
        A folder to pass to :func:`load_emps`.

    Examples
    --------
    >>> from particleseg.datasets import fetch_emps, load_emps
    >>> X, y, names = load_emps(fetch_emps())  # doctest: +SKIP
    """
    home = Path(data_home) if data_home is not None else _default_data_home()
    for candidate in (home, home / "emps"):
        if (candidate / "images").is_dir() and (candidate / "segmaps").is_dir():
            return candidate
    target = home / "emps"
    if not download_if_missing:
        raise FileNotFoundError(
            f"No EMPS copy in {home} and download_if_missing=False. Pass data_home= "
            "pointing at a folder with images/ and segmaps/."
        )
    home.mkdir(parents=True, exist_ok=True)
    archive = home / "emps.zip"
    try:
        urllib.request.urlretrieve(EMPS_URL, archive)
    except OSError as exc:
        raise ConnectionError(
            f"Could not download the EMPS data set from {EMPS_URL} ({exc}). Download "
            f"it by hand and pass data_home= pointing at a folder with images/ and "
            "segmaps/."
        ) from exc
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(home / "_emps_extract")
    # The archive holds one top folder with images/ and segmaps/ inside.
    found = next(
        (p.parent for p in (home / "_emps_extract").rglob("segmaps") if (p.parent / "images").is_dir()),
        None,
    )
    if found is None:
        raise RuntimeError(f"The archive from {EMPS_URL} has no images/ and segmaps/ folders.")
    target.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "segmaps"):
        shutil.move(str(found / sub), str(target / sub))
    shutil.rmtree(home / "_emps_extract", ignore_errors=True)
    archive.unlink(missing_ok=True)
    return target


def load_sample():
    """A built-in synthetic micrograph for trying the library without data.

    A 512x512 8-bit image of touching dark particles on a light background,
    with its true instance map, generated deterministically by
    :func:`make_particles`; its pixel size is taken to be 0.5 nm.

    Returns
    -------
    image : ndarray of uint8, shape (512, 512)
    labels : ndarray of int32, shape (512, 512)
        The true particles.

    Examples
    --------
    >>> from particleseg.datasets import load_sample
    >>> image, labels = load_sample()
    >>> image.shape
    (512, 512)
    """
    X, y = make_particles(
        n_images=1, shape=(512, 512), n_particles=(70, 70), radius=(8, 20),
        overlap=0.25, noise=0.08, polarity="dark", random_state=2026,
    )
    return X[0], y[0]
