"""Instance F1 of a model on synthetic micrographs it never saw.

The bundled model is judged on images unlike its training data too. This
script makes four sets with :func:`particleseg.datasets.make_particles`
(fixed seeds; dark and bright particles) and prints, per inference scale, the
instance F1 at IoU 0.5 pooled over each set, with ``predict``'s default
decision rule and connected components.

Usage::

    python benchmarks/synthetic_accuracy.py                    # the bundled model
    python benchmarks/synthetic_accuracy.py --model m.safetensors --scales 1 2
"""

from __future__ import annotations

import argparse

from particleseg import ParticleSegmenter, label_particles, pretrained
from particleseg.datasets import load_sample, make_particles
from particleseg.metrics import match_particles


def data_sets():
    sample = load_sample()
    return {
        "built-in sample (512², radius 8-20)": ([sample[0]], [sample[1]]),
        "touching, 4 x 512², radius 8-20": make_particles(
            4, (512, 512), n_particles=(60, 80), radius=(8, 20), overlap=0.25, noise=0.08,
            polarity="mixed", random_state=5),
        "small, 4 x 512², radius 4-8": make_particles(
            4, (512, 512), n_particles=(150, 200), radius=(4, 8), overlap=0.2, noise=0.08,
            polarity="mixed", random_state=6),
        "small images, 4 x 256², radius 8-16": make_particles(
            4, (256, 256), n_particles=(45, 45), radius=(8, 16), overlap=0.25, noise=0.08,
            polarity="mixed", random_state=7),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the bundled 'emps')")
    p.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0],
                   help="inference scales to compare")
    args = p.parse_args(argv)
    seg = pretrained("emps") if args.model is None else ParticleSegmenter.load(args.model)
    sets = data_sets()
    print("| data set | " + " | ".join(f"F1 at {s:g}x" for s in args.scales) + " |")
    print("|---|" + "---|" * len(args.scales))
    for name, (X, y) in sets.items():
        cells = []
        for scale in args.scales:
            seg.set_params(inference_scale=scale)
            tp = fp = fn = 0
            for image, truth in zip(X, y):
                m = match_particles(truth, label_particles(seg.predict(image)))
                tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
            cells.append(f"{2 * tp / max(2 * tp + fp + fn, 1):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
