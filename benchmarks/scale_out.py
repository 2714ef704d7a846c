"""Large jobs: many images on Dask workers, gigapixel mosaics, single-machine speed.

Four tables (choose with ``--only``):

``throughput``
    ``--images`` micrographs of ``--size``² (default 200 of 1024²) analysed
    (a) one by one: read, predict, label, measure, in turn, in one process
    (the pipeline of ``particleseg analyze`` before it overlapped the steps);
    (b) ``particleseg analyze`` in one process (postprocessing of an image in
    a second thread while the network predicts the next);
    (c) ``particleseg analyze --workers 2`` (a local Dask cluster of two
    processes of one torch thread each). Images per second, wall clock,
    including start-up; and a scaling model for N machines.
``mosaic``
    A synthetic ``--mosaic-size``² mosaic (default 16384², stored as Zarr)
    analysed by :func:`particleseg.mosaic.analyze_mosaic` on a local cluster
    of two worker processes, in chunks of ``--chunk``: wall time and the peak
    memory of each worker; then the particle count on its top-left 4096²
    crop, chunked, against ``label_particles(seg.predict(crop))`` in memory.
``postprocessing``
    ``label_particles`` + ``measure_particles`` on a 4096² class map with
    about 10,000 particles, as a share of the bundled model's predict time
    on a 4096² image.
``tiles``
    ``ParticleSegmenter.predict_proba`` at 2048² against the plain
    torchvision loop (the whole image in float32 under ``no_grad``, as in
    ``benchmarks/inference.py``, same untrained MobileNetV3 weights), for
    several ``tile_size`` / ``tile_overlap`` settings.

All times are medians of ``--repeats`` runs where a run is short, single runs
otherwise. Usage::

    python benchmarks/scale_out.py                            # everything, full sizes
    python benchmarks/scale_out.py --only throughput --images 40 --size 512
    python benchmarks/scale_out.py --only mosaic --mosaic-size 8192
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

HERE = Path(__file__).resolve().parent


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _tiles(n, size, seed=0):
    """``n`` synthetic micrographs of ``size``² (uint8), with their instance maps."""
    from particleseg.datasets import make_particles

    X, y = make_particles(n_images=n, shape=(size, size), random_state=seed)
    return [np.asarray(x) for x in X], [np.asarray(t) for t in y]


# --------------------------------------------------------------------------
# throughput


_ONE_BY_ONE = """
import sys, time
from argparse import Namespace
from pathlib import Path
from particleseg._cli_analyze import _Source, _unique_stems, analyze_source
from particleseg._cli_common import load_model
from particleseg.batch import PartStore, options_record
start = time.perf_counter()
files = sorted(Path(sys.argv[1]).glob("*.png"))
args = Namespace(model="emps", device="cpu", tile_size=None, threads=None, pixel_size=None,
                 unit=None, threshold=0.5, min_size=4, method="components", exclude_edge=True,
                 plots=False)
seg, _ = load_model("emps", "cpu")
store = PartStore(sys.argv[2], options_record(args, "emps"))
store.start()
sources = [_Source(str(f), f) for f in files]
for source, stem in zip(sources, _unique_stems(sources)):
    outcome = analyze_source(seg, source, stem, args)
    assert outcome.error is None, outcome.error
    store.write(outcome)
store.assemble([s.name for s in sources])
print(time.perf_counter() - start)
"""


def throughput(n_images, size, workers):
    folder = Path(tempfile.mkdtemp(prefix="scale-out-"))
    try:
        import imageio.v3 as iio

        X, _ = _tiles(min(n_images, 8), size)
        images = folder / "images"
        images.mkdir()
        for i in range(n_images):
            iio.imwrite(images / f"im{i:04d}.png", X[i % len(X)])
        rows = []
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _ONE_BY_ONE, str(images), str(folder / "a")],
                       check=True, capture_output=True)
        rows.append(("(a) one by one, 1 process", time.perf_counter() - start))
        base = [sys.executable, "-m", "particleseg.cli", "analyze", str(images), "--no-plots",
                "--quiet", "--device", "cpu"]
        start = time.perf_counter()
        subprocess.run([*base, "--out", str(folder / "b")], check=True, capture_output=True)
        rows.append(("(b) analyze, 1 process (overlapped)", time.perf_counter() - start))
        start = time.perf_counter()
        subprocess.run([*base, "--workers", str(workers), "--out", str(folder / "c")],
                       check=True, capture_output=True)
        rows.append((f"(c) analyze --workers {workers}", time.perf_counter() - start))
        same = all((folder / x / "particles.csv").read_bytes()
                   == (folder / "a" / "particles.csv").read_bytes() for x in ("b", "c"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\n### Throughput: {n_images} images of {size}², bundled model, {os.cpu_count()} "
          "cores\n")
    print("| pipeline | wall time (s) | images/s | vs (a) |")
    print("|---|---|---|---|")
    reference = n_images / rows[0][1]
    for name, seconds in rows:
        rate = n_images / seconds
        print(f"| {name} | {seconds:.1f} | {rate:.3f} | {rate / reference:.2f}x |")
    print(f"\nIdentical particles.csv in (a), (b) and (c): {same}.")
    rate = n_images / rows[-1][1]
    print(f"\nScaling model: N machines like this one, each running {workers} workers, "
          f"analyse about N x {rate:.3f} images/s (the images are independent; the scheduler "
          "handles thousands of tasks per second and each task sends back a table of a few "
          "kB, so neither limits N below hundreds). Start-up (workers importing torch and "
          "loading the model once) is paid once per worker.\n")
    print("| machines N | images/s | 10,000 images |")
    print("|---|---|---|")
    for machines in (1, 2, 4, 8, 16, 64):
        total = 10_000 / (machines * rate)
        print(f"| {machines} | {machines * rate:.2f} | {total / 3600:.2f} h |")


# --------------------------------------------------------------------------
# mosaic


def _write_mosaic(path, size, chunk, seed=0):
    """A synthetic mosaic of ``size``² written chunk by chunk to Zarr (never whole in memory)."""
    import dask.array as da
    import zarr

    tiles, _ = _tiles(4, chunk, seed)
    store = zarr.open(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                      dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for top in range(0, size, chunk):
        for left in range(0, size, chunk):
            tile = tiles[rng.integers(len(tiles))]
            store[top:top + chunk, left:left + chunk] = np.rot90(tile, rng.integers(4))
    return da.from_zarr(str(path))


def _worker_peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _set_threads(n):
    import torch

    torch.set_num_threads(n)


def mosaic(size, chunk, workers):
    from distributed import Client, LocalCluster

    from particleseg import label_particles, pretrained
    from particleseg.mosaic import analyze_mosaic

    folder = Path(tempfile.mkdtemp(prefix="scale-out-mosaic-"))
    try:
        _write_mosaic(folder / "mosaic.zarr", size, chunk)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        client.run(_set_threads, max(1, (os.cpu_count() or 1) // workers))
        start = time.perf_counter()
        table = analyze_mosaic(folder / "mosaic.zarr", "emps", chunks=chunk,
                               workdir=folder / "work")
        seconds = time.perf_counter() - start
        peaks = client.run(_worker_peak_gb)
        crop_size = min(4096, size)
        crop = np.asarray(_open(folder / "mosaic.zarr")[:crop_size, :crop_size])
        chunked = len(analyze_mosaic(crop, "emps", chunks=chunk, workdir=folder / "crop"))
        client.close()
        cluster.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seg = pretrained("emps", device="cpu")
    whole = int(label_particles(seg.predict(crop)).max())
    print(f"\n### Mosaic: {size}² synthetic, chunks of {chunk}², {workers} worker processes\n")
    print("| mosaic | particles | wall time (s) | megapixels/s | peak memory per worker (GB) |")
    print("|---|---|---|---|---|")
    print(f"| {size}² | {len(table)} | {seconds:.0f} | {size * size / 1e6 / seconds:.2f} | "
          + ", ".join(f"{v:.2f}" for v in peaks.values()) + " |")
    print(f"\nTop-left {crop_size}² crop: {chunked} particles in chunks of {chunk}², {whole} "
          f"in memory (difference {chunked - whole:+d}, {abs(chunked - whole) / whole:.2%}).")


def _open(path):
    import dask.array as da

    return da.from_zarr(str(path))


# --------------------------------------------------------------------------
# postprocessing


def _synthetic_class_map(size=4096, n=10_000, seed=0):
    from particleseg import annotate_borders

    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.int32)
    centres = rng.integers(14, size - 14, size=(n, 2))
    radii = rng.integers(6, 14, size=n)
    yy, xx = np.mgrid[-14:15, -14:15]
    for k, ((r, c), rad) in enumerate(zip(centres, radii), start=1):
        disc = yy**2 + xx**2 <= rad**2
        window = labels[r - 14:r + 15, c - 14:c + 15]
        window[disc & (window == 0)] = k
    return annotate_borders(labels)


def postprocessing(repeats):
    from particleseg import label_particles, pretrained
    from particleseg.measure import measure_particles

    classes = _synthetic_class_map()
    label_times, measure_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        labels = label_particles(classes)
        middle = time.perf_counter()
        table = measure_particles(labels, pixel_size=1.0, unit="nm")
        label_times.append(middle - start)
        measure_times.append(time.perf_counter() - middle)
    seg = pretrained("emps", device="cpu")
    X, _ = _tiles(4, 2048, seed=1)
    image = np.block([[X[0], X[1]], [X[2], X[3]]])
    start = time.perf_counter()
    predicted = seg.predict(image)
    model = time.perf_counter() - start
    start = time.perf_counter()
    own = measure_particles(label_particles(predicted), image)
    own_seconds = time.perf_counter() - start
    post = float(np.median(label_times) + np.median(measure_times))
    print("\n### Postprocessing at 4096² against the bundled model's predict time\n")
    print("| step | seconds | share of predict |")
    print("|---|---|---|")
    print(f"| bundled model, predict (4096² image) | {model:.1f} | 100% |")
    print(f"| label_particles, {int(labels.max())} particles (median of {repeats}) | "
          f"{np.median(label_times):.2f} | {np.median(label_times) / model:.1%} |")
    print(f"| measure_particles, {len(table)} rows (median of {repeats}) | "
          f"{np.median(measure_times):.2f} | {np.median(measure_times) / model:.1%} |")
    print(f"| both | {post:.2f} | {post / model:.1%} |")
    print(f"| both, on the model's own output ({len(own)} particles) | {own_seconds:.2f} | "
          f"{own_seconds / model:.1%} |")


# --------------------------------------------------------------------------
# tiles


def tiles(size, repeats, settings):
    import torch

    sys.path.insert(0, str(HERE))
    from inference import _image, _model_state

    from particleseg import ParticleSegmenter
    from particleseg.normalization import RECIPE_MEAN, RECIPE_STD

    image = _image(size)
    model = _model_state("mobilenet_v3_large")

    def plain():
        x = (image.astype(np.float32) / 255 - RECIPE_MEAN) / RECIPE_STD
        x = torch.from_numpy(x)[None, None].expand(1, 3, -1, -1)
        with torch.no_grad():
            out = model(x)["out"]
        return torch.softmax(out, 1)[0].numpy()

    def timed(run):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    plain()  # warm-up
    reference = timed(plain)
    print(f"\n### predict at {size}² against the plain loop (MobileNetV3, "
          f"{torch.get_num_threads()} threads, median of {repeats})\n")
    print("| tile_size | tile_overlap | seconds | speed-up vs plain |")
    print("|---|---|---|---|")
    print(f"| plain loop (whole image, float32) | - | {reference:.2f} | 1.00x |")
    fitted = model.to(memory_format=torch.channels_last)
    for tile_size, overlap in settings:
        seg = ParticleSegmenter(backbone="mobilenet_v3_large", device="cpu",
                                tile_size=tile_size, tile_overlap=overlap)
        seg.model_, seg.device_ = fitted, torch.device("cpu")
        seg.classes_ = np.array([0, 1, 2])
        seg.normalization_ = (seg.mean, seg.std)
        seg.history_, seg.n_iter_, seg.border_width_ = [], 0, 1
        seg.class_weight_ = np.ones(3, dtype=np.float32)
        seg.predict_proba(image)  # warm-up
        seconds = timed(lambda: seg.predict_proba(image))
        print(f"| {tile_size or 'none (whole)'} | {overlap if tile_size else '-'} | "
              f"{seconds:.2f} | {reference / seconds:.2f}x |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", default=["throughput", "mosaic", "postprocessing", "tiles"],
                   choices=["throughput", "mosaic", "postprocessing", "tiles"])
    p.add_argument("--images", type=int, default=200, help="images for the throughput table")
    p.add_argument("--size", type=int, default=1024, help="their side, in pixels")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    p.add_argument("--mosaic-size", type=int, default=16384)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--tile-size", type=int, default=2048, help="image side for the tiles table")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import torch

    print(f"particleseg scale-out benchmark: {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}")
    if "throughput" in args.only:
        throughput(args.images, args.size, args.workers)
    if "mosaic" in args.only:
        mosaic(args.mosaic_size, args.chunk, args.workers)
    if "postprocessing" in args.only:
        postprocessing(args.repeats)
    if "tiles" in args.only:
        tiles(args.tile_size, args.repeats,
              # The default; tiles that cover 2048 in two (1088 = (2048 + 128) / 2);
              # a narrower overlap; smaller tiles; the whole image.
              [(1024, 128), (1088, 128), (1024, 64), (1056, 64), (512, 64), (None, 0)])


if __name__ == "__main__":
    main()
