"""Inference speed and peak memory: plain torchvision loop vs ParticleSegmenter.predict.

For each backbone (ResNet-50, MobileNetV3-Large) and image size (512², 2048²,
8192² by default), two ways of predicting the class map of one image are run,
each in a fresh subprocess (so peak memory is that of the job alone):

(a) ``plain``: the straightforward loop: torchvision's DeepLabV3 in float32,
    the whole image at once under ``torch.no_grad``;
(b) ``predict``: ``ParticleSegmenter.predict`` with its defaults (inference
    mode, channels-last, tiles of ``tile_size`` blended across their overlap,
    bfloat16 autocast where the CPU supports it natively).

Both use the same (untrained, seeded) weights; speed does not depend on the
weights' values. Each subprocess runs under an address-space cap
(``--memory-cap-gb``); a job that exceeds it is reported as failed, as the
plain loop does at 8192². Times are medians of ``--repeats`` runs after one
warm-up run for images up to 1024², and of ``--large-repeats`` runs (default
1, no warm-up) above. At 512² the output of (b) is compared with (a): the fraction of
pixels whose predicted class differs, and the largest probability difference.

Also reported: the time of postprocessing (``label_particles`` +
``measure_particles``) relative to the model's time, on a 4096² class map with
about 10,000 particles.

Usage::

    python benchmarks/inference.py                 # the full table (about 12 min on 2 cores)
    python benchmarks/inference.py --sizes 512 2048 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# Worker: one configuration in its own process


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _image(size, seed=0):
    rng = np.random.default_rng(seed)
    # A smooth random micrograph-like image (values in [0, 255]).
    from scipy import ndimage as ndi

    small = rng.random((max(size // 16, 4), max(size // 16, 4)))
    img = ndi.zoom(small, size / small.shape[0], order=1)[:size, :size]
    img = img + 0.05 * rng.standard_normal((size, size))
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _model_state(backbone):
    import torch

    from particleseg._models import build_model

    torch.manual_seed(0)
    return build_model(backbone).eval()


def worker(method, backbone, size, repeats, threads):
    import torch

    torch.set_num_threads(threads)
    image = _image(size)
    model = _model_state(backbone)
    if method == "plain":
        from particleseg.normalization import RECIPE_MEAN, RECIPE_STD

        def run():
            x = (image.astype(np.float32) / 255 - RECIPE_MEAN) / RECIPE_STD
            x = torch.from_numpy(x)[None, None].expand(1, 3, -1, -1)
            with torch.no_grad():
                out = model(x)["out"]
            return torch.softmax(out, 1)[0].numpy()
    else:
        from particleseg import ParticleSegmenter

        seg = ParticleSegmenter(backbone=backbone, n_threads=threads, device="cpu")
        # A fitted estimator around the same weights (what load() does).
        seg.model_ = model.to(memory_format=torch.channels_last)
        seg.device_ = torch.device("cpu")
        seg.classes_ = np.array([0, 1, 2])
        seg.normalization_ = (seg.mean, seg.std)
        seg.history_, seg.n_iter_, seg.border_width_ = [], 0, 1
        seg.class_weight_ = np.ones(3, dtype=np.float32)

        def run():
            return seg.predict_proba(image)

    times = []
    out = None
    warm_up = size <= 1024  # large images warm up on their first tile
    for i in range(repeats + warm_up):
        start = time.perf_counter()
        out = run()
        if i or not warm_up:
            times.append(time.perf_counter() - start)
    result = {"seconds": float(np.median(times)), "peak_gb": _peak_rss_gb(), "runs": len(times)}
    if size <= 1024:
        np.save(os.environ["BENCH_OUT"], out.astype(np.float32))
    print(json.dumps(result))


def run_job(method, backbone, size, repeats, threads, cap_gb, out_path):
    env = dict(os.environ, BENCH_OUT=out_path)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, backbone, str(size),
           str(repeats), str(threads)]

    def limit():
        cap = int(cap_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=limit)
    if proc.returncode != 0:
        reason = "out of memory" if ("memory" in proc.stderr.lower() or proc.returncode < 0) else "error"
        return {"failed": f"{reason} (cap {cap_gb:g} GB)", "stderr": proc.stderr[-400:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Postprocessing time


def postprocessing_seconds(repeats=3):
    """label_particles + measure_particles on a 4096² map with ~10,000 particles."""
    from particleseg import annotate_borders, label_particles
    from particleseg.measure import measure_particles

    rng = np.random.default_rng(0)
    size, n = 4096, 10_000
    labels = np.zeros((size, size), dtype=np.int32)
    centres = rng.integers(10, size - 10, size=(n, 2))
    radii = rng.integers(6, 14, size=n)
    yy, xx = np.mgrid[-14:15, -14:15]
    for k, ((r, c), rad) in enumerate(zip(centres, radii), start=1):
        disc = yy**2 + xx**2 <= rad**2
        sl = labels[r - 14 : r + 15, c - 14 : c + 15]
        if sl.shape == disc.shape:
            sl[disc & (sl == 0)] = k
    classes = annotate_borders(labels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inst = label_particles(classes)
        table = measure_particles(inst, pixel_size=1.0, unit="nm")
        times.append(time.perf_counter() - start)
    return float(np.median(times)), int(inst.max()), len(table)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["resnet50", "mobilenet_v3_large"])
    p.add_argument("--sizes", nargs="+", type=int, default=[512, 2048, 8192])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per job (median reported)")
    p.add_argument("--large-repeats", type=int, default=1,
                   help="timed runs for sizes above 1024 (they take minutes; no warm-up run)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--memory-cap-gb", type=float, default=16.0)
    args = p.parse_args(argv)

    import torch

    from particleseg._inference import bf16_supported

    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"native bfloat16: {bf16_supported()}, memory cap {args.memory_cap_gb:g} GB per job")
    rows = []
    tmp = os.path.join(HERE, ".bench_out")
    os.makedirs(tmp, exist_ok=True)
    model_seconds = {}
    for backbone in args.backbones:
        for size in args.sizes:
            repeats = args.repeats if size <= 1024 else args.large_repeats
            res = {}
            for method in ("plain", "predict"):
                out_path = os.path.join(tmp, f"{method}.npy")
                res[method] = run_job(method, backbone, size, repeats, args.threads,
                                      args.memory_cap_gb, out_path)
            a, b = res["plain"], res["predict"]
            agree = ""
            if size <= 1024 and "failed" not in a and "failed" not in b:
                pa = np.load(os.path.join(tmp, "plain.npy"))
                pb = np.load(os.path.join(tmp, "predict.npy"))
                differ = float((pa.argmax(0) != pb.argmax(0)).mean())
                agree = f"{differ:.4%} px differ, max Δp {np.abs(pa - pb).max():.3f}"
            if "failed" not in b:
                model_seconds[(backbone, size)] = b["seconds"]
            rows.append((backbone, size, a, b, agree))
            _print_row(*rows[-1])
    print()
    print("| backbone | size | plain: images/s | plain: peak GB | predict: images/s | predict: peak GB "
          "| speed-up b/a | output (b vs a) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(_format_row(*row))
    post, n_labels, n_rows = postprocessing_seconds()
    print()
    print(f"Postprocessing (label_particles + measure_particles) of a 4096² class map with "
          f"{n_labels} particles: {post:.2f} s (median of 3).")
    for backbone in args.backbones:
        if (backbone, 4096) in model_seconds:
            ref, size = model_seconds[(backbone, 4096)], 4096
        elif (backbone, 8192) in model_seconds:
            ref, size = model_seconds[(backbone, 8192)] / 4, 4096  # per 4096² area
        else:
            continue
        print(f"- {post / ref:.1%} of {backbone}'s predict time for a {size}² image ({ref:.1f} s)")


def _ips(r):
    return "failed: " + r["failed"] if "failed" in r else f"{1 / r['seconds']:.3f}"


def _gb(r):
    return "-" if "failed" in r else f"{r['peak_gb']:.2f}"


def _format_row(backbone, size, a, b, agree):
    ratio = "-" if "failed" in a or "failed" in b else f"{a['seconds'] / b['seconds']:.2f}x"
    return f"| {backbone} | {size}² | {_ips(a)} | {_gb(a)} | {_ips(b)} | {_gb(b)} | {ratio} | {agree or '-'} |"


def _print_row(*row):
    print(_format_row(*row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, method, backbone, size, repeats, threads = sys.argv
        worker(method, backbone, int(size), int(repeats), int(threads))
    else:
        main()
