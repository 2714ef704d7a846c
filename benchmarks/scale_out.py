"""Large jobs: many images on Dask workers, gigapixel mosaics, single-machine speed.

Five tables (choose with ``--only``):

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
    Synthetic ``--mosaic-size``² mosaics (default 16384², stored as Zarr)
    analysed by :func:`particleseg.mosaic.analyze_mosaic` on a new local
    cluster of two worker processes each, in chunks of ``--chunk``: wall time
    and the peak memory of each worker; then the particle count on the top-left
    ``--crop``² (default 4096²) of the last one, chunked, against
    ``label_particles(seg.predict(crop))`` in memory at the same scale.
``labelling``
    The particle cores of a synthetic ``--label-size``² class map (default
    8192², in chunks of ``--chunk``, on a local cluster of two worker
    processes) labelled across chunk borders by
    :func:`particleseg.mosaic.label_mosaic`, and by
    :func:`dask_image.ndmeasure.label` (when dask-image is installed; it
    labels the cores only): wall time and the peak memory of the driver and
    of each worker.
``postprocessing``
    ``label_particles`` + ``measure_particles`` on a ``--post-size``² class
    map (default 4096², about 10,000 particles), and on the bundled model's
    own output for a ``--post-size``² micrograph (labels with confidence, as
    ``particleseg analyze`` makes them), as a share of the model's predict
    time on it; and ``annotation_mask``, which ``analyze`` also runs.
``tiles``
    ``ParticleSegmenter.predict_proba`` at 2048² against the plain
    torchvision loop (the whole image in float32 under ``no_grad``, as in
    ``benchmarks/inference.py``, same untrained MobileNetV3 weights), for
    several ``tile_size`` / ``tile_overlap`` settings. A second reference
    row runs the plain loop with the weights in ``channels_last`` memory
    format, the layout ``particleseg`` uses.

The synthetic micrographs have particles of about the size the bundled model
was trained at (see :data:`RADIUS`). All times are medians of ``--repeats``
runs, except the mosaics (one run each). Usage::

    python benchmarks/scale_out.py                            # everything, full sizes
    python benchmarks/scale_out.py --only throughput --images 40 --size 512
    python benchmarks/scale_out.py --only mosaic --mosaic-size 4096 8192 16384
"""

from __future__ import annotations

import argparse
import copy
import functools
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


#: Particles per 1024² of synthetic micrograph, and their radius range (px): about
#: the size the bundled model was trained at (``particle_diameter_`` 115 px), so
#: that ``inference_scale="auto"`` chooses a scale near 1, as on images taken at
#: the magnification the model knows. Smaller particles make "auto" enlarge the
#: image (up to 4x: 16x the pixels), and the network's time with it.
DENSITY = 40
RADIUS = (40.0, 70.0)


def _base(size=1024, n=2, seed=0):
    """``n`` synthetic micrographs of ``size``² (uint8) with :data:`DENSITY` particles."""
    from particleseg.datasets import make_particles

    count = max(1, round(DENSITY * size * size / 1024**2))
    X, _ = make_particles(n_images=n, shape=(size, size), n_particles=count, radius=RADIUS,
                          random_state=seed)
    return [np.asarray(x) for x in X]


def _variants(bases):
    """The 8 flips and rotations of each base image: 8 x len(bases) distinct images."""
    return [np.rot90(b[:, ::-1] if flip else b, k) for b in bases for flip in (False, True)
            for k in range(4)]


def _images(n, size, seed=0):
    """``n`` micrographs of ``size``²: crops or tilings of flipped and rotated bases."""
    side = min(size, 1024)
    variants = _variants(_base(side, 2, seed))
    reps = -(-size // side)
    out = []
    for i in range(n):
        rows = [np.hstack([variants[(i + 3 * r + 5 * c) % len(variants)] for c in range(reps)])
                for r in range(reps)]
        out.append(np.ascontiguousarray(np.vstack(rows)[:size, :size]))
    return out


def _median_of(times):
    return float(np.median(times))


# --------------------------------------------------------------------------
# throughput


_ONE_BY_ONE = """
import sys, time
from argparse import Namespace
from pathlib import Path
from particleseg._cli_analyze import _Source, _unique_stems, analyze_source
from particleseg._cli_common import load_for_prediction
from particleseg.batch import PartStore, options_record
start = time.perf_counter()
files = sorted(Path(sys.argv[1]).glob("*.png"))
# The options of `particleseg analyze --no-plots --device cpu`.
args = Namespace(model="emps", device="cpu", tile_size=None, threads=None, inference_scale=None,
                 min_confidence="auto", pixel_size=None, unit=None, scale_bar=True,
                 drop_annotations=True, threshold=0.5, min_size=4, method="components",
                 exclude_edge=True, plots=False)
seg, _ = load_for_prediction(args)
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


def _largest_difference(first, second):
    """How two particles.csv differ: rows, and the largest difference per numeric column."""
    import pandas as pd

    a, b = pd.read_csv(first), pd.read_csv(second)
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return f"{len(a)} against {len(b)} rows"
    numeric = a.select_dtypes("number").columns
    if not a.drop(columns=numeric).equals(b.drop(columns=numeric)):
        return "same rows, other text"
    gaps = (a[numeric] - b[numeric]).abs().max()
    gaps = gaps[gaps > 0].sort_values(ascending=False)
    if not len(gaps):
        return "no difference"
    return ("same particles; largest differences: "
            + ", ".join(f"{name} {gap:.1g}" for name, gap in gaps.head(3).items())
            + " (the network's float sums depend on its thread count: one per worker here, "
            "two in one process)")


def throughput(n_images, size, workers, repeats):
    import imageio.v3 as iio

    folder = Path(tempfile.mkdtemp(prefix="scale-out-"))
    names = ["(a) one by one, 1 process", "(b) analyze, 1 process (overlapped)",
             f"(c) analyze --workers {workers}"]
    times = {name: [] for name in names}
    try:
        images = folder / "images"
        images.mkdir()
        for i, image in enumerate(_images(n_images, size)):
            iio.imwrite(images / f"im{i:04d}.png", image)
        base = [sys.executable, "-m", "particleseg.cli", "analyze", str(images), "--no-plots",
                "--quiet", "--device", "cpu"]
        commands = [
            [sys.executable, "-c", _ONE_BY_ONE, str(images), str(folder / "a")],
            [*base, "--out", str(folder / "b")],
            [*base, "--workers", str(workers), "--out", str(folder / "c")],
        ]
        # The three in turn, repeatedly, so that a change in the machine's load
        # falls on all three alike.
        for _ in range(repeats):
            for name, command in zip(names, commands):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
        same = {x: (folder / x / "particles.csv").read_bytes()
                == (folder / "a" / "particles.csv").read_bytes() for x in ("b", "c")}
        difference = _largest_difference(folder / "a" / "particles.csv",
                                         folder / "c" / "particles.csv")
        n_particles = sum(1 for _ in open(folder / "a" / "particles.csv")) - 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\n### Throughput: {n_images} images of {size}² ({n_particles} particles), bundled "
          f"model, {os.cpu_count()} CPU cores, median of {repeats} runs\n")
    print("| pipeline | wall time (s) | images/s | vs (a) |")
    print("|---|---|---|---|")
    reference = n_images / _median_of(times[names[0]])
    for name in names:
        seconds = _median_of(times[name])
        rate = n_images / seconds
        print(f"| {name} | {seconds:.1f} | {rate:.3f} | {rate / reference:.2f}x |")
    print(f"\nparticles.csv of (b) identical to (a): {same['b']}; of (c): {same['c']} "
          f"({difference}). Wall time includes start-up (importing torch, loading the model "
          "once per process).")
    rate = n_images / _median_of(times[names[-1]])
    print(f"\nScaling model: N machines like this one, each running {workers} workers, "
          f"analyse about N x {rate:.3f} images/s (the images are independent; the scheduler "
          "handles thousands of tasks per second and each task sends back a table of a few "
          "kB, so neither limits N below hundreds). Start-up (workers importing torch and "
          "loading the model once) is paid once per worker. The time of an image grows "
          "with its pixels (the network dominates).\n")
    print("| machines N | images/s | 10,000 images |")
    print("|---|---|---|")
    for machines in (1, 2, 4, 8, 16, 64):
        total = 10_000 / (machines * rate)
        print(f"| {machines} | {machines * rate:.2f} | {total / 3600:.2f} h |")


# --------------------------------------------------------------------------
# mosaic


def _write_mosaic(path, size, chunk, seed=0):
    """A synthetic mosaic of ``size``² written chunk by chunk to Zarr (never whole in memory)."""
    import zarr

    tiles = _variants(_base(min(chunk, 1024), 2, seed))
    store = zarr.open(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                      dtype=np.uint8)
    rng = np.random.default_rng(seed)
    side = tiles[0].shape[0]
    for top in range(0, size, side):
        for left in range(0, size, side):
            store[top:top + side, left:left + side] = tiles[rng.integers(len(tiles))]


def _set_threads(n):
    import torch

    torch.set_num_threads(n)


def mosaic(sizes, chunk, workers, crop_size):
    from distributed import Client, LocalCluster

    from particleseg import label_particles, pretrained
    from particleseg.mosaic import analyze_mosaic, mosaic_scale, open_mosaic

    folder = Path(tempfile.mkdtemp(prefix="scale-out-mosaic-"))
    rows = []
    try:
        for size in sizes:
            _write_mosaic(folder / f"mosaic{size}.zarr", size, chunk)
        # A new cluster per size, so each worker's peak memory is that size's.
        for size in sizes:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(_set_threads, max(1, (os.cpu_count() or 1) // workers))
                image = open_mosaic(folder / f"mosaic{size}.zarr", chunk)
                start = time.perf_counter()
                scale = mosaic_scale("emps", image)
                table = analyze_mosaic(image, "emps", chunks=chunk, inference_scale=scale,
                                       workdir=folder / "work")
                seconds = time.perf_counter() - start
                peaks = client.run(_peak_rss_gb)
                rows.append((size, len(table), seconds, scale, list(peaks.values())))
                if size == sizes[-1]:
                    crop_size = min(crop_size, size)
                    crop = np.asarray(image[:crop_size, :crop_size])
                    chunked = len(analyze_mosaic(crop, "emps", chunks=chunk,
                                                 inference_scale=scale,
                                                 workdir=folder / "crop"))
            shutil.rmtree(folder / "work", ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seg = pretrained("emps", device="cpu").set_params(inference_scale=scale)
    whole = int(label_particles(seg.predict(crop)).max())
    print(f"\n### Mosaic: synthetic, chunks of {chunk}², {workers} worker processes of "
          f"{max(1, (os.cpu_count() or 1) // workers)} torch thread(s)\n")
    print("| mosaic | inference scale | particles | wall time (s) | megapixels/s | "
          "peak memory per worker (GB) |")
    print("|---|---|---|---|---|---|")
    for size, count, seconds, scale_used, peaks in rows:
        print(f"| {size}² | {scale_used:g} | {count} | {seconds:.0f} | "
              f"{size * size / 1e6 / seconds:.2f} | " + ", ".join(f"{v:.2f}" for v in peaks)
              + " |")
    print(f"\nTop-left {crop_size}² crop of the {sizes[-1]}² mosaic: {chunked} particles in "
          f"chunks of {chunk}², {whole} with `label_particles(seg.predict(crop))` in memory at "
          f"the same scale (difference {chunked - whole:+d}, "
          f"{abs(chunked - whole) / max(whole, 1):.2%}).")


# --------------------------------------------------------------------------
# labelling


def _class_mosaic(path, size, chunk):
    """A synthetic class map of ``size``² (one 1024² map tiled), written to Zarr."""
    import zarr

    from particleseg import annotate_borders
    from particleseg.datasets import make_particles

    _, y = make_particles(n_images=1, shape=(1024, 1024), n_particles=400, radius=(10, 30),
                          random_state=0)
    tile = annotate_borders(np.asarray(y[0])).astype(np.uint8)
    store = zarr.open(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                      dtype=np.uint8)
    for top in range(0, size, 1024):
        for left in range(0, size, 1024):
            store[top:top + 1024, left:left + 1024] = tile[:size - top, :size - left]


def _dask_image_cores(classes, path):
    from dask_image.ndmeasure import label
    from scipy import ndimage as ndi

    cores, n = label(classes == 1, structure=ndi.generate_binary_structure(2, 1))
    cores.to_zarr(str(path), overwrite=True)
    return int(n.compute())


def labelling(size, chunk, workers):
    import dask.array as da
    from distributed import Client, LocalCluster

    from particleseg.mosaic import label_mosaic

    methods = {"particleseg label_mosaic (cores, grown, renumbered)":
               lambda classes, work: label_mosaic(classes, workdir=work)[1]}
    try:
        import dask_image.ndmeasure  # noqa: F401

        methods["dask_image.ndmeasure.label (cores only)"] = _dask_image_cores
    except ImportError:
        print("\n(dask-image is not installed: its row is left out)")
    folder = Path(tempfile.mkdtemp(prefix="scale-out-labels-"))
    rows = []
    try:
        _class_mosaic(folder / "classes.zarr", size, chunk)
        for name, run in methods.items():
            # A new cluster per method, so each worker's peak memory is that method's.
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                before = _peak_rss_gb()
                classes = da.from_zarr(str(folder / "classes.zarr"))
                start = time.perf_counter()
                n = run(classes, folder / "work")
                seconds = time.perf_counter() - start
                peaks = client.run(_peak_rss_gb)
            rows.append((name, n, seconds, _peak_rss_gb() - before, list(peaks.values())))
            shutil.rmtree(folder / "work", ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n### Labelling a {size}² class map in chunks of {chunk}², {workers} worker "
          "processes\n")
    print("| labelling | particles | wall time (s) | driver memory growth (GB) | "
          "peak memory per worker (GB) |")
    print("|---|---|---|---|---|")
    for name, n, seconds, driver, peaks in rows:
        print(f"| {name} | {n} | {seconds:.0f} | {driver:.2f} | "
              + ", ".join(f"{v:.2f}" for v in peaks) + " |")


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


def postprocessing(repeats, size):
    from particleseg import label_particles, pretrained
    from particleseg.measure import measure_particles
    from particleseg.scalebar import annotation_mask
    from particleseg.segmenter import _label

    def timed(run):
        times, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - start)
        return _median_of(times), result

    classes = _synthetic_class_map(size, round(10_000 * size * size / 4096**2))
    label_s, labels = timed(lambda: label_particles(classes))
    measure_s, table = timed(lambda: measure_particles(labels, pixel_size=1.0, unit="nm"))

    seg = pretrained("emps", device="cpu")
    image = _images(1, size, seed=1)[0]
    model_s, proba = timed(lambda: seg.predict_proba(image))
    scale = seg.last_scales_[0]
    decide_s, _ = timed(lambda: seg._decide(proba))
    model_s += decide_s  # predict = predict_proba + the decision to classes
    # What `particleseg analyze` does after the network: labels with confidence, measure.
    own_label_s, (own, confidence) = timed(lambda: _label(seg, proba, return_confidence=True))
    own_measure_s, own_table = timed(lambda: measure_particles(own, image, confidence=confidence))
    mask_s, _ = timed(lambda: annotation_mask(image))
    print(f"\n### Postprocessing against the bundled model's predict time at {size}² "
          f"(median of {repeats})\n")
    print("| step | seconds | share of predict |")
    print("|---|---|---|")
    print(f"| bundled model, `predict` of a {size}² micrograph (auto scale: {scale:g}) | "
          f"{model_s:.1f} | 100% |")
    rows = [
        (f"label_particles, synthetic map of {int(labels.max())} particles", label_s),
        (f"measure_particles, {len(table)} rows", measure_s),
        ("both (synthetic map)", label_s + measure_s),
        (f"labels with confidence, on the model's output ({int(own.max())} particles)",
         own_label_s),
        (f"measure_particles with confidence, {len(own_table)} rows", own_measure_s),
        ("both (model's output)", own_label_s + own_measure_s),
        ("annotation_mask (figure annotations; `analyze` without --keep-annotations)", mask_s),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / model_s:.1%} |")


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
    # ``Module.to`` converts in place: the segmenter gets its own copy, so that
    # the plain loop runs the network as torchvision builds it.
    fitted = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def plain(network=model):
        x = (image.astype(np.float32) / 255 - RECIPE_MEAN) / RECIPE_STD
        x = torch.from_numpy(x)[None, None].expand(1, 3, -1, -1)
        with torch.no_grad():
            out = network(x)["out"]
        return torch.softmax(out, 1)[0].numpy()

    runs = {"plain": plain, "plain, channels_last": functools.partial(plain, fitted)}
    for tile_size, overlap in settings:
        seg = ParticleSegmenter(backbone="mobilenet_v3_large", device="cpu",
                                tile_size=tile_size, tile_overlap=overlap)
        seg.model_, seg.device_ = fitted, torch.device("cpu")
        seg.classes_ = np.array([0, 1, 2])
        seg.normalization_ = (seg.mean, seg.std)
        seg.history_, seg.n_iter_, seg.border_width_ = [], 0, 1
        seg.class_weight_ = np.ones(3, dtype=np.float32)
        runs[(tile_size, overlap)] = functools.partial(seg.predict_proba, image)
    # Every run once to warm up, then all of them in turn, repeatedly, so that
    # a change in the machine's load falls on all of them alike.
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for i in range(repeats + 1):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            if i:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    reference, reference_cpu = _median_of(wall["plain"]), _median_of(cpu["plain"])
    print(f"\n### predict at {size}² against the plain loop (MobileNetV3, "
          f"{torch.get_num_threads()} threads, median of {repeats}, runs interleaved)\n")
    print("| tile_size | tile_overlap | tiles | seconds | speed-up vs plain | "
          "CPU seconds | CPU speed-up |")
    print("|---|---|---|---|---|---|---|")
    print(f"| plain loop (whole image, float32) | - | - | {reference:.2f} | 1.00x | "
          f"{reference_cpu:.2f} | 1.00x |")
    seconds, cpu_seconds = _median_of(wall["plain, channels_last"]), _median_of(
        cpu["plain, channels_last"])
    print(f"| plain loop, weights in channels_last | - | - | {seconds:.2f} | "
          f"{reference / seconds:.2f}x | {cpu_seconds:.2f} | {reference_cpu / cpu_seconds:.2f}x |")
    from particleseg._inference import tile_starts

    for (tile_size, overlap) in settings:
        seconds, cpu_seconds = _median_of(wall[(tile_size, overlap)]), \
            _median_of(cpu[(tile_size, overlap)])
        if tile_size and size > tile_size:
            side, starts = tile_starts(size, tile_size, overlap, 16)
            layout = f"{len(starts)}x{len(starts)} of {side}²"
        else:
            layout = "whole"
        print(f"| {tile_size or 'none (whole)'} | {overlap if tile_size else '-'} | {layout} | "
              f"{seconds:.2f} | {reference / seconds:.2f}x | {cpu_seconds:.2f} | "
              f"{reference_cpu / cpu_seconds:.2f}x |")


def _tile_setting(text):
    if text.lower() == "none":
        return (None, 0)
    try:
        size, overlap = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SIZE,OVERLAP (e.g. 1024,128) or none; got {text!r}") from None
    return size, overlap


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+",
                   default=["throughput", "mosaic", "labelling", "postprocessing", "tiles"],
                   choices=["throughput", "mosaic", "labelling", "postprocessing", "tiles"])
    p.add_argument("--images", type=int, default=200, help="images for the throughput table")
    p.add_argument("--size", type=int, default=1024, help="their side, in pixels")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    p.add_argument("--mosaic-size", type=int, nargs="+", default=[16384],
                   help="mosaic side(s), in pixels; the count check uses the last")
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--crop", type=int, default=4096,
                   help="side of the mosaic's top-left crop whose count is checked in memory")
    p.add_argument("--label-size", type=int, default=8192,
                   help="class-map side for the labelling table")
    p.add_argument("--post-size", type=int, default=4096,
                   help="image side for the postprocessing table")
    p.add_argument("--tile-size", type=int, default=2048, help="image side for the tiles table")
    p.add_argument("--tiles", nargs="+", type=_tile_setting,
                   # The default; tiles that cover 2048 in two (1088 = (2048 + 128) / 2);
                   # smaller tiles; the whole image.
                   default=[(1024, 128), (1088, 128), (512, 64), (None, 0)],
                   metavar="SIZE,OVERLAP",
                   help="tile_size,tile_overlap settings for the tiles table ('none' for the "
                        "whole image)")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each timing (throughput, postprocessing, tiles); medians")
    args = p.parse_args(argv)
    import torch

    print(f"particleseg scale-out benchmark: {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}")
    print("command: python benchmarks/scale_out.py " + " ".join(sys.argv[1:] if argv is None else argv))
    if "throughput" in args.only:
        throughput(args.images, args.size, args.workers, args.repeats)
    if "mosaic" in args.only:
        mosaic(args.mosaic_size, args.chunk, args.workers, args.crop)
    if "labelling" in args.only:
        labelling(args.label_size, args.chunk, args.workers)
    if "postprocessing" in args.only:
        postprocessing(args.repeats, args.post_size)
    if "tiles" in args.only:
        tiles(args.tile_size, args.repeats, args.tiles)


if __name__ == "__main__":
    main()
