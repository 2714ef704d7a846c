"""Tests for particleseg.io."""

import sys
import types

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from particleseg.io import ImageReadError, Micrograph, imread
from particleseg.measure import measure_particles


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(24, 40)).astype(np.uint16)


def test_imagej_tiff_in_nm(tmp_path, image):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / 0.8, 1 / 0.8), metadata={"unit": "nm"})
    result = imread(path)
    assert isinstance(result, Micrograph)
    np.testing.assert_array_equal(result.image, image)
    assert result.image.dtype == np.uint16
    assert result.pixel_size == pytest.approx(0.8)
    assert result.unit == "nm"
    assert result.path == path


@pytest.mark.parametrize(
    "unit, size, expected_nm",
    [
        ("\\u00B5m", 0.0125, 12.5),  # how ImageJ writes µm in a TIFF description
        ("micron", 0.02, 20.0),
        ("um", 0.001, 1.0),
        ("mm", 1e-5, 10.0),
    ],
)
def test_imagej_units_are_converted_to_nm(tmp_path, image, unit, size, expected_nm):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / size, 1 / size), metadata={"unit": unit})
    result = imread(path)
    assert result.pixel_size == pytest.approx(expected_nm, rel=1e-6)
    assert result.unit == "nm"


@pytest.mark.parametrize("unit", ["pixel", "inch"])
def test_imagej_without_length_unit_is_uncalibrated(tmp_path, image, unit):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(72.0, 72.0), metadata={"unit": unit})
    assert imread(path)[1:3] == (None, "px")


def test_ome_tiff(tmp_path, image):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        path, image, ome=True,
        metadata={"PhysicalSizeX": 0.8, "PhysicalSizeXUnit": "nm",
                  "PhysicalSizeY": 0.8, "PhysicalSizeYUnit": "nm"},
    )
    result = imread(path)
    np.testing.assert_array_equal(result.image, image)
    assert (result.pixel_size, result.unit) == (pytest.approx(0.8), "nm")


@pytest.mark.parametrize(
    "unit, size, expected_nm",
    [
        ("\N{MICRO SIGN}m", 0.05, 50.0),
        ("\N{GREEK SMALL LETTER MU}m", 0.05, 50.0),
        ("\N{ANGSTROM SIGN}", 5.0, 0.5),
        ("pm", 500.0, 0.5),
        (None, 0.05, 50.0),  # the OME schema's default unit is the micrometre
    ],
)
def test_ome_tiff_units(tmp_path, image, unit, size, expected_nm):
    path = tmp_path / "a.ome.tif"
    metadata = {"PhysicalSizeX": size}
    if unit is not None:
        metadata["PhysicalSizeXUnit"] = unit
    tifffile.imwrite(path, image, ome=True, metadata=metadata)
    assert imread(path)[1:3] == (pytest.approx(expected_nm), "nm")


def test_tiff_resolution_tags(tmp_path, image):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, image, resolution=(1e7 / 2.5, 1e7 / 2.5), resolutionunit="CENTIMETER")
    assert imread(path)[1:3] == (pytest.approx(2.5), "nm")
    path = tmp_path / "dpi.tif"  # 72 dots per inch: a print setting
    tifffile.imwrite(path, image, resolution=(72, 72), resolutionunit="INCH")
    assert imread(path)[1:3] == (None, "px")
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, image)
    assert imread(path)[1:3] == (None, "px")


def test_fei_sem_tiff(tmp_path, image):
    path = tmp_path / "sem.tif"
    text = "[User]\r\nUser=x\r\n[Scan]\r\nPixelWidth=2.5e-09\r\nPixelHeight=2.5e-09\r\n"
    tifffile.imwrite(path, image, extratags=[(34682, "s", 0, text, True)])
    assert imread(path)[1:3] == (pytest.approx(2.5), "nm")


def test_tiff_singleton_axes_and_rgb(tmp_path, image):
    path = tmp_path / "stack1.tif"
    tifffile.imwrite(path, image[None, None])
    assert imread(path).image.shape == image.shape
    rgb = np.stack([image.astype(np.uint8)] * 3, axis=-1)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    np.testing.assert_array_equal(imread(path).image, rgb[..., 0])


def test_non_square_pixels_warn(tmp_path, image):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / 0.8, 1 / 1.6), metadata={"unit": "nm"})
    with pytest.warns(UserWarning, match="not square"):
        result = imread(path)
    assert result.pixel_size == pytest.approx(0.8)


def test_unknown_unit_warns_and_is_uncalibrated(tmp_path, image):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "furlong"})
    with pytest.warns(UserWarning, match="furlong"):
        assert imread(path)[1:3] == (None, "px")


def test_png_and_jpeg(tmp_path):
    gray = (np.arange(30 * 20) % 256).astype(np.uint8).reshape(30, 20)
    path = tmp_path / "a.png"
    iio.imwrite(path, gray)
    image, pixel_size, unit, read_path = imread(str(path))
    np.testing.assert_array_equal(image, gray)
    assert (pixel_size, unit, read_path) == (None, "px", path)

    path16 = tmp_path / "b.png"
    iio.imwrite(path16, gray.astype(np.uint16) * 200)
    assert imread(path16).image.dtype == np.uint16

    path = tmp_path / "a.jpg"
    iio.imwrite(path, np.stack([gray] * 3, axis=-1))
    result = imread(path)
    assert result.image.shape == (30, 20) and result.image.dtype == np.uint8
    assert np.abs(result.image.astype(int) - gray).mean() < 10  # lossy


def test_result_feeds_measure_particles(tmp_path):
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[5:9, 5:9] = 1
    for name, kwargs, column in [
        ("a.tif", {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"unit": "nm"}}, "area_nm2"),
        ("b.tif", {}, "area_px2"),
    ]:
        tifffile.imwrite(tmp_path / name, labels.astype(np.uint8), **kwargs)
        m = imread(tmp_path / name)
        table = measure_particles(labels, m.image, pixel_size=m.pixel_size, unit=m.unit)
        assert table.loc[0, column] == (4.0 if column == "area_nm2" else 16.0)


@pytest.mark.parametrize("name", ["bad.tif", "bad.png", "bad.jpg", "bad.xyz"])
def test_corrupt_file_raises_an_error_naming_the_path(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"II*\x00" + b"\xff" * 7 if name.endswith(".tif") else b"not an image at all")
    with pytest.raises(ImageReadError, match="bad") as info:
        imread(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    iio.imwrite(path, np.zeros((64, 64), dtype=np.uint8) + 7)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ImageReadError, match="cut.png"):
        imread(path)


def test_missing_file_folder_and_bad_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        imread(tmp_path / "nothere.tif")
    with pytest.raises(IsADirectoryError, match="folder"):
        imread(tmp_path)
    with pytest.raises(TypeError, match="path"):
        imread(np.zeros((4, 4)))


def test_stack_is_refused_with_the_path(tmp_path, image):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([image] * 5))
    with pytest.raises(ValueError, match="stack.tif"):
        imread(path)


# --------------------------------------------------------------------------
# Gatan DigitalMicrograph


def test_dm_without_rosettasciio_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "a.dm4"
    path.write_bytes(b"\x00\x00\x00\x04" + b"\x00" * 60)
    # A None entry in sys.modules makes the import fail, as if not installed.
    monkeypatch.setitem(sys.modules, "rsciio", None)
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", None)
    with pytest.raises(ImportError, match=r'pip install "particleseg\[dm\]"') as info:
        imread(path)
    assert "a.dm4" in str(info.value)


def fake_rsciio(monkeypatch, signals):
    """Install a stand-in for rsciio.digitalmicrograph returning ``signals``.

    The dicts follow RosettaSciIO's reader output: "data" and "axes", each
    axis with name, size, index_in_array, scale, offset and units.
    """
    package = types.ModuleType("rsciio")
    module = types.ModuleType("rsciio.digitalmicrograph")
    module.file_reader = lambda filename, **kwargs: signals
    package.digitalmicrograph = module
    monkeypatch.setitem(sys.modules, "rsciio", package)
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", module)


def axes(shape, scale, units):
    return [
        {"name": name, "size": size, "index_in_array": i, "scale": scale, "offset": 0.0, "units": units}
        for i, (name, size) in enumerate(zip("yx", shape))
    ]


def test_dm_with_rosettasciio_reads_calibration(tmp_path, monkeypatch, image):
    path = tmp_path / "a.dm3"
    path.write_bytes(b"\x00" * 16)
    fake_rsciio(monkeypatch, [{"data": image, "axes": axes(image.shape, 0.02, "\N{MICRO SIGN}m"),
                               "metadata": {}, "original_metadata": {}}])
    result = imread(path)
    np.testing.assert_array_equal(result.image, image)
    assert (result.pixel_size, result.unit) == (pytest.approx(20.0), "nm")

    fake_rsciio(monkeypatch, [{"data": image, "axes": axes(image.shape, 1.0, "<undefined>")}])
    assert imread(path)[1:3] == (None, "px")


def test_dm_without_an_image(tmp_path, monkeypatch):
    path = tmp_path / "spectrum.dm3"
    path.write_bytes(b"\x00" * 16)
    fake_rsciio(monkeypatch, [{"data": np.zeros((5, 6, 100)), "axes": []}])
    with pytest.raises(ImageReadError, match="no 2-D image"):
        imread(path)


def test_dm_reader_failure_is_wrapped(tmp_path, monkeypatch):
    path = tmp_path / "broken.dm4"
    path.write_bytes(b"\x00" * 16)

    def fail(filename, **kwargs):
        raise ValueError("Not a DM3 or DM4 file")

    fake_rsciio(monkeypatch, [])
    monkeypatch.setattr(sys.modules["rsciio.digitalmicrograph"], "file_reader", fail)
    with pytest.raises(ImageReadError, match="broken.dm4"):
        imread(path)
