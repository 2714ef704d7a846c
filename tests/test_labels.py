"""Tests for particleseg.labels: labelme files and sparse annotations."""

import json

import numpy as np
import pytest

from particleseg.labels import mark_unlabelled, read_labelme


def write(path, shapes, height=20, width=30):
    path.write_text(json.dumps({"version": "5.5.0", "shapes": shapes, "imagePath": "a.png",
                                "imageData": None, "imageHeight": height, "imageWidth": width}))
    return path


def shape(label, kind, points):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}}


def test_polygons_rectangles_and_circles_become_numbered_particles(tmp_path):
    path = write(tmp_path / "a.json", [
        shape("sphere", "polygon", [[2, 2], [8, 2], [8, 8], [2, 8]]),
        shape("sphere", "rectangle", [[20, 10], [12, 4]]),  # corners in any order
        shape("sphere", "circle", [[24, 15], [24, 12]]),
    ])
    labels = read_labelme(path)
    assert labels.shape == (20, 30) and labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert labels[5, 5] == 1 and labels[0, 0] == 0
    assert labels[6, 16] == 2 and (labels[4:11, 12:21] > 0).all()
    assert labels[15, 24] == 3 and labels[15, 28] == 0
    assert abs((labels == 3).sum() - np.pi * 9) < 8  # radius 3


def test_later_shapes_win_where_shapes_overlap(tmp_path):
    path = write(tmp_path / "a.json", [shape("p", "rectangle", [[0, 0], [10, 10]]),
                                       shape("p", "rectangle", [[5, 5], [15, 15]])])
    labels = read_labelme(path)
    assert labels[7, 7] == 2 and labels[2, 2] == 1


def test_regions_and_unlabelled_shapes_make_a_sparse_map(tmp_path):
    path = write(tmp_path / "a.json", [
        shape("region", "rectangle", [[0, 0], [14, 19]]),
        shape("p", "rectangle", [[2, 2], [6, 6]]),
        shape("p", "rectangle", [[20, 2], [25, 6]]),  # outside the region: unlabelled
        shape("unlabelled", "rectangle", [[8, 10], [12, 14]]),
    ])
    labels = read_labelme(path)
    assert labels[4, 4] == 1
    assert (labels[:, 16:] == -1).all()  # outside every region
    assert labels[12, 10] == -1 and labels[16, 4] == 0
    assert 2 not in labels


def test_particle_labels_and_ignore_labels_choose_the_shapes(tmp_path):
    path = write(tmp_path / "a.json", [shape("sphere", "rectangle", [[0, 0], [4, 4]]),
                                       shape("dust", "rectangle", [[10, 10], [14, 14]]),
                                       shape("scale bar", "line", [[0, 18], [20, 18]])])
    labels = read_labelme(path, particle_labels={"sphere"}, ignore_labels={"scale bar"})
    assert labels.max() == 1 and labels[12, 12] == 0
    with pytest.raises(ValueError, match=r"shape_type 'line' does not outline an area"):
        read_labelme(path)


def test_bad_files_are_refused_with_the_reason(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not a JSON file"):
        read_labelme(bad)
    bad.write_text(json.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="not a labelme file"):
        read_labelme(bad)
    bad.write_text(json.dumps({"shapes": []}))
    with pytest.raises(ValueError, match="does not record the image size"):
        read_labelme(bad)
    assert read_labelme(bad, shape=(4, 5)).shape == (4, 5)
    path = write(tmp_path / "a.json", [shape("p", "polygon", [[0, 0], [3, 3]])])
    with pytest.raises(ValueError, match="at least 3 points"):
        read_labelme(path)


def test_mark_unlabelled_keeps_the_region_and_hides_the_rest():
    labels = np.array([[0, 1, 1], [2, 2, 0]])
    region = np.array([[True, True, False], [True, False, False]])
    out = mark_unlabelled(labels, region)
    np.testing.assert_array_equal(out, [[0, 1, -1], [2, -1, -1]])
    assert labels.min() == 0  # the input is not changed
    with pytest.raises(TypeError, match="boolean mask"):
        mark_unlabelled(labels, region.astype(int))
    with pytest.raises(ValueError):
        mark_unlabelled(labels, region[:1])
