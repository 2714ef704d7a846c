"""Sphinx configuration of the particleseg documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html``. Nothing here
needs a network: intersphinx is off, and every figure is drawn at build time
(the example gallery and the landing figure run on synthetic data).
"""

import os
import sys
from pathlib import Path

# The examples train tiny models; keep them from asking the network for
# albumentations updates and from opening windows.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "sphinxext"))

import particleseg  # noqa: E402  (the installed package, src layout)

# -- Project -----------------------------------------------------------------

project = "particleseg"
author = "particleseg developers"
copyright = "particleseg developers, BSD-3-Clause"
release = particleseg.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "particleseg_docs",  # docs/sphinxext: CLI help and the changelog
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "sphinxext", "_scripts"]
root_doc = "index"
default_role = "obj"

# No intersphinx: the documentation must build without a network. Links to
# numpy, scikit-learn, ... are written as plain text or external URLs.
intersphinx_mapping = {}

# -- autodoc / autosummary / numpydoc ----------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc sections carry the types
autoclass_content = "class"

numpydoc_show_class_members = False  # the class template lists members
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Example gallery (sphinx-gallery) ----------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("particleseg",),
    "reference_url": {"particleseg": None},
    "image_scrapers": ("matplotlib",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    # Running times are on every example's page; no sg_execution_times.rst
    # written into the source tree.
    "write_computation_times": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    # A failing example fails the build (with -W, and without it).
    "only_warn_on_example_error": False,
}

# -- Figures drawn by the plot directive (landing figure) --------------------

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": False}

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"particleseg {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}
