"""Smoke tests of benchmarks/bench_runtimes.py's helpers (no timing, no model runs)."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import bench_runtimes as bench


def test_boxes_are_whole_pixels_inside_the_frame_and_person_shaped():
    boxes = bench.make_boxes(64)
    assert boxes.shape == (64, 4)
    assert np.array_equal(boxes, np.round(boxes))
    height, width = bench.FRAME_SHAPE[:2]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    tall = boxes[:, 3] - boxes[:, 1]
    wide = boxes[:, 2] - boxes[:, 0]
    assert (tall >= 64).all() and (tall > wide).all()


def test_crops_for_torchreid_are_the_boxes_in_rgb():
    frame = bench.make_frame(shape=(120, 200, 3))
    boxes = np.array([[10, 20, 40, 100], [0, 0, 200, 120]], dtype=np.float32)
    crops = bench.cut_rgb(frame, boxes)
    assert [crop.shape for crop in crops] == [(80, 30, 3), (120, 200, 3)]
    assert np.array_equal(crops[0], frame[20:100, 10:40, ::-1])
    assert all(crop.flags["C_CONTIGUOUS"] for crop in crops)


def test_min_cosine_is_per_row_and_nan_on_mismatched_shapes():
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert bench.min_cosine(reference * 3, reference) == 1.0
    assert abs(bench.min_cosine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), reference) - 2**-0.5) < 1e-9
    assert np.isnan(bench.min_cosine(reference[:1], reference))


def _method(name, family, backend, precision, seconds, features):
    method = bench.Method(name, family, backend, precision)
    method.seconds = {kind: list(seconds) for kind in bench.INPUTS}
    method.features = {kind: features for kind in bench.INPUTS}
    return method


def test_summary_ratios_and_targets():
    features = torch.randn(8, 4)
    methods = [
        _method("torchreid FeatureExtractor", "torchreid", "torch", "fp32", [4.0, 5.0], features),
        _method("reid ReIDModel", "reid", "torch", "fp32", [3.0], features),
        _method(bench.REFERENCE, "ours", "torch", "fp32", [2.0], features),
        _method("ours openvino fp32", "ours", "openvino", "fp32", [1.0], features),
        _method("ours openvino bf16", "ours", "openvino", "bf16", [0.5], features + 1e-4),
    ]
    skipped = bench.Method("reid broken", "reid", skipped="not runnable offline: no")
    rows = bench.summarise("osnet_x1_0", [*methods, skipped], {"frame": 8, "files": 8})
    openvino = next(r for r in rows if r["method"] == "ours openvino fp32" and r["input"] == "frame")
    assert openvino["x_torchreid"] == 4.0 and openvino["x_reid"] == 3.0 and openvino["x_ours_torch"] == 2.0
    assert openvino["min_cosine"] > 0.999999
    assert "not runnable offline" in bench.markdown_table(rows, "frame", "t")
    targets = bench.check_targets(rows)
    first = targets[0]
    assert first.met is True and "4.00x torchreid" in first.detail
    assert targets[1].met is None  # no resnet50 in these rows
