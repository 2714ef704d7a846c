"""Hypothesis strategies that build random instance maps.

The maps are made of particles that :func:`annotate_borders` can represent
faithfully: every particle is at least ``2 * width + 1`` pixels thick (so it
keeps a core) and has no thin neck. They are

* axis-aligned rectangles, one per cell of a random grid; a rectangle may
  fill its cell, so neighbours touch along an edge or at a corner, and the
  grid may reach the image edge, so particles are cut by it;
* rings (a rectangle with a rectangular hole, each side at least
  ``2 * width + 1`` thick), with or without another particle in the hole,
  which may fill the hole and so touch the ring all round.

Particle ids are distinct random positive integers, not necessarily 1..n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

__all__ = ["InstanceMap", "instance_maps", "border_widths", "class_maps", "probability_maps"]

#: Largest image side the strategies produce, to keep the tests fast.
MAX_SIDE = 64


@dataclass
class InstanceMap:
    """A random instance map and what we know about it."""

    labels: np.ndarray
    width: int
    n_particles: int
    rings: int  # how many particles are rings


def border_widths(max_width: int = 3):
    """Border widths from 1 to ``max_width``."""
    return st.sampled_from(range(1, max_width + 1))


def _span(draw, cell: int, thickness: int):
    """Start and stop of a rectangle side of at least ``thickness`` in a cell.

    Filling the cell (offset 0, full length) is drawn often, so that
    neighbouring particles touch.
    """
    if draw(st.booleans()):
        return 0, cell
    length = draw(st.integers(thickness, cell))
    start = draw(st.integers(0, cell - length))
    return start, start + length


@st.composite
def _cell_particles(draw, height: int, width: int, thickness: int, rings: bool):
    """Rectangles and rings, in cell coordinates, for the particles of one cell."""
    kinds = ["empty"] + ["rectangle"] * 3 + (["ring", "ring"] if rings else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "ring" and min(height, width) >= 2 * thickness + 1:
        r0, r1 = _span(draw, height, 2 * thickness + 1)
        c0, c1 = _span(draw, width, 2 * thickness + 1)
        # Side thicknesses: top, bottom, left, right, each >= thickness, leaving
        # a hole of at least one pixel.
        top = draw(st.integers(thickness, (r1 - r0) - thickness - 1))
        bottom = draw(st.integers(thickness, (r1 - r0) - top - 1))
        left = draw(st.integers(thickness, (c1 - c0) - thickness - 1))
        right = draw(st.integers(thickness, (c1 - c0) - left - 1))
        hole = (r0 + top, r1 - bottom, c0 + left, c1 - right)
        parts = [("ring", (r0, r1, c0, c1), hole)]
        hole_h, hole_w = hole[1] - hole[0], hole[3] - hole[2]
        if min(hole_h, hole_w) >= thickness and draw(st.booleans()):
            i0, i1 = _span(draw, hole_h, thickness)
            j0, j1 = _span(draw, hole_w, thickness)
            parts.append(("rectangle", (hole[0] + i0, hole[0] + i1, hole[2] + j0, hole[2] + j1)))
        return parts
    if kind == "empty":
        return []
    r0, r1 = _span(draw, height, thickness)
    c0, c1 = _span(draw, width, thickness)
    return [("rectangle", (r0, r1, c0, c1))]


@st.composite
def instance_maps(draw, width=None, rings: bool = True, max_side: int = MAX_SIDE):
    """Random instance maps for border width ``width`` (drawn when None).

    Returns an :class:`InstanceMap`; its ``labels`` are int32 (H, W), at most
    ``max_side`` pixels on a side.
    """
    if width is None:
        width = draw(border_widths())
    thickness = 2 * width + 1

    def cell_sizes():
        n = draw(st.integers(1, min(5, max_side // thickness)))
        sizes = [draw(st.integers(thickness, max_side // n)) for _ in range(n)]
        return sizes, max_side - sum(sizes)

    row_sizes, row_slack = cell_sizes()
    col_sizes, col_slack = cell_sizes()
    # Background margins around the grid; 0 puts particles on the image edge.
    def margin(slack):
        return min(slack, draw(st.sampled_from([0, 0, 1, 3])))

    top = margin(row_slack)
    bottom = margin(row_slack - top)
    left = margin(col_slack)
    right = margin(col_slack - left)
    shape = (top + sum(row_sizes) + bottom, left + sum(col_sizes) + right)

    masks, n_rings = [], 0
    r_start = top
    for h in row_sizes:
        c_start = left
        for w in col_sizes:
            parts = draw(_cell_particles(h, w, thickness, rings))
            for part in parts:
                mask = np.zeros(shape, dtype=bool)
                r0, r1, c0, c1 = part[1]
                mask[r_start + r0:r_start + r1, c_start + c0:c_start + c1] = True
                if part[0] == "ring":
                    h0, h1, g0, g1 = part[2]
                    mask[r_start + h0:r_start + h1, c_start + g0:c_start + g1] = False
                    n_rings += 1
                masks.append(mask)
            c_start += w
        r_start += h

    ids = draw(
        st.lists(st.integers(1, 10_000), min_size=len(masks), max_size=len(masks), unique=True)
    )
    labels = np.zeros(shape, dtype=np.int32)
    for mask, k in zip(masks, ids):
        labels[mask] = k
    return InstanceMap(labels=labels, width=width, n_particles=len(masks), rings=n_rings)


def _shapes(max_side):
    return st.tuples(st.integers(1, max_side), st.integers(1, max_side))


@st.composite
def class_maps(draw, max_side: int = 24):
    """Arbitrary class maps (values 0, 1, 2 anywhere), uint8 (H, W)."""
    shape = draw(_shapes(max_side))
    return draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 1, 2])))


@st.composite
def probability_maps(draw, max_side: int = 16):
    """Arbitrary class probabilities (3, H, W), float32, summing to 1 per pixel."""
    shape = draw(_shapes(max_side))
    raw = draw(arrays(np.float32, (3, *shape), elements=st.floats(0, 1, width=32)))
    raw = raw.astype(np.float64) + 1e-3
    return (raw / raw.sum(axis=0)).astype(np.float32)
