"""The order of the example gallery: from first steps to the details."""

ORDER = [
    "plot_segment_and_count.py",
    "plot_pretrained.py",
    "plot_size_distribution.py",
    "plot_border_annotation.py",
    "plot_augmentations.py",
    "plot_grid_search.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename), filename) if filename in ORDER else (len(ORDER), filename)

    def __repr__(self):
        return "<ExampleOrder>"
