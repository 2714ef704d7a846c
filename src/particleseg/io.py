"""Reading micrographs together with their pixel size.

:func:`imread` reads PNG, JPEG and other common images (through imageio), TIFF
(through tifffile, with the calibration that ImageJ/Fiji, OME-TIFF, FEI/Thermo
Fisher SEMs and the standard resolution tags record) and Gatan
DigitalMicrograph DM3/DM4 (through RosettaSciIO, an optional, GPL-licensed
dependency: ``pip install "particleseg[dm]"``).

Units: every calibrated length is converted to nanometres, so a calibrated
:class:`Micrograph` always has ``unit="nm"`` and an uncalibrated one has
``pixel_size=None`` and ``unit="px"``. The pair can be passed straight to
:func:`particleseg.measure_particles`.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._validation import check_image

__all__ = ["imread", "Micrograph", "ImageReadError"]

#: Length units understood in file metadata, as nanometres per unit. Keys are
#: lower case; "µ" (micro sign) and "μ" (Greek mu) are both accepted.
_NM_PER_UNIT = {
    "m": 1e9, "meter": 1e9, "metre": 1e9, "meters": 1e9, "metres": 1e9,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "um": 1e3, "\N{MICRO SIGN}m": 1e3, "\N{GREEK SMALL LETTER MU}m": 1e3,
    "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometre": 1e3,
    "micrometers": 1e3, "micrometres": 1e3,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "pm": 1e-3, "picometer": 1e-3, "picometre": 1e-3,
    "\N{LATIN SMALL LETTER A WITH RING ABOVE}": 0.1, "angstrom": 0.1, "angstroms": 0.1,
}
#: Units that mean "not calibrated". "inch" is what ImageJ reports for an
#: ordinary 72 dpi TIFF: a printing resolution, not a specimen size.
_UNCALIBRATED = {"", "px", "pixel", "pixels", "inch", "inches", "<undefined>", "none"}

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_DM_SUFFIXES = (".dm3", ".dm4")
_DM_HINT = 'pip install "particleseg[dm]"'


class Micrograph(NamedTuple):
    """An image read by :func:`imread`, with its calibration.

    A named tuple: ``image, pixel_size, unit, path = imread(path)`` works, as
    do the attributes.

    Attributes
    ----------
    image : ndarray, shape (H, W)
        The image, in the file's own dtype; RGB is converted to grey levels.
    pixel_size : float or None
        Size of one pixel in ``unit``, or None when the file records none.
    unit : str
        ``"nm"`` when calibrated, ``"px"`` otherwise.
    path : pathlib.Path
        The file that was read.

    Examples
    --------
    >>> import numpy as np
    >>> from particleseg.io import Micrograph
    >>> m = Micrograph(np.zeros((4, 4)), 0.8, "nm", None)
    >>> image, pixel_size, unit, path = m
    >>> m.pixel_size, unit
    (0.8, 'nm')
    """

    image: np.ndarray
    pixel_size: float | None
    unit: str
    path: Path


class ImageReadError(OSError, ValueError):
    """A file exists but cannot be read as an image.

    Subclasses both :class:`OSError` and :class:`ValueError`, so either may be
    caught.
    """


def _normalise_unit(unit) -> str:
    """Lower case, stripped, with ImageJ's escaped micro sign decoded."""
    if isinstance(unit, bytes):
        unit = unit.decode("latin-1")
    text = str(unit).strip()
    text = re.sub(r"\\u00b5", "\N{MICRO SIGN}", text, flags=re.IGNORECASE)
    text = text.replace("\N{ANGSTROM SIGN}", "\N{LATIN SMALL LETTER A WITH RING ABOVE}")
    return text.lower()


def _calibration(size_x, size_y, unit, path):
    """(pixel_size in nm, "nm"), or (None, "px") when uncalibrated."""
    key = _normalise_unit(unit)
    if key in _UNCALIBRATED or size_x is None:
        return None, "px"
    if key not in _NM_PER_UNIT:
        warnings.warn(
            f"{path}: the pixel size is recorded in an unknown unit {unit!r}; the "
            "image is treated as uncalibrated. Pass the pixel size by hand.",
            UserWarning,
            stacklevel=3,
        )
        return None, "px"
    factor = _NM_PER_UNIT[key]
    size_x = float(size_x) * factor
    if not (np.isfinite(size_x) and size_x > 0):
        return None, "px"
    if size_y is not None:
        size_y = float(size_y) * factor
        if np.isfinite(size_y) and size_y > 0 and abs(size_y - size_x) > 1e-3 * size_x:
            warnings.warn(
                f"{path}: pixels are not square ({size_x:g} nm wide, {size_y:g} nm "
                "high); measurements use the width.",
                UserWarning,
                stacklevel=3,
            )
    return size_x, "nm"


# --------------------------------------------------------------------------
# TIFF


def _ome_calibration(ome_xml):
    """(x, y, unit) from the first Pixels element of OME-XML, or None."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Pixels":
            x = element.get("PhysicalSizeX")
            if x is None:
                return None
            # The OME schema's default unit is the micrometre.
            unit = element.get("PhysicalSizeXUnit", "\N{MICRO SIGN}m")
            y = element.get("PhysicalSizeY")
            y_unit = element.get("PhysicalSizeYUnit", "\N{MICRO SIGN}m")
            if y is not None and _normalise_unit(y_unit) != _normalise_unit(unit):
                y = None  # different units: not worth converting only to compare
            return float(x), (float(y) if y is not None else None), unit
    return None


def _tiff_calibration(tif, page):
    """(x, y, unit) from OME, ImageJ, FEI/Thermo Fisher or resolution tags, or None."""
    if tif.is_ome and tif.ome_metadata:
        found = _ome_calibration(tif.ome_metadata)
        if found is not None:
            return found
    x_res, y_res = page.resolution
    has_resolution = "XResolution" in page.tags and x_res > 0
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij and "unit" in ij:
        if not has_resolution:
            return None
        return 1.0 / x_res, (1.0 / y_res if y_res > 0 else None), ij["unit"]
    fei = tif.fei_metadata if tif.is_fei else None
    scan = fei.get("Scan", {}) if isinstance(fei, dict) else {}
    if isinstance(scan, dict) and isinstance(scan.get("PixelWidth"), (int, float)):
        height = scan.get("PixelHeight")
        return scan["PixelWidth"], (height if isinstance(height, (int, float)) else None), "m"
    units = {3: "cm", 4: "mm", 5: "um"}  # RESUNIT CENTIMETER, MILLIMETER, MICROMETER
    if has_resolution and int(page.resolutionunit) in units:
        unit = units[int(page.resolutionunit)]
        return 1.0 / x_res, (1.0 / y_res if y_res > 0 else None), unit
    # RESUNIT NONE or INCH: no specimen calibration (INCH is a print setting,
    # such as the 72 dpi many programs write).
    return None


def _read_tiff(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        data = tif.series[0].asarray() if tif.series else page.asarray()
        calibration = _tiff_calibration(tif, page)
    while data.ndim > 2 and data.shape[0] == 1:  # OME/ImageJ singleton axes
        data = data[0]
    return data, calibration


# --------------------------------------------------------------------------
# Gatan DigitalMicrograph


def _read_dm(path):
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError as exc:
        raise ImportError(
            f"Reading the Gatan DigitalMicrograph file {path} needs RosettaSciIO, "
            f"which is not installed. Install it with: {_DM_HINT}"
        ) from exc
    signals = file_reader(str(path))
    for signal in signals:
        data = np.asarray(signal["data"])
        if data.dtype.names and {"R", "G", "B"} <= set(data.dtype.names):
            data = np.stack([data[c] for c in ("R", "G", "B")], axis=-1)
        if np.squeeze(data).ndim == 2 or data.ndim == 3 and data.shape[-1] in (3, 4):
            break
    else:
        shapes = [np.shape(s["data"]) for s in signals]
        raise ImageReadError(
            f"{path} holds no 2-D image (its data sets have shapes {shapes}); "
            "imread reads single micrographs."
        )
    if data.ndim > 2 and data.shape[-1] not in (3, 4):
        data = np.squeeze(data)
    # Axes in array order, without singleton ones: (y, x).
    axes = sorted(signal.get("axes", []), key=lambda a: a.get("index_in_array", 0))
    axes = [a for a in axes if a.get("size", 2) > 1]
    calibration = None
    if len(axes) == 2:
        y_axis, x_axis = axes
        unit = x_axis.get("units", "")
        same_unit = _normalise_unit(y_axis.get("units", "")) == _normalise_unit(unit)
        calibration = (x_axis.get("scale"), y_axis.get("scale") if same_unit else None, unit)
    return data, calibration


# --------------------------------------------------------------------------


def _read_other(path):
    import imageio.v3 as iio

    # imageio is given the bytes, not the path: on a bad file it would leave
    # the file it opened unclosed.
    return np.asarray(iio.imread(path.read_bytes())), None


def imread(path) -> Micrograph:
    """Read a micrograph and, where the file records it, its pixel size.

    Parameters
    ----------
    path : str or os.PathLike
        The file. TIFF files (any extension) are read with tifffile, ``.dm3``
        and ``.dm4`` with RosettaSciIO, everything else (PNG, JPEG, BMP, ...)
        with imageio.

    Returns
    -------
    micrograph : Micrograph
        A named tuple ``(image, pixel_size, unit, path)``. The pixel size
        comes from, in this order:

        * OME-TIFF: ``PhysicalSizeX`` and ``PhysicalSizeXUnit`` (µm when
          absent, as the OME schema says);
        * ImageJ/Fiji TIFF: the ``unit`` in its description and the
          ``XResolution`` tag (pixels per unit); ImageJ's ``spacing`` is the
          distance between slices and is not used;
        * FEI/Thermo Fisher SEM TIFF: ``PixelWidth`` in the ``[Scan]``
          section of its metadata (in metres);
        * other TIFF: ``XResolution`` with a ``ResolutionUnit`` of centimetre,
          millimetre or micrometre (a resolution in inches is a printing
          setting and is ignored);
        * DM3/DM4: the scale and units of the image's x axis.

        Lengths are converted to nanometres (``unit="nm"``); a file without a
        calibration in a length unit gives ``pixel_size=None, unit="px"``.
        PNG and JPEG carry no calibration. RGB images are converted to grey
        levels.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ImageReadError
        If the file cannot be read as an image (a subclass of both OSError and
        ValueError).
    ImportError
        For DM3/DM4 files when RosettaSciIO is not installed; install it with
        ``pip install "particleseg[dm]"``.
    ValueError
        If the file holds a stack or volume rather than one 2-D image.

    Warns
    -----
    UserWarning
        When the pixels are not square (the width is used), or the unit is
        not a length unit that is known (the image is then uncalibrated).

    Examples
    --------
    An ImageJ TIFF with 0.8 nm pixels:

    >>> import os, tempfile
    >>> import numpy as np
    >>> import tifffile
    >>> from particleseg.io import imread
    >>> path = os.path.join(tempfile.mkdtemp(), "calibrated.tif")
    >>> tifffile.imwrite(path, np.zeros((32, 48), dtype=np.uint16), imagej=True,
    ...                  resolution=(1 / 0.8, 1 / 0.8), metadata={"unit": "nm"})
    >>> micrograph = imread(path)
    >>> micrograph.image.shape, round(micrograph.pixel_size, 6), micrograph.unit
    ((32, 48), 0.8, 'nm')
    >>> image, pixel_size, unit, path = micrograph
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike); got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; imread reads one image file.")

    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if path.suffix.lower() in _DM_SUFFIXES:
            data, calibration = _read_dm(path)
        elif head in _TIFF_MAGIC:
            data, calibration = _read_tiff(path)
        else:
            data, calibration = _read_other(path)
    except (ImportError, ImageReadError):
        raise
    except Exception as exc:  # each reader fails in its own way on bad files
        raise ImageReadError(
            f"Could not read {path} as an image ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and is a TIFF, PNG, JPEG or DM3/DM4 "
            "image."
        ) from exc

    image = check_image(data, name=f"the image in {path}")
    pixel_size, unit = (None, "px") if calibration is None else _calibration(*calibration, path)
    return Micrograph(image=image, pixel_size=pixel_size, unit=unit, path=path)
