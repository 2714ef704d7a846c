"""Read the scale bar of a figure image, and find its annotations.

Micrographs often reach a user as figures: a PNG or JPEG with a scale bar
("100 nm"), panel letters and labels burnt into the pixels, and no pixel size
in the file. This module

* finds the scale bar and measures its length in pixels
  (:func:`find_scale_bar`), reads its label with an OCR engine when the
  optional extra is installed (``pip install "particleseg[scalebar]"``, which
  brings RapidOCR on ONNX Runtime, with its models, working offline), and
  turns both into a pixel size;
* marks the pixels of scale bars, text labels, panel letters and their boxes
  (:func:`annotation_mask`), so that particles found there can be dropped
  (:func:`remove_annotated_particles`).

Everything here works on plain arrays: 2-D grey images of any dtype (8-bit,
16-bit or float) or RGB, from 256 to about 8000 pixels a side. Large images
are searched at a reduced size; the bar is then measured at full resolution.

The bar is found without OCR: a long, thin, uniform rectangle, much lighter or
darker than what lies above and below it, with text of its own colour next to
it (above, below, left or right). Without the OCR extra the bar is still
found and measured, but its value is unknown (``ScaleBar.value`` is None and
``ScaleBar.message`` says how to get it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial

import numpy as np
from scipy import ndimage as ndi

from ._validation import check_image, check_instance_map, check_mask, check_same_shape

__all__ = [
    "Calibration",
    "ScaleBar",
    "annotation_mask",
    "calibrate",
    "find_scale_bar",
    "parse_scale_label",
    "remove_annotated_particles",
    "MIN_CONFIDENCE",
    "OCR_HINT",
]

#: A reading below this confidence is not used as a calibration.
MIN_CONFIDENCE = 0.5
#: What to tell a user who has no OCR engine.
OCR_HINT = 'pip install "particleseg[scalebar]"'

#: Nanometres per unit of the labels understood.
_ANGSTROM = "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}"
_NM_PER_UNIT = {"nm": 1.0, "\N{MICRO SIGN}m": 1e3, "mm": 1e6, _ANGSTROM: 0.1, "pm": 1e-3}
#: Bars of one image whose pixel sizes differ by more than this disagree.
_AGREEMENT = 0.05
#: Largest side searched at full resolution; larger images are reduced first.
_SEARCH_SIDE = 1100
#: A bar whose grounds above and below differ still has the same ground on
#: both sides along at least this fraction of its columns (:func:`_measure_bar`).
_ALIKE_SIDES = 1 / 3


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar found in an image by :func:`find_scale_bar`.

    Boxes are ``(top, left, bottom, right)`` in pixels of the full image, with
    ``bottom`` and ``right`` exclusive (``image[top:bottom, left:right]``).

    Attributes
    ----------
    length_px : float
        Length of the bar in pixels, from outer end to outer end (end ticks
        included), to a fraction of a pixel.
    bar_box : tuple of 4 int
        The bar (with its end ticks).
    label_box : tuple of 4 int or None
        The label next to the bar; None when none was found.
    text : str or None
        The label as read by OCR; None when it was not read.
    value : float or None
        The number of the label (``100`` for "100 nm").
    unit : str or None
        The unit of the label: ``"nm"``, ``"µm"``, ``"mm"``, ``"Å"`` or
        ``"pm"`` ("um" is read as ``"µm"``, "A" as ``"Å"``).
    confidence : float
        From 0 to 1: how sure the reading is (the OCR score times the
        geometric checks). A reading below :data:`MIN_CONFIDENCE` is not a
        calibration (:attr:`calibrated` is False).
    polarity : {"light", "dark"}
        A light bar on a darker ground, or a dark bar on a lighter one.
    box : tuple of 4 int
        The whole annotation: bar, label and the background box behind them
        when there is one.
    message : str
        Why there is no calibration, when there is none; else ``""``.
    others : tuple of ScaleBar
        Other bars read in the same image (the panels of a figure). When one
        of them gives a pixel size more than 5 % away from this one, the
        image has no single scale: :attr:`calibrated` is False.

    Examples
    --------
    >>> from particleseg.scalebar import ScaleBar
    >>> bar = ScaleBar(length_px=200.0, bar_box=(480, 300, 486, 500), text="1 µm",
    ...                value=1.0, unit="µm", confidence=0.97)
    >>> bar.pixel_size, bar.pixel_size_nm, bar.calibrated
    (0.005, 5.0, True)
    >>> bar.describe()
    '"1 µm" = 200.0 px'
    """

    length_px: float
    bar_box: tuple
    label_box: tuple | None = None
    text: str | None = None
    value: float | None = None
    unit: str | None = None
    confidence: float = 0.0
    polarity: str = "light"
    box: tuple = field(default=None)
    message: str = ""
    others: tuple = ()

    @property
    def pixel_size(self):
        """Size of one pixel in :attr:`unit` (``value / length_px``), or None."""
        if self.value is None or not self.length_px:
            return None
        return self.value / self.length_px

    @property
    def pixel_size_nm(self):
        """Size of one pixel in nanometres, or None."""
        if self.pixel_size is None or self.unit not in _NM_PER_UNIT:
            return None
        return self.pixel_size * _NM_PER_UNIT[self.unit]

    @property
    def calibrated(self) -> bool:
        """True when the bar was read with at least :data:`MIN_CONFIDENCE`, and no
        other bar of the image (:attr:`others`) gives another pixel size."""
        return (self.pixel_size_nm is not None and self.confidence >= MIN_CONFIDENCE
                and not self.disagreeing)

    @property
    def disagreeing(self) -> tuple:
        """The :attr:`others` whose pixel size is more than 5 % away from this one."""
        if self.pixel_size_nm is None:
            return ()
        return tuple(o for o in self.others if o.pixel_size_nm is not None
                     and abs(o.pixel_size_nm / self.pixel_size_nm - 1) > _AGREEMENT)

    def describe(self) -> str:
        """A one-line account of the reading.

        Returns
        -------
        str
            Such as ``'"100 nm" = 212.0 px'``; when the value or unit used
            differs from what the OCR text says (the glyphs showed "mm"
            where OCR read "nm"), ``'"5nm" (read as 5 mm) = 146.0 px'``.
        """
        label = f'"{self.text}"' if self.text is not None else "an unread label"
        if self.text is not None and self.value is not None \
                and parse_scale_label(self.text) != (self.value, self.unit):
            label += f" (read as {self.value:g} {self.unit})"
        return f"{label} = {self.length_px:.1f} px"


# --------------------------------------------------------------------------
# Labels


#: Units as OCR spells them (after NFKC normalisation and lower case).
_UNIT_SPELLINGS = {
    "nm": "nm", "nrn": "nm",
    "um": "\N{MICRO SIGN}m", "\N{GREEK SMALL LETTER MU}m": "\N{MICRO SIGN}m",
    "\N{GREEK SMALL LETTER MU}um": "\N{MICRO SIGN}m",  # the tail of a small "µ" read as a "u"
    "\N{GREEK SMALL LETTER MU}ni": "\N{MICRO SIGN}m",  # an "m" read as "ni", as "rn" for "nm"
    # The micron, the old name of the micrometre; also a "µm" whose small "m" was lost.
    "\N{GREEK SMALL LETTER MU}": "\N{MICRO SIGN}m",
    "mm": "mm",
    "a": _ANGSTROM, "\N{LATIN SMALL LETTER A WITH RING ABOVE}": _ANGSTROM,
    "pm": "pm",
}
#: Letters and marks that OCR reads for digits and decimal points, and what they stand for.
_LOOKALIKES = str.maketrans("OoIl|,\N{MIDDLE DOT}", "00111..")
_LABEL = re.compile(r"^\s*([0-9OoIl|]+(?:[.,·][0-9Oo]+)?)\s*([^\s0-9]{1,3})\s*$")


def parse_scale_label(text):
    """Value and unit of a scale-bar label, or None when it is not one.

    Parameters
    ----------
    text : str
        The label, as written or as read by OCR: ``"100 nm"``, ``"1.5µm"``,
        ``"2 um"``, ``"50 Å"``, ``"0,5 mm"``.

    Returns
    -------
    (value, unit) or None
        ``unit`` is one of ``"nm"``, ``"µm"``, ``"mm"``, ``"Å"``, ``"pm"``.

    Examples
    --------
    >>> from particleseg.scalebar import parse_scale_label
    >>> parse_scale_label("100 nm")
    (100.0, 'nm')
    >>> parse_scale_label("0,5 um")
    (0.5, 'µm')
    >>> parse_scale_label("20:nm")              # a speck read as punctuation
    (20.0, 'nm')
    >>> parse_scale_label("Au NPs") is None
    True
    """
    if not isinstance(text, str):
        return None
    cleaned = text.strip().replace("\N{GREEK SMALL LETTER MU}", "\N{MICRO SIGN}")
    cleaned = cleaned.strip(".,:;'\"`²\u2018\u2019\u201c\u201d\N{MIDDLE DOT} ")
    match = _LABEL.match(cleaned)
    if match is None:
        return None
    number, unit = match.groups()
    digits = number.translate(_LOOKALIKES) if not number.isdigit() else number
    # Letters in the number are OCR confusions only next to real digits, or
    # alone as the "1" they look like ("I nm").
    if not (any(c.isdigit() for c in number) or number in ("I", "l", "|")):
        return None
    try:
        value = float(digits)
    except ValueError:
        return None
    # A speck between number and unit is read as punctuation ("20:nm").
    unit = unit.lstrip(":;.,'`\N{MIDDLE DOT}")
    unit = _UNIT_SPELLINGS.get(unicodedata.normalize("NFKC", unit).lower())
    if unit is None or not (value > 0 and math.isfinite(value)):
        return None
    return value, unit


#: The leading figures of the round numbers scale bars are labelled with.
_ROUND_MANTISSAS = (1, 1.5, 2, 2.5, 3, 4, 5, 7.5)
#: The values :func:`_likeliest_label` weighs: the round numbers, and any
#: other one-figure number, from 0.1 to 9000.
_LABEL_VALUES = tuple(round(m * 10.0 ** k, 6) for k in range(-1, 4)
                      for m in sorted({*_ROUND_MANTISSAS, *range(1, 10)}))


def _roundness(value) -> float:
    """How much a bar's value is believed, from how round it is: a factor <= 1.

    Scale bars are labelled with round numbers: 1, 1.5, 2, 2.5, 3, 4, 5 or
    7.5 times a power of ten (1.0); another one- or two-digit number ("60",
    "35") is less likely (0.8); three digits or more ("208", "1.25") are
    almost always a misread ("200" with a "0" read as "8"), and the reading
    is not used unless confirmed otherwise (0.5).
    """
    mantissa = value / 10.0 ** math.floor(math.log10(value))
    if any(abs(mantissa - m) < 1e-6 for m in _ROUND_MANTISSAS):
        return 1.0
    digits = f"{value:.6g}".replace(".", "").strip("0")
    return 0.8 if len(digits) <= 2 else 0.5


@lru_cache(maxsize=1)
def _ocr_engine():
    """The RapidOCR engine (built once), or None when the extra is missing."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:  # not installed, or installed without a working runtime
        return None
    import logging

    engine = RapidOCR()
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return engine


def _recognise(engine, crop):
    """(text, score) of a one-line crop (uint8, dark text on white)."""
    rgb = np.repeat(crop[..., None], 3, axis=2)
    result, _ = engine(rgb, use_det=False, use_cls=False, use_rec=True)
    if not result:
        return "", 0.0
    text, score = result[0]
    return str(text), float(score)


#: How much likelier, as a natural log, OCR's recogniser must find one unit
#: after the label's number than any other for its verdict to count
#: (:func:`_unit_by_odds`): e**3, 20 times; and than the other of "nm" and
#: "µm", the slip that changes a scale a thousandfold (a small "n" and "u"
#: differ by a pixel or two): e**5, about 150 times.
_UNIT_ODDS = 3.0
_NM_UM_ODDS = 5.0

#: How much likelier than any other unit an "mm" must be for the recogniser's
#: odds alone to confirm it (:func:`_unit_verdict`): e**6.5, about 650 times.
#: Millimetre bars are rare on micrographs, and an "nm" read as "mm" is a
#: millionfold slip; printed per reading while the rule was chosen, the odds
#: favoured "mm" by e**5.4 for a bold serif "25nm" (synthetic seed 22's figure
#: 39), and by e**6.9 to e**15 for the small "mm" labels they confirm.
_MM_ODDS = 6.5

#: The units :func:`_unit_by_odds` weighs, each with the spellings that count for it.
_ODDS_SPELLINGS = {
    "nm": ("nm",),
    "\N{MICRO SIGN}m": ("um", "\N{GREEK SMALL LETTER MU}m", "\N{MICRO SIGN}m"),
    "mm": ("mm",),
    "pm": ("pm",),
}


def _ctc_log_likelihoods(log_probs, sequences):
    """The log-probabilities a CTC recogniser's output gives to sequences of labels.

    ``log_probs``: (steps, classes) log-probabilities, class 0 the blank;
    ``sequences``: non-empty lists of class indices. The standard CTC
    forward pass, over each sequence's labels with a blank between and
    around them, all sequences at once. Returns an array, one per sequence.
    """
    lengths = np.array([len(labels) for labels in sequences])
    ext = np.zeros((len(sequences), 2 * lengths.max() + 1), dtype=int)
    for row, labels in zip(ext, sequences):
        row[1:2 * len(labels):2] = labels
    # (Past a sequence's end its row holds blanks: they never flow back.)
    alpha = np.full(ext.shape, -np.inf)
    alpha[:, 0] = log_probs[0, 0]
    alpha[:, 1] = log_probs[0, ext[:, 1]]
    # A step may skip the blank between two different labels.
    skip = np.zeros(ext.shape, bool)
    skip[:, 2:] = (ext[:, 2:] != 0) & (ext[:, 2:] != ext[:, :-2])
    for t in range(1, len(log_probs)):
        step = alpha.copy()
        step[:, 1:] = np.logaddexp(step[:, 1:], alpha[:, :-1])
        step[:, 2:] = np.where(skip[:, 2:], np.logaddexp(step[:, 2:], alpha[:, :-2]),
                               step[:, 2:])
        alpha = step + log_probs[t, ext]
    rows = np.arange(len(sequences))
    return np.logaddexp(alpha[rows, 2 * lengths], alpha[rows, 2 * lengths - 1])


def _recogniser_odds(engine, crop):
    """(log-probabilities (steps, classes), {character: class}) of OCR's recogniser on a crop.

    None when the recogniser cannot be reached (another engine or RapidOCR
    layout).
    """
    try:
        rec = engine.text_rec
        chars = rec.postprocess_op.character
        _, height, width = rec.rec_image_shape
        rgb = np.repeat(crop[..., None], 3, axis=2)
        ratio = max(width / height, crop.shape[1] / crop.shape[0])
        probs = rec.session(rec.resize_norm_img(rgb, ratio)[None].astype(np.float32))[0][0]
    except (AttributeError, TypeError, ValueError, IndexError):  # another RapidOCR layout
        return None
    return np.log(np.clip(probs, 1e-12, None)), {c: i for i, c in enumerate(chars)}


def _spelled_odds(log_probs, index, numbers):
    """{number: {unit: log-likelihood}} of each number followed by each unit's spellings.

    A unit's spellings count with and without a gap after the number;
    spellings with a character the recogniser lacks are left out.
    """
    texts, keys = [], []
    for number in numbers:
        for unit, spellings in _ODDS_SPELLINGS.items():
            for text in (number + gap + spelled for spelled in spellings for gap in ("", " ")):
                if all(c in index for c in text):
                    texts.append(text)
                    keys.append((number, unit))
    odds = {number: {} for number in numbers}
    if not texts:
        return odds
    scores = _ctc_log_likelihoods(log_probs, [[index[c] for c in text] for text in texts])
    for (number, unit), score in zip(keys, scores):
        odds[number][unit] = float(np.logaddexp(odds[number].get(unit, -np.inf), score))
    return odds


def _unit_verdict(odds, tail=False):
    """The unit of ``odds`` (unit: log-likelihood) clearly ahead of the others, or None.

    At least ``_UNIT_ODDS`` ahead of every other unit, and ``_NM_UM_ODDS``
    of the other of "nm" and "µm"; a "µm" only ``_UNIT_ODDS`` ahead of "nm"
    too when ``tail``, a glyph of the line reaching below it (the tail of
    the "µ", :func:`_has_descender`), which an "n" does not have. An "mm"
    must be ``_MM_ODDS`` ahead of every other unit.
    """
    if len(odds) < 2:
        return None
    best = max(odds, key=odds.get)
    pair = {"nm": "\N{MICRO SIGN}m", "\N{MICRO SIGN}m": "nm"}.get(best)
    if tail and best == "\N{MICRO SIGN}m":
        pair = None
    if any(odds[best] - odds[unit] < (
            _MM_ODDS if best == "mm" else _NM_UM_ODDS if unit == pair else _UNIT_ODDS)
           for unit in odds if unit != best):
        return None
    return best


def _unit_by_odds(engine, crop, number, tail=False):
    """The unit OCR's recogniser itself finds likeliest after ``number`` in a line's crop; or None.

    The recogniser scores every character at every step; its text is the
    likeliest character at each step, where a small "u" or "n" can lose to a
    sign that is no unit, or an "m" to a blank ("2u" for "2 um"). Here each
    unit (nm, µm, mm, pm), spelled after ``number`` (the digits of the
    line, as read) with or without a space, is scored over all the steps
    (:func:`_ctc_log_likelihoods`). The likeliest unit is returned when it is
    at least ``exp(_UNIT_ODDS)`` times as likely as any other (and "nm" and
    "µm" ``exp(_NM_UM_ODDS)`` times as likely as each other, unless ``tail``:
    :func:`_unit_verdict`); None when no unit is that clearly ahead, or the
    recogniser cannot be reached.
    """
    found = _recogniser_odds(engine, crop)
    if found is None:
        return None
    return _unit_verdict(_spelled_odds(*found, [number])[number], tail)


#: How far below the recogniser's own best reading, as a natural log, a
#: scale-bar label may explain a line for :func:`_likeliest_label` (e**6,
#: 400 times less likely): a line of other text explains no label.
_LABEL_FIT = 6.0


def _label_odds(engine, crop):
    """({value: {unit: log-likelihood}}, {value: log-likelihood}, best) of a line crop; or None.

    Every number of :data:`_LABEL_VALUES` spelled with every unit
    (:func:`_spelled_odds`), the values' totals over their units, and the
    log-likelihood of the recogniser's own reading (its best path). None
    when the recogniser cannot be reached.
    """
    found = _recogniser_odds(engine, crop)
    if found is None:
        return None
    log_probs, index = found
    spelled = _spelled_odds(log_probs, index, [f"{value:g}" for value in _LABEL_VALUES])
    odds = {value: units for value, units in zip(_LABEL_VALUES, spelled.values()) if units}
    totals = {value: float(np.logaddexp.reduce(list(units.values())))
              for value, units in odds.items()}
    return odds, totals, float(log_probs.max(axis=1).sum())


def _likeliest_value(engine, crop):
    """The value of :data:`_LABEL_VALUES` the recogniser finds likeliest in a crop; or None."""
    found = _label_odds(engine, crop)
    return None if found is None or not found[1] else max(found[1], key=found[1].get)


def _clear_value(engine, crop):
    """The value of :data:`_LABEL_VALUES` the recogniser finds clearly likeliest in a crop; or None.

    Clearly: its spellings with every unit are together at least
    ``exp(_UNIT_ODDS)`` times as likely as any other value's.
    """
    found = _label_odds(engine, crop)
    return None if found is None else _clearly_first(found[1])


def _clearly_first(totals):
    """The value of ``totals`` ``exp(_UNIT_ODDS)`` times as likely as any other or more; or None."""
    if len(totals) < 2:
        return None
    first, second = sorted(totals, key=totals.get, reverse=True)[:2]
    return first if totals[first] - totals[second] >= _UNIT_ODDS else None


def _likeliest_label(engine, crop):
    """The scale-bar label OCR's recogniser finds likeliest in a line crop, when clearly so.

    Returns (value, units): the value whose spellings with every unit
    (:func:`_label_odds`) are together at least ``exp(_UNIT_ODDS)`` times as
    likely as any other value's, and either the unit clearly ahead for it
    (:func:`_unit_verdict`) or ("nm", "mm") when those two are both clearly
    ahead of the others but not of each other (the stems of the letters
    tell them apart). None when no value or unit is that clearly ahead, when
    the best label is more than ``exp(_LABEL_FIT)`` times less likely than
    the recogniser's own reading (a line of other text), or when the
    recogniser cannot be reached.
    """
    found = _label_odds(engine, crop)
    first = None if found is None else _clearly_first(found[1])
    if first is None:
        return None
    odds, _, best = found
    units = odds[first]
    if max(units.values()) < best - _LABEL_FIT:
        return None
    unit = _unit_verdict(units)
    if unit is not None:
        return first, (unit,)
    rest = [units[u] for u in units if u not in ("nm", "mm")]
    if {"nm", "mm"} <= set(units) and all(
            min(units["nm"], units["mm"]) - other >= _UNIT_ODDS for other in rest):
        return first, ("nm", "mm")
    return None


def _line_odds(engine, crop, text):
    """:func:`_unit_by_odds` after the digits ``text`` starts with; None when it starts with none."""
    digits = re.match(_LEADING_DIGITS, text)
    return _unit_by_odds(engine, crop, digits.group(1)) if digits else None


def _detect_text(engine, crop):
    """[(box, text, score)] of the text lines in a crop (uint8, dark on white)."""
    rgb = np.repeat(crop[..., None], 3, axis=2)
    result, _ = engine(rgb)
    found = []
    for points, text, score in result or []:
        points = np.asarray(points, dtype=float)
        top, left = points[:, 1].min(), points[:, 0].min()
        bottom, right = points[:, 1].max(), points[:, 0].max()
        found.append(((int(top), int(left), int(math.ceil(bottom)), int(math.ceil(right))),
                      str(text), float(score)))
    return found


# --------------------------------------------------------------------------
# Finding bars


def _normalise(image):
    """Float32 image in [0, 1] (min to max); None when it is flat."""
    img = check_image(image).astype(np.float32, copy=False)
    finite = np.isfinite(img)
    if not finite.all():
        img = np.where(finite, img, np.nanmin(np.where(finite, img, np.inf)))
    low, high = float(img.min()), float(img.max())
    if not high - low > 0:
        return None
    return (img - low) / (high - low)


def _pool(img, factor, how):
    """Reduce by an integer factor with the block max (or min)."""
    if factor == 1:
        return img
    h, w = img.shape
    hh, ww = h // factor * factor, w // factor * factor
    # The element-wise max of the factor² strided views: an order of magnitude
    # faster than reducing a (h, f, w, f) view over its axes 1 and 3.
    reduce = np.maximum if how == "max" else np.minimum
    out = img[0:hh:factor, 0:ww:factor].copy()
    for i in range(factor):
        for j in range(factor):
            if i or j:
                reduce(out, img[i:hh:factor, j:ww:factor], out=out)
    return out


@dataclass
class _Bar:
    top: int
    left: int
    bottom: int
    right: int
    length: float
    thickness: int
    level: float  # intensity of the bar (polarity image)
    ground: float  # intensity around it
    quality: float  # 0..1 geometric checks, times the contrast (full from a quarter of the range)
    polarity: str
    core_top: int = 0  # rows of the bar itself, without its end ticks
    core_bottom: int = 0
    sides: float = 0.0  # how much the grounds above and below differ, relative to the contrast
    # The columns that the bar's component reaches in its rows (the bar's own
    # ends, or past them where something of its grey touches it); None: its ends.
    reach_left: int | None = None
    reach_right: int | None = None
    shape: float = 1.0  # 0..1 the geometric checks alone (straight ends)

    @property
    def reach(self):
        """``(first, last)`` columns the bar's component reaches in its rows."""
        return (self.left if self.reach_left is None else self.reach_left,
                self.right if self.reach_right is None else self.reach_right)


#: How many of the longest candidates of each polarity are measured, and how
#: many more of those found across a particle (:func:`_long_rows`).
_CANDIDATES = 16
_ACROSS_PARTICLES = 4


def _bar_candidates(p, min_length):
    """Boxes (top, left, bottom, right) of long thin light rectangles in ``p``.

    Returns the :data:`_CANDIDATES` longest, and apart from them the
    :data:`_ACROSS_PARTICLES` longest of those that lie across a particle
    (:func:`_long_rows`), so that these never crowd out the others.
    """
    h, w = p.shape
    k = int(max(9, min(h, w) / 10))
    opened = ndi.grey_opening(p, size=(k, 1))
    tophat = p - opened
    bright = (tophat > 0.1) & (p > 0.35)
    boxes, across = set(), set()
    # Runs of the shortest bar, then runs four times longer: in a bright,
    # textured ground the short runs join into one large region, the long
    # ones leave the bar alone.
    for run in (min_length, 4 * min_length):
        if run < 0.85 * w:
            found = []
            boxes.update(_long_rows(bright, run, across=found))
            across.update(found)

    def longest(found):
        return sorted(found, key=lambda b: (b[1] - b[3], b))

    return longest(boxes)[:_CANDIDATES], longest(across - boxes)[:_ACROSS_PARTICLES]


def _runs_at_least(mask, length):
    """The pixels of ``mask`` in horizontal runs of at least ``length`` pixels.

    The binary opening of ``mask`` by a horizontal line of ``length`` pixels,
    found from the runs' ends in one pass instead of ``length`` shifts.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    start_rows, starts = np.nonzero(edges == 1)
    stop_rows, stops = np.nonzero(edges == -1)  # in the same order as the starts
    long = stops - starts >= length
    marks = np.zeros((h, w + 1), np.int8)
    marks[start_rows[long], starts[long]] = 1
    marks[stop_rows[long], stops[long]] = -1
    return np.cumsum(marks, axis=1, dtype=np.int8)[:, :w] > 0


def _long_rows(bright, min_length, across=None):
    """Boxes of the components of horizontal runs of ``min_length`` in ``bright``.

    A component whose block of long rows is too thick for a bar can be a bar
    lying across a particle nearly as wide and as light: the box of its rows
    nearly as long as the longest is appended to the list ``across``, when
    given.
    """
    h, w = bright.shape
    binary = _runs_at_least(bright, min_length)
    labels, n = ndi.label(binary)
    boxes = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == i
        counts = comp.sum(axis=1)
        # The bar's rows: the block of long rows around the longest one (noise
        # or a tick attached above or below is left out). A bar near the
        # image's top or bottom, beside a dark particle, can join the ground
        # between them and the edge (the search's top-hat makes it bright
        # there) in rows a little shorter than the bar's: when the block
        # reaches the edge, only rows nearly as long as the longest are the bar's.
        box = _row_block(counts, comp, sl, 0.6)
        if box[0] == 0 or box[2] == h:
            # (Not a strip along the edge, as the top of a label's box there.)
            strict = _row_block(counts, comp, sl, 0.9)
            thick = strict[2] - strict[0]
            box = strict if min(strict[0], h - strict[2]) >= thick else box
        top, left, bottom, right = box
        length, thick = right - left, bottom - top
        found = boxes
        if length < 2.5 * thick and across is not None:
            # A bar lying across a particle as light as itself (in the
            # search's top-hat): the particle's rows, shorter than the bar's,
            # join the block. The rows nearly as long as the longest are the bar.
            top, left, bottom, right = box = _row_block(counts, comp, sl, 0.9)
            length, thick = right - left, bottom - top
            found = across
        if length < min_length or length > 0.85 * w or length < 2.5 * thick:
            continue
        # A band along the top or bottom edge, or across the image, is a frame.
        # One that runs into a side can be a bar whose end touches a particle
        # cut by that side: measured at the bar's own grey, it stops at the
        # bar's end (:func:`_measure_bar` drops bars that reach the edge).
        if top == 0 or bottom == h or (left == 0 and right == w):
            continue
        found.append(box)
    return boxes


def _row_block(counts, comp, sl, share):
    """Box of the block of rows around the longest whose counts are ``share`` of its count."""
    peak = int(np.argmax(counts))
    first = last = peak
    while first > 0 and counts[first - 1] >= share * counts[peak]:
        first -= 1
    while last + 1 < len(counts) and counts[last + 1] >= share * counts[peak]:
        last += 1
    cols = np.nonzero(comp[first:last + 1].any(axis=0))[0]
    return (sl[0].start + first, sl[1].start + int(cols[0]),
            sl[0].start + last + 1, sl[1].start + int(cols[-1]) + 1)


def _true_runs(mask):
    """Starts and (exclusive) stops of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]


def _run_length(values, a, b, ground, level):
    """Sub-pixel length of the run ``values[a..b]`` (inclusive) above the midpoint.

    Pixels inside the run count 1; the two end pixels and their outer
    neighbours count the fraction of the bar they cover, judged from their
    grey level between what lies beyond that end and ``level``. Beyond an
    end lies the ``ground``, or something lighter (in the polarity of the
    bar) that touches the end, such as a particle.
    """
    n = len(values)

    def beyond(lo, hi):  # the grey two and three pixels past an end
        outside = values[max(lo, 0):max(hi, 0)]
        if len(outside) == 0:
            return ground
        return float(np.clip(np.median(outside), ground, ground + 0.6 * (level - ground)))

    left, right = beyond(a - 3, a - 1), beyond(b + 2, min(b + 4, n))

    def cover(i, out):
        if i < 0 or i >= n:
            return 0.0
        return float(np.clip((values[i] - out) / max(level - out, 1e-6), 0, 1))

    if b - a < 2:
        return float(b - a + 1)
    return (b - a - 1) + cover(a, left) + cover(b, right) + cover(a - 1, left) + cover(b + 1, right)


def _bar_component(p, box, thr, pad_v, pad_h):
    """The bar's component in a window around ``box``, thresholded at ``thr``.

    Returns ``(win, comp, row_counts, bar_rows, lefts, rights, r0, c0)``;
    None when there is no clean bar; ``"wider"`` when the bar's rows run on
    past a side of the window.
    """
    H, W = p.shape
    top, left, bottom, right = box
    r0, r1 = max(top - pad_v, 0), min(bottom + pad_v, H)
    c0, c1 = max(left - pad_h, 0), min(right + pad_h, W)
    win = p[r0:r1, c0:c1]
    labels, n = ndi.label(win >= thr)
    if n == 0:
        return None
    # The component of the longest row inside the candidate's box.
    sub = labels[top - r0:bottom - r0, left - c0:right - c0]
    counts = (sub > 0).sum(axis=1)
    row = int(np.argmax(counts))
    ids, sizes = np.unique(sub[row][sub[row] > 0], return_counts=True)
    if len(ids) == 0:
        return None
    comp = labels == ids[np.argmax(sizes)]
    row_counts = comp.sum(axis=1)
    longest = row_counts.max()
    # Keep the contiguous block of rows that holds the longest row.
    peak = int(np.argmax(row_counts))
    block = [peak]
    for step in (-1, 1):
        r = peak + step
        while 0 <= r < len(row_counts) and row_counts[r] >= 0.8 * longest:
            block.append(r)
            r += step
    bar_rows = np.array(sorted(block))
    long_rows = np.nonzero(row_counts >= 0.8 * longest)[0]
    if len(np.setdiff1d(long_rows, bar_rows)):
        # Two bands of long rows: the frame of a box, not a bar; unless the
        # rows between are long too (a thick bar with particles touching its
        # ends, one in its upper rows and one in its lower ones).
        between = np.arange(long_rows[0], long_rows[-1] + 1)
        if row_counts[between].min() < 0.5 * longest:
            return None
        bar_rows = between
    bar_rows = _rows_of_most_columns(comp, bar_rows)
    lefts = np.array([np.nonzero(comp[r])[0][0] for r in bar_rows])
    rights = np.array([np.nonzero(comp[r])[0][-1] for r in bar_rows])
    if (lefts.min() == 0 and c0 > 0) or (rights.max() == win.shape[1] - 1 and c1 < W):
        return "wider"
    return win, comp, row_counts, bar_rows, lefts, rights, r0, c0


def _rows_of_most_columns(comp, rows):
    """The bar's rows: ``rows``, or the rows most of the component's columns span when more.

    A particle joined to one end of a bar (through an end tick) makes the
    rows it shares with the bar the longest; the bar's other rows, a third
    shorter, then fall out of the block of long rows, and the bar seems
    thinner than it is (its end ticks, wider than that, are taken for
    strokes of something else). Most of the component's columns are the
    bar's own: they span its thickness, from its top row; or, from one end
    of the component (the bar's free end), a third of them at least (a
    particle over the bar's other end, as thick as the bar is long, can
    hold more).
    """
    heights = comp.sum(axis=0)
    columns = np.count_nonzero(heights)
    if columns == 0:
        return rows
    thickness = int(np.argmax(np.bincount(heights[heights > 0])))
    if thickness <= len(rows) + 1:
        return rows
    # Those columns run on in one piece along most of the component (not
    # particles beside the bar, along it), or a third of it from its end.
    starts, stops = _true_runs(heights == thickness)
    k = int(np.argmax(stops - starts))
    filled = np.nonzero(heights)[0]
    free_end = starts[k] == filled[0] or stops[k] == filled[-1] + 1
    if stops[k] - starts[k] < (0.3 if free_end else 0.5) * columns:
        return rows
    tops = np.argmax(comp[:, starts[k]:stops[k]], axis=0)
    top = int(np.median(tops))
    if not (0 < top <= rows[0] and rows[-1] < top + thickness < comp.shape[0]):
        return rows  # not the rows of the block made thicker, within the window
    return np.arange(top, top + thickness)


def _own_ends(win, rows, lefts, rights, a, b, grey):
    """The first and last columns of the bar's ``rows`` that are its own, for its end checks.

    Where the rows (their ``lefts`` and ``rights``) that run on past ``a``
    or ``b`` for three columns or more all do so at a median below ``grey``
    (a particle that the bar's end lies over), they end at ``a`` or ``b``:
    the bar's own end is straight. Rows that run on at the bar's grey leave
    that end as it is.
    """
    lefts, rights = lefts.copy(), rights.copy()
    on = [k for k in range(len(rows)) if a - lefts[k] >= 3]
    if on and all(np.median(win[rows[k], lefts[k]:a]) < grey for k in on):
        lefts[on] = a
    on = [k for k in range(len(rows)) if rights[k] - b >= 3]
    if on and all(np.median(win[rows[k], b + 1:rights[k] + 1]) < grey for k in on):
        rights[on] = b
    return lefts, rights


def _end_ticks(profile, up, down, beside, a, b, cut, level, reach):
    """The ends ``a``, ``b`` moved out over end ticks lost where an end was cut.

    Where a bar's end lies on a particle, the columns of its end tick (of
    the bar's grey above and below it) were cut with the particle. Columns
    next to a cut end that are brighter than halfway from the particle to
    the bar, above, across and below the bar, are a tick. Both ends must
    show ticks of the same width (within a pixel), the uncut end's counted
    inwards; else nothing is moved (a glyph touching one end is no tick).
    """
    def width(start, step, near, cut_end=False):
        local = float(np.median(beside[near] if len(beside[near]) else beside[a:b + 1]))
        if cut_end:
            # A particle across the cut end, past a tick, rather than under
            # the bar's end: halfway from its grey (a little short of the
            # bar's) to the bar's tells the tick's columns from its own.
            lo, hi = (start - 2 * reach, start + 1) if step < 0 else (start, start + 2 * reach)
            past = profile[max(lo, 0):hi]
            if len(past) and level - float(past.min()) >= 0.1 * (level - local):
                local = max(local, float(past.min()))
        t = (level + local) / 2
        n = 0
        c = start
        while n < reach and 0 <= c < len(profile) and min(profile[c], up[c], down[c]) >= t:
            n += 1
            c += step
        return n

    inner = slice(a, min(a + 2 * reach, b + 1)), slice(max(b - 2 * reach + 1, a), b + 1)
    left = (width(a - 1, -1, inner[0], cut_end=True) if cut[0]
            else width(a, 1, slice(a + reach, a + 3 * reach)))
    right = (width(b + 1, 1, inner[1], cut_end=True) if cut[1]
             else width(b, -1, slice(max(b - 3 * reach, a), b - reach)))
    if left == 0 or right == 0 or abs(left - right) > 1:
        return a, b
    return (a - left if cut[0] else a), (b + right if cut[1] else b)


#: The least contrast of a bar with its ground, as a share of the image's
#: range: a light bar drawn on a light micrograph can stand out by less
#: than a tenth. Such a bar's quality is low (:func:`_measure_bar`), and so
#: is the confidence of what its label reads.
_FAINTEST = 0.06

#: Below this contrast a bar is faint: only one with straight ends, at least
#: ten times as long as it is thick and a twentieth of the image's shorter
#: side, is kept (a short faint streak is the ground's texture).
_FAINT = 0.1


def _over_a_particle(p, up, down, level):
    """Whether a bar whose grounds differ above and below lies along a particle on one side.

    The darker of its two sides (in the bar's polarity) is then the ground of
    the micrograph, the image's median grey (where particles cover less than
    half of it), and the other a particle's grey between that ground and the
    bar's. Along a strip of a box, the darker side is the ink of what the box
    holds (the bar within it).
    """
    step = max(1, int(math.sqrt(p.size / 1e5)))
    ground = float(np.median(p[::step, ::step]))
    low, high = min(up, down), max(up, down)
    return abs(low - ground) < 0.1 * (level - low) and high < level - 0.2 * (level - low)


def _widening_component(p, box, thr, factor):
    """(:func:`_bar_component` in ever wider windows around ``box``, the last widening).

    A candidate can be a piece of its bar (a glyph touching the bar's middle
    breaks the search's top-hat there): when the bar runs on past the
    window, look again in a wider one. The component is ``"wider"`` when
    the bar runs on past the widest.
    """
    top, left, bottom, right = box
    for widen in (0.5, 2.0, 4.0):
        found = _bar_component(p, box, thr, 3 + 2 * factor,
                               3 + 2 * factor + int(widen * (right - left)))
        if not isinstance(found, str):
            break
    return found, widen


def _measure_bar(p, box, factor, polarity):
    """Measure a candidate at full resolution; None when it is not a clean bar."""
    H, W = p.shape
    top, left, bottom, right = (v * factor for v in box)
    bottom, right = min(bottom, H), min(right, W)
    inner = p[top:bottom, left:right]
    if inner.size == 0:
        return None
    level = float(np.percentile(inner, 90))
    if left == 0 or right == W:
        # A box that runs into a side: a bar whose end touches a particle cut
        # by that side. From that side, leave out the columns short of the
        # bar's grey in its brightest row, so that the particle does not
        # count as the bar's ground.
        row = ndi.median_filter(inner[int(np.argmax(np.median(inner, axis=1)))], size=3)
        low = float(np.percentile(inner, 10))
        at_grey = np.nonzero(row >= low + 0.75 * (level - low))[0]
        if len(at_grey) == 0:
            return None
        first, last = left + int(at_grey[0]), left + int(at_grey[-1]) + 1
        if left == 0:
            left = first
        if right == W:
            right = last
        inner = p[top:bottom, left:right]
    # The bar's rows: the block of rows around the brightest one that are
    # mostly at the bar's level (the search's box can take in a row of ground).
    t0 = max(top - 2, 0)
    row_level = np.median(p[t0:min(bottom + 2, H), left:right], axis=1)
    on, _ = ndi.label(row_level >= (level + row_level.min()) / 2)
    peak = top - t0 + int(np.argmax(row_level[top - t0:bottom - t0]))
    if on[peak]:
        rows = np.nonzero(on == on[peak])[0] + t0
        top, bottom = max(top, int(rows[0])), min(bottom, int(rows[-1]) + 1)  # only ever narrower

    def beside(top, bottom):  # the three rows above and below the bar's, and their median
        above = p[max(top - 3, 0):top, left:right]
        below = p[bottom:min(bottom + 3, H), left:right]
        grounds = np.concatenate([above.ravel(), below.ravel()])
        return above, below, grounds, float(np.median(grounds)) if grounds.size else 0.0

    above, below, grounds, ground = beside(top, bottom)
    if level - ground < _FAINTEST and on[peak]:
        # A faint bar in JPEG's noise can be found as a row or two of itself,
        # its ground then its own rows: they run on past the box, and are
        # followed (while they are a bar's, within a fifth of its length).
        t1 = max(top - (right - left) // 5, 0)
        levels = np.median(p[t1:min(bottom + (right - left) // 5, H), left:right], axis=1)
        blocks, _ = ndi.label(levels >= (level + levels.min()) / 2)
        k = blocks[peak + t0 - t1]
        block = np.nonzero(blocks == k)[0]
        if k and block[0] > 0 and block[-1] < len(levels) - 1:
            top, bottom = t1 + int(block[0]), t1 + int(block[-1]) + 1
            above, below, grounds, ground = beside(top, bottom)
    # The ground's pixel noise, from differences between neighbours along
    # the rows (robust; an outline or a particle beside the bar adds none).
    steps = np.concatenate([np.diff(above, axis=1).ravel(), np.diff(below, axis=1).ravel()])
    noise = 1.4826 * float(np.median(np.abs(steps))) / math.sqrt(2) if steps.size else 0.0
    if level - ground < _FAINTEST:
        return None
    faint = level - ground < _FAINT
    sides, along_particle = 0.0, False
    if above.size and below.size:
        # A bar has the same ground on both sides; a strip of a box between a
        # bar and the box's edge does not, along its whole length. Particles
        # lighter than the ground (in the bar's polarity) touching one side of
        # a bar along most of it change the median there, but leave stretches
        # of the same ground on both sides.
        up, down = float(np.median(above)), float(np.median(below))
        sides = abs(up - down) / (level - min(up, down))
        up_col, down_col = np.median(above, axis=0), np.median(below, axis=0)
        alike = np.abs(up_col - down_col) < 0.25 * np.maximum(
            level - np.minimum(up_col, down_col), 1e-3)
        if sides > 0.5 and np.mean(alike) < _ALIKE_SIDES:
            if not _over_a_particle(p, up, down, level):
                return None
            along_particle = True  # kept only with straight ends, below
    thr = (level + ground) / 2
    # The wider window must find a crisp bar, with straight ends: not a
    # shaded band (the bar's contrast is no part of that check).
    found, widen = _widening_component(p, (top, left, bottom, right), thr, factor)
    if isinstance(found, str) or (found is None and widen > 0.5):
        # Particles darker than the ground (in the bar's polarity) along most
        # of both sides pull the median ground down to a threshold that the
        # ground itself passes: the bar runs on into it (and, in a wider
        # window, into rows of that ground as long as itself). The ground is
        # the lighter part of the pixels beside the bar, then.
        lighter = float(np.percentile(grounds, 75))
        if lighter - ground > 0.25 * (level - ground) and level - lighter >= _FAINTEST:
            ground, thr = lighter, (level + lighter) / 2
            found, widen = _widening_component(p, (top, left, bottom, right), thr, factor)
    if found is None or isinstance(found, str):  # still wider: part of something larger
        return None
    win, comp, row_counts, bar_rows, lefts, rights, r0, c0 = found
    thickness = len(bar_rows)
    run = int(np.median(rights - lefts + 1))
    if run < 8 or run < 2.5 * thickness:
        return None
    core = bar_rows[1:-1] if thickness >= 3 else bar_rows
    # The bar's columns: the longest run of columns where the bar is whole.
    # At each end, columns with something above or below them are end ticks
    # when they are at most a bar's thickness wide, else a glyph that touches
    # the bar, which is left out (glyphs touching the middle do no harm).
    # JPEG ringing along a thick bar's edges can take a pixel of its outer
    # rows below the midpoint (at a corner where a dark particle meets an end
    # tick): a column is whole when the rows a twentieth of the thickness
    # inside the edges are.
    inside = thickness // 20
    middle_rows = core[inside:len(core) - inside]
    middle = comp[middle_rows]
    whole = middle.all(axis=0)
    # Over a particle darker than the ground (in the bar's polarity) on both
    # sides, JPEG's ringing at the particle's edge can take rows of a faint
    # bar (a quarter of the range above its ground, or less) below the
    # midpoint: there, the bar's rows need only stand halfway up from the
    # particle's grey two rows beside them.
    if level - ground < 0.25:
        edges = np.clip([bar_rows[0] - 2, bar_rows[-1] + 2], 0, win.shape[0] - 1)
        over = win[edges].max(axis=0)
        dark = over < ground - 0.5 * (level - ground)
        halfway = win[middle_rows] >= (level + over) / 2
        whole |= dark & middle.any(axis=0) & halfway.all(axis=0)
    # A single column short of the midpoint in one of three rows or more,
    # between whole ones, is the ground's noise on a faint bar, not its end.
    if len(middle) >= 3:
        whole[1:-1] |= whole[:-2] & whole[2:] & (middle[:, 1:-1].sum(axis=0) >= len(middle) - 1)
    elif len(middle) == 2:
        # A bar two rows thick (a thin bar, downscaled) can have one row at
        # its grey and one that covers a pixel's row only in part: over a dark
        # particle, that one falls a little short of the midpoint where the
        # bar goes on. Whole where the other row is at the bar's grey.
        partial = win[core] >= ground + 0.3 * (level - ground)
        whole |= middle.any(axis=0) & partial.all(axis=0)
    starts, stops = _true_runs(whole)
    if len(starts) == 0:
        return None
    k = int(np.argmax(stops - starts))
    a, b = int(starts[k]), int(stops[k]) - 1
    # A column belongs to the bar when the bar stands out there on at least
    # one side: a particle or a glyph touching it from above or below does
    # not end it. Where the bar runs into something of its own brightness on
    # both sides (a particle across its end, a glyph beside it), it ends;
    # a few such columns at an end are its end ticks.
    span = level - ground
    rows = np.clip([bar_rows[0] - 2, bar_rows[-1] + 2], 0, win.shape[0] - 1)
    profile = np.median(win[core], axis=0)
    clean = whole & (profile - win[rows].min(axis=0) >= 0.25 * span)
    # Over a particle a little darker than the bar (in its polarity), the bar
    # stands out from the particle above and below it by less than that, but
    # by half the difference between the two or more.
    up = np.median(win[np.clip([bar_rows[0] - 3, bar_rows[0] - 2], 0, win.shape[0] - 1)], axis=0)
    down = np.median(win[np.clip([bar_rows[-1] + 2, bar_rows[-1] + 3], 0, win.shape[0] - 1)], axis=0)
    beside = np.maximum(up, down)
    clean |= whole & (level - beside >= 0.1 * span) & (profile - beside >= 0.5 * (level - beside))
    # Near that margin, the noise of the two rows beside the bar leaves single
    # columns short of it, which splits the bar's end off as if it were the
    # strokes of a glyph. A particle's grey changes slowly along the bar: the
    # same test on each side's grey taken over a few columns (the bar's own
    # grey still needed in each column) keeps the bar whole to its end. So
    # smoothed, the particle's grey may come within a twentieth of the
    # contrast of the bar's (a grainy particle nearly as dark as the bar
    # under its end): the bar must still stand halfway above it.
    size = max(9, thickness // 4)
    beside_along = np.maximum(ndi.median_filter(up, size), ndi.median_filter(down, size))
    clean |= whole & (level - beside_along >= 0.05 * span) & (
        profile - beside_along >= 0.5 * (level - beside_along))
    # Where something lies above or below, the bar must be at its own grey:
    # a particle nearly as dark as the bar (in its polarity) across its rows
    # stands out from the ground too.
    foreign = (profile < level - 0.2 * span) & (beside >= thr)
    clean &= ~foreign
    reach = max(3, thickness)
    # The bar's clean columns come in runs longer than its thickness; the
    # strokes of a glyph lying across a particle at the bar's rows stand out
    # from the particle too, but only for a stroke's width.
    starts, stops = _true_runs(clean[a:b + 1])
    long_runs = stops - starts >= min(reach, int(np.max(stops - starts, initial=0)))
    cut = (False, False)
    if long_runs.any():
        # The bar is the longest run and those that follow on from it across
        # gaps no wider than the bar's reach or the run beyond, or at the
        # bar's own grey: a stroke's run set apart from the bar by more, over
        # a grey short of the bar's, is a glyph's (the last stem of an "m" on
        # a particle that the bar's end lies over).
        runs = list(zip(starts[long_runs], stops[long_runs]))
        k = int(np.argmax([e - s for s, e in runs]))
        own = np.median(profile[a + runs[k][0]:a + runs[k][1]]) - 0.1 * span

        def joins(near, far):  # the run ``far`` goes on from the run ``near`` across the gap
            gap = (min(near[1], far[1]), max(near[0], far[0]))
            return (gap[1] - gap[0] <= max(reach, far[1] - far[0])
                    or profile[a + gap[0]:a + gap[1]].min() >= own)

        lo, hi = k, k
        while lo > 0 and joins(runs[lo], runs[lo - 1]):
            lo -= 1
        while hi < len(runs) - 1 and joins(runs[hi], runs[hi + 1]):
            hi += 1
        i = a + int(runs[lo][0])
        j = a + int(runs[hi][1]) - 1
        cut = (i - a > reach, b - j > reach)
        a, b = (i if cut[0] else a), (j if cut[1] else b)
        # Within reach, the columns past the clean run are the bar's (end ticks,
        # of its grey above and below it) up to the first whose rows fall short
        # of the bar's grey: a particle across the end, lighter than the midpoint.
        # (A single column short of it, JPEG's ringing where a tick meets
        # the bar, is no particle: the profile is smoothed over three.)
        smooth = ndi.median_filter(profile, size=3, mode="nearest")
        short = smooth < np.median(profile[i:j + 1]) - 0.1 * span
        first = np.nonzero(short[j + 1:b + 1])[0]
        b = j + int(first[0]) if len(first) else b
        first = np.nonzero(short[a:i][::-1])[0]
        a = i - int(first[0]) if len(first) else a
        if any(cut):
            a, b = _end_ticks(profile, up, down, beside, a, b, cut, level, reach)
    # Nor are such columns left at an end within reach (where end ticks are) the bar's.
    kept = a, b
    while a < b and foreign[a]:
        a += 1
    while b > a and foreign[b]:
        b -= 1
    # Nor a column at an end short of the bar's grey with something above the
    # ground past it in the bar's rows (the blurred edge of a particle that
    # touches the end): the length counts such a column's share of the bar
    # from its grey (:func:`_run_length`).
    # (Of a bar of ink only: a stroke of a particle's grey keeps its ragged
    # ends. A blurred edge is a few columns wide: more, short of the bar's
    # grey, are a shaded band's ends, which stay to fail its checks.)
    grey = float(np.median(profile[a:b + 1]))
    full_grey = grey - 0.25 * span

    def blurred(c, step):
        past = [profile[k] for k in (c + step, c + 2 * step) if 0 <= k < len(profile)]
        return (grey >= _INK and profile[c] < full_grey and len(past) == 2
                and min(past) > ground + 0.25 * span)

    def inward(end, step, other):  # ``end`` moved in over such columns, when a few
        c = end
        while abs(other - c) > 2 and blurred(c, step):
            c -= step
        return c if abs(end - c) <= reach else end

    b = inward(b, 1, a)
    a = inward(a, -1, b)
    cut = (cut[0] or a > kept[0], cut[1] or b < kept[1])
    if b - a + 1 < max(8, 2.5 * thickness) or b - a + 1 > 0.85 * W:
        return None  # too short, or a strip across the image
    interior = win[core][:, a + 1:b] if b - a > 2 else win[core]
    level = float(np.median(interior))
    length = float(np.median([_run_length(win[r], a, b, ground, level) for r in core]))
    # A bar drawn with a thin dark outline (for contrast) ends at the
    # outline's outer edge: add the outline's columns when both ends have one
    # (darker than the ground by more than its noise).
    dark, step = ground - max(0.1 * (level - ground), 3 * noise), 0.15 * (level - ground)

    def outline(columns):  # columns outward from an end, through a dark outline
        values = [float(np.median(win[core, c])) if 0 <= c < win.shape[1] else np.inf
                  for c in columns]
        for i in (0, 1):  # darker than the ground, then at least halfway back to it
            dip, after = values[i], values[i + 1]
            # The ground beyond lies well above the outline: at least half as
            # far as the bar above that ground (JPEG's ringing beside a faint
            # bar dips by a few tenths of that).
            if dip < dark and after > max(dip + step, (dip + ground) / 2) \
                    and after - dip >= 0.5 * (level - after):
                return i + 1
        return 0

    ends = outline(list(range(a - 1, a - 4, -1))), outline(list(range(b + 1, b + 4)))
    if all(ends):
        length += sum(ends)
    # Checks: straight ends, uniform fill, little attached.
    # At an end cut from something touching it, rows that run on past the
    # end are that thing's, not a ragged end of the bar; so at an end tick
    # (a particle touching the tick's outer side).
    ticked = [bool(comp[:bar_rows[0], c].any() and comp[bar_rows[-1] + 1:, c].any())
              for c in (a, b)]
    # Rows that run on into something else past an end count only as far as the bar.
    own_lefts, own_rights = _own_ends(win, bar_rows, lefts, rights, a, b, level - 0.2 * span)
    # An edge row of a downscaled bar that covers its pixels' row only in
    # part lies near the midpoint grey, where the ground's noise cuts it
    # short at either end: the ends are judged on the rows at the bar's grey.
    # (Its first and last rows only: a row within a bar is whole, and rows
    # short of the grey within it are the rounded sides of a particle.)
    full = np.median(win[bar_rows][:, a:b + 1], axis=1) >= ground + 0.75 * (level - ground)
    full[1:-1] = True
    if 2 <= full.sum() < len(bar_rows):
        own_lefts, own_rights = own_lefts[full], own_rights[full]
    end_spread = float(np.std(np.maximum(own_lefts, a) if cut[0] or ticked[0] else own_lefts)
                       + np.std(np.minimum(own_rights, b) if cut[1] or ticked[1] else own_rights))
    uniform = float(np.mean(win[bar_rows[0]:bar_rows[-1] + 1, a:b + 1] >= thr))
    # What is attached at the bar's own grey (a box's side, a frame) makes the
    # "bar" a part of something larger; a particle it lies across, short of
    # that grey, does not. (Past its ends: not the bar's.)
    own = comp & (win >= level - 0.2 * span)
    attached = own[:, a:b + 1].sum() - own[bar_rows][:, a:b + 1].sum()
    if uniform < 0.85 or attached > 1.5 * thickness * run + 4 * thickness ** 2:
        return None
    shape = float(np.clip(1 - end_spread / max(3.0, 0.05 * run), 0, 1))
    quality = shape * float(np.clip((level - ground) / 0.25, 0, 1))
    if (widen > 0.5 or along_particle) and shape < 0.8:
        return None
    if (faint or level - ground < _FAINT) and (
            shape < 0.8 or b - a + 1 < max(10 * thickness, 0.05 * min(H, W))):
        return None  # a faint bar must be long and straight-ended: not a streak of texture
    # A clean bar's rows reach as far as its own grey (end ticks), and a row
    # further (the partly covered edge row of a downscaled bar), but not
    # over a particle attached to it; a ragged one keeps all its rows. The
    # own rows run on from the bar's while most of what each has of the
    # component is at the bar's grey: the grain of a particle nearly as
    # light reaches that grey at scattered pixels only.
    rows_any = np.nonzero(comp[:, a:b + 1].any(axis=1))[0]
    at_grey = own[:, a:b + 1].sum(axis=1) >= np.maximum(0.5 * comp[:, a:b + 1].sum(axis=1), 1)
    first, last = int(bar_rows[0]), int(bar_rows[-1])
    while first > 0 and at_grey[first - 1]:
        first -= 1
    while last < len(at_grey) - 1 and at_grey[last + 1]:
        last += 1
    rows_own = np.arange(first, last + 1) if quality >= 0.5 else rows_any
    first, last = max(rows_any[0], rows_own[0] - 1), min(rows_any[-1], rows_own[-1] + 1)
    top, bottom = r0 + int(first), r0 + int(last) + 1
    core_top, core_bottom = r0 + int(bar_rows[0]), r0 + int(bar_rows[-1]) + 1
    if core_top == 0 or core_bottom == H or c0 + a == 0 or c0 + b + 1 == W:
        return None  # cut by the image's edge: a strip or a frame, or a bar cropped
    if top == 0 or bottom == H:
        # Something touching the bar runs on to the image's edge. A particle
        # cut by the edge, across an end of the bar (which it cut there),
        # reaches it at a few columns, and the bar is its own rows; else
        # the "bar" is a strip of something larger (a label's box).
        edge = comp[0 if top == 0 else comp.shape[0] - 1, a:b + 1]
        if not any(cut) or edge.mean() > 0.5:
            return None
        top, bottom = core_top, core_bottom
    return _Bar(
        top=top, left=c0 + a, bottom=bottom, right=c0 + b + 1,
        length=length, thickness=thickness, level=level, ground=ground,
        quality=quality, polarity=polarity,
        core_top=core_top, core_bottom=core_bottom, sides=sides,
        reach_left=c0 + int(lefts.min()), reach_right=c0 + int(rights.max()) + 1, shape=shape,
    )


# --------------------------------------------------------------------------
# Finding the label next to a bar


@dataclass
class _Group:
    side: str
    box: tuple  # full image coordinates
    mask: np.ndarray  # the text pixels, in the box
    distance: float
    floor: float | None = None  # a grey shown as white in the OCR crop, and all below it
    # The box's greys from the ground (0) to the text's (1); None: the mask only.
    grey: np.ndarray | None = None


def _core_grey(bar):
    """The grey from which on a pixel is the text's own: a particle it touches stays below."""
    return bar.ground + 0.8 * (bar.level - bar.ground)


def _text_grey(patch, bar):
    """``patch``'s greys from the bar's ground (0) to its grey, the text's (1)."""
    return np.clip((patch - bar.ground) / max(bar.level - bar.ground, 1e-6), 0, 1)


def _blank_bar(mask, bar, top, left):
    """Clear the bar's own rows and columns, and a pixel around them, in ``mask``.

    ``mask`` covers the image from pixel ``(top, left)`` on.
    """
    rows = slice(max(bar.core_top - top - 1, 0), max(bar.core_bottom - top + 1, 0))
    cols = slice(max(bar.left - left - 1, 0), max(bar.right - left + 1, 0))
    mask[rows, cols] = False


def _components(binary):
    labels, n = ndi.label(binary, structure=np.ones((3, 3), bool))
    comps = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            comps.append((i, sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))
    return labels, comps


def _slivers_next_to(labels, members, slivers):
    """The pieces of ``slivers`` within two pixels of a piece of ``members``.

    (One empty pixel between them: a glyph broken by compression or
    downscaling, a "2" as its upper part and its foot.) Pieces are
    ``(label, top, left, bottom, right)``.
    """
    if not slivers:
        return []
    t = min(c[1] for c in members + slivers)
    l = min(c[2] for c in members + slivers)
    b = max(c[3] for c in members + slivers)
    r = max(c[4] for c in members + slivers)
    sub = labels[t:b, l:r]
    near = ndi.binary_dilation(np.isin(sub, [m[0] for m in members]),
                               structure=np.ones((3, 3), bool), iterations=2)
    touching = set(np.unique(sub[near]).tolist())
    return [c for c in slivers if c[0] in touching]


def _grow_line(seed, comps, used, blobs=frozenset()):
    group = [seed]
    t, l, b, r = seed[1:]
    changed = True
    while changed:
        changed = False
        h = b - t
        for c in comps:
            if c[0] in used or c in group:
                continue
            ct, cl, cb, cr = c[1:]
            ch = cb - ct
            overlap = min(b, cb) - max(t, ct)
            if overlap < 0.4 * min(ch, h) or ch > 1.8 * h:
                continue
            if c[0] in blobs and ch > 0.45 * h:  # a particle, not a glyph (dots may join)
                continue
            # A glyph reaches past the line by a descender below it, or by
            # a digit's height above a line of small letters; a piece of a
            # particle beside the text reaches further.
            if cb - b > 0.6 * h or t - ct > 0.8 * h:
                continue
            gap = max(cl - r, l - cr)
            # A taller glyph (a digit beside lower-case letters) may be as far
            # as its own height; a piece reaching past the line both above and
            # below it (a particle beside a label's box) only as far as the line's.
            both = ct < t and cb > b + max(1.0, 0.15 * h)
            # (A digit is at most 1.6 times as tall as lower-case letters; a
            # taller piece is a particle beside the label's box.)
            if gap > 1.3 * (h if both or ch > 1.6 * h else max(h, ch)):
                continue
            group.append(c)
            if ch >= 0.5 * h:  # a dot or a hyphen does not widen the line
                t, b = min(t, ct), max(b, cb)
            l, r = min(l, cl), max(r, cr)
            changed = True
    return group, (t, l, b, r)


def _drop_end_specks(members, box):
    """A line without the specks at its ends (noise, a grain of a particle).

    A speck beyond the first or last glyph, less than a third of the line's
    height, reads as punctuation (":1 nm" becomes unreadable); a decimal
    point lies between digits and a ring over an "Å" over its letter, so
    neither is an end. Nor is a last piece, set apart from the glyph before
    it, narrower than the other glyphs are tall, that reaches below them by
    half their height: a label ends in a letter on its line, not in a
    descender, which a sliver of a particle past the label's box passes for
    (the tail of a "µ" reaches about a third of a digit's height below the
    digits, and one that joins its "m", or the bar, makes a wide piece).
    """
    height, n = box[2] - box[0], len(members)
    while len(members) > 1:
        left = min(members, key=lambda c: c[2])
        right = max(members, key=lambda c: c[4])
        for end, beyond in ((left, lambda c, m: m[4] <= c[2]), (right, lambda c, m: m[2] >= c[4])):
            others = [c for c in members if c is not end]
            top, foot = min(c[1] for c in others), max(c[3] for c in others)
            hangs = (end is right and end[2] - max(c[4] for c in others) > 0.25 * (foot - top)
                     and end[4] - end[2] < foot - top and end[3] - foot > 0.5 * (foot - top))
            if (end[3] - end[1] < 0.33 * height or hangs) and all(beyond(c, end) for c in others):
                members = others
                break
        else:
            break
    if len(members) == n:
        return members, box
    tall = [c for c in members if c[3] - c[1] >= 0.5 * height] or members
    return members, (min(c[1] for c in tall), min(c[2] for c in members),
                     max(c[3] for c in tall), max(c[4] for c in members))


def _broken_caps(comps, members, box, taken):
    """The flat pieces just above a line's glyphs: the top strokes of a "5" or "7" broken off.

    In small text, compression or downscaling can cut the thin join between
    the top stroke of a "5" and its bowl: the stroke, two pixels thick, is
    then too small to be a glyph and lies above the line's top (the "5"
    reads as a "ɔ"). A cap is a piece at most a third of the line's height
    and at least twice as wide as it is high, whose bottom is at most three
    pixels above a glyph of the line (half the line's height or more) that
    it does not overhang by more than two pixels. Pieces are
    ``(label, top, left, bottom, right)``; ``taken``: labels that are no cap.
    """
    top, _, bottom, _ = box
    height = bottom - top
    caps = []
    for c in comps:
        i, t, l, b, r = c
        if i in taken or c in members or b - t > max(2, height / 3) or r - l < 2 * (b - t):
            continue
        if any(m[3] - m[1] >= 0.5 * height and 0 <= m[1] - b <= 3
               and m[2] - 2 <= l and r <= m[4] + 2 for m in members):
            caps.append(c)
    return caps


def _holds_particle(win, labels, piece, grey):
    """Whether a piece holds a solid region short of the text's ``grey`` (a particle it touches).

    Antialiased edges and thin strokes of small text fall short of the
    text's grey too, but only a pixel or two deep; a particle (lighter than
    the midpoint, darker than the text) is solid there. ``piece`` is
    ``(label, top, left, bottom, right)`` in ``labels``.
    """
    i, t, l, b, r = piece
    region = labels[t:b, l:r] == i
    # The grain of the particle leaves holes in it at the midpoint grey.
    whole = ndi.binary_closing(np.pad(region, 2), structure=np.ones((3, 3), bool))[2:-2, 2:-2]
    deep = ndi.distance_transform_edt(whole & (win[t:b, l:r] < grey)) > 2
    return bool(deep.sum() >= max(9, 0.1 * region.sum()))


#: How many pieces nearest to a bar's side may start a label line (:func:`_label_groups`).
_SEEDS = 10


def _label_groups(p, bar, free_glyphs=False):
    """Candidate label lines next to ``bar``, the nearest first.

    With ``free_glyphs``, glyphs joined to a particle beside them are cut
    out of it at their own grey (:func:`_holds_particle`): a last resort
    for labels no line reads, as the cut also thins the letters that the
    unit checks measure. A line that may run on past a side of the window
    searched (a label much wider than its bar) is looked for again in a
    window twice as wide, once (as :func:`_read_detected` does).
    """
    H, W = p.shape
    L, t = bar.right - bar.left, max(bar.thickness, 1)
    reach_h = int(max(1.3 * L, 10 * t, 40, 0.25 * min(H, W)))
    groups, cut = _label_lines(p, bar, free_glyphs, reach_h)
    if cut:
        groups, _ = _label_lines(p, bar, free_glyphs, 2 * reach_h)
    return groups


def _label_lines(p, bar, free_glyphs, reach_h):
    """:func:`_label_groups` in the window ``reach_h`` columns either side of the bar.

    Returns the lines, and whether one may run on past a side of the
    window that is not the image's.
    """
    H, W = p.shape
    L, t = bar.right - bar.left, max(bar.thickness, 1)
    # Text can be as tall as a short bar is long: the reach also grows with the image.
    reach_v = int(max(0.8 * L, 8 * t, 24, 0.1 * min(H, W)))
    r0, r1 = max(bar.top - reach_v, 0), min(bar.bottom + reach_v, H)
    c0, c1 = max(bar.left - reach_h, 0), min(bar.right + reach_h, W)
    win = p[r0:r1, c0:c1]
    thr = (bar.level + bar.ground) / 2
    binary = win >= thr
    bt, bl, bb, br = bar.top - r0, bar.left - c0, bar.bottom - r0, bar.right - c0
    ct_, cb_ = bar.core_top - r0, bar.core_bottom - r0
    # Remove the bar's own rows (and a pixel around them), so that glyphs that
    # touch the bar (the tail of a "µ") stay glyphs; what is left of the end
    # ticks is dropped below as thin pieces at the bar's ends.
    _blank_bar(binary, bar, r0, c0)
    span = bar.level - bar.ground

    def pieces(binary):
        labels, comps = _components(binary)
        index = np.arange(1, len(comps) + 1)
        dist = ndi.distance_transform_edt(binary)
        stroke = ndi.maximum(dist, labels, index=index) if comps else []
        # A particle is as thick as it is tall; a glyph's strokes are thinner.
        # The distance to the background counts the pixel itself: a stroke
        # 3 px wide has 2 at its middle.
        blobs = {c[0] for c in comps
                 if 2 * stroke[c[0] - 1] - 1 > 0.5 * (c[3] - c[1]) and c[3] - c[1] >= 6}
        peak = ndi.maximum(win, labels, index=index) if comps else []
        return labels, comps, blobs, peak

    labels, comps, blobs, peak = pieces(binary)
    # Text drawn over a particle lighter than the midpoint joins it into one
    # blob. The text has the bar's grey, the particle less: such blobs are
    # cut again close to the bar's grey, which frees the glyphs.
    tall = {c[0] for c in comps if c[3] - c[1] > reach_v}
    cut = {c[0]: _core_grey(bar) for c in comps if c[0] in blobs or c[0] in tall}
    # With ``free_glyphs``, so are glyphs joined to a particle beside them (a
    # "5" over a particle's edge), at their own grey (a label can be fainter
    # than its bar).
    for c in comps if free_glyphs else ():
        own = min(bar.ground + 0.8 * (peak[c[0] - 1] - bar.ground), _core_grey(bar))
        if c[0] not in cut and _holds_particle(win, labels, c, own):
            cut[c[0]] = own
    grain = ground = set()
    if cut:
        # (In the window's own precision: a grey rounds as a scalar compared
        # with it would.)
        greys = np.full(len(comps) + 1, -np.inf, dtype=win.dtype)
        greys[list(cut)] = list(cut.values())
        binary &= win >= greys[labels]
        before = labels
        labels, comps, blobs, peak = pieces(binary)
        # The grain of a blob cut so (specks of a particle or of the ground
        # at the text's grey) is no broken cap of a glyph.
        was = ndi.maximum(before, labels, index=np.arange(1, len(comps) + 1)) if comps else []
        grain = {c[0] for c in comps if int(was[c[0] - 1]) in cut}
        # Of which the grain of the ground itself (taller than the window
        # reaches), not of a particle: no glyph's, unless the line is all of it.
        ground = {c[0] for c in comps if int(was[c[0] - 1]) in tall}
    cy = (ct_ + cb_) / 2
    bar_ids = set()
    for i, t_, l_, b_, r_ in comps:
        near_end = min(abs(l_ - bl), abs(r_ - br)) <= 2 * t + 2
        touches = b_ >= ct_ - 2 and t_ <= cb_ + 2
        inside = l_ < br and r_ > bl  # a tick stands on the bar; a glyph beside its end does not
        if touches and near_end and inside and r_ - l_ <= 2 * t + 2:
            # A tick is a solid stroke; a small glyph over the bar's end ("5") is not.
            if (labels[t_:b_, l_:r_] == i).mean() >= 0.7:
                bar_ids.add(i)
    wh, ww = win.shape
    keep = []
    for c in comps:
        i, ct, cl, cb, cr = c
        if i in bar_ids:
            continue
        if peak[i - 1] < bar.ground + 0.7 * span:
            continue  # the grain of a particle or of the ground: a glyph reaches the bar's grey
        ch, cw = cb - ct, cr - cl
        if ch < 3 or ch > reach_v or cw > 2.5 * L + 4 * ch:
            continue
        if (ct == 0 and r0 > 0) or (cl == 0 and c0 > 0) or (cb == wh and r1 < H) or (cr == ww and c1 < W):
            continue
        keep.append(c)
    # Pieces cut by the window's sides (glyphs of a line that runs on past them).
    edge = [c for c in comps if (c[2] == 0 and c0 > 0) or (c[4] == ww and c1 < W)]
    runs_on = False
    groups = []
    used = set(bar_ids)
    span_l, span_r = bl - 0.5 * L, br + 0.5 * L
    for side in ("below", "above", "right", "left"):
        seeds = []
        for c in keep:
            i, ct, cl, cb, cr = c
            ch = cb - ct
            if i in blobs:
                continue
            if side in ("above", "below"):
                gap = bt - cb if side == "above" else ct - bb
                if not _label_gap(gap, ch, t):
                    continue
                if cr < span_l or cl > span_r:
                    continue
            else:
                gap = cl - br if side == "right" else bl - cr
                if gap < 0 or gap > max(2.0 * ch, 3 * t, 8):
                    continue
                if not (ct <= cy + t and cb >= cy - t):
                    continue
            # Above or below, a label lies over the bar's span (centred, or
            # under one end): pieces beside the span come after those over it.
            beside = side in ("above", "below") and (cr <= bl or cl >= br)
            seeds.append((beside, gap, c))
        # A line stays on its side of the bar: it does not grow over the bar
        # into texture beyond it.
        beyond = {
            "above": lambda c: c[3] <= bb, "below": lambda c: c[1] >= bt,
            "right": lambda c: c[2] >= br - 1, "left": lambda c: c[4] <= bl + 1,
        }[side]
        # Lines start from the nearest pieces, until three lines are formed:
        # the nearest can be specks or the grain of a particle at the bar's
        # end, with the label a little further away.
        formed, lines = set(), 0
        for _, best_gap, best in sorted(seeds)[:_SEEDS]:
            if best[0] in formed:
                continue
            if lines == 3:
                break
            members, (gt, gl, gb, gr) = _grow_line(
                best, [c for c in keep if beyond(c) and (best[0] in ground or c[0] not in ground)],
                used, blobs)
            members, (gt, gl, gb, gr) = _drop_end_specks(members, (gt, gl, gb, gr))
            gh, gw = gb - gt, gr - gl
            if gw < 1.2 * gh or gh < 4:
                continue
            lines += 1
            # A "bar" that is a stroke of the text itself (the foot of a "2"):
            # the line above it reaches into its rows, or the line beside it
            # is not centred on it.
            if (side == "above" and gb > ct_ + 1) or (side == "below" and gt < cb_ - 1):
                break
            if side in ("left", "right") and not gt + 0.15 * gh <= cy <= gb - 0.15 * gh:
                break
            formed.update(m[0] for m in members)
            # (A line within a glyph's height of a side of the window that is
            # not the image's, or of a piece the side cuts, can run on past
            # it: its first glyphs cut off.)
            runs_on |= (gl <= gh and c0 > 0) or (ww - gr <= gh and c1 < W) or any(
                min(c[3], gb) - max(c[1], gt) >= 0.5 * gh
                and min(abs(c[4] - gl), abs(c[2] - gr)) <= gh for c in edge)
            # Pieces too small to be glyphs (a broken glyph's foot), within
            # the line and next to its glyphs, are theirs; in small text only
            # (beside large glyphs, such specks are the ground's grain).
            slivers = [c for c in comps if 0.15 * gh <= c[3] - c[1] < 3 and c[0] not in bar_ids
                       and gt <= c[1] and c[3] <= gb and gl - 2 <= c[4] and c[2] <= gr + 2]
            slivers = _slivers_next_to(labels, members, slivers)
            caps = _broken_caps(comps, members, (gt, gl, gb, gr), bar_ids | formed | grain)
            slivers += [c for c in caps if c[3] <= ct_ - 2 or c[1] >= cb_ + 2]
            gt = min([gt] + [c[1] for c in slivers])
            gl, gr = min([gl] + [c[2] for c in slivers]), max([gr] + [c[4] for c in slivers])
            mask = np.isin(labels[gt:gb, gl:gr], [m[0] for m in members + slivers])
            groups.append(_Group(side, (gt + r0, gl + c0, gb + r0, gr + c0), mask,
                                 float(best_gap), grey=_text_grey(win[gt:gb, gl:gr], bar)))
    # Groups found from two sides can be the same line.
    unique, seen = [], set()
    for g in sorted(groups, key=lambda g: g.distance):
        if g.box not in seen:
            seen.add(g.box)
            unique.append(g)
    return unique, runs_on


#: Below this fraction of grey edge pixels, a label's glyphs are aliased (:func:`_aliased`).
_ALIASED_EDGES = 0.1


def _aliased(p, group, lo, hi):
    """Whether a label's glyphs are drawn without grey edges (aliased text).

    Text rendered without anti-aliasing has almost no pixels between its
    grey and the ground's at the edges of its strokes; anti-aliased,
    downscaled or blurred text has many (a fifth to a half of the pixels
    within a pixel of the glyphs).
    """
    top, left, bottom, right = group.box
    near = ndi.binary_dilation(group.mask, iterations=1)
    if not near.any():
        return False
    v = (p[top:bottom, left:right][near] - lo) / max(hi - lo, 1e-3)
    return float(np.mean((v > 0.2) & (v < 0.8))) < _ALIASED_EDGES


def _to_height(out, h, height, aliased=False):
    """Scale a crop (uint8) whose text is ``h`` px high to ``height`` px text.

    Small aliased text is smoothed first (a Gaussian of 0.7 px, about what
    anti-aliasing does): enlarged as it is, its staircase edges turn an "n"
    of 8 px into a "u" and a "nm" into "1m" for the OCR.
    """
    scale = float(height) / max(h, 1)
    if aliased and scale > 1.1:
        out = np.clip(ndi.gaussian_filter(out.astype(np.float32), 0.7) + 0.5, 0, 255)
        out = out.astype(np.uint8)
    if abs(scale - 1) > 0.1:
        from PIL import Image

        img = Image.fromarray(out)
        size = (max(int(img.width * scale), 1), max(int(img.height * scale), 1))
        resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
        out = np.asarray(img.resize(size, resample))
    return out


def _ocr_crop(p, group, height=40, smooth=True):
    """The label as dark text on white, padded and scaled to ``height`` px text.

    With ``smooth``, small aliased text is smoothed as it is enlarged
    (:func:`_to_height`).
    """
    top, left, bottom, right = group.box
    h = bottom - top
    pad = max(2, int(round(0.35 * h)))
    H, W = p.shape
    t0, l0 = max(top - pad, 0), max(left - pad, 0)
    t1, l1 = min(bottom + pad, H), min(right + pad, W)
    crop = p[t0:t1, l0:l1].copy()
    keep = np.zeros(crop.shape, bool)
    keep[top - t0:bottom - t0, left - l0:right - l0] = ndi.binary_dilation(
        group.mask, iterations=max(1, h // 12))
    lo = float(np.median(crop[~keep])) if (~keep).any() else 0.0
    if group.floor is not None:
        lo = max(lo, group.floor)
    hi = float(np.percentile(crop[keep], 95)) if keep.any() else 1.0
    aliased = smooth and _aliased(p, group, lo, hi)
    crop = np.clip((crop - lo) / max(hi - lo, 1e-3), 0, 1)
    crop[~keep] = 0
    out = (255 * (1 - crop)).astype(np.uint8)
    return _to_height(out, h, height, aliased)


def _wide_crop(p, group, bar, height=40):
    """The label's line, unmasked, with 1.5 text heights more on each side (the bar blanked)."""
    H, W = p.shape
    top, left, bottom, right = group.box
    h = max(bottom - top, 1)
    t0, t1 = max(top - int(0.35 * h) - 1, 0), min(bottom + int(0.35 * h) + 1, H)
    l0, l1 = max(left - int(1.5 * h), 0), min(right + int(1.5 * h), W)
    crop = p[t0:t1, l0:l1].copy()
    crop[max(bar.top - 1 - t0, 0):max(bar.bottom + 1 - t0, 0),
         max(bar.left - 1 - l0, 0):max(bar.right + 1 - l0, 0)] = bar.ground
    lo, hi = bar.ground, bar.level
    aliased = _aliased(p, group, lo, hi)
    crop = np.clip((crop - lo) / max(hi - lo, 1e-3), 0, 1)
    out = (255 * (1 - crop)).astype(np.uint8)
    return _to_height(out, h, height, aliased)


def _has_descender(group):
    """Whether one glyph of the line reaches well below the others (a "µ").

    Not the line's first glyph (a label starts with its number), and not
    deeper below the line than half the line's height above it: a particle
    joined to a glyph from below is no tail.
    """
    labels, n = ndi.label(group.mask, structure=np.ones((3, 3), bool))
    if n < 2:
        return False
    boxes = [sl for sl in ndi.find_objects(labels) if sl is not None]
    h = group.mask.shape[0]
    tall = [sl for sl in boxes if sl[0].stop - sl[0].start >= 0.4 * h]
    if not tall:
        return False
    # The line's baseline, from the glyphs but the deepest: with two glyphs
    # (a "0" and a "µm" joined in small text), the median of both would lie
    # halfway down the tail.
    stops = sorted(sl[0].stop for sl in tall)
    baseline = float(np.median(stops[:-1] if len(stops) > 1 else stops))
    deep = [sl for sl in tall if sl[0].stop > baseline + 0.12 * h]
    if len(deep) != 1:
        return False
    tail = deep[0]
    above = baseline - min(sl[0].start for sl in tall)
    return (tail[1].start > min(sl[1].start for sl in tall)
            and tail[0].stop - baseline <= 0.5 * above)


def _open_bowl(group):
    """Whether the glyph before a label's "m" is a "µ" (open) or a "p" (closed).

    Both reach below the line; a "p" closes a bowl around a hole, a "µ" is a
    "u" open at the top. True for an open glyph, False for one with a hole,
    None when the glyphs cannot tell (no descender, or a glyph too small or
    blurred for its counter to show).
    """
    labels, n = ndi.label(group.mask, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    boxes = [(k + 1, sl) for k, sl in enumerate(ndi.find_objects(labels)) if sl is not None]
    tallest = max(sl[0].stop - sl[0].start for _, sl in boxes)
    boxes = sorted(((k, sl) for k, sl in boxes if sl[0].stop - sl[0].start >= 0.3 * tallest),
                   key=lambda b: b[1][1].start)
    # The "m" may come apart in pieces (a serif's stem); the glyph before it is
    # the last one reaching well below the line.
    last = boxes[-1][1]
    x_height = last[0].stop - last[0].start
    tails = [b for b in boxes[:-1] if b[1][0].stop - last[0].stop >= 0.2 * x_height]
    if not tails or x_height < 8:
        return None  # no glyph with a tail below the line, or text too small to tell
    k, sl = tails[-1]
    glyph = labels[sl] == k
    holes = (ndi.binary_fill_holes(glyph) & ~glyph).sum()
    area = x_height * glyph.shape[1]  # the glyph's box above the line
    if holes >= 0.08 * area:
        return False
    # A "u" is open at the top across its counter: columns with no ink in
    # the upper part of the x-height, between the stems. The bowl of a "p"
    # covers them, even where the bowl is not quite closed.
    top = max(last[0].start - sl[0].start, 0)
    band = glyph[top:top + max(int(0.4 * x_height), 1)].any(axis=0)
    inked = np.nonzero(band)[0]
    starts, stops = _true_runs(~band[inked[0]:inked[-1] + 1]) if len(inked) else ([], [])
    gap = max((b - a for a, b in zip(starts, stops)), default=0)
    return True if gap >= max(2, 0.15 * glyph.shape[1]) else None


def _glyph_widths(group, letters=False):
    """Widths of the full-height glyphs of a label line, left to right.

    With ``letters``, of the trailing glyphs that stop short of the line's
    top (lower-case letters; digits reach it) only.
    """
    labels, n = ndi.label(group.mask, structure=np.ones((3, 3), bool))
    inked = np.nonzero(group.mask.any(axis=1))[0]
    if len(inked) == 0:
        return []
    h = int(inked[-1] - inked[0]) + 1
    boxes = sorted((sl for sl in ndi.find_objects(labels) if sl is not None),
                   key=lambda sl: sl[1].start)
    boxes = [sl for sl in boxes if sl[0].stop - sl[0].start >= 0.35 * h]
    if letters:
        tall = [k for k, sl in enumerate(boxes) if sl[0].start - inked[0] <= 0.12 * h]
        boxes = boxes[tall[-1] + 1:] if tall else []
    return [sl[1].stop - sl[1].start for sl in boxes]


def _unit_letters(group):
    """The lower-case letters at the end of a label line, as (mask, x-height top, baseline).

    The digits reach the top of the line; the unit's "n", "u" and "m" stop at
    the x-height. None when the letters cannot be told apart (no digits, a
    glyph with a tail below the line, text too small). The fourth item is
    the (row, column) of the letters' mask in the group's.
    """
    inked = np.nonzero(group.mask.any(axis=1))[0]
    if len(inked) == 0:
        return None
    # A detected text box has empty rows above and below the glyphs.
    group = replace(group, mask=group.mask[inked[0]:inked[-1] + 1])
    mask = group.mask
    h = mask.shape[0]
    if h < 6 or _has_descender(group):
        return None
    filled = mask.any(axis=0)
    tops = np.argmax(mask, axis=0)
    # The digits reach the top of the line: glyphs whose first dense row
    # (:func:`_dense_top`) is at its top. A letter with a speck on top (a
    # particle's texture, a JPEG artefact) is no digit.
    glyphs, _ = ndi.label(mask, structure=np.ones((3, 3), bool))
    digit = np.array([False] + [sl[0].start + _dense_top(glyphs[sl] == k) <= 0.12 * h
                                for k, sl in enumerate(ndi.find_objects(glyphs), start=1)])
    at_top = filled & (tops <= 0.12 * h)
    tall = np.nonzero(at_top & digit[glyphs[tops, np.arange(mask.shape[1])]])[0]
    if len(tall) == 0:
        return None
    gaps = np.nonzero(~filled[tall[-1]:])[0]  # the letters start after the last digit
    if len(gaps):
        first = tall[-1] + int(gaps[0])
        letters = mask[:, first:]
    else:
        found = _after_digits(mask)
        if found is None:
            return None
        letters, first = found
    # Specks (a JPEG artefact, the edge of a particle) are much shorter than
    # the letters, whose stems span the x-height.
    pieces, n = ndi.label(letters, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    boxes = ndi.find_objects(pieces)
    heights = np.array([sl[0].stop - sl[0].start for sl in boxes])
    kept = np.nonzero(heights >= 0.6 * heights.max())[0]
    # A sliver after the last letter, further from it than the letters are
    # from each other, is no stroke of theirs (the edge of a label's box).
    kept = sorted(kept, key=lambda k: boxes[k][1].start)
    if len(kept) >= 3:
        *rest, last = kept
        gaps = [boxes[b][1].start - boxes[a][1].stop for a, b in zip(rest, rest[1:])]
        gap = boxes[last][1].start - boxes[rest[-1]][1].stop
        if boxes[last][1].stop - boxes[last][1].start <= 2 and gap >= 3 and gap > max(gaps):
            kept = rest
    # A glyph starts at its first row holding a quarter of the ink of its
    # widest row: a speck on top of a letter (a particle's texture, a JPEG
    # artefact) is no part of it.
    letters = np.zeros_like(letters)
    tops = []
    for k in kept:
        rows, cols = boxes[k]
        glyph = pieces[boxes[k]] == k + 1
        top = _dense_top(glyph)
        letters[rows.start + top:rows.stop, cols] |= glyph[top:]
        tops.append(rows.start + top)
    # Lower-case letters share their x-height; a glyph starting higher is a
    # digit whose top was lost (the line's start is then unknown).
    if np.median(tops) - min(tops) > max(1.5, 0.1 * h):
        return None
    rows = np.nonzero(letters.any(axis=1))[0]
    if len(rows) == 0 or rows[0] < 0.15 * h:
        return None
    x_top, base = int(rows[0]), int(rows[-1]) + 1
    if base - x_top < 4:
        return None
    return letters, x_top, base, (int(inked[0]), int(first))


def _dense_top(piece):
    """The first row of a glyph's box (``piece``, a mask) past the specks on top of it.

    That is the first row holding a quarter of the ink of its widest row,
    when the rows above it hold a twentieth of its ink at most (a speck on a
    letter; the upper part of a digit joined to the letter holds more).
    """
    counts = piece.sum(axis=1)
    top = int(np.argmax(counts >= 0.25 * counts.max()))
    return top if counts[:top].sum() <= 0.05 * counts.sum() else 0


def _stem_runs(letters, x_top, base):
    """(starts, stops) of the vertical stems across the middle of the x-height."""
    x_height = base - x_top
    band = letters[x_top + int(0.35 * x_height):x_top + int(math.ceil(0.65 * x_height))]
    starts, stops = _true_runs(band.mean(axis=0) >= 0.6)
    widths = stops - starts
    if len(widths) == 0:
        return starts, stops
    # A sliver beside a stem (a speck, a stem split by a JPEG artefact) is no stem.
    keep = widths >= 0.5 * np.median(widths)
    starts, stops = starts[keep], stops[keep]
    # The letters' stems are about evenly spaced (an "n" to an "m" a little
    # wider apart): a first "stem" more than twice as far from the next as
    # they are from each other is a digit's stroke that lost its top.
    gaps = starts[1:] - stops[:-1]
    if len(gaps) >= 3 and gaps[0] > 2 * np.median(gaps[1:]):
        starts, stops = starts[1:], stops[1:]
    return starts, stops


def _unit_stems(group):
    """How many vertical stems the lower-case letters at the end of a label line have.

    Across the middle of the x-height, an "n" shows two stems and an "m"
    three: "nm" has five, "mm" six. None when the letters cannot be told
    apart (:func:`_unit_letters`).
    """
    found = _unit_letters(group)
    if found is None:
        return None
    return len(_stem_runs(*found[:3])[0])


def _first_letter(group):
    """Whether the letter before a label's "m" is a "u" or an "n", from its glyph; or None.

    Between its two stems, a "u" is open at the top and closed at the
    bottom, an "n" the other way round. In small bold text the two differ
    by a pixel or two, where OCR often takes one for the other. None unless
    the letters show five stems (two, then the "m"'s three; four when a thin
    stem of the "m" is lost) and one end of the first letter is closed
    while the other is clearly open (or, with serifs, clearly less closed).
    """
    ends = _first_letter_ends(group)
    if ends is None:
        return None
    top, bottom, open_top, open_bottom, x_height = ends
    if open_top <= 0.34 and bottom >= 0.99:
        return "u"
    if open_bottom <= 0.34 and top >= 0.99:
        return "n"
    # Serifs make the other end half closed: the feet of a serif "n", the
    # spurs at the top of a serif "u". One end wholly closed and the other
    # clearly less so still tells them apart; for a "u", not in text whose
    # x-height is below 8 px, where a serif "n" that lost its arch shows the same.
    if top >= 0.99 and bottom <= 0.8:
        return "n"
    if bottom >= 0.99 and top <= 0.45 and open_top < open_bottom and x_height >= 8:
        return "u"
    return None


def _first_letter_ends(group):
    """How closed the top and the bottom of the letter before a label's "m" are; or None.

    Returns ``(top, bottom, open_top, open_bottom, x_height)``: the shares
    of the columns between the letter's two stems that ink crosses, in a
    quarter of the x-height at its top and at its bottom; the same with
    faint strokes counted (``open_*``); and the x-height in pixels. None
    unless the letters show five stems (four when a thin stem of the "m"
    is lost, :func:`_first_letter`).
    """
    found = _unit_letters(group)
    if found is None:
        return None
    letters, x_top, base, (row, col) = found
    starts, stops = _stem_runs(letters, x_top, base)
    if len(starts) not in (4, 5):
        return None
    inner = letters[:, stops[0]:starts[1]]  # between the first letter's stems
    if inner.shape[1] == 0:
        return None
    # An end is open where not even a faint stroke crosses it: the hairline
    # arch of a small serif "n" falls short of the midpoint grey, while the
    # serifs of its feet join along the line as a "u"'s bowl would.
    faint = inner
    if group.grey is not None:
        grey = group.grey[row:row + letters.shape[0], col:col + letters.shape[1]]
        faint = grey[:, stops[0]:starts[1]] >= 0.25
    band = max(int(round(0.25 * (base - x_top))), 1)
    top = inner[x_top:x_top + band].any(axis=0).mean()
    bottom = inner[base - band:base].any(axis=0).mean()
    open_top = faint[x_top:x_top + band].any(axis=0).mean()
    open_bottom = faint[base - band:base].any(axis=0).mean()
    return top, bottom, open_top, open_bottom, base - x_top


def _after_digits(mask):
    """The glyphs of a label line that follow its last digit, when no empty column parts them.

    In small text without space before the unit, the last digit and the
    first letter can share columns (a "5" under the serif of an "n") without
    touching: the letters are then the glyphs that stop short of the line's
    top and start right of every glyph that reaches it. Returns their mask
    from the first letter's column on, and that column; None when there are
    none, or when they touch the digits.
    """
    h = mask.shape[0]
    pieces, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    boxes = ndi.find_objects(pieces)
    digits = [sl for sl in boxes if sl[0].start <= 0.12 * h]
    if not digits or len(digits) == n:
        return None
    start = max(sl[1].start for sl in digits)
    letters = [k + 1 for k, sl in enumerate(boxes)
               if sl[0].start > 0.12 * h and sl[1].start > start]
    if not letters:
        return None
    out = np.isin(pieces, letters)
    first = min(boxes[k - 1][1].start for k in letters)
    return out[:, first:], first


def _unit_plausibility(unit, group):
    """The unit, checked against the glyphs when OCR says "nm" or "mm"; and a factor <= 1.

    "pm" is doubted: a "µ" is often read as a "p", and picometre bars are
    rare (a "pm" whose glyph is open at the top is read as "µm" before
    this, :func:`_unit_from_glyphs`). In small text OCR confuses "nm" and "mm"
    both ways. The glyphs decide when they can: an "n" has two stems and an "m" three
    (:func:`_unit_stems`); the OCR's unit is changed at a small cost in
    confidence when the stems disagree with it, unless the letters' widths
    (below, in a proportional font) disagree with the stems. An "mm" is not
    changed into "nm" by five stems when one may be lost
    (:func:`_stem_maybe_lost`: thin single stems whose arches were lost to
    downscaling or compression, or a gap in place of a stem; or two letters
    as wide as each other in a font not monospaced). Else, "mm" labels
    being rare on micrographs, an "m" about a third wider than an "n" in
    every common font: "mm" is believed when its two letters are as wide as
    each other, unless the font is monospaced (all its letters are,
    :func:`_monospaced`), read as "nm" when the first is clearly narrower (at
    a small cost in confidence), and doubted otherwise, below the confidence
    threshold (no glyphs to measure: OCR reads even large "nm" as "mm" when
    particles touch its letters) unless the recogniser's odds favour it far
    (:func:`_read_groups`, :func:`_unit_verdict`).

    Returns
    -------
    unit : str
    factor : float
    """
    if unit == "pm":  # "µm" is often read "pm"; picometre bars are rare
        return unit, 0.45
    if unit in ("nm", "mm") and group is not None:
        stems = _unit_stems(group)
        if stems in (5, 6):  # the letters' stems decide between "nm" and "mm"
            read = _unit_by_stems(group, stems)
            if read is None:
                # A stem lost to compression: the glyphs disagree among
                # themselves, and the OCR decides.
                return unit, 0.9
            if read == unit:
                return read, 1.0
            # Five stems under letters as wide as each other (an "mm" in a
            # font not monospaced, whose letters came apart too far to
            # tell the font by, :func:`_proportional`) may lack one too.
            if unit == "nm" or not (_stem_maybe_lost(group) or (
                    _unit_by_widths(group) == "mm" and not _monospaced(group))):
                return read, 0.9
            return "mm", 0.45  # an "mm" that may have lost a stem, doubted
    if unit != "mm":
        return unit, 1.0
    widths = _unit_by_widths(group) if group is not None else None
    if widths == "mm" and not _monospaced(group):
        # (In a monospaced font "n" and "m" are as wide as each other.)
        return "mm", 1.0
    if widths == "nm":
        return "nm", 0.9
    return "mm", 0.45


def _stem_maybe_lost(group):
    """Whether the five stems counted in a label's letters may lack one (an "mm", not "nm").

    The letters of a small "nm" or "mm" that lost their arches (to
    downscaling or compression) stand as single stems, one or two pixels
    wide: a stem as thin may be lost as well. A gap between two stems
    about twice as wide as the others is a stem's place (an "n" and an "m"
    stand only a little further apart than their stems). Wider stems
    standing apart (a 16-bit image's letters whose arches fell short of the
    midpoint grey) are not lost so.
    """
    pieces = _glyph_widths(group, letters=True)
    if len(pieces) >= 5 and max(pieces) <= 2:
        return True
    found = _unit_letters(group)
    if found is None:
        return False
    starts, stops = _stem_runs(*found[:3])
    gaps = starts[1:] - stops[:-1]
    return len(gaps) >= 3 and bool(np.any(gaps >= 1.8 * np.median(gaps)))


def _unit_by_stems(group, stems=None):
    """"nm" or "mm" as the stems of a label's letters say (:func:`_unit_stems`); or None.

    None also when the letters' widths, in a proportional font, say the
    other unit (a stem lost to compression). ``stems``: the count, when
    known.
    """
    stems = _unit_stems(group) if stems is None else stems
    if stems not in (5, 6):
        return None
    read = ("nm", "mm")[stems - 5]
    widths = _unit_by_widths(group)
    if widths not in (None, read) and _proportional(group):
        return None
    return read


def _proportional(group):
    """Whether a label's last glyph (an "m") is much wider than its digits.

    In a proportional font an "m" is about 1.5 times as wide as a "0"; in a
    monospaced one, as wide, and the widths of "n" and "m" tell nothing.
    """
    widths = _glyph_widths(group)
    return len(widths) >= 3 and widths[-1] >= 1.3 * max(widths[:-2])


def _monospaced(group):
    """Whether a label's last glyph (an "m") is as wide as its digits, as in a monospaced font.

    Digits that came apart one by one are needed: digits joined into one
    piece tell nothing (False).
    """
    widths = _glyph_widths(group)
    if len(widths) < 3:
        return False
    digits = float(np.median(widths[:-2]))
    return abs(widths[-1] - digits) <= 0.15 * widths[-1]


def _unit_by_widths(group):
    """The unit the widths of a label's last two glyphs say: "mm" or "nm", or None.

    An "m" is about a third wider than an "n": "mm" when the two are as wide
    as each other, "nm" when the first is clearly narrower. A digit is no
    letter: with fewer than two letters after the last one, None; so are
    strokes no more than 2 px wide (the stems of an "m" whose arches fell
    short of the grey the glyphs were cut at).
    """
    widths = _glyph_widths(group, letters=True)
    if len(widths) >= 2 and min(widths[-2:]) > 2:
        ratio = widths[-2] / max(widths[-1], 1)
        if ratio >= 0.85:
            return "mm"
        if 0.5 <= ratio < 0.8:
            return "nm"
    return None


def _parse_with_glyphs(text, group):
    """:func:`parse_scale_label`, reading "m" after a descending glyph as "µm".

    OCR engines often drop the "µ" of a serif font ("1.0 m") or read it as a
    letter that is no unit ("10 jm"); metres never label a micrograph's bar,
    and the glyph with a tail below the line is the µ; a letter dropped
    before the "m" is read from its glyph (:func:`_first_letter`). The glyphs correct
    "pm" and a plain "um" where they show another letter (:func:`_unit_from_glyphs`).
    """
    parsed = parse_scale_label(text)
    if parsed is None and isinstance(text, str):
        match = re.match(r"^\s*([0-9.,]+)\s*[jJyqg]?m\s*$", text)
        # A bold "µ" read as a descending letter and a "u" ("jum"), or as
        # a letter before an "m" that lost a stem ("un"; "pn", as "pm"); or
        # its tail read as a letter of its own before it ("pμm").
        bold = re.match(r"^\s*([0-9.,]+)\s*(?:[jJyqg]um|[jJyqgu\N{MICRO SIGN}"
                        r"\N{GREEK SMALL LETTER MU}]n|([pP])n|[jJyqgpP]"
                        r"[\N{MICRO SIGN}\N{GREEK SMALL LETTER MU}]m)\s*$", text)
        if (match or bold) and _has_descender(group):
            unit = " pm" if bold and bold.group(2) else " um"
            parsed = parse_scale_label((match or bold).group(1) + unit)
        elif match and group is not None:
            # The letter before the "m" dropped by OCR, shown by its glyph;
            # not when the two letters are as wide as each other (an "m"
            # that lost a stem looks like an "n").
            first = _first_letter(group)
            if first is not None and _unit_by_widths(group) != "mm":
                parsed = parse_scale_label(match.group(1) + " " + first + "m")
    return _unit_from_glyphs(parsed, group, text if isinstance(text, str) else "")


def _unit_from_glyphs(parsed, group, text=""):
    """``parsed`` (value, unit), with the unit corrected where the glyphs show another letter.

    * "pm" is read as "µm" when the glyph is open at the top: a "µ" is often
      read as a "p", and a "p" closes a bowl (:func:`_open_bowl`; or
      :func:`_first_letter`, for a "µ" whose tail was lost to a particle);
    * a "µm" read from a plain "u" in ``text`` is read as "nm" when the
      glyph is an "n" (:func:`_first_letter`): in small text OCR takes one
      for the other.

    Without glyphs (None), unchanged.
    """
    if parsed is None or group is None:
        return parsed
    if parsed[1] == "pm" and (_open_bowl(group) or _first_letter(group) == "u"):
        return parsed[0], "\N{MICRO SIGN}m"
    if parsed[1] == "\N{MICRO SIGN}m" and _plain_letter_u(text) and _first_letter(group) == "n":
        return parsed[0], "nm"
    return parsed


def _plain_letter_u(text):
    """Whether ``text`` spells a micrometre with a plain "u" (no "µ")."""
    return ("u" in text.lower() and "\N{GREEK SMALL LETTER MU}" not in text
            and "\N{MICRO SIGN}" not in text)


def _plain_u(text, group, wide_text=""):
    """Whether a "µm" read from a plain "u" lacks confirmation by the glyphs and the wider reading.

    With no glyph reaching below the line and no "u" shown by the glyph
    (:func:`_first_letter`), or no glyphs to look at (None), the "u" could
    be an "n" as well (in small bold text the two differ by a pixel or two).
    """
    if not _plain_letter_u(text) or "u" in wide_text.lower():
        return False
    return group is None or not (_has_descender(group) or _first_letter(group) == "u")


#: The digits a label line starts with ("200" of "200 nm", "1.5" of "1.5µm").
_LEADING_DIGITS = r"^\s*([0-9]+(?:[.,][0-9]+)?)"


#: The same, with the letters OCR reads for digits ("1O0", "2o": :data:`_LOOKALIKES`).
_LOOSE_DIGITS = r"^\s*([0-9][0-9OoIl|]*(?:[.,][0-9Oo]+)?)"
#: A number whose first digit, a "1", OCR read as a letter ("i0", "I0"), then a digit.
_LOOSE_ONE = r"^\s*([Il|i][0-9][0-9OoIl|]*(?:[.,][0-9Oo]+)?)"
#: A number whose first digit, a "5", OCR read as an "S", then a digit or an "O" ("SOA").
_LOOSE_FIVE = r"^\s*(S[0-9Oo][0-9OoIl|]*(?:[.,][0-9Oo]+)?)"


def _line_number(text):
    """The number, in digits only, that a label line starts with, or None.

    Stricter than :func:`parse_scale_label`, which also reads OCR's "O" and
    "l" as digits: this number must confirm another reading, not stand alone.
    """
    match = re.match(_LEADING_DIGITS + r"(?![0-9.,])", text or "")
    if match is None:
        return None
    value = float(match.group(1).replace(",", "."))
    return value if value > 0 else None


def _other_number(wide_text, text):
    """Whether a wide reading that is no length starts with another number than the line.

    "25m" where the line reads "75 nm": the foot of a small "2" was left out
    of the line. A wide number that is the start of the line's, with letters
    after it ("2uupm" where the line reads "200µm"), lost digits to letters
    and shows no other glyph; nor do zeros alone that end the line's number.
    """
    # Letters that look like digits count as those digits ("2o" where the
    # line reads "2 pm": the "5" of "25 µm" lost to a particle in the line).
    # The wide reading's first digit may be read as a letter too: a "1" as
    # an "i" ("i0 nm" where the line reads "110 nm", a speck before it), a
    # "5" as an "S" ("SOA" where the line reads "60 A", the "5" over a
    # particle of the text's grey).
    wide = (re.match(_LOOSE_DIGITS, wide_text or "") or re.match(_LOOSE_ONE, wide_text or "")
            or re.match(_LOOSE_FIVE, wide_text or ""))
    line = re.match(_LOOSE_DIGITS, text or "")
    if wide is None or line is None:
        return wide is not None and _line_number(wide_text) != _line_number(text)
    wide_digits, line_digits = (m.group(1).translate(_LOOKALIKES).replace("i", "1")
                                .replace("S", "5") for m in (wide, line))
    if wide_digits == line_digits:
        return False
    # Zeros alone ending the line's number ("0" where it reads "10 µm") are
    # no number of their own: the wide crop lost the digit before them.
    if not wide_digits.strip("0") and line_digits.endswith(wide_digits):
        return False
    after = wide_text[wide.end():wide.end() + 1]
    return not (line_digits.startswith(wide_digits) and after.isalpha())


def _unit_from_wide(p, group, bar, engine, text, score):
    """(value, unit), score and text of the wide reading, when the line gave the number only.

    The line's masked crop sometimes loses its unit (an "nm" of small JPEG
    text read as a blank, a "µ" as a "g") while the wider, unmasked crop of
    the same line reads it. The unit is taken from there only when both
    readings give the same number, at both sizes of the line; the score is
    the lower of the two readings', lowered by a fifth.
    """
    number = _line_number(text)
    if number is None:
        return None, 0.0, text
    wide_text, wide_score = _recognise(engine, _wide_crop(p, group, bar))
    wide = parse_scale_label(wide_text)
    if wide is None or wide[0] != number:
        return None, 0.0, text
    again, _ = _recognise(engine, _ocr_crop(p, group, 28))
    if _line_number(again) != number:
        return None, 0.0, text
    score = 0.8 * min(score, wide_score)
    return _unit_from_glyphs(wide, group, wide_text), score, wide_text.strip()


def _text_core(p, group, bar):
    """The group with only the pixels within a pixel of the text's own grey.

    The text is drawn in the bar's grey; a particle that it touches joins it
    at the midpoint, though it never reaches that grey. Its OCR crop shows
    the greys short of the text's as white.
    """
    top, left, bottom, right = group.box
    core = p[top:bottom, left:right] >= _core_grey(bar)
    mask = group.mask & ndi.binary_dilation(core & group.mask, structure=np.ones((3, 3), bool))
    return replace(group, mask=mask, floor=bar.ground + 0.6 * (bar.level - bar.ground))


def _unit_in_core(p, group, bar, unit, value):
    """:func:`_unit_plausibility` of the OCR's ``unit``, confirmed in the line's core if need be.

    Glyphs joined by greys short of the text's (a downscaled "5m", a
    particle that the text touches) come apart in the line's core
    (:func:`_text_core`): when the whole line doubts an "nm" or "mm", the
    letters there may confirm it. A "pm" that would make the image less
    than a nanometre across (a few atoms' spacing: no micrograph is) is a
    "µm" read as a "p", OCR's usual slip, at a small cost in confidence.
    """
    if unit == "pm" and value * _NM_PER_UNIT["pm"] / max(bar.length, 1) * max(p.shape) < 1.0:
        return "\N{MICRO SIGN}m", 0.9
    unit_factor = _unit_plausibility(unit, group)
    if unit_factor[1] < 1 and unit in ("nm", "mm") and group is not None:
        core = _unit_plausibility(unit, _text_core(p, group, bar))
        if core == (unit, 1.0):
            return core
    return unit_factor


def _read_groups(p, bar, groups, engine):
    """The best (group, text, value, unit, score) among the groups, or None.

    A label is read at two sizes; when the readings disagree, the score is
    halved (small text is where "nm" becomes "mm"), unless one size reads
    "µm" where the other reads "pm" (OCR's usual slip): "µm" is taken, as
    when the unsmoothed or the wide reading sees the "µ"; and unless the
    letters' stems settle "nm" against "mm" (:func:`_unit_by_stems`); when
    the smaller size reads the number alone, the wide reading below must
    give the unit, or the score is halved. It is read once more unmasked,
    with a margin on both sides: a glyph left out of the line (a "2"
    touching a particle) then shows as another reading, and the score drops
    below the threshold ("25 nm" is never silently "5 nm"). So do the
    readings of two lines over the same text (one taking in a particle
    beside it, where the letters' stems cannot be counted) that read
    different lengths at the threshold: each score is halved.

    Doubts about the unit alone (not the number) are lifted when the
    recogniser's own odds clearly favour the unit read (:func:`_unit_by_odds`);
    a line whose readings give the number but lose the unit takes the unit
    those odds favour (:func:`_unit_from_odds`); a line read as no length at
    all, the label they clearly favour (:func:`_label_from_odds`).
    """
    read = []
    for group in groups:
        crop = _ocr_crop(p, group, 40)
        text, score = _recognise(engine, crop)
        parsed = _parse_with_glyphs(text, group)
        plain = _plain_reading(p, group, engine, crop) if parsed is not None else None
        if plain is not None and plain[0] != parsed[0] and not _micro_stem_as_digit(plain, parsed):
            score *= 0.5
        first = (crop, text, score)
        line = group
        if parsed is None:
            # Glyphs touching a particle carry pieces of it, lighter than the
            # midpoint but short of the text's grey: read again without them.
            group = _text_core(p, group, bar)
            crop = _ocr_crop(p, group, 40)
            text, score = _recognise(engine, crop)
            parsed = _parse_with_glyphs(text, group)
        doubt = 1.0  # the doubts about the unit alone
        again = None  # the reading at the smaller size, of a line read as a length
        if parsed is None:
            # The reading with the particle's pieces left in is tried too,
            # when the one without them lost the unit's letters as well.
            readings = [(crop, text, score)] + ([first] if first[1] != text else [])
            parsed, score, text = _unit_from_wide(p, group, bar, engine, text, score)
            if parsed is None:
                found = _unit_from_odds(p, group, bar, engine, readings)
                if found is not None:
                    parsed, score, crop, text = found
                else:
                    parsed, score = _label_from_odds(
                        p, group, bar, engine, [c for c, _, _ in readings]) or (None, 0)
            if parsed is None:
                continue
        else:
            again_text, _ = _recognise(engine, _ocr_crop(p, group, 28))
            again = _parse_with_glyphs(again_text, group)
            micro = (parsed[0], "\N{MICRO SIGN}m")
            if again is None and parsed == micro and re.match(
                    _LEADING_DIGITS + r"\s*" + _MICRO_GLYPHS, again_text or "") \
                    and _line_number(again_text) == parsed[0]:
                # The smaller size saw the "µ" after the same number, and
                # garbled the "m" after it ("1 μuu"): it reads "µm" too.
                again = micro
            # The smaller size reading the number alone (its unit lost) is
            # settled by the wide reading below.
            unit_lost = again is None and _line_number(again_text) == parsed[0]
            # Where the letters' stems tell "nm" from "mm", the readings are
            # compared with the unit they show (the final unit is theirs too,
            # :func:`_unit_plausibility`): OCR's nm/mm slips are no dispute.
            stems = _unit_by_stems(group) if parsed[1] in ("nm", "mm") else None
            settled = _as_stems_say(parsed, stems)
            wide_text = _recognise(engine, _wide_crop(p, group, bar))[0]
            # The same glyphs: what they show corrects this reading too.
            wide = _as_stems_say(_parse_with_glyphs(wide_text, group), stems)
            if parsed[1] == "pm" and micro in (again, wide, plain):
                # OCR reads a "µ" as a "p", seldom a "p" as a "µ": one reading
                # seeing a "µ" decides.
                parsed = settled = micro
            # The same value in "pm" where the line reads "µm" is OCR's usual µ-for-p slip.
            agreeing = {parsed, (parsed[0], "pm")} if parsed == micro else {settled}
            if _as_stems_say(again, stems) not in agreeing and not unit_lost:
                if again is not None and again[0] == parsed[0]:
                    doubt *= 0.5
                else:
                    score *= 0.5
            if unit_lost and wide not in agreeing:
                doubt *= 0.5
            plain_u = parsed[1] == "\N{MICRO SIGN}m" and _plain_u(text, group, wide_text)
            # A "µ" read at both sizes over a glyph reaching below the line
            # (its tail) is not disputed by another unit in the wide reading,
            # which takes in what lies around the line.
            micro_seen = (parsed == micro and again == micro and _has_descender(group)
                          and all(re.search(_MICRO_GLYPHS, t) for t in (text, again_text)))
            if wide is not None and wide[0] != parsed[0]:
                score *= 0.4
            elif wide is None and _other_number(wide_text, text):
                score *= 0.4
            elif (wide is not None and wide not in agreeing and not micro_seen) or (
                    wide is None and plain_u):
                doubt *= 0.4
        unit, factor = _unit_in_core(p, group, bar, parsed[1], parsed[0])
        # The recogniser's unit for the line (:func:`_line_odds`): one run of
        # the recogniser, asked for at most once.
        line_unit = lru_cache(maxsize=1)(partial(_line_odds, engine, crop, text))
        if parsed[1] == "mm" and unit == "nm":
            counted = _unit_stems(group) in (5, 6)
            if (not counted or again is not None and again[1] == "mm") and line_unit() == "mm":
                # Without stems to count, an "mm" whose first letter is
                # narrower than its second (a downscaled "m" can lose a
                # stem's width): the odds, far ahead (:func:`_unit_verdict`),
                # outweigh the widths. With five or six stems and the OCR
                # reading "mm" at both sizes, they doubt the stems: two
                # stems of an "m" can join (a monospaced "500mm" downscaled)
                # as well as an "n" can read "m".
                if counted:
                    factor = min(factor, 0.45)
                else:
                    unit, factor = "mm", 1.0
        doubt *= factor
        if line is not group and {unit, _unit_by_stems(line)} == {"nm", "mm"}:
            # The line's core, read for want of a reading of the line, can
            # lose a stem: where the whole line's stems read the other of
            # "nm" and "mm", the unit is doubted.
            doubt *= 0.45
        # The recogniser's odds are asked only when there is a doubt to lift;
        # picometre bars stay as rare as they were, and a millimetre needs
        # odds far ahead (:func:`_unit_verdict`).
        if doubt < 1 and unit != "pm" and line_unit() == unit:
            doubt = 1.0
        score *= doubt
        read.append((group, text, parsed[0], unit, score))
        if score > 0.9:
            break
    # Two lines over the same text (one taking in a particle beside it) that
    # read it as different lengths, both at the threshold: neither is sure.
    sure = [r if not any(q[4] >= MIN_CONFIDENCE and q[2:4] != r[2:4]
                         and _overlap(q[0].box, r[0].box) for q in read)
            else (*r[:4], 0.5 * r[4]) for r in read]
    return max(sure, key=lambda r: r[4], default=None)


#: The signs OCR reads for a "µ": the micro sign and the Greek mu.
_MICRO_GLYPHS = "[\N{MICRO SIGN}\N{GREEK SMALL LETTER MU}]"


#: The letters OCR leaves of a unit it read in part ("u" of "um", "m" of "nm").
_UNIT_REMNANT = r"\s*(?:[unmp]|" + _MICRO_GLYPHS + r"){1,2}\s*$"


def _goes_on_with_line(group, bar):
    """Whether ``bar``, shorter than twice the line's height, goes on with the line.

    Such a "bar" may be the line's lost letters: a stroke of the "m" of a
    large "100 nm" read "100 n".
    """
    top, _, bottom, right = group.box
    height = bottom - top
    return bool(min(bottom, bar.bottom) > max(top, bar.top) and 0 <= bar.left - right < height
                and bar.length < 2 * height)


def _label_from_odds(p, group, bar, engine, crops):
    """((value, unit), score) of a line OCR could not read, as the likeliest label; or None.

    Small or damaged text ("250 am", "2001m" for "250 nm" and "200 nm")
    is read as the scale-bar label the recogniser finds clearly likeliest
    (:func:`_likeliest_label`) in one of the line's ``crops`` (tried in
    order), when the line's smaller crop gives the same value and a unit
    both allow, and the wide crop (a digit left out of the line: "5 nm" of
    "25 nm") the same value first among values. "nm" and "mm" that the
    odds cannot tell apart are told by the letters' stems
    (:func:`_unit_by_stems`; not five when one may be lost,
    :func:`_stem_maybe_lost`; four, "nm" short of one,
    :func:`_nm_short_of_a_stem`), which must not contradict an "nm" or "mm" the
    odds tell. Not when the bar may be the line's letters
    (:func:`_goes_on_with_line`). The score is 0.7.

    When no crop of the line gives a label, the wide crop's label is taken
    (:func:`_wide_crop`, unmasked: it keeps the grey of strokes thinner than
    a pixel that the line's mask cuts, as in a small monospaced "nm", read
    "1"), when the line's crop and its smaller crop both give its value,
    clearly ahead of any other (:func:`_clear_value`).
    """
    if _goes_on_with_line(group, bar):
        return None
    smaller = wide = None  # read once, when a crop gives a label
    for crop in crops:
        label = _likeliest_label(engine, crop)
        if label is None:
            continue
        if smaller is None:
            smaller = _likeliest_label(engine, _ocr_crop(p, group, 28))
            wide = _likeliest_value(engine, _wide_crop(p, group, bar))
        value = label[0]
        if smaller is None or smaller[0] != value or wide != value:
            continue
        unit = _unit_of_odds(group, set(label[1]) & set(smaller[1]))
        if unit is not None:
            return (value, unit), 0.7
    if smaller is not None or not crops:
        return None  # a crop gave a label, and the wide one was asked already
    label = _likeliest_label(engine, _wide_crop(p, group, bar))
    if label is None or any(_clear_value(engine, crop) != label[0]
                            for crop in (crops[0], _ocr_crop(p, group, 28))):
        return None
    unit = _unit_of_odds(group, set(label[1]))
    return ((label[0], unit), 0.7) if unit is not None else None


def _unit_of_odds(group, units):
    """The unit of :func:`_label_from_odds`, of the ``units`` the odds allow; or None.

    One unit is taken as it is; "nm" and "mm" both are told by the
    letters' stems (:func:`_unit_by_stems`; four, "nm" short of one,
    :func:`_nm_short_of_a_stem`; not "nm" when a stem may be lost,
    :func:`_stem_maybe_lost`). The stems must not contradict a single unit.
    """
    count = _unit_stems(group) if units & {"nm", "mm"} else None
    stems = _unit_by_stems(group, count) if count is not None else None
    if len(units) == 2 and stems is None and _nm_short_of_a_stem(group, count):
        stems = "nm"
    if len(units) == 2 and stems == "nm" and _stem_maybe_lost(group):
        return None  # maybe an "mm" that lost a stem (:func:`_unit_plausibility`)
    unit = stems if len(units) == 2 else next(iter(units), None)
    return unit if unit is not None and (stems is None or stems == unit) else None


def _nm_short_of_a_stem(group, stems=None):
    """Whether a label's letters are an "nm" short of a stem: four stems, the first one narrower.

    A thin stem of a small "nm" falls short of the grey the glyphs are cut
    at (JPEG, downscaling); an "mm" would have to lose two, and its letters
    are as wide as each other (:func:`_unit_by_widths`). ``stems``: the
    count (:func:`_unit_stems`), when known.
    """
    stems = _unit_stems(group) if stems is None else stems
    return stems == 4 and _unit_by_widths(group) == "nm"


def _unit_from_odds(p, group, bar, engine, readings):
    """The reading of a line that gives the number but no unit, with a unit; or None.

    OCR drops a small unit's letter or two ("2u", "500m" for "2 um" and
    "500 um"). ``readings``: the line's (crop, text, score), in the order
    to try. When a reading's number is read at the line's smaller size too,
    and the wide crop shows no other number (a digit left out of the line:
    "5 n" for "25 nm"), its unit is the one the recogniser's odds clearly
    favour (:func:`_unit_by_odds`) in its crop, if it is "nm" or "µm".
    Returns ((value, unit), score, crop, text), the score being the
    reading's lowered by a fifth. None also when the bar, shorter than
    twice the line's height, goes on with the line: it may be the letters
    lost.
    """
    if _goes_on_with_line(group, bar):
        return None
    others = None  # the line's smaller and wide readings, read once
    for crop, text, score in readings:
        # What is left of the unit must be letters of one: "2u", "500 m", not "2h".
        match = re.match(_LEADING_DIGITS + _UNIT_REMNANT, text)
        number = _line_number(text)
        if match is None or number is None:
            continue
        if others is None:
            others = (_recognise(engine, _ocr_crop(p, group, 28))[0],
                      _recognise(engine, _wide_crop(p, group, bar))[0])
        again, wide_text = others
        if _line_number(again) != number:
            continue
        if _line_number(wide_text) not in (None, number) or _other_number(wide_text, text):
            continue
        unit = _unit_by_odds(engine, crop, match.group(1), _has_descender(group))
        # "mm" and "pm", rare, would rest on the glyphs alone, whose two
        # stems before an "m" may be an "n" or a "u".
        if unit in ("nm", "\N{MICRO SIGN}m"):
            return (number, unit), 0.8 * score, crop, text
    return None


def _as_stems_say(reading, unit):
    """``reading`` (value, unit) with an "nm" or "mm" replaced by ``unit`` (when not None)."""
    if reading is None or unit is None or reading[1] not in ("nm", "mm"):
        return reading
    return reading[0], unit


def _micro_stem_as_digit(plain, parsed):
    """Whether a plain reading in µm is ``parsed``'s number with the "µ"'s stem read as a "1".

    Unsmoothed, a tight bold "25µm" reads "251m": the stem of the "µ",
    reaching below the line, is a "1", its tail the descender that makes
    the "m" a "µm". The line's reading in µm (or "pm", OCR's "p" for "µ")
    agrees with it.
    """
    return (plain[1] == "\N{MICRO SIGN}m" and parsed[1] in ("\N{MICRO SIGN}m", "pm")
            and f"{plain[0]:g}" == f"{parsed[0]:g}1")


def _plain_reading(p, group, engine, crop):
    """(value, unit) of the line read without smoothing; None when not smoothed or no length.

    Smoothing small aliased text (:func:`_to_height`) mends the thin joins
    of its letters (the arch of an "n"), but can blur a digit into another
    (a "2" of 9 px into a "7"). The number must then also be read from the
    crop as it is (:func:`_read_groups` compares it); its unit only counts
    where it sees a "µ" (the letters are what the smoothing mends). ``crop``
    is the line's smoothed crop.
    """
    plain = _ocr_crop(p, group, 40, smooth=False)
    if np.array_equal(plain, crop):
        return None  # not smoothed
    text, _ = _recognise(engine, plain)
    return _parse_with_glyphs(text, group)


def _join_words(lines):
    """Detected text boxes, plus each joined with its next neighbour on its line ("200", "nm").

    The next neighbour is the nearest box that starts after it ends (or
    overlaps its end by a fifth of a line height at most), less than 1.5
    line heights away, on the same line (other lines' boxes, such
    as a panel letter below, may start in between).
    """
    lines = sorted(lines, key=lambda line: line[0][1])
    joined = list(lines)
    for (ta, la, ba, ra), text_a, score_a in lines:
        for (tb, lb, bb, rb), text_b, score_b in lines:
            height = max(ba - ta, bb - tb, 1)
            same_line = min(ba, bb) - max(ta, tb) > 0.5 * min(ba - ta, bb - tb)
            # (Boxes of two words can overlap by a pixel or two.)
            if same_line and -0.2 * height <= lb - ra < 1.5 * height and lb > la:
                joined.append(((min(ta, tb), la, max(ba, bb), rb), f"{text_a} {text_b}",
                               min(score_a, score_b)))
                break  # the boxes are in order from the left: this one is the nearest
    return joined


def _off_the_bar(crop, box, text, score, bar, r0, c0, engine):
    """A detected text box that starts or ends on the bar, read again without the bar.

    Text detection can take a bar's end tick, next to the label, for a first
    glyph ("2 nm" read "12nm"). The part of the box over the bar's columns is
    cut off and the rest read again. ``box`` is in ``crop``'s coordinates,
    whose top-left pixel is ``(r0, c0)`` of the image.
    """
    t, l, b, r = box
    bt, bl, bb, br = bar.top - r0, bar.left - c0, bar.bottom - r0, bar.right - c0
    if min(b, bb) <= max(t, bt):  # not on the bar's rows
        return box, text, score
    if bl <= l < br < r:        # starts on the bar's right end
        l = br + 1
    elif l < bl < r <= br:      # ends on its left end
        r = bl - 1
    else:
        return box, text, score
    if r - l < 2 or b - t < 2:
        return (t, l, b, r), "", 0.0
    pad = max(2, (b - t) // 3)
    line = np.pad(crop[t:b, l:r], pad, mode="edge")
    text, score = _recognise(engine, line)
    return (t, l, b, r), text, score


def _detected_line(crop, box, height=40):
    """A detected text box of ``crop`` (uint8), padded, scaled to about ``height`` px lines."""
    t, l, b, r = box
    t, l = max(t, 0), max(l, 0)
    line = crop[t:b, l:r]
    pad = max(2, (b - t) // 3)
    return _to_height(np.pad(line, pad, mode="edge"), b - t, height)


def _read_detected(p, bar, engine):
    """Fallback: detect text lines around the bar, read the nearest that parses.

    A line cut by a side of the region searched ("50 nm" of a "250 nm"
    beside a short bar) is not read: the search is made again in a region
    twice as wide, once.
    """
    L = bar.right - bar.left
    reach = int(max(0.8 * L, 10 * bar.thickness, 30, 0.1 * min(p.shape)))
    reach_h = int(max(2 * L, reach))  # a label beside the bar can be longer than the bar
    best, cut = _detected_reading(p, bar, engine, reach, reach_h)
    if best is None and cut:
        best, _ = _detected_reading(p, bar, engine, 2 * reach, 2 * reach_h)
    return best


def _detected_reading(p, bar, engine, reach, reach_h):
    """:func:`_read_detected` in the region ``reach`` rows and ``reach_h`` columns round the bar.

    Returns the reading (or None) and whether a line that parses was cut by
    a side of the region within the image.
    """
    H, W = p.shape
    L = bar.right - bar.left
    r0, r1 = max(bar.top - reach, 0), min(bar.bottom + reach, H)
    c0, c1 = max(bar.left - reach_h, 0), min(bar.right + reach_h, W)
    crop = p[r0:r1, c0:c1]
    grey = (255 * np.clip(crop, 0, 1)).astype(np.uint8)
    best, cut = None, False
    cy, cx = (bar.top + bar.bottom) / 2 - r0, (bar.left + bar.right) / 2 - c0
    thr = (bar.level + bar.ground) / 2
    for candidate in (255 - grey, grey):
        for (t, l, b, r), text, score in _join_words(_detect_text(engine, candidate)):
            (t, l, b, r), text, score = _off_the_bar(candidate, (t, l, b, r), text, score,
                                                     bar, r0, c0, engine)
            parsed = parse_scale_label(text)
            if parsed is None:
                continue
            ocr_unit = parsed[1]  # (before the glyphs' checks)
            # A glyph outside the region leaves the line a gap's width from
            # its side (the "2" of a "250 nm" beside the bar), not at it.
            gap = max(1, 0.25 * (b - t))
            if (l <= gap and c0 > 0 or r >= crop.shape[1] - 1 - gap and c1 < W
                    or t <= 1 < r0 or b >= crop.shape[0] - 1 and r1 < H):
                cut = True
                continue
            distance = math.hypot(max(l - cx, cx - r, 0) / max(L, 1), max(t - cy, cy - b, 0) / max(L, 1))
            box = (t + r0, l + c0, b + r0, r + c0)
            if distance > 1.0 or _stroke_of_text(p, bar, box) \
                    or _on_ground_of_bar_colour(crop, (t, l, b, r), bar):
                continue
            if bar.quality < 0.5 and np.mean(crop[max(t, 0):b, max(l, 0):r] >= thr) > 0.5:
                # Text of the other colour (its glyphs cover less than half
                # its box, the rest at the bar's grey) round a ragged "bar":
                # the strip of ground between a label and its bar is no bar,
                # and the label is not its own. (A clean bar's label can be
                # of the other colour: white text in a black box by a black bar.)
                continue
            if not _ink(bar) and np.mean(crop[max(t, 0):b, max(l, 0):r] >= thr) < 0.05:
                # Text of the other colour (no glyph reaches the bar's side
                # of the midpoint) by a "bar" of a particle's grey: the strip
                # of a particle between a label and its bar, faint over it.
                continue
            # Text of the bar's colour: its glyphs can be checked. In the
            # first candidate the OCR sees such text dark; what it reads in
            # the second, with clutter of the other colour around it, only
            # serves the stems of "nm" and "mm", which need clean letters
            # (a speck below the line would pass for the tail of a "µ").
            glyphs = _detected_glyphs(crop, (t, l, b, r), thr, bar, r0, c0)
            checked = glyphs if candidate is not grey else None
            parsed = _unit_from_glyphs(parsed, checked, text)
            unit, factor = _unit_in_core(p, glyphs, bar, parsed[1], parsed[0])
            if unit == "\N{MICRO SIGN}m" and _plain_u(text, checked) and _line_odds(
                    engine, _detected_line(candidate, (t, l, b, r)), text) != unit:
                # "500 nm" is read "500um" too; the recogniser's odds can settle it.
                factor *= 0.5
            elif unit == "mm" and factor < 1 and _line_odds(
                    engine, _detected_line(candidate, (t, l, b, r)), text) == unit:
                factor = 1.0  # a doubted "mm" far ahead in the odds (:func:`_unit_verdict`)
            elif unit == "nm" and ocr_unit == "mm" and _line_odds(
                    engine, _detected_line(candidate, (t, l, b, r)), text) == ocr_unit:
                factor = min(factor, 0.45)  # glyphs against the odds (:func:`_read_groups`)
            score *= 0.8 * factor
            key = score - 0.2 * distance
            if best is None or key > best[-1]:
                best = (box, text, parsed[0], unit, score, key)
        if best is not None:
            break
    return (None if best is None else best[:-1]), cut


def _on_ground_of_bar_colour(crop, box, bar):
    """Whether a detected text box lies on a flat ground of the bar's grey (a box of its colour).

    Such text has the other colour: a label in a box that a "bar" of the
    box's colour borders (the strip of the box below the label), not the
    label of a bar of its own colour. A micrograph around the text (dense
    particles of about the bar's grey) is no flat ground: its greys vary.
    ``box`` is in ``crop``'s coordinates.
    """
    t, l, b, r = box
    inside = crop[max(t, 0):b, max(l, 0):r]
    if min(inside.shape) < 3:
        return False
    edge = np.concatenate([inside[0], inside[-1], inside[1:-1, 0], inside[1:-1, -1]])
    span = bar.level - bar.ground
    return bool(np.mean(np.abs(edge - bar.level) < 0.15 * span) > 0.8)


def _detected_glyphs(crop, box, thr, bar, r0, c0):
    """The glyphs of a detected text box of the bar's colour as a line group, or None.

    Such text can be checked glyph by glyph (the stems of "nm"). The rows of
    the bar, which a box next to it can take in, are left out. A box with
    no ink, or ink all over, at the bar's midpoint grey is no text of the
    bar's colour: None. ``box`` is in ``crop``'s coordinates,
    whose top-left pixel is ``(r0, c0)`` of the image.
    """
    t, l, b, r = box
    t, l = max(t, 0), max(l, 0)
    if b <= t or r <= l:
        return None
    patch = crop[t:b, l:r]
    mask = patch >= thr
    if mask.mean() > 0.6:
        # Text on a particle, which joins it at the midpoint grey: the
        # glyphs are what comes near the text's own grey.
        mask = patch >= _core_grey(bar)
    _blank_bar(mask, bar, r0 + t, c0 + l)
    # The box has a margin around its text: what lies wholly in its outer
    # fifth, above or below, is something else (the edge of a particle, a tick).
    labels, _ = ndi.label(mask, structure=np.ones((3, 3), bool))
    h = mask.shape[0]
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None and (sl[0].stop <= 0.2 * h or sl[0].start >= 0.8 * h):
            mask[labels == k] = False
    if not 0.05 <= mask.mean() <= 0.6:
        return None
    return _Group("detected", (t + r0, l + c0, b + r0, r + c0), mask, 0.0,
                  grey=_text_grey(patch, bar))


def _stroke_of_text(p, bar, box):
    """Whether ``bar`` is a stroke of a glyph of the text in ``box`` (the foot of a "2").

    It lies in the text's box, and at its midpoint grey it is joined to
    strokes that reach more than one and a half times its thickness above or
    below it (a glyph's, where end ticks reach about its thickness). A bar
    that the detected box takes in beside its label is not. A bar with tall
    ticks, or touching a glyph, counts as one: a miss, never a wrong reading.
    """
    if _share(_bar_box(bar), box) <= 0.5:
        return False
    H, W = p.shape
    t, l = max(box[0], 0), max(box[1], 0)
    b, r = min(box[2], H), min(box[3], W)
    labels, _ = ndi.label(p[t:b, l:r] >= (bar.level + bar.ground) / 2,
                          structure=np.ones((3, 3), bool))
    core = labels[max(bar.core_top - t, 0):max(bar.core_bottom - t, 0),
                  max(bar.left - l, 0):max(bar.right - l, 0)]
    ids = np.unique(core[core > 0])
    if len(ids) == 0:
        return False
    rows = np.nonzero(np.isin(labels, ids).any(axis=1))[0] + t
    beyond = max(bar.core_top - int(rows[0]), int(rows[-1]) + 1 - bar.core_bottom)
    return beyond > 1.5 * max(bar.core_bottom - bar.core_top, 1) + 1


def _background_box(p, box, ground):
    """The uniform box of the ground's colour around ``box``, if there is one.

    A box behind an annotation is filled with the colour opposite to its text
    (near black behind white text, near white behind black): a grey ground is
    the micrograph itself (particles under a label), never a box.
    """
    if ground > 0.2:  # p is the polarity image: the text is light, a box is dark
        return box
    H, W = p.shape
    top, left, bottom, right = box
    h = bottom - top
    grow = max(2, h // 2)
    t0, l0 = max(top - 3 * grow, 0), max(left - 3 * grow, 0)
    t1, l1 = min(bottom + 3 * grow, H), min(right + 3 * grow, W)
    win = p[t0:t1, l0:l1]
    flat = np.abs(win - ground) < 0.08
    labels, n = ndi.label(flat)
    # The flat region that touches the annotation's outline.
    ring = np.zeros(win.shape, bool)
    rt, rl = max(top - t0 - 1, 0), max(left - l0 - 1, 0)
    rb, rr = min(bottom - t0 + 1, win.shape[0]), min(right - l0 + 1, win.shape[1])
    ring[rt:rb, rl:rr] = True
    ring[rt + 1:rb - 1, rl + 1:rr - 1] = False
    ids, counts = np.unique(labels[ring & flat], return_counts=True)
    if len(ids) == 0:
        return box
    region = labels == ids[np.argmax(counts)]
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    bt, bl, bb, br = rows[0], cols[0], rows[-1] + 1, cols[-1] + 1
    touches = (bt == 0 and t0 > 0) or (bl == 0 and l0 > 0) or (bb == win.shape[0] and t1 < H) \
        or (br == win.shape[1] and l1 < W)
    filled = region[bt:bb, bl:br].mean()
    if touches or filled < 0.5:
        return box
    return (min(top, t0 + bt), min(left, l0 + bl), max(bottom, t0 + bb), max(right, l0 + br))


def _ring_median(p, box, width=2):
    """Median grey of a ring ``width`` px wide just outside ``box``."""
    H, W = p.shape
    t, l, b, r = box
    outer = p[max(t - width, 0):min(b + width, H), max(l - width, 0):min(r + width, W)]
    ring = np.ones(outer.shape, bool)
    ring[t - max(t - width, 0):b - max(t - width, 0), l - max(l - width, 0):r - max(l - width, 0)] = False
    return float(np.median(outer[ring])) if ring.any() else float(np.median(outer))


def _union(*boxes):
    boxes = [b for b in boxes if b is not None]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


#: The length of a bar in a box, as a fraction of the box's strip beside it:
#: at least the first (the strip of a box holding the label on the bar's line
#: is about twice as long as the bar), at most the second (the box's margins).
_STRIP_RATIO = (0.3, 0.9)
#: The upper bound for a bar with a strip of its box on both sides, above and
#: below (a long bar in a box with narrow margins reaches 0.91 of its strips).
#: One strip is not enough: the ground between a bar's end ticks, on one side
#: of it, runs along the bar as a box's strip does, a tick's width shorter.
_HELD_RATIO = 0.95


def _clean_length(bar):
    """A bar's length, discounted for ragged ends and for different grounds above and below."""
    return bar.length * bar.quality * max(1 - bar.sides, 0)


def _within(a, b):
    """Whether bar ``a`` lies in the rows of bar ``b``'s own stroke, between its ends."""
    return (a.polarity == b.polarity and b.core_top <= a.core_top and a.core_bottom <= b.core_bottom
            and b.left - 2 <= a.left and a.right <= b.right + 2)


def _inside(a, b):
    """Whether bar ``a``, of the other polarity, runs along bar ``b`` between its ends.

    ``a`` lies within ``b``'s columns and shares rows with it: a bar drawn in
    a box, ``b`` the strip of the box around it or beside it. A region that
    only touches ``b`` (the gap of a box between a label and the bar under
    it) does not run along it.
    """
    return (a.polarity != b.polarity and b.left - 2 <= a.left and a.right <= b.right + 2
            and min(a.bottom, b.bottom) > max(a.top, b.top))


def _along(inner, outer):
    """Whether ``inner`` runs along ``outer`` and is long enough to be a bar drawn in it.

    Along it as :func:`_inside` says, not the other way round; at least the
    first fraction of :data:`_STRIP_RATIO` of its length; and held in it: a
    bar drawn in a box is enclosed by the box's ground. The ground between a
    bar's end ticks, on the side where they stand out, is not: it runs on
    round the ticks, past both ends of the bar.
    """
    return (_inside(inner, outer) and not _inside(outer, inner)
            and inner.length >= _STRIP_RATIO[0] * outer.length and not _runs_past(inner, outer))


def _runs_past(a, b):
    """Whether the component of bar ``a`` runs on past both ends of bar ``b``."""
    first, last = a.reach
    return first < b.left and last > b.right


def _held(a, bars):
    """Whether bar ``a`` runs along strips of the other polarity both above and below it.

    The strips of a box around a bar drawn in it; not the grounds between a
    bar's end ticks, which lie on one side of their own short strokes. How
    much longer the strips may be is :func:`_better`'s to judge.
    """
    above = below = False
    for b in bars:
        if b is a or not _along(a, b):
            continue
        above |= b.core_top < a.core_top
        below |= b.core_bottom > a.core_bottom
    return above and below


def _better(a, b, held=()):
    """Whether bar ``a`` is more likely the scale bar than ``b``, which touches it.

    Of two of the other polarity over the same columns, a clean bar of ink
    wins over one whose rows run on past both its ends (the strip of a box
    between the bar and its label). Of two of the other polarity, one
    running along the other between its ends, clean, of a black or white
    ink (not the grey of a particle), with
    grounds as alike, and shorter (but not much shorter) is the bar, and the
    other a strip of the box it is drawn in: the rows between the bar and
    the box's edge, with the bar's grey beyond them, or the box's whole line
    holding the bar and its label (up to :data:`_HELD_RATIO` of the strip's
    length for a bar in ``held``, with strips on both sides). Else a bar
    less than half as long as the other is a piece of something next to it;
    one within the other's stroke is a piece of it; one of black or white
    ink wins over one of a particle's grey (:func:`_ink`); the one with the same
    ground above and below is the bar, the other a strip of the box it is
    drawn in; else the longer and cleaner one wins.
    """
    if _inside(a, b) and _inside(b, a):
        for inner, outer in ((a, b), (b, a)):
            # (The strip is measured to the bar's ends by the glyphs beside it.)
            if (_runs_past(outer, inner) and not _runs_past(inner, outer)
                    and inner.quality >= 0.8 and _ink(inner)):
                return inner is a
    for inner, outer in ((a, b), (b, a)):
        upper = _HELD_RATIO if any(inner is h for h in held) else _STRIP_RATIO[1]
        if (_along(inner, outer) and inner.quality >= 0.8 and _ink(inner)
                and inner.sides <= outer.sides + 0.1 and inner.length <= upper * outer.length):
            return inner is a
    if a.length < 0.5 * b.length or b.length < 0.5 * a.length:
        return a.length > b.length
    # A strip inside another bar's rows (the bar's lower rows over a light
    # particle, between its end ticks) is a part of that bar.
    if _within(a, b) or _within(b, a):
        return _within(b, a)
    # A bar of black or white ink is the bar, rather than a stroke of a
    # particle's grey beside it, whatever the grounds around each.
    if _ink(a) != _ink(b):
        return _ink(a)
    if abs(a.sides - b.sides) > 0.1:
        return a.sides < b.sides
    return _clean_length(a) > _clean_length(b)


#: The least grey (in a bar's polarity, the image's range being 0 to 1) of
#: a bar of black or white ink, rather than of a particle's grey.
_INK = 0.85


def _ink(bar):
    """Whether a bar is of a black or white ink, not the grey of a particle."""
    return bar.level >= _INK


def _clean_ink_over_grey(a, b):
    """Whether bar ``a`` is clean and of black or white ink, and ``b`` of a particle's grey."""
    return _ink(a) and not _ink(b) and a.quality >= 0.8


def _candidates(img):
    """Bars of both polarities, measured at full resolution.

    Where two bars overlap or touch, the one more likely the scale bar is
    kept (:func:`_better`).
    """
    H, W = img.shape
    factor = max(1, int(math.ceil(max(H, W) / _SEARCH_SIDE)))
    measured = []
    for polarity in ("light", "dark"):
        p = img if polarity == "light" else 1.0 - img
        small = _pool(p, factor, "max")
        min_length = max(8, int(0.02 * min(small.shape)))
        boxes, across = _bar_candidates(small, min_length)
        for box in boxes + across:
            bar = _measure_bar(p, box, factor, polarity)
            # (One found across a particle must have straight ends: not a
            # streak of the particle's own texture.)
            if bar is not None and (box in boxes or bar.shape >= 0.8):
                measured.append((bar, p))
    bars = [bar for bar, _ in measured]
    held = [bar for bar in bars if _held(bar, bars)]
    kept = []
    for i in sorted(range(len(measured)), key=lambda i: -_clean_length(measured[i][0])):
        bar = measured[i][0]
        t, l, b, r = _bar_box(bar)
        rivals = [j for j in kept if _overlap((t - 2, l, b + 2, r), _bar_box(measured[j][0]))]
        if all(_better(bar, measured[j][0], held) for j in rivals):
            kept = [j for j in kept if j not in rivals] + [i]
    return [measured[i] for i in sorted(kept)]


def find_scale_bar(image, *, read=True):
    """Find the scale bar of a figure image, measure it and read its label.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, 3)
        The image: 8-bit, 16-bit or float; RGB is reduced to grey.
    read : bool, default=True
        Read the label with OCR when the extra is installed
        (``pip install "particleseg[scalebar]"``). With False, or without the
        extra, the bar and its label are located but not read.

    Returns
    -------
    ScaleBar or None
        None when the image has no scale bar (a long, thin, uniform
        rectangle with text of its colour next to it). When the label could
        not be read, or was read with a low confidence, ``value`` is None or
        ``calibrated`` is False, and ``message`` says why.

    See Also
    --------
    annotation_mask : the pixels of scale bars, labels and panel letters.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.scalebar import find_scale_bar
    >>> image = np.full((256, 256), 0.3)
    >>> image[230:234, 150:230] = 1.0          # a bar, but no label next to it
    >>> bar = find_scale_bar(image, read=False)
    >>> round(bar.length_px), bar.label_box, bar.value
    (80, None, None)
    >>> find_scale_bar(np.zeros((256, 256))) is None
    True
    """
    img = _normalise(image)
    if img is None or min(img.shape) < 16:
        return None
    engine = _ocr_engine() if read else None
    found = []
    for bar, p in _candidates(img):
        groups = _label_groups(p, bar)
        found.append((bar, p, groups))
    # Long, clean bars first.
    found.sort(key=lambda f: f[0].length * (0.3 + f[0].quality), reverse=True)
    if not found:
        return None
    labelled = [f for f in found if f[2]]
    if engine is not None:
        readings = []
        for bar, p, groups in labelled:
            hit = _read_groups(p, bar, groups, engine)
            if hit is not None:
                group, text, value, unit, score = hit
                readings.append((bar, p, group.box, text, value, unit, score))
            # (A ragged bar's label can be a clean bar's further off, and so
            # can the label of a band of a particle's grey, between particles
            # and the box of a bar of ink: read on.)
            if (readings and readings[-1][-1] > 0.9 and readings[-1][0].quality >= 0.8
                    and _ink(readings[-1][0])):
                break
        # Labels that line grouping missed (other colour, box) or joined to
        # texture beside them: find the text lines around the bar.
        if not _confident(readings, found):
            for bar, p, groups in found[:2]:
                hit = _read_detected(p, bar, engine)
                if hit is not None:
                    readings.append((bar, p, *hit))
                    break
        # Last, glyphs joined to particles beside them, cut out of them.
        if not _confident(readings, found):
            for bar, p, groups in labelled[:2]:
                boxes = {g.box for g in groups}
                freed = [g for g in _label_groups(p, bar, free_glyphs=True) if g.box not in boxes]
                hit = _read_groups(p, bar, freed, engine) if freed else None
                if hit is not None:
                    group, text, value, unit, score = hit
                    readings.append((bar, p, group.box, text, value, unit, score))
        readings = _to_clean_bars(readings, found)
        # A label holds no clean bar that has a label of its own: a "label"
        # that does (the content of a box, read by the box's edge) is not one.
        readings = [r for r in readings if not any(
            q is not r and _holds_bar(r[2], q) for q in readings)]
        # A label belongs to one bar (:func:`_owns_label`), of the bars that
        # read it (their label boxes overlap).
        readings = [r for r in readings if not any(
            q is not r and _overlap(q[2], r[2]) and _owns_label(q[0], r[0]) for q in readings)]
        if readings:
            best = max(readings, key=lambda r: r[-1] * (0.5 + 0.5 * r[0].quality))
            chosen = _reading(*best)
            # Other bars (the panels of a figure) must give the same scale;
            # each has a label of its own.
            others = []
            taken, label_boxes = [chosen.box], [chosen.label_box]
            for r in readings:
                if r is not best and not any(_overlap(_bar_box(r[0]), b) for b in taken):
                    taken.append(_bar_box(r[0]))
                    label_boxes.append(r[2])
                    others.append(_reading(*r))
            for bar, p, groups in labelled[:8]:
                if len(others) >= 3:
                    break
                if bar.quality < 0.5 or any(_overlap(_bar_box(bar), b) for b in taken):
                    continue
                taken.append(_bar_box(bar))
                hit = _read_groups(p, bar, groups, engine)
                if hit is not None and not any(_overlap(hit[0].box, b) for b in label_boxes):
                    group, text, value, unit, score = hit
                    label_boxes.append(group.box)
                    others.append(_reading(bar, p, group.box, text, value, unit, score))
            others = tuple(o for o in others if o.confidence >= MIN_CONFIDENCE)
            chosen = replace(chosen, others=others)
            if chosen.disagreeing:
                sizes = ", ".join(f"{o.describe()} ({o.pixel_size_nm:.4g} nm per pixel)"
                                  for o in (chosen, *chosen.disagreeing))
                chosen = replace(chosen, message=(
                    f"the image has scale bars that disagree: {sizes}; its panels have "
                    "different magnifications. Crop the panels into images of their own, or "
                    "pass the pixel size."))
            return chosen
    if labelled:
        bar, p, groups = labelled[0]
        label_box = groups[0].box
        if engine is None and read:
            message = (f"a scale bar of {bar.length:.0f} px was found, but reading its label "
                       f"needs OCR: {OCR_HINT}, or pass the pixel size.")
        elif engine is None:
            message = f"a scale bar of {bar.length:.0f} px was found; its label was not read."
        else:
            message = (f"a scale bar of {bar.length:.0f} px was found, but its label could not "
                       "be read as a length (such as 100 nm). Pass the pixel size instead.")
        box = _background_box(p, _union(_bar_box(bar), label_box), bar.ground)
        return ScaleBar(length_px=bar.length, bar_box=_bar_box(bar), label_box=label_box,
                        polarity=bar.polarity, box=box, message=message)
    # A clean bar with no text next to it: report it, but it calibrates nothing.
    clean = [f for f in found if f[0].quality > 0.8 and f[0].level - f[0].ground > 0.5]
    if not clean:
        return None
    bar, p, _ = max(clean, key=lambda f: f[0].length)
    return ScaleBar(length_px=bar.length, bar_box=_bar_box(bar), polarity=bar.polarity,
                    box=_bar_box(bar),
                    message=f"a bar of {bar.length:.0f} px was found with no label next to it.")


def _owns_label(a, b):
    """Whether bar ``a`` rather than ``b`` is the bar of a label both read.

    The longer one, as a shorter one is a piece of something near the label
    (a glyph's stroke, a tick); but not a longer one of a particle's grey,
    ragged or no cleaner, over one of black or white ink and clean: a strip
    of the ground between particles, with the label a long way off, or
    between particles and the label's box.
    """
    def clean_ink_over(x, y):
        return _clean_ink_over_grey(x, y) and y.quality <= x.quality

    if clean_ink_over(a, b) or clean_ink_over(b, a):
        return clean_ink_over(a, b)
    return a.length > b.length


def _confident(readings, found):
    """Whether a reading at the confidence threshold is left once each goes to its clean bar."""
    clean = _to_clean_bars(readings, found)
    return bool(clean) and max(r[-1] for r in clean) >= MIN_CONFIDENCE


def _holds_bar(label_box, reading):
    """Whether a label box holds the bar of ``reading``, a clean bar as long as its own label."""
    bar, label = reading[0], reading[2]
    return (bar.quality >= 0.8 and bar.length >= label[3] - label[1]
            and _share(_bar_box(bar), label_box) > 0.9)


def _to_clean_bars(readings, found):
    """The readings, each given to its clean bar (:func:`_to_clean_bar`).

    A bar's own reading of a label is kept over one handed to it (the foot
    of the "2" of a "25 µm", a "bar" whose line lost the "2" and read "5 µm",
    where the bar's own reading read the same or was doubted by the "25 µm"
    of its wider crop): that one is left out. So is a
    reading whose bar is shorter than its label is tall: a scale bar is at
    least as long as that, a stroke of the text itself may not be.
    """
    handed = [_to_clean_bar(r, found) for r in readings]
    # A reading is (bar, p, label_box, text, value, unit, score).
    kept = [h for h, r in zip(handed, readings) if h is r or not any(
        q[0] is h[0] and _overlap(q[2], h[2]) for q in readings)]
    # (A stroke of a large "µ" read the line it is part of.)
    return [r for r in kept if r[0].length >= r[2][2] - r[2][0]]


def _to_clean_bar(reading, found):
    """A ragged or short bar's reading, given to a clean, longer bar whose lines hold its label.

    A ragged "bar" (the edge of a particle) can read the label of the scale
    bar beside it when the bar's own line took in more than the label (a
    particle's edge before the "5 µm"): the label is the clean bar's. So
    can a "bar" shorter than the label it read (a sliver of a box's edge or
    of a particle next to the label) when the bar's own line lost part of
    the label (the "25" of a "25 µm"): its label goes to a clean bar at
    least as long as the label. A clean bar of black or white ink keeps its
    label from a bar of a particle's grey (:func:`_owns_label`).
    """
    bar, _, label_box = reading[:3]
    width = label_box[3] - label_box[1]
    if bar.quality >= 0.5 and bar.length >= width:
        return reading
    for other, p, groups in found:
        # (A short bar's label goes to no bar that is short of it as well.)
        if (other.polarity == bar.polarity and other.length > bar.length and other.quality >= 0.8
                and (bar.quality < 0.5 or other.length >= width)
                and not _clean_ink_over_grey(bar, other)
                and (any(_overlap(group.box, label_box) for group in groups)
                     or _strip_by_a_bar_of_ink(bar, other, label_box))):
            return (other, p, *reading[2:])
    return reading


def _strip_by_a_bar_of_ink(strip, bar, label_box):
    """Whether ``label_box``, read by a ragged ``strip`` of a particle's grey, is ``bar``'s.

    ``bar`` is of black or white ink, and the label lies over or under it
    as a label does (:func:`_label_groups`), though no line of its own
    reached the label (a particle beside the label, nearer to the bar, took
    its line); such a strip (the edge of a particle next to the label) is
    no scale bar.
    """
    if strip.quality >= 0.5 or _ink(strip) or not _ink(bar):
        return False
    top, left, bottom, right = label_box
    span = 0.5 * (bar.right - bar.left)
    return (_label_gap(max(top - bar.bottom, bar.top - bottom), bottom - top, bar.thickness)
            and right > bar.left - span and left < bar.right + span)


def _label_gap(gap, height, thickness):
    """Whether text ``height`` px tall, ``gap`` px over or under a bar, may be its label.

    ``thickness`` is the bar's: a thick bar's label can lie further off.
    """
    return 0 <= gap <= max(1.5 * height, 3 * thickness, 6)


def _bar_box(bar):
    return (bar.top, bar.left, bar.bottom, bar.right)


def _overlap(a, b):
    """Whether two boxes (top, left, bottom, right) overlap."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _share(a, b):
    """The fraction of box ``a``'s area that lies in box ``b`` (top, left, bottom, right)."""
    rows = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    cols = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return rows * cols / max((a[2] - a[0]) * (a[3] - a[1]), 1)


def _reading(bar, p, label_box, text, value, unit, score):
    """The :class:`ScaleBar` of a bar and the reading of its label."""
    text = text.strip(" '\"`\u2018\u2019\u201c\u201d")
    confidence = score * (0.6 + 0.4 * bar.quality) * _roundness(value)
    box = _background_box(p, _union(_bar_box(bar), label_box), bar.ground)
    message = "" if confidence >= MIN_CONFIDENCE else (
        f'read the scale bar as "{text}" with a low confidence ({confidence:.2f} < '
        f"{MIN_CONFIDENCE}); not used. Pass the pixel size instead.")
    return ScaleBar(length_px=bar.length, bar_box=_bar_box(bar), label_box=label_box,
                    text=text, value=value, unit=unit, confidence=float(confidence),
                    polarity=bar.polarity, box=box, message=message)


# --------------------------------------------------------------------------
# Annotations


def _glyph_lines(p, min_side):
    """Boxes of lines of text-like glyphs of the light colour of ``p``."""
    H, W = p.shape
    binary = p >= 0.8
    labels, n = ndi.label(binary, structure=np.ones((3, 3), bool))
    if not n:
        return []
    boxes = np.array([(s[0].start, s[1].start, s[0].stop, s[1].stop)
                      for s in ndi.find_objects(labels)])
    heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    max_h = max(8, int(0.2 * min_side))
    sized = np.nonzero((heights >= 5) & (heights <= max_h) & (widths <= 3 * max_h))[0]
    padded = np.pad(p, 3, mode="edge")
    within_3 = ndi.iterate_structure(ndi.generate_binary_structure(2, 1), 3)
    glyphs = []
    for k in sized:
        i, (t, l, b, r), h, w = int(k) + 1, boxes[k].tolist(), int(heights[k]), int(widths[k])
        # The stroke width: twice the largest distance to the ground. Other
        # components are not 8-connected to this one, so the ground nearest
        # to each pixel is in its box and the pixels around it, except beyond
        # the image's edges.
        stroke = 2 * float(ndi.distance_transform_edt(
            labels[max(t - 1, 0):b + 1, max(l - 1, 0):r + 1] == i).max())
        if stroke > 0.45 * h:
            continue  # a blob, not a stroke
        # Sharp: the ring around the glyph is much darker.
        comp = np.zeros((h + 6, w + 6), bool)
        comp[3:-3, 3:-3] = labels[t:b, l:r] == i
        ring = ndi.binary_dilation(comp, structure=within_3) & ~comp
        around = padded[t:b + 6, l:r + 6]  # the glyph's box and 3 px around it
        if np.median(around[ring]) > 0.45:
            continue
        solidity = comp.sum() / max(h * w, 1)
        glyphs.append((i, t, l, b, r, solidity))
    if not glyphs:
        return []
    comps5 = [g[:5] for g in glyphs]
    lines, used = [], set()
    for g in sorted(comps5, key=lambda c: -(c[3] - c[1])):
        if g[0] in used:
            continue
        members, box = _grow_line(g, comps5, used)
        used.update(m[0] for m in members)
        t, l, b, r = box
        near_edge = min(t, l, H - b, W - r) < 0.15 * min_side
        if len(members) >= 2 or near_edge:
            lines.append(box)
    return lines


def annotation_mask(image, *, scale_bar=None, margin=None, search_bar=True):
    """The pixels of figure annotations: scale bars, labels, panel letters, boxes.

    Annotations are found by their look, not read: text-like glyphs (thin
    strokes of the lightest or darkest grey, in lines or near the image edge),
    the scale bar and its label (:func:`find_scale_bar`), and the uniform box
    behind them when there is one.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, 3)
    scale_bar : ScaleBar, optional
        A bar already found; looked for here when omitted.
    margin : int, optional
        Pixels added around every annotation; default ``max(2, min(H, W) // 200)``.
    search_bar : bool, default=True
        Look for a scale bar when ``scale_bar`` is None. Pass False when the
        image was already searched and has none (as by :func:`calibrate`),
        to save the second search; text and boxes are still found.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)

    See Also
    --------
    remove_annotated_particles : drop the particles inside the mask.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.scalebar import annotation_mask
    >>> image = np.full((128, 128), 0.4)
    >>> image[100:104, 60:120] = 1.0          # a bar ...
    >>> image[86:96, 70:72] = image[86:96, 80:82] = image[86:88, 70:82] = 1.0  # ... and a glyph
    >>> mask = annotation_mask(image)
    >>> bool(mask[102, 90]), bool(mask[20, 20])
    (True, False)
    """
    img = _normalise(image)
    if img is None:
        return np.zeros(np.shape(check_image(image)), dtype=bool)
    H, W = img.shape
    margin = max(2, min(H, W) // 200) if margin is None else int(margin)
    mask = np.zeros((H, W), bool)
    if scale_bar is None and search_bar:
        scale_bar = find_scale_bar(img, read=False)

    def add(box):
        t, l, b, r = box
        mask[max(t - margin, 0):min(b + margin, H), max(l - margin, 0):min(r + margin, W)] = True

    if scale_bar is not None:
        for box in (scale_bar.box, scale_bar.bar_box, scale_bar.label_box):
            if box is not None:
                add(box)
    factor = max(1, int(math.ceil(max(H, W) / 2048)))
    for polarity in ("light", "dark"):
        p = img if polarity == "light" else 1.0 - img
        small = _pool(p, factor, "max") if factor > 1 else p
        for t, l, b, r in _glyph_lines(small, min(small.shape)):
            box = (t * factor, l * factor, b * factor, r * factor)
            add(_background_box(p, box, _ring_median(p, box)))
    return mask


def remove_annotated_particles(labels, mask, *, overlap=0.5):
    """Drop the particles that lie mostly inside an annotation mask.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance map: 0 background, ``k > 0`` the pixels of particle ``k``.
    mask : ndarray of bool, shape (H, W)
        The annotation pixels (:func:`annotation_mask`).
    overlap : float, default=0.5
        A particle is dropped when more than this fraction of its area lies
        inside the mask.

    Returns
    -------
    labels : ndarray of int
        A copy without the dropped particles (the others keep their labels).
    n_removed : int
        How many particles were dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.scalebar import remove_annotated_particles
    >>> labels = np.zeros((8, 8), int); labels[:2, :4] = 1; labels[5:, 5:] = 2
    >>> mask = np.zeros((8, 8), bool); mask[:3, :] = True
    >>> kept, n = remove_annotated_particles(labels, mask)
    >>> n, np.unique(kept).tolist()
    (1, [0, 2])
    """
    labels = check_instance_map(labels, "labels")
    mask = check_mask(mask, "mask")
    check_same_shape(labels, mask, "labels", "mask")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1); got {overlap}.")
    if not mask.any() or labels.max() == 0:
        return labels.copy(), 0
    n = int(labels.max())
    area = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[mask].ravel(), minlength=n + 1)
    drop = (inside > overlap * area) & (area > 0)
    drop[0] = False
    out = np.where(drop[labels], 0, labels)
    return out, int(drop.sum())


# --------------------------------------------------------------------------
# Choosing the calibration of an image


@dataclass(frozen=True)
class Calibration:
    """The pixel size chosen for an image by :func:`calibrate`.

    Attributes
    ----------
    pixel_size : float or None
        Size of one pixel in ``unit``; None when the image stays in pixels.
    unit : str
        ``"nm"`` (or the unit given with the pixel size), ``"px"`` when
        uncalibrated.
    source : {"option", "metadata", "scale bar", "none"}
        Where the pixel size came from.
    scale_bar : ScaleBar or None
        The bar found in the image, whether or not it was used.
    messages : tuple of str
        What a user should know: a bar that could not be read, a bar that
        disagrees with the metadata.

    Examples
    --------
    >>> from particleseg.scalebar import Calibration
    >>> Calibration(0.5, "nm", "metadata")
    Calibration(pixel_size=0.5, unit='nm', source='metadata', scale_bar=None, messages=())
    """

    pixel_size: float | None
    unit: str
    source: str
    scale_bar: ScaleBar | None = None
    messages: tuple = ()


def calibrate(image, *, pixel_size=None, unit="nm", metadata=None, scale_bar=True,
              tolerance=0.05):
    """Choose the pixel size of an image: given, from its metadata, or from its scale bar.

    The order is: ``pixel_size`` when given; else the file's own
    calibration (``metadata``, e.g. from :func:`particleseg.io.imread`);
    else the scale bar burnt into the image, when it is read with enough
    confidence (:data:`MIN_CONFIDENCE`). A bar that cannot be read, or is
    read with a low confidence, leaves the image in pixels, with a message:
    never a guessed unit.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, 3)
    pixel_size : float, optional
        A pixel size given by the user, in ``unit``; it wins.
    unit : str, default="nm"
        Unit of ``pixel_size``.
    metadata : (float or None, str), optional
        ``(pixel_size, unit)`` recorded in the file (``imread(...)[1:3]``).
    scale_bar : bool, default=True
        Look for a scale bar. When the metadata also gives a pixel size, the
        bar is still read and compared, and a message is added when they
        differ by more than ``tolerance``.
    tolerance : float, default=0.05
        Relative difference between bar and metadata that earns a message.

    Returns
    -------
    Calibration

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.scalebar import calibrate
    >>> calibrate(np.zeros((64, 64)), pixel_size=0.8).source
    'option'
    >>> calibrate(np.zeros((64, 64)), metadata=(0.5, "nm"), scale_bar=False).pixel_size
    0.5
    >>> calibrate(np.zeros((64, 64))).unit
    'px'
    """
    if pixel_size is not None:
        return Calibration(float(pixel_size), unit, "option")
    meta_size, meta_unit = metadata if metadata is not None else (None, "px")
    bar = find_scale_bar(image) if scale_bar else None
    messages = []
    if meta_size is not None:
        if bar is not None and bar.calibrated and meta_unit == "nm":
            difference = bar.pixel_size_nm / meta_size - 1
            if abs(difference) > tolerance:
                messages.append(
                    f"the scale bar ({bar.describe()}, {bar.pixel_size_nm:.4g} nm per pixel) "
                    f"and the file's metadata ({meta_size:.4g} nm per pixel) differ by "
                    f"{abs(difference):.0%}; the metadata is used. Check the image, or pass "
                    "the pixel size.")
        return Calibration(float(meta_size), meta_unit, "metadata", bar, tuple(messages))
    if bar is not None and bar.calibrated:
        return Calibration(float(bar.pixel_size_nm), "nm", "scale bar", bar)
    if bar is not None and bar.message:
        messages.append(bar.message)
    return Calibration(None, "px", "none", bar, tuple(messages))
