"""Synthetic figure annotations and particle-free backgrounds.

Micrographs often reach a user as figures, with a scale bar, its label, panel
letters, arrows and text burnt into the pixels. The network must call all of
these background. This module draws such annotations with real TrueType
fonts (the DejaVu families that matplotlib ships) so that

* training crops can carry them, labelled background
  (:class:`ScaleRobustAugmenter`);
* benchmarks can build figure-style test images with a scale bar of known
  length and value (:func:`draw_scale_bar`).

It also makes particle-free backgrounds (smooth, noisy or textured) that
teach the network not to see particles in texture.

Images here are float32 in [0, 1]; label maps are integer instance maps.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from .scalebar import _overlap

__all__ = [
    "DrawnScaleBar",
    "ScaleRobustAugmenter",
    "draw_scale_bar",
    "paste_annotations",
    "particle_free_background",
]

#: The fonts drawn with: matplotlib's DejaVu families.
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
)

#: Bar values and units drawn by :func:`draw_scale_bar`.
BAR_VALUES = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500)
BAR_UNITS = ("nm", "µm", "um", "nm", "nm", "µm", "mm", "Å")

_WORDS = ("Au", "Ag NPs", "SiO2", "TiO2", "Pt/C", "500 °C", "200 °C", "pH 7", "x50k",
          "HAADF", "TEM", "SEM", "t = 2 h", "Fe3O4", "ZnO", "CeO2", "25 °C", "1 h", "(111)")
_PANELS = ("a", "b", "c", "d", "e", "f", "A", "B", "C", "D", "a)", "b)", "c)", "(a)", "(b)",
           "(c)", "(d)", "i", "ii", "iii")


@lru_cache(maxsize=None)
def _font(name: str, size: int):
    from matplotlib import get_data_path
    from PIL import ImageFont

    return ImageFont.truetype(os.path.join(get_data_path(), "fonts", "ttf", name), size)


def _text_mask(text: str, font_name: str, size: int) -> np.ndarray:
    """A tight boolean mask of ``text`` rendered in ``font_name`` at ``size`` px."""
    from PIL import Image, ImageDraw

    font = _font(font_name, size)
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), text, fill=255, font=font)
    mask = np.asarray(canvas) > 127
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if len(rows) == 0:
        return mask
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _format_value(value) -> str:
    return f"{value:g}"


@dataclass
class DrawnScaleBar:
    """What :func:`draw_scale_bar` drew: the truth a scale-bar reader is scored on.

    Attributes
    ----------
    length_px : int
        Length of the bar, in pixels.
    value : float
        The number written in the label.
    unit : str
        The unit written in the label (``"nm"``, ``"µm"``, ``"um"``, ``"mm"``, ``"Å"``).
    text : str
        The whole label.
    bar_box, label_box, box : tuple of 4 int
        ``(top, left, bottom, right)`` of the bar, the label and, when a
        background box was drawn, the box (else the union of bar and label).
    """

    length_px: int
    value: float
    unit: str
    text: str
    bar_box: tuple
    label_box: tuple
    box: tuple


def _place(canvas_shape, block_shape, corner, margin):
    h, w = canvas_shape
    bh, bw = block_shape
    top = margin if corner[0] == "top" else h - bh - margin
    left = margin if corner[1] == "left" else w - bw - margin
    return max(top, 0), max(left, 0)


def draw_scale_bar(image, rng, *, length_px=None, value=None, unit=None, font=None,
                   font_size=None, polarity=None, boxed=None, ticks=None, label_side=None,
                   corner=None):
    """Draw a scale bar with its label onto a copy of ``image``.

    Every option left as None is drawn at random from ``rng``.

    Parameters
    ----------
    image : ndarray (H, W) float32 in [0, 1]
    rng : numpy.random.Generator
    length_px : int, optional
        Bar length in pixels.
    value, unit : optional
        The label, e.g. ``100`` and ``"nm"``.
    font : str, optional
        One of :data:`FONT_FILES`.
    font_size : int, optional
        In pixels.
    polarity : {"light", "dark"}, optional
        Colour of the bar and text.
    boxed : bool, optional
        Draw a box of the opposite colour behind bar and label.
    ticks : bool, optional
        Draw vertical end ticks.
    label_side : {"above", "below", "left", "right"}, optional
    corner : (str, str), optional
        ``("top" | "bottom", "left" | "right")``.

    Returns
    -------
    out : ndarray (H, W) float32
    mask : ndarray (H, W) bool
        The pixels of bar, label and box.
    truth : DrawnScaleBar
    """
    out = np.array(image, dtype=np.float32, copy=True)
    h, w = out.shape
    short = min(h, w)
    if length_px is None:
        length_px = int(rng.uniform(0.08, 0.3) * w)
    length_px = max(int(length_px), 8)
    value = value if value is not None else float(rng.choice(BAR_VALUES))
    unit = unit if unit is not None else str(rng.choice(BAR_UNITS))
    font = font if font is not None else str(rng.choice(FONT_FILES))
    if font_size is None:
        font_size = int(np.clip(rng.uniform(0.025, 0.06) * short, 9, 400))
    polarity = polarity if polarity is not None else ("light" if rng.random() < 0.6 else "dark")
    boxed = boxed if boxed is not None else bool(rng.random() < 0.5)
    ticks = ticks if ticks is not None else bool(rng.random() < 0.3)
    if label_side is None:
        label_side = str(rng.choice(["above", "below", "below", "right", "left"]))
    if corner is None:
        corner = (str(rng.choice(["top", "bottom", "bottom", "bottom"])),
                  str(rng.choice(["left", "right", "right"])))
    space = " " if rng.random() < 0.8 else ""
    text = f"{_format_value(value)}{space}{unit}"
    glyphs = _text_mask(text, font, font_size)
    thickness = max(2, int(round(font_size * rng.uniform(0.2, 0.5))))
    tick_h = thickness * 3 if ticks else thickness
    gap = max(2, font_size // 4)
    th, tw = glyphs.shape
    # Layout in a local block: bar row and text.
    if label_side in ("above", "below"):
        bw = max(length_px, tw)
        bh = tick_h + gap + th
        bar_left = (bw - length_px) // 2
        text_left = (bw - tw) // 2
        if label_side == "above":
            text_top, bar_top = 0, th + gap + (tick_h - thickness) // 2
        else:
            bar_top, text_top = (tick_h - thickness) // 2, tick_h + gap
    else:
        bw = length_px + gap * 2 + tw
        bh = max(tick_h, th)
        bar_top = (bh - thickness) // 2
        text_top = (bh - th) // 2
        if label_side == "right":
            bar_left, text_left = 0, length_px + gap * 2
        else:
            text_left, bar_left = 0, tw + gap * 2
    pad = max(3, font_size // 3) if boxed else 0
    block_h, block_w = bh + 2 * pad, bw + 2 * pad
    if block_h >= h or block_w >= w:
        raise ValueError(f"a scale bar of {block_w}x{block_h} px does not fit a {w}x{h} image")
    margin = int(rng.uniform(0.01, 0.05) * short)
    top, left = _place((h, w), (block_h, block_w), corner, margin)
    top, left = min(top, h - block_h), min(left, w - block_w)  # the margin may not fit
    fg = float(rng.uniform(0.9, 1.0)) if polarity == "light" else float(rng.uniform(0.0, 0.1))
    bg = 1.0 - fg
    mask = np.zeros((h, w), dtype=bool)
    if boxed:
        out[top : top + block_h, left : left + block_w] = bg
        mask[top : top + block_h, left : left + block_w] = True
    oy, ox = top + pad, left + pad
    b_top, b_left = oy + bar_top, ox + bar_left
    out[b_top : b_top + thickness, b_left : b_left + length_px] = fg
    mask[b_top : b_top + thickness, b_left : b_left + length_px] = True
    if ticks:
        t_top = oy + bar_top - (tick_h - thickness) // 2
        tick_w = max(1, thickness // 2)
        for x in (b_left, b_left + length_px - tick_w):
            out[t_top : t_top + tick_h, x : x + tick_w] = fg
            mask[t_top : t_top + tick_h, x : x + tick_w] = True
    t_top, t_left = oy + text_top, ox + text_left
    region = out[t_top : t_top + th, t_left : t_left + tw]
    region[glyphs] = fg
    mask[t_top : t_top + th, t_left : t_left + tw] |= glyphs
    if not boxed:  # the label's outline: what an annotation mask should cover
        mask |= ndi.binary_dilation(mask, iterations=max(1, font_size // 10))
    truth = DrawnScaleBar(
        length_px=length_px, value=float(value), unit=unit, text=text,
        bar_box=(b_top, b_left, b_top + thickness, b_left + length_px),
        label_box=(t_top, t_left, t_top + th, t_left + tw),
        box=(top, left, top + block_h, left + block_w),
    )
    return out, mask, truth


def _draw_text(out, mask, rng, text, size, avoid=()):
    """Draw ``text`` at a random place, clear of the boxes in ``avoid``.

    Boxes are (top, left, bottom, right). A place that overlaps one is drawn
    again from a generator seeded by the first place, so ``rng`` draws the
    same numbers with or without ``avoid``. Returns the box drawn, or None
    when the text does not fit or no clear place is found.
    """
    h, w = out.shape
    glyphs = _text_mask(text, str(rng.choice(FONT_FILES)), size)
    th, tw = glyphs.shape
    if th + 4 >= h or tw + 4 >= w:
        return None
    fg = float(rng.uniform(0.9, 1.0)) if rng.random() < 0.6 else float(rng.uniform(0.0, 0.1))
    boxed = rng.random() < 0.35
    pad = max(2, size // 4) if boxed else 0
    top = int(rng.integers(0, h - th - 2 * pad))
    left = int(rng.integers(0, w - tw - 2 * pad))
    again = None
    for _ in range(50):
        box = (top, left, top + th + 2 * pad, left + tw + 2 * pad)
        if not any(_overlap(box, b) for b in avoid):
            break
        if again is None:
            again = np.random.default_rng([top, left])
        top = int(again.integers(0, h - th - 2 * pad))
        left = int(again.integers(0, w - tw - 2 * pad))
    else:
        return None
    if boxed:
        out[top : top + th + 2 * pad, left : left + tw + 2 * pad] = 1.0 - fg
        mask[top : top + th + 2 * pad, left : left + tw + 2 * pad] = True
    region = out[top + pad : top + pad + th, left + pad : left + pad + tw]
    region[glyphs] = fg
    mask[top + pad : top + pad + th, left + pad : left + pad + tw] |= glyphs
    return box


def _draw_arrow(out, mask, rng):
    from PIL import Image, ImageDraw

    h, w = out.shape
    length = rng.uniform(0.1, 0.35) * min(h, w)
    angle = rng.uniform(0, 2 * math.pi)
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
    width = int(rng.integers(2, max(3, int(min(h, w) * 0.015)) + 1))
    head = width * 3
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line([(x0, y0), (x1, y1)], fill=255, width=width)
    back = angle + math.pi
    left = (x1 + head * math.cos(back + 0.45), y1 + head * math.sin(back + 0.45))
    right = (x1 + head * math.cos(back - 0.45), y1 + head * math.sin(back - 0.45))
    draw.polygon([(x1, y1), left, right], fill=255)
    drawn = np.asarray(canvas) > 127
    out[drawn] = float(rng.uniform(0.9, 1.0)) if rng.random() < 0.6 else float(rng.uniform(0, 0.1))
    mask |= drawn


def paste_annotations(image, labels, rng, *, n_max=3):
    """Draw 1 to ``n_max`` figure annotations; the pixels they cover become background.

    The annotations are a scale bar with its label, panel letters, words or
    numbers with or without a box, and arrows, in white or black.

    Parameters
    ----------
    image : ndarray (H, W) float32 in [0, 1]
    labels : ndarray (H, W) int
        Instance map; pixels under an annotation are set to 0.
    rng : numpy.random.Generator

    Returns
    -------
    image, labels, mask
    """
    out = np.array(image, dtype=np.float32, copy=True)
    labels = np.array(labels, copy=True)
    mask = np.zeros(out.shape, dtype=bool)
    short = min(out.shape)
    for _ in range(int(rng.integers(1, n_max + 1))):
        kind = rng.choice(["bar", "panel", "text", "arrow"], p=[0.35, 0.25, 0.25, 0.15])
        size = int(np.clip(rng.uniform(0.05, 0.16) * short, 9, 200))
        try:
            if kind == "bar":
                out, bar_mask, _ = draw_scale_bar(out, rng, length_px=int(rng.uniform(0.2, 0.6) * out.shape[1]),
                                                  font_size=size)
                mask |= bar_mask
            elif kind == "panel":
                _draw_text(out, mask, rng, str(rng.choice(_PANELS)), int(size * 1.3))
            elif kind == "text":
                _draw_text(out, mask, rng, str(rng.choice(_WORDS)), size)
            else:
                _draw_arrow(out, mask, rng)
        except ValueError:  # too large for this crop: skip it
            continue
    labels[mask] = 0
    return out, labels, mask


def particle_free_background(shape, rng):
    """A particle-free image: smooth gradients, noise and film-like texture.

    Parameters
    ----------
    shape : (int, int)
    rng : numpy.random.Generator

    Returns
    -------
    image : ndarray float32 in [0, 1]
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0.15, 0.85)
    gradient = rng.uniform(-0.3, 0.3) * (xx / max(w, 1) - 0.5) + rng.uniform(-0.3, 0.3) * (yy / max(h, 1) - 0.5)
    image = base + gradient
    for _ in range(int(rng.integers(1, 4))):  # texture at one to three scales
        sigma = float(np.exp(rng.uniform(np.log(0.7), np.log(12))))
        noise = ndi.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma)
        noise /= noise.std() + 1e-6
        image = image + noise * rng.uniform(0.01, 0.12)
    if rng.random() < 0.3:  # a few faint blobs: contamination, not particles
        blobs = ndi.gaussian_filter((rng.random((h, w)) < 0.0005).astype(np.float32), rng.uniform(3, 10))
        blobs /= blobs.max() + 1e-6
        image = image + rng.choice([-1, 1]) * blobs * rng.uniform(0.03, 0.1)
    image = image + rng.standard_normal((h, w)).astype(np.float32) * rng.uniform(0.0, 0.05)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _rescale(image, labels, factor):
    """Resize an image (area/bilinear) and its labels (nearest) by ``factor``."""
    import cv2

    h, w = image.shape
    nh, nw = max(int(round(h * factor)), 1), max(int(round(w * factor)), 1)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (nw, nh), interpolation=interp)
    rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.intp), w - 1)
    return out.astype(np.float32), labels[rows[:, None], cols[None, :]]


class ScaleRobustAugmenter:
    """Training augmentation for a network that must serve every magnification.

    Each call, in order:

    1. with probability ``p_background``, replaces the window by a
       particle-free background (:func:`particle_free_background`), labelled
       background everywhere (a hard negative);
    2. otherwise rescales it by a factor drawn log-uniformly from
       ``scale_range`` (with probability ``p_rescale``), so particles reach
       the network at many sizes, and cuts a window of
       ``window_factor / max(scale_range)`` ... no larger than needed;
    3. applies ``base`` (an :class:`~particleseg.augmentation.Augmenter`);
    4. with probability ``p_annotations``, pastes figure annotations
       (:func:`paste_annotations`), labelled background.

    It is called by the training loop with a window of
    ``window_factor * crop_size`` pixels (:attr:`window_factor`), enough to
    shrink by ``min(scale_range)`` and still fill a crop.

    Parameters
    ----------
    base : callable or None
        ``base(image, labels, random_state=...)``; its own resizing step, if
        any, should be off.
    crop_size : int
        The training crop size.
    scale_range : (float, float), default=(0.5, 2.0)
    p_rescale, p_background, p_annotations : float
    """

    def __init__(self, base, crop_size, scale_range=(0.5, 2.0), p_rescale=0.8,
                 p_background=0.08, p_annotations=0.3):
        self.base = base
        self.crop_size = crop_size
        self.scale_range = scale_range
        self.p_rescale = p_rescale
        self.p_background = p_background
        self.p_annotations = p_annotations

    @property
    def window_factor(self):
        """How many crop sizes the training loop should hand over."""
        return 1.5 / min(self.scale_range[0], 1.0)

    def __call__(self, image, labels, random_state=None):
        rng = np.random.default_rng(random_state)
        want = int(math.ceil(self.crop_size * 1.5))
        if rng.random() < self.p_background:
            side = (min(image.shape[0], want), min(image.shape[1], want))
            image = particle_free_background(side, rng)
            labels = np.zeros(side, dtype=labels.dtype)
        else:
            factor = 1.0
            if rng.random() < self.p_rescale:
                low, high = self.scale_range
                factor = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            size = int(math.ceil(want / factor))
            h, w = image.shape
            th, tw = min(size, h), min(size, w)
            top = int(rng.integers(0, h - th + 1))
            left = int(rng.integers(0, w - tw + 1))
            image = image[top : top + th, left : left + tw]
            labels = labels[top : top + th, left : left + tw]
            if factor != 1.0:
                image, labels = _rescale(np.ascontiguousarray(image), labels, factor)
        if self.base is not None:
            image, labels = self.base(image, labels, random_state=int(rng.integers(2**31 - 1)))
        if rng.random() < self.p_annotations:
            image, labels, _ = paste_annotations(image, labels, rng)
        return image, labels
