"""Tests for ``particleseg finetune`` (particleseg._cli_finetune), run in-process."""

import json
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from skimage.measure import regionprops  # noqa: E402

from particleseg import ParticleSegmenter, _finetune  # noqa: E402
from particleseg.cli import main  # noqa: E402
from particleseg.datasets import make_particles  # noqa: E402


@pytest.fixture(scope="module")
def start_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "start.safetensors"
    X, y = make_particles(n_images=2, shape=(64, 64), random_state=0)
    seg = ParticleSegmenter(backbone="mobilenet_v3_large", max_epochs=1, crop_size=64,
                            batch_size=2, augment=None, inference_scale=1.5, random_state=0,
                            n_threads=1).fit(X, y)
    seg.save(path)
    return str(path)


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    """Tiny crops and a step budget instead of minutes, so the command runs in seconds."""
    monkeypatch.setitem(_finetune.DEFAULT_RECIPE, "crop_size", 64)
    monkeypatch.setitem(_finetune.DEFAULT_RECIPE, "batch_size", 2)
    original = ParticleSegmenter.fine_tune

    def fine_tune(self, X, y, **kwargs):
        kwargs.update(minutes=None, max_steps=2)
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(ParticleSegmenter, "fine_tune", fine_tune)


def write_folder(folder, n=2, labelme=False, empty=()):
    X, y = make_particles(n_images=n, shape=(64, 64), random_state=1)
    images = folder / "images" if not labelme else folder
    images.mkdir(parents=True, exist_ok=True)
    if not labelme:
        (folder / "segmaps").mkdir()
    for i, (image, labels) in enumerate(zip(X, y)):
        if i in empty:
            labels = np.zeros_like(labels)
        iio.imwrite(images / f"im{i}.png", image)
        if labelme:
            shapes = [{"label": "particle", "shape_type": "rectangle",
                       "points": [[r.bbox[1], r.bbox[0]], [r.bbox[3] - 1, r.bbox[2] - 1]]}
                      for r in regionprops(labels)]
            (folder / f"im{i}.json").write_text(json.dumps(
                {"shapes": shapes, "imageHeight": 64, "imageWidth": 64}))
        else:
            iio.imwrite(folder / "segmaps" / f"im{i}.png", labels.astype(np.uint16))
    return X, y


def test_finetune_saves_a_model_that_records_its_parent(tmp_path, start_model, capsys):
    write_folder(tmp_path / "data", n=4)
    out = tmp_path / "tuned.safetensors"
    status = main(["finetune", str(tmp_path / "data"), "--from", start_model, "--out", str(out),
                   "--threads", "1"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Held-out image" in captured.err or "did not beat" in captured.err
    assert "Trained 2 steps" in captured.out and str(out) in captured.out
    seg = ParticleSegmenter.load(out)
    record = seg.model_info_["fine_tuned"]
    assert record["parent"]["from"] == start_model
    assert record["images"] == ["im0", "im1", "im2", "im3"]
    assert seg.inference_scale == 1.5


def test_finetune_reads_labelme_files_and_overrides_the_inference_scale(tmp_path, start_model,
                                                                         capsys):
    write_folder(tmp_path / "data", n=2, labelme=True)
    out = tmp_path / "tuned.safetensors"
    assert main(["finetune", str(tmp_path / "data"), "--from", start_model, "--out", str(out),
                 "--inference-scale", "1", "--threads", "1", "--quiet"]) == 0
    seg = ParticleSegmenter.load(out)
    assert seg.inference_scale == 1.0
    assert seg.model_info_["fine_tuned"]["validation"]["method"].startswith("strip")
    assert main(["finetune", str(tmp_path / "data"), "--from", start_model, "--out", str(out),
                 "--inference-scale", "auto", "--threads", "1", "--quiet"]) == 0
    assert ParticleSegmenter.load(out).inference_scale == "auto"


def test_finetune_refuses_images_without_labels(tmp_path, start_model, capsys):
    write_folder(tmp_path / "data", n=3)
    (tmp_path / "data" / "segmaps" / "im1.png").unlink()
    (tmp_path / "data" / "segmaps" / "im2.png").unlink()
    out = tmp_path / "tuned.safetensors"
    assert main(["finetune", str(tmp_path / "data"), "--from", start_model,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 images" in err and "im1.png, im2.png" in err and "have no labels" in err
    assert not out.exists()


def test_finetune_refuses_labels_without_a_particle(tmp_path, start_model, capsys):
    write_folder(tmp_path / "data", n=2, empty=(1,))
    assert main(["finetune", str(tmp_path / "data"), "--from", start_model,
                 "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "(im1) labels no particle" in capsys.readouterr().err


def test_finetune_refuses_unknown_models_and_missing_folders(tmp_path, capsys):
    write_folder(tmp_path / "data", n=1)
    assert main(["finetune", str(tmp_path / "data"), "--from", "nonesuch",
                 "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "--from 'nonesuch' is neither a model file" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "nowhere"), "--out", "m.safetensors"]) == 2
    assert "No such folder" in capsys.readouterr().err


def test_finetune_ctrl_c_saves_the_best_model_so_far(tmp_path, start_model, monkeypatch, capsys):
    write_folder(tmp_path / "data", n=2)
    original, calls = _finetune._train_step, []

    def step_then_interrupt(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(_finetune, "_train_step", step_then_interrupt)
    out = tmp_path / "tuned.safetensors"
    status = main(["finetune", str(tmp_path / "data"), "--from", start_model, "--out", str(out),
                   "--threads", "1"])
    captured = capsys.readouterr()
    assert status == 130
    assert "Interrupted after 1 step " in captured.out and str(out) in captured.out
    seg = ParticleSegmenter.load(out)
    assert seg.model_info_["fine_tuned"]["recipe"]["stopped"] == "interrupted"


def test_finetune_shows_a_progress_bar_with_the_time_left(tmp_path, start_model, capsys):
    write_folder(tmp_path / "data", n=2)
    assert main(["finetune", str(tmp_path / "data"), "--from", start_model,
                 "--out", str(tmp_path / "m.safetensors"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning" in err and "left" in err


def test_finetune_help_explains_every_option(capsys):
    assert main(["finetune", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--from", "--out", "--minutes", "--learning-rate", "--no-validation",
                   "--inference-scale", "--seed", "--device", "--threads", "--quiet"):
        assert option in text
    assert "particleseg finetune" in text and "labelme" in text
