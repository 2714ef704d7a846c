"""Tests for the ``particleseg`` command (particleseg.cli), run in-process with main().

A tiny model trained for one epoch is shared by the tests; it segments poorly
(it finds no particles), so the tests that check measured values replace the
network's prediction by a known segmentation (``fake_prediction``).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from skimage.filters import threshold_otsu  # noqa: E402
from skimage.measure import label  # noqa: E402

import particleseg.segmenter  # noqa: E402
from particleseg import ParticleSegmenter, __version__  # noqa: E402
from particleseg._cli_analyze import find_images  # noqa: E402
from particleseg.annotation import annotate_borders  # noqa: E402
from particleseg.cli import build_parser, main  # noqa: E402
from particleseg.datasets import make_particles  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fake_prediction(monkeypatch):
    """Make every loaded model predict a given segmentation.

    Call the fixture with a function image -> instance map; predict_proba
    then returns the one-hot class map of its annotated borders.
    """

    def install(segment):
        def predict_proba(est, X, labels=None):
            classes = annotate_borders(segment(np.asarray(X)))
            est.last_scales_ = [1.0]
            return np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)

        # What ParticleSegmenter.predict_proba and the commands call.
        monkeypatch.setattr(particleseg.segmenter, "_predict_proba", predict_proba)

    return install


def dark_particles(image):
    """A classical segmentation of the synthetic images: dark blobs."""
    return label(image < threshold_otsu(image))


def write_images(folder, n=2, shape=(64, 64), random_state=0):
    folder.mkdir(parents=True, exist_ok=True)
    X, y = make_particles(n_images=n, shape=shape, random_state=random_state)
    names = [f"image{i}.png" for i in range(n)]
    for name, image in zip(names, X):
        iio.imwrite(folder / name, image)
    return names, X, y


def write_emps_folder(folder, n=4, random_state=0):
    X, y = make_particles(n_images=n, shape=(64, 64), random_state=random_state)
    (folder / "images").mkdir(parents=True)
    (folder / "segmaps").mkdir()
    names = [f"im{i}" for i in range(n)]
    for name, image, labels in zip(names, X, y):
        iio.imwrite(folder / "images" / f"{name}.png", image)
        iio.imwrite(folder / "segmaps" / f"{name}.png", labels.astype(np.uint16))
    return names, X, y


def is_png(path):
    return Path(path).read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------
# Help, version, console script


SUBCOMMANDS = ("analyze", "train", "evaluate", "models")


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_explains_every_option(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    sub = _subparsers()[command]
    assert sub.description and sub.epilog
    assert f"particleseg {command}" in sub.epilog  # an example to copy
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command}: {action.option_strings or action.dest} has no help"
        for option in action.option_strings:
            assert option in text
    if command == "analyze":
        for option in ("--pixel-size", "--unit", "--sample", "--recursive", "--threshold",
                       "--min-size", "--method", "--exclude-edge", "--include-edge", "--device",
                       "--tile-size", "--no-plots", "--quiet", "--model", "--out"):
            assert option in text
    if command == "train":
        for option in ("--backbone", "--epochs", "--crop-size", "--batch-size",
                       "--border-width", "--validation-fraction", "--checkpoint", "--seed",
                       "--device", "--threads", "--out"):
            assert option in text


def test_top_level_help_and_version(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in text
    assert "exit status" in text
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"particleseg {__version__}"


def test_console_script_help():
    script = Path(sys.executable).with_name("particleseg")
    assert script.exists(), "console script missing: run `pip install -e . --no-deps`"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: particleseg")
    assert "analyze" in result.stdout and "train" in result.stdout


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


# --------------------------------------------------------------------------
# analyze


def test_analyze_folder_skips_a_corrupt_file_and_keeps_the_others(tmp_path, tiny_model, capsys):
    names, _, _ = write_images(tmp_path / "images", n=2)
    (tmp_path / "images" / "broken.png").write_bytes(PNG_MAGIC + b"not really a png")
    out = tmp_path / "results"
    status = main(["analyze", str(tmp_path / "images"), "--model", tiny_model,
                   "--pixel-size", "0.8", "--unit", "nm", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert status == 1
    assert "broken.png" in captured.err
    assert "1 of 3 files could not be analysed" in captured.err
    assert "Traceback" not in captured.err

    summary = pd.read_csv(out / "summary.csv")
    good = [str(tmp_path / "images" / n) for n in names]
    assert summary["file"].tolist() == good
    assert summary["pixel_size"].tolist() == [0.8, 0.8]
    assert summary["unit"].tolist() == ["nm", "nm"]
    for column in ("count", "d10_equivalent_diameter_nm", "d50_equivalent_diameter_nm",
                   "d90_equivalent_diameter_nm", "mean_equivalent_diameter_nm",
                   "median_equivalent_diameter_nm"):
        assert column in summary.columns
    particles = pd.read_csv(out / "particles.csv")
    assert {"file", "equivalent_diameter_nm", "area_nm2", "touches_edge"} <= set(particles)
    assert set(particles["file"]) <= set(good)

    for stem in ("image0", "image1"):
        assert is_png(out / f"{stem}_overlay.png") and is_png(out / f"{stem}_sizes.png")
    assert not list(out.glob("broken*"))
    for name in good:
        assert Path(name).name in captured.out  # the printed table


def test_analyze_measures_in_the_files_calibration_unless_overridden(
        tmp_path, tiny_model, fake_prediction, capsys):
    fake_prediction(dark_particles)
    X, _ = make_particles(n_images=1, shape=(96, 96), random_state=3)
    path = tmp_path / "calibrated.tif"
    tifffile.imwrite(path, X[0], imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "nm"})

    common = ["analyze", str(path), "--model", tiny_model, "--no-plots", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "file")]) == 0
    assert main([*common, "--pixel-size", "2", "--unit", "um",
                 "--out", str(tmp_path / "option")]) == 0
    capsys.readouterr()

    from_file = pd.read_csv(tmp_path / "file" / "summary.csv").iloc[0]
    overridden = pd.read_csv(tmp_path / "option" / "summary.csv").iloc[0]
    assert from_file["pixel_size"] == pytest.approx(0.5)
    assert (from_file["unit"], from_file["pixel_size_from"]) == ("nm", "metadata")
    assert overridden["pixel_size"] == 2.0
    assert (overridden["unit"], overridden["pixel_size_from"]) == ("um", "option")
    assert from_file["count"] == overridden["count"] == int(dark_particles(X[0]).max()) > 0
    assert overridden["d50_equivalent_diameter_um"] == pytest.approx(
        4 * from_file["d50_equivalent_diameter_nm"])
    table = pd.read_csv(tmp_path / "option" / "particles.csv")
    assert "area_um2" in table and "equivalent_diameter_nm" not in table


def test_analyze_uncalibrated_images_are_measured_in_pixels_with_one_warning(
        tmp_path, tiny_model, capsys):
    write_images(tmp_path / "images", n=2)
    out = tmp_path / "results"
    assert main(["analyze", str(tmp_path / "images"), "--model", tiny_model,
                 "--out", str(out), "--no-plots", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("records no pixel size") == 1
    summary = pd.read_csv(out / "summary.csv")
    assert summary["unit"].tolist() == ["px", "px"]
    assert summary["pixel_size"].isna().all()
    assert "d50_equivalent_diameter_px" in summary
    assert "equivalent_diameter_px" in pd.read_csv(out / "particles.csv")


def test_analyze_sample_needs_no_data(tmp_path, tiny_model, capsys):
    out = tmp_path / "results"
    assert main(["analyze", "--sample", "--model", tiny_model, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = pd.read_csv(out / "summary.csv")
    assert summary["file"].tolist() == ["sample"]
    assert summary.loc[0, "pixel_size"] == 0.5 and summary.loc[0, "unit"] == "nm"
    assert "sample" in captured.out and "Wrote particles.csv" in captured.out
    overlay = iio.imread(out / "sample_overlay.png")
    assert overlay.shape[:2] == (900, 900)  # 6 inches at 150 dpi, square like the image
    assert is_png(out / "sample_sizes.png")


def test_analyze_sample_statistics_exclude_edge_particles_unless_asked(
        tmp_path, tiny_model, fake_prediction, capsys):
    fake_prediction(dark_particles)
    common = ["analyze", "--sample", "--model", tiny_model, "--no-plots", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "excluded")]) == 0
    assert main([*common, "--include-edge", "--out", str(tmp_path / "included")]) == 0
    capsys.readouterr()
    particles = pd.read_csv(tmp_path / "excluded" / "particles.csv")
    excluded = pd.read_csv(tmp_path / "excluded" / "summary.csv").iloc[0]
    included = pd.read_csv(tmp_path / "included" / "summary.csv").iloc[0]
    n_edge = int(particles["touches_edge"].sum())
    assert n_edge > 0
    assert excluded["count"] == included["count"] == len(particles) > 30
    assert excluded["count_in_statistics"] == len(particles) - n_edge
    assert included["count_in_statistics"] == len(particles)
    inner = particles.loc[~particles["touches_edge"], "equivalent_diameter_nm"]
    assert excluded["d50_equivalent_diameter_nm"] == pytest.approx(inner.median())


@pytest.mark.parametrize("model", ["no-such-model", "missing/model.safetensors"])
def test_analyze_unknown_model_is_a_usage_error(model, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["analyze", "--sample", "--model", model, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert model in err and "particleseg models" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pixel-size", "0"], "--pixel-size"),
        (["--pixel-size", "-0.8"], "--pixel-size"),
        (["--pixel-size", "nan"], "--pixel-size"),
        (["--unit", "nm"], "--unit nm is the unit of --pixel-size"),
        (["--threshold", "1.5"], "--threshold"),
        (["--method", "magic"], "--method"),
    ],
)
def test_analyze_bad_options_are_usage_errors(extra, message, tmp_path, capsys):
    assert main(["analyze", "--sample", "--out", str(tmp_path / "r"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_analyze_missing_inputs_and_empty_folders_are_usage_errors(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nowhere.png"), "--out", str(tmp_path / "r")]) == 2
    assert "No such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "No image files found" in capsys.readouterr().err
    assert main(["analyze", "--out", str(tmp_path / "r")]) == 2
    assert "--sample" in capsys.readouterr().err


def test_find_images_searches_folders_for_image_files_only(tmp_path):
    for name in ("b.png", "a.TIF", "c.jpeg", "notes.txt", ".hidden.png", "sub/d.dm4",
                 "results/a_overlay.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    files, empty = find_images([tmp_path], exclude=tmp_path / "results")
    assert [f.name for f in files] == ["a.TIF", "b.png", "c.jpeg"]
    files, _ = find_images([tmp_path, tmp_path / "b.png"], recursive=True,
                           exclude=tmp_path / "results")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.TIF", "b.png", "c.jpeg", "sub/d.dm4"]
    assert find_images([tmp_path / "results"], exclude=None)[0] == [
        tmp_path / "results" / "a_overlay.png"]


def test_analyze_gives_repeated_stems_their_own_figures(tmp_path, tiny_model, capsys):
    X, _ = make_particles(n_images=2, shape=(64, 64), random_state=0)
    iio.imwrite(tmp_path / "a.png", X[0])
    tifffile.imwrite(tmp_path / "a.tif", X[1])
    out = tmp_path / "results"
    assert main(["analyze", str(tmp_path / "a.png"), str(tmp_path / "a.tif"),
                 "--model", tiny_model, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.png")) == [
        "a-2_overlay.png", "a-2_sizes.png", "a_overlay.png", "a_sizes.png"]


def test_tile_size_and_threads_options_reach_the_model():
    from particleseg._cli_common import configure_prediction

    seg = ParticleSegmenter(tile_size=1024, tile_overlap=128)
    configure_prediction(seg, 200, 2)
    assert (seg.tile_size, seg.tile_overlap, seg.n_threads) == (200, 50, 2)
    configure_prediction(seg, 0, None)  # --tile-size none
    assert (seg.tile_size, seg.n_threads) == (None, 2)
    configure_prediction(seg, None, None)  # options not given: unchanged
    assert (seg.tile_size, seg.tile_overlap) == (None, 50)


# --------------------------------------------------------------------------
# models, train, evaluate


@pytest.fixture
def bundled_tiny(monkeypatch, tiny_model):
    """Pretend that the tiny model is bundled with the package as "tiny"."""
    import particleseg._pretrained as module

    entry = {"name": "tiny", "backbone": "mobilenet_v3_large", "border_width": 1,
             "training_data": "4 synthetic images", "validation": {"iou": 0.5}, "epochs": 1,
             "file_size_mb": 44.2, "path": tiny_model}
    monkeypatch.setattr(module, "pretrained_models", lambda: [entry])
    monkeypatch.setattr(module, "pretrained",
                        lambda name, device="auto": ParticleSegmenter.load(tiny_model, device))


def test_bundled_models_are_listed_and_used_by_name(bundled_tiny, tmp_path, capsys):
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "tiny" in table and "mobilenet_v3_large" in table and "iou 0.5" in table
    out = tmp_path / "results"
    assert main(["analyze", "--sample", "--model", "tiny", "--out", str(out), "--no-plots"]) == 0
    assert "bundled model 'tiny'" in capsys.readouterr().err
    assert main(["analyze", "--sample", "--model", "other", "--out", str(out)]) == 2
    assert "available bundled models: tiny" in capsys.readouterr().err


def test_models_lists_the_bundled_models(capsys):
    from particleseg import pretrained_models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    names = [m["name"] for m in pretrained_models()]
    if names:
        assert all(name in out for name in names)
    else:
        assert "No pretrained models are bundled" in out


def test_train_writes_a_loadable_model(tmp_path, tiny_model, capsys):
    write_emps_folder(tmp_path / "data")
    out = tmp_path / "models" / "trained.safetensors"
    status = main(["train", str(tmp_path / "data"), "--out", str(out),
                   "--backbone", "mobilenet_v3_large", "--epochs", "1", "--crop-size", "64",
                   "--batch-size", "2", "--border-width", "2", "--validation-fraction", "0.25",
                   "--seed", "0", "--threads", "1", "--no-augment", "--weights", tiny_model])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "epoch=1" in captured.out and "valid_iou" in captured.out
    assert str(out) in captured.out
    seg = ParticleSegmenter.load(out)
    assert (seg.backbone, seg.n_iter_, seg.border_width_) == ("mobilenet_v3_large", 1, 2)
    assert seg.model_info_["training_data"] == "4 images from data"
    assert seg.predict(np.zeros((64, 64), np.uint8)).shape == (64, 64)


def test_train_refuses_weights_of_another_backbone(tmp_path, tiny_model, capsys):
    write_emps_folder(tmp_path / "data", n=1)
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "m.safetensors"),
                 "--weights", tiny_model, "--backbone", "resnet50"]) == 2
    assert "is a mobilenet_v3_large model" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_train_on_a_folder_without_annotations_is_a_usage_error(tmp_path, capsys):
    write_images(tmp_path / "plain", n=1)
    assert main(["train", str(tmp_path / "plain"), "--out", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "images/" in err and "segmaps/" in err
    assert main(["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "No such folder" in capsys.readouterr().err


def test_evaluate_prints_metrics_and_writes_one_row_per_image(tmp_path, tiny_model, capsys):
    names, _, y = write_emps_folder(tmp_path / "data")
    csv = tmp_path / "scores.csv"
    assert main(["evaluate", str(tmp_path / "data"), "--model", tiny_model,
                 "--out", str(csv), "--quiet"]) == 0
    out = capsys.readouterr().out
    for word in ("IoU", "Dice", "F1", "count error", "mean", *names):
        assert word in out
    scores = pd.read_csv(csv)
    assert scores["image"].tolist() == names
    assert scores["true_count"].tolist() == [int(labels.max()) for labels in y]
    assert {"iou", "dice", "f1", "count_error", "precision", "recall"} <= set(scores)
    assert scores[["iou", "dice", "f1"]].apply(lambda c: c.between(0, 1)).all().all()


def test_evaluate_scores_a_perfect_prediction_as_perfect(tmp_path, tiny_model, fake_prediction,
                                                         capsys):
    names, X, y = write_emps_folder(tmp_path / "data")
    truth = {image.tobytes(): labels for image, labels in zip(X, y)}
    fake_prediction(lambda image: truth[image.tobytes()])
    csv = tmp_path / "scores.csv"
    assert main(["evaluate", str(tmp_path / "data"), "--model", tiny_model,
                 "--out", str(csv), "--quiet", "--min-size", "0"]) == 0
    capsys.readouterr()
    scores = pd.read_csv(csv)
    assert (scores["iou"] > 0.99).all() and (scores["f1"] > 0.9).all()
    assert (scores["count_error"] < 0.15).all()
