"""Does the starting model's confidence rule help a fine-tuned model? k=5, seed 0, 3 CPU-minutes on 2 cores; every 3rd sem-silica test image.

Usage: python benchmarks/finetune_confidence.py [MODEL_OUT]
"""
import sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import torch
torch.set_num_threads(2)
from finetune import load_set, load_start, cpu_clock
from _scoring import score_images
from particleseg.segmenter import _fine_tune
data = load_set("sem-silica", 0, None, 3)
X, y, names = data["pool"]
Xt, yt, _ = data["test"]
seg = load_start("emps", 2).set_params(random_state=0)
cal, thr = seg.confidence_calibration_, seg.min_confidence_
_fine_tune(seg, X, y, names=names, minutes=3, clock=cpu_clock(2))
print(seg.fine_tuning_["steps"], seg.fine_tuning_["message"], flush=True)
if len(sys.argv) > 1:
    seg.save(sys.argv[1])
for name, (c, t) in {"no threshold (shipped)": (None, None), "parent rule": (cal, thr)}.items():
    seg.confidence_calibration_, seg.min_confidence_ = c, t
    s = score_images(yt, [seg.predict_particles(im) for im in Xt])
    print(name, {k: round(s[k], 3) for k in ("F1 mean", "precision", "recall", "count err. median")}, flush=True)
