"""Tests for particleseg.batch: part files, --resume, and Dask workers.

The network is replaced by a classical segmentation of the synthetic images
(``fake_prediction``), so the tables have particles to compare; the model file
is a tiny one trained for one epoch (it is loaded, as in a real run).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import builtins  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from skimage.filters import threshold_otsu  # noqa: E402
from skimage.measure import label  # noqa: E402

import particleseg.segmenter  # noqa: E402
from particleseg._cli_analyze import Outcome  # noqa: E402
from particleseg._figures import draw_scale_bar  # noqa: E402
from particleseg.annotation import annotate_borders  # noqa: E402
from particleseg.batch import PartStore, analyze_images  # noqa: E402
from particleseg.cli import main  # noqa: E402
from particleseg.datasets import make_particles  # noqa: E402


def dark_particles(image):
    return label(image < threshold_otsu(image))


def fake_predict_proba(self, X, labels=None):
    X = np.asarray(X)
    classes = annotate_borders(dark_particles(X))
    # A scale that differs between images, as inference_scale="auto" chooses it.
    self.last_scales_ = [0.5 + int(X.sum()) % 4 / 4]
    proba = np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)
    # Confidences that differ between particles: less sure towards the right.
    proba[1:] *= np.linspace(1.0, 0.6, X.shape[1], dtype=np.float32)
    proba[0] = 1.0 - proba[1] - proba[2]
    return proba


@pytest.fixture
def fake_prediction(monkeypatch):
    # What ParticleSegmenter.predict_proba and the commands call.
    monkeypatch.setattr(particleseg.segmenter, "_predict_proba", fake_predict_proba)


def write_images(folder, n, shape=(64, 64), random_state=0, scale_bar=False):
    """``n`` synthetic images; every third one a calibrated TIFF (sizes in nm).

    With ``scale_bar``, one more PNG figure (256², no pixel size in the file)
    carries a burnt-in scale bar of 100 px for 50 nm.
    """
    folder.mkdir(parents=True, exist_ok=True)
    X, _ = make_particles(n_images=n, shape=shape, random_state=random_state)
    for i, image in enumerate(X):
        if i % 3 == 2:
            tifffile.imwrite(folder / f"im{i:03d}.tif", image, imagej=True,
                             resolution=(2.0, 2.0), metadata={"unit": "nm"})
        else:
            iio.imwrite(folder / f"im{i:03d}.png", image)
    if scale_bar:
        (image,), _ = make_particles(n_images=1, shape=(256, 256), random_state=random_state)
        figure, _, _ = draw_scale_bar(image / 255.0, np.random.default_rng(0), length_px=100,
                                      value=50, unit="nm", polarity="light", boxed=False,
                                      font_size=18, corner=("bottom", "right"), label_side="above")
        iio.imwrite(folder / "figure.png", np.round(figure * 255).astype(np.uint8))
    return sorted(folder.iterdir())


def _combine(tables):
    """The particle tables of several images in one, as pandas.concat makes it."""
    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    filled = [t for t in tables if len(t)]
    combined = pd.concat(filled, ignore_index=True) if filled else pd.DataFrame(columns=columns)
    return combined.reindex(columns=columns)


def read_bytes(folder):
    return {name: (folder / name).read_bytes() for name in ("particles.csv", "summary.csv")}


# --------------------------------------------------------------------------
# Part files


def _outcome(name, unit, n, seed):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "file": name, "label": np.arange(1, n + 1),
        f"area_{unit}2": rng.random(n) * 10.0 ** rng.integers(-5, 5, n),
        "touches_edge": rng.random(n) < 0.5,
    })
    row = {"file": name, "count": n, f"mean_equivalent_diameter_{unit}":
           float(rng.random()) if n else float("nan"), "unit": unit,
           "pixel_size": float("nan") if unit == "px" else 0.3, "pixel_size_from": "file"}
    return Outcome(name, table, row, "file")


def test_tables_assembled_from_parts_are_those_written_at_once(tmp_path):
    # File names that look like numbers or missing values stay as they are;
    # floats come back exactly; tables in other units and empty tables mix.
    outcomes = [_outcome("001", "nm", 5, 0), _outcome("NA", "px", 0, 1),
                _outcome("b.tif", "px", 7, 2), _outcome("nan", "um", 3, 3)]
    store = PartStore(tmp_path, {"threshold": 0.5})
    store.start()
    for outcome in reversed(outcomes):  # finished in any order
        store.write(outcome)
    n, rows = store.assemble([o.name for o in outcomes])
    assert n == 15
    expected_particles = _combine([o.table for o in outcomes]).to_csv(index=False)
    expected_summary = pd.DataFrame([o.row for o in outcomes]).to_csv(index=False)
    assert (tmp_path / "particles.csv").read_text() == expected_particles
    assert (tmp_path / "summary.csv").read_text() == expected_summary
    assert [r["file"] for r in rows] == ["001", "NA", "b.tif", "nan"]


def test_a_new_run_clears_the_parts_and_resume_keeps_them(tmp_path):
    store = PartStore(tmp_path, {"threshold": 0.5})
    store.start()
    store.write(_outcome("a", "px", 2, 0))
    assert PartStore(tmp_path, {"threshold": 0.5}, resume=True).done("a")
    fresh = PartStore(tmp_path, {"threshold": 0.5})
    assert not fresh.done("a")
    fresh.start()
    assert not PartStore(tmp_path, {"threshold": 0.5}, resume=True).done("a")


def test_resume_with_other_options_is_a_usage_error(tmp_path, tiny_model, fake_prediction,
                                                    capsys):
    write_images(tmp_path / "images", 2)
    common = ["analyze", str(tmp_path / "images"), "--model", tiny_model, "--quiet",
              "--no-plots", "--out", str(tmp_path / "out")]
    assert main(common) == 0
    assert main([*common, "--resume", "--threshold", "0.6"]) == 2
    assert "threshold" in capsys.readouterr().err
    assert main([*common, "--resume"]) == 0
    assert "Resuming: 2 of 2 images" not in capsys.readouterr().err  # --quiet


# --------------------------------------------------------------------------
# Resuming after a kill

_RUNNER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    import particleseg.segmenter
    from test_batch import fake_predict_proba

    def slow_predict_proba(self, X, labels=None):
        time.sleep(0.15)
        return fake_predict_proba(self, X)

    particleseg.segmenter._predict_proba = slow_predict_proba
    from particleseg.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_resume_after_a_kill_gives_the_csvs_of_an_uninterrupted_run(
        tmp_path, tiny_model, fake_prediction, capsys):
    write_images(tmp_path / "images", 24)
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))

    def command(out, *extra):
        return [sys.executable, str(runner), "analyze", str(tmp_path / "images"), "--model",
                tiny_model, "--quiet", "--no-plots", "--threads", "1", "--out", str(out),
                *extra]

    # The uninterrupted run, in this process (the same fake network, less the wait).
    assert main(command(tmp_path / "whole")[2:]) == 0
    capsys.readouterr()

    # Kill at a random moment while the images are being analysed.
    rng = random.Random()
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parts = out / "parts"
    deadline = time.perf_counter() + 300
    while len(list(parts.glob("*.summary.csv"))) < 2 and time.perf_counter() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.15 * 16))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.summary.csv")))
    assert 2 <= done < 24, "the kill should land while images are being analysed"
    for part in parts.glob("*.csv"):
        pd.read_csv(part)  # complete, or absent

    result = subprocess.run(command(out, "--resume"), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert read_bytes(out) == read_bytes(tmp_path / "whole")
    assert len(pd.read_csv(out / "particles.csv")) > 100


# --------------------------------------------------------------------------
# Dask


def _local_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    return distributed.Client(cluster), cluster


def test_two_dask_workers_give_the_csvs_of_one_process(tmp_path, tiny_model, fake_prediction,
                                                       monkeypatch, capsys):
    from particleseg import batch

    write_images(tmp_path / "images", 6, scale_bar=True)
    common = ["analyze", str(tmp_path / "images"), "--model", tiny_model, "--quiet",
              "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    # Every column of the single-process run is there to compare: confidence,
    # the scale chosen, where the pixel size came from, annotations removed.
    particles = pd.read_csv(tmp_path / "one" / "particles.csv")
    summary = pd.read_csv(tmp_path / "one" / "summary.csv")
    assert particles["confidence"].nunique() > 10
    assert summary["inference_scale"].nunique() > 1
    assert set(summary["pixel_size_from"]) == {"metadata", "none", "scale bar"}
    assert summary["annotations_removed"].notna().all()

    clients = []

    def start_client(workers, scheduler, threads=None):
        assert workers == 2
        clients.append(_local_client())
        return clients[-1]

    monkeypatch.setattr(batch, "start_client", start_client)
    loads = {}
    stop = batch.stop_client

    def stop_client(client, cluster):
        loads.update(client.run(lambda dask_worker: getattr(
            dask_worker, "_particleseg_model_loads", 0)))
        stop(client, cluster)

    monkeypatch.setattr(batch, "stop_client", stop_client)
    assert main([*common, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    assert read_bytes(tmp_path / "two") == read_bytes(tmp_path / "one")
    for figure in (tmp_path / "one").glob("*.png"):
        assert (tmp_path / "two" / figure.name).read_bytes() == figure.read_bytes()
    assert len(pd.read_csv(tmp_path / "one" / "particles.csv")) > 30
    # Each worker loaded the model once, not once per image.
    assert sum(loads.values()) <= 2 and len(loads) == 2


def test_analyze_images_on_a_client_matches_the_command(tmp_path, tiny_model, fake_prediction,
                                                        capsys):
    paths = write_images(tmp_path / "images", 5)
    assert main(["analyze", *map(str, paths), "--model", tiny_model, "--quiet", "--no-plots",
                 "--out", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    here = analyze_images(paths, tiny_model, n_threads=1)
    client, cluster = _local_client()
    try:
        there = analyze_images(paths, tiny_model, client=client, out=tmp_path / "dask")
    finally:
        client.close()
        cluster.close()
    for particles, summary in (here, there):
        assert particles.to_csv(index=False) == (tmp_path / "cli" / "particles.csv").read_text()
        assert summary.to_csv(index=False) == (tmp_path / "cli" / "summary.csv").read_text()
    assert read_bytes(tmp_path / "dask") == read_bytes(tmp_path / "cli")


def test_analyze_images_skips_an_unreadable_image_with_a_warning(tmp_path, tiny_model,
                                                                 fake_prediction):
    paths = write_images(tmp_path / "images", 2)
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.warns(UserWarning, match="broken.png"):
        particles, summary = analyze_images([*paths, broken], tiny_model, n_threads=1)
    assert summary["file"].tolist() == [str(p) for p in paths]
    with pytest.raises(RuntimeError, match="broken.png"):
        analyze_images([broken], tiny_model, n_threads=1, errors="raise")


def test_workers_without_dask_say_how_to_install_it(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    for option in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        assert main(["analyze", "--sample", "--out", str(tmp_path / "r"), *option]) == 2
        err = capsys.readouterr().err
        assert 'pip install "particleseg[dask]"' in err and option[0] in err
    assert not (tmp_path / "r").exists()


def test_worker_segmenter_is_loaded_once_per_holder(tiny_model):
    from particleseg import batch

    first = batch.worker_segmenter(tiny_model, "cpu", 256, 1)
    assert batch.worker_segmenter(tiny_model, "cpu", 256, 1) is first
    assert first.tile_size == 256 and first.n_threads == 1
    assert batch.worker_segmenter(tiny_model, "cpu", 128, 1) is not first
