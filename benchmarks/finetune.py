"""Few-shot fine-tuning: the starting model against the model fine-tuned on k images.

For each set and each run ``k x minutes``, the starting model (``--from``,
default the bundled ``emps``) is fine-tuned with
:meth:`ParticleSegmenter.fine_tune` on k annotated images for a budget of
``minutes`` and scored on the set's test images, which are never trained on:

* ``sem-silica`` (``../shared/data/sem-silica``, 41 SEM images of silica
  spheres): the first 5 images of a permutation with ``--seed`` are the pool
  that runs train on (k=1 takes the first, k=2 the first two, k=5 all five);
  every run scores on the same 36 others (``--test-limit`` scores on fewer,
  for quick comparisons).
* ``emps-snb`` (``../shared/data/emps-train``): the EMPS validation images
  (seed-0 split, never trained on by the bundled model) of one paper and one
  material, doi 10.1016/j.snb.2019.127107 (3 images of spheres): k=1 trains
  on one and scores on the other two, k=2 trains on two and scores on the
  third.

Scores per run (instances from ``predict_particles``, the model's own
decision rule and confidence threshold, at its own ``inference_scale``,
"auto" for the bundled model; images predicted whole, without tiles): mean
per-image F1 at IoU 0.5 (Hungarian matching), median per-image count error
``|n_pred - n_true| / n_true``, median per-image relative error of the mean
equivalent diameter (``benchmarks/_scoring.py``), and the wall time, CPU
time and optimisation steps of fine-tuning.

The starting model is scored once per test set; ``--baseline-cache FILE``
keeps its scores between invocations (keyed by model, set, seed and test
images).

``--seed 0,1,2`` repeats everything on several draws (each seed its own
pool of training images, held-out image and test images) and adds, to each
group of rows, the median of each score over the draws: one draw of five
images moves the scores by about as much as the goals' margins.

``--clock cpu`` measures the budget as the process's CPU time divided by the
number of threads, for quick comparisons on a busy machine; the default,
``wall``, is the wall clock a user waits.

Usage::

    python benchmarks/finetune.py                                  # full grid, bundled model
    python benchmarks/finetune.py --from runs/model.safetensors --runs 5x2,5x5,5x10,1x5,2x5
    python benchmarks/finetune.py --sets sem-silica --runs 5x10 --seed 0,1,2,3 --clock cpu
    python benchmarks/finetune.py --sets sem-silica --runs 5x2 --test-limit 8 --clock cpu \\
        --recipe '{"learning_rate": 1e-4}'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _emps import split_indices  # noqa: E402

from _scoring import score_images  # noqa: E402

from particleseg import ParticleSegmenter, pretrained  # noqa: E402
from particleseg.datasets import load_emps  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SEM_SILICA = SHARED / "sem-silica"
EMPS = SHARED / "emps-train"
EMPS_DOI = "10.1016.j.snb.2019.127107"
POOL = 5


def load_set(name, seed, test_limit, test_step=1):
    """``{"pool": (X, y, names), "test": (X, y, names)}`` of a benchmark set."""
    if name == "sem-silica":
        X, y, names = load_emps(SEM_SILICA)
        order = np.random.default_rng(seed).permutation(len(X))
        pool, test = order[:POOL], np.sort(order[POOL:])[::test_step]
    elif name == "emps-snb":
        import pandas as pd

        X, y, names = load_emps(EMPS)
        _, valid = split_indices(len(X))
        doi = pd.read_csv(EMPS / "metadata.csv").set_index("name")["doi"]
        chosen = [i for i in valid if doi[names[i]] == EMPS_DOI]
        order = np.random.default_rng(seed).permutation(len(chosen))
        pool, test = [chosen[i] for i in order], None  # the test images depend on k
    else:
        raise SystemExit(f"unknown set {name!r}; use sem-silica or emps-snb")
    pick = lambda idx: ([X[i] for i in idx], [y[i] for i in idx], [names[i] for i in idx])  # noqa: E731
    data = {"pool": pick(pool), "all": (X, y, names), "pool_idx": list(pool)}
    if test is not None:
        data["test"] = pick(test[:test_limit] if test_limit else test)
    return data


def test_images(data, k):
    if "test" in data:
        return data["test"]
    X, y, names = data["all"]
    rest = data["pool_idx"][k:]
    return [X[i] for i in rest], [y[i] for i in rest], [names[i] for i in rest]


def score(seg, X, y):
    """Mean F1@0.5, median count error, median diameter error; per-image F1."""
    scores = score_images(y, [seg.predict_particles(image) for image in X])
    return {"f1": scores["F1 mean"], "count_error": scores["count err. median"],
            "diameter_error": scores["diam. err. median"],
            "precision": round(scores["precision"], 4), "recall": round(scores["recall"], 4),
            "n_true": scores["n true"], "n_pred": scores["n pred"],
            "per_image_f1": [round(float(f), 4) for f in scores["per-image F1"]]}


def load_start(spec, threads):
    if Path(spec).is_file():
        seg = ParticleSegmenter.load(spec, device="cpu")
    else:
        seg = pretrained(spec, device="cpu")
    # Whole images (1280 x 960 here) need no tiles; predicting them in one
    # piece gives the tiled result up to the blending at tile seams, at half
    # the cost.
    seg.set_params(n_threads=threads, tile_size=None)
    return seg


def cpu_clock(threads):
    return lambda: time.process_time() / threads


def parse_runs(text):
    runs = []
    for part in filter(None, text.split(",")):
        k, minutes = part.lower().split("x")
        runs.append((int(k), float(minutes)))
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="start", default="emps",
                   help="starting model: a bundled model name or a model file; default: emps")
    p.add_argument("--sets", default="sem-silica,emps-snb")
    p.add_argument("--runs", default="1x2,1x5,1x10,2x2,2x5,2x10,5x2,5x5,5x10",
                   help="comma-separated KxMINUTES runs (k images, minutes of budget); runs "
                        "with k larger than a set's pool are skipped")
    p.add_argument("--seed", default="0",
                   help="seed of the splits and of fine-tuning; several, comma-separated "
                        "(e.g. 0,1,2), run every set and run on each draw and add a row of "
                        "their medians")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--test-limit", type=int, default=None,
                   help="score sem-silica runs on the first N test images only")
    p.add_argument("--test-step", type=int, default=1,
                   help="score sem-silica runs on every N-th test image only (quick runs)")
    p.add_argument("--recipe", default="{}", help="JSON changes to the fine-tuning recipe")
    p.add_argument("--no-validation", action="store_true")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--save-models", default=None, help="folder to save the fine-tuned models in")
    p.add_argument("--skip-starting", action="store_true",
                   help="do not score the starting model (when another run scores it)")
    p.add_argument("--baseline-cache", default=None,
                   help="JSON file keeping the starting model's scores between invocations")
    p.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                   help="only print the table of the rows of these --json files")
    p.add_argument("--evaluate", type=int, metavar="K", default=None,
                   help="only score the --from model (such as one saved with --save-models) "
                        "on the test images of the runs with K images, without fine-tuning")
    p.add_argument("--test-time-flips", action="store_true",
                   help="with --evaluate: score with the predictions averaged over the 8 "
                        "flips and rotations of each image")
    args = p.parse_args(argv)
    if args.test_time_flips and args.evaluate is None:
        p.error("--test-time-flips scores a saved model: pass it with --evaluate K")
    if args.merge:
        rows = []
        for path in args.merge:
            merged = json.loads(Path(path).read_text())
            rows += [{"seed": merged["seed"], **row} for row in merged["rows"]]
        order = {"sem-silica": 0, "emps-snb": 1}
        rows.sort(key=lambda r: (order.get(r["set"], 2), r["model"] != "starting", r["k"],
                                 r["minutes"], r["seed"]))
        print(table(rows))
        if args.json:
            merged = json.loads(Path(args.merge[0]).read_text())
            merged["rows"] = rows
            Path(args.json).write_text(json.dumps(merged, indent=1))
        return

    import torch

    torch.set_num_threads(args.threads)
    recipe = json.loads(args.recipe)
    clock = cpu_clock(args.threads) if args.clock == "cpu" else None
    seeds = [int(seed) for seed in str(args.seed).split(",")]
    results = {"from": args.start, "seed": seeds[0] if len(seeds) == 1 else seeds,
               "clock": args.clock, "threads": args.threads, "recipe": recipe, "rows": []}
    for seed, set_name in itertools.product(seeds, filter(None, args.sets.split(","))):
        data = load_set(set_name, seed, args.test_limit, args.test_step)
        pool_x, pool_y, pool_names = data["pool"]
        if args.evaluate is not None:
            X_test, y_test, _ = test_images(data, args.evaluate)
            seg = load_start(args.start, args.threads)
            seg.set_params(test_time_flips=args.test_time_flips)
            row = {"set": set_name, "seed": seed, "model": Path(args.start).stem,
                   "k": args.evaluate, "minutes": 0, "n_test": len(X_test),
                   "test_time_flips": args.test_time_flips, **score(seg, X_test, y_test)}
            results["rows"].append(row)
            print(_line(row), flush=True)
            continue
        runs = [(k, m) for k, m in parse_runs(args.runs) if k <= len(pool_x)
                and not (set_name == "emps-snb" and k >= len(pool_x))]
        cache = Path(args.baseline_cache) if args.baseline_cache else None
        baselines = json.loads(cache.read_text()) if cache and cache.is_file() else {}
        scored = set()
        for k, minutes in runs:
            X_test, y_test, test_names = test_images(data, k)
            key = json.dumps([args.start, set_name, seed, test_names])
            c_start = time.process_time()
            if key not in scored and not args.skip_starting:
                scored.add(key)
                if key not in baselines:
                    baselines[key] = score(load_start(args.start, args.threads), X_test, y_test)
                    baselines[key]["seconds_per_image"] = round(
                        (time.process_time() - c_start) / args.threads / len(X_test), 1)
                    if cache:
                        cache.parent.mkdir(parents=True, exist_ok=True)
                        cache.write_text(json.dumps(baselines, indent=1))
                row = {"set": set_name, "seed": seed, "model": "starting", "k": 0, "minutes": 0,
                       "n_test": len(X_test), "test_particles": int(sum(
                           len(np.unique(t[t > 0])) for t in y_test)), **baselines[key]}
                results["rows"].append(row)
                print(_line(row), flush=True)
            seg = load_start(args.start, args.threads).set_params(random_state=seed)
            t0, c0 = time.perf_counter(), time.process_time()
            kwargs = {} if clock is None else {"clock": clock}
            # ParticleSegmenter.fine_tune, with the benchmark's clock.
            from particleseg.segmenter import _fine_tune

            _fine_tune(seg, pool_x[:k], pool_y[:k], names=pool_names[:k], minutes=minutes,
                       recipe=recipe, validation=not args.no_validation, **kwargs)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            result, names = seg.fine_tuning_, pool_names[:k]
            row = {"set": set_name, "seed": seed, "model": "fine-tuned", "k": k,
                   "minutes": minutes,
                   "n_test": len(X_test), "train_images": names,
                   "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                   "threads": args.threads,
                   "steps": result["steps"], "stopped": result["stopped"],
                   "kept_starting_weights": result["kept_starting_weights"],
                   "validation": result["validation"], "message": result["message"],
                   **score(seg, X_test, y_test)}
            results["rows"].append(row)
            print(_line(row), flush=True)
            if args.json:  # written after every run, so a long benchmark can be read early
                _write(args.json, results)
            if args.save_models:
                seg.save(Path(args.save_models) / f"{set_name}_k{k}_{minutes:g}min.safetensors")
    print()
    print(table(results["rows"]))
    if args.json:
        _write(args.json, results)


def _write(path, results):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=1))


def _line(row):
    extra = ""
    if row["model"] == "fine-tuned":
        extra = (f" wall {row['wall_seconds']:.0f}s cpu {row['cpu_seconds']:.0f}s "
                 f"steps {row['steps']} ({row['stopped']}"
                 f"{', kept start' if row['kept_starting_weights'] else ''})")
    return (f"{row['set']} seed {row.get('seed', '-')} {row['model']} k={row['k']} "
            f"{row['minutes']:g}min n_test={row['n_test']}: "
            f"F1 {row['f1']:.3f} count err {row['count_error']:.3f} "
            f"diam err {row['diameter_error']:.3f}{extra}")


SCORES = ("f1", "count_error", "diameter_error")


def with_medians(rows):
    """``rows``, each group of runs on several draws (seeds) followed by their medians.

    A group is the rows of one set, model kind, k and budget; its median row
    has the median of each score over the draws (each draw has its own test
    images).
    """
    out, groups = [], {}
    for row in rows:
        key = (row["set"], row["model"], row["k"], row["minutes"], row.get("test_time_flips"))
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        out += group
        if len({row.get("seed") for row in group}) > 1:
            out.append({**{key: group[0][key] for key in ("set", "model", "k", "minutes",
                                                          "test_time_flips") if key in group[0]},
                        "seed": f"median of {len(group)}",
                        **{key: float(np.median([row[key] for row in group]))
                           for key in SCORES}})
    return out


def table(rows):
    """A markdown table of the rows, with medians over draws (:func:`with_medians`)."""
    lines = ["| set | seed | model | k images | budget (min) | test images | mean F1@0.5 | "
             "median count error | median diameter error | CPU time / 2 cores (s) | "
             "wall time (s) | steps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in with_medians(rows):
        cost = ("-", "-", "-")  # median rows and unscored runs
        if r["model"] == "fine-tuned":
            model = "fine-tuned" + (" (kept start)" if r.get("kept_starting_weights") else "")
            run = (str(r["k"]), f"{r['minutes']:g}")
            if "steps" in r:
                cost = (f"{r['cpu_seconds'] / r.get('threads', 2):.0f}",
                        f"{r['wall_seconds']:.0f}", str(r["steps"]))
        elif "test_time_flips" in r:  # --evaluate
            model = r["model"] + (" (flips)" if r["test_time_flips"] else "")
            run = (str(r["k"]), "-")
        else:
            model, run = "starting", ("-", "-")
        cells = (r["set"], str(r.get("seed", "-")), model, *run, str(r.get("n_test", "-")),
                 f"{r['f1']:.3f}", f"{r['count_error']:.3f}", f"{r['diameter_error']:.3f}", *cost)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
