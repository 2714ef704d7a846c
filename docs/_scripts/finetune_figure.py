"""User-guide figure: the bundled model before and after fine-tuning on sem-silica.

Run by the documentation build (matplotlib's ``plot`` directive). It reads
the rows that ``benchmarks/finetune.py`` wrote to ``finetune_results.json``
beside this script (the command is in the user guide); it runs no model.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
results = json.loads((HERE / "finetune_results.json").read_text())
rows = [r for r in results["rows"] if r["set"] == "sem-silica"]
start = next(r for r in rows if r["model"] == "starting")
tuned = [r for r in rows if r["model"] == "fine-tuned"]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
metrics = (("f1", "mean F1 at IoU 0.5 (higher is better)"),
           ("count_error", "median count error (lower is better)"))
for ax, (key, title) in zip(axes, metrics):
    ax.axhline(start[key], color="0.4", linestyle="--", label="bundled model, not fine-tuned")
    for k, marker in ((5, "o"), (2, "s"), (1, "^")):
        points = sorted((r["minutes"], r[key]) for r in tuned if r["k"] == k)
        if points:
            ax.plot(*zip(*points), marker=marker, label=f"fine-tuned on {k} image{'s' * (k > 1)}")
    ax.set_xlabel("fine-tuning budget (minutes on 2 CPU cores)")
    ax.set_title(title)
    ax.set_xlim(0, 11)
axes[0].set_ylim(0, 1)
axes[1].set_ylim(bottom=0)
axes[0].legend(loc="lower right", fontsize="small")
fig.suptitle(f"sem-silica: scored on the {start['n_test']} images never trained on")
