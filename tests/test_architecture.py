"""The module map's rules hold: imports flow one way, torch stays with the model.

The layers (see docs/architecture.rst), lowest first:

0. array functions, which know nothing of torch or of the estimator;
1. transformers built on them;
2. the estimator: the model, inference, training, persistence, the
   estimator itself and the bundled models, in that order;
3. the command line, the plots, and the large jobs on Dask (batch, mosaic).

A module may import from its own layer or the ones below, never from above.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import particleseg

PACKAGE = Path(particleseg.__file__).parent

ARRAY_FUNCTIONS = ("_validation", "_figures", "annotation", "postprocessing", "_autoscale",
                   "metrics", "measure", "datasets", "io", "scalebar", "labels")
TRANSFORMERS = ("normalization", "augmentation")
#: Ordered: each may import the ones before it.
ESTIMATOR = ("_models", "_inference", "_persistence", "_training", "_finetune", "segmenter",
             "_pretrained")
ON_TOP = ("plotting", "cli", "_cli_common", "_cli_analyze", "_cli_train", "_cli_finetune", "batch",
          "mosaic")

RANK = {
    **{m: 0 for m in ARRAY_FUNCTIONS},
    **{m: 1 for m in TRANSFORMERS},
    **{m: 2 + i / 10 for i, m in enumerate(ESTIMATOR)},
    **{m: 3 for m in ON_TOP},
}

#: The only modules that may import torch (at their top or inside a function).
TORCH_MODULES = {"_models", "_inference", "_training", "_finetune", "_persistence"}


def _modules():
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module):
    """Package modules and top-level third-party packages that ``module`` imports."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module)
            elif node.module:  # from .x import y
                found.add(f"particleseg.{node.module}")
            else:  # from . import x
                found |= {f"particleseg.{alias.name}" for alias in node.names}
    return found


def test_every_module_has_a_layer():
    assert set(_modules()) == set(RANK), "place each new module in a layer of the module map"


@pytest.mark.parametrize("module", sorted(RANK))
def test_imports_flow_one_way(module):
    upward = []
    for name in _imports(module):
        parts = name.split(".")
        if parts[0] != "particleseg" or len(parts) < 2 or parts[1] not in RANK:
            continue  # third-party, the package itself (its __version__), or a data folder
        if RANK[parts[1]] > RANK[module]:
            upward.append(parts[1])
    assert not upward, f"{module} imports {upward}, which sit above it in the module map."


@pytest.mark.parametrize("module", sorted(RANK))
def test_torch_is_imported_only_where_the_model_lives(module):
    uses_torch = any(name.split(".")[0] in ("torch", "torchvision") for name in _imports(module))
    assert not uses_torch or module in TORCH_MODULES


def test_import_particleseg_does_not_import_torch():
    code = ("import sys, particleseg; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
