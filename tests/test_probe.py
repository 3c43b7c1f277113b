"""The feature probe's pooling and ridge fit (benchmarks/probe.py)."""

from __future__ import annotations

import sys

import numpy as np
import torch
from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import probe  # noqa: E402


def test_pooling_keeps_the_mean_and_where_things_are():
    feats = torch.arange(16.0).reshape(1, 16, 1)  # a 4x4 grid, one channel, value = row * 4 + column
    got = probe.pooled(feats, (4, 4), cells=2)
    assert got.shape == (1, 5)
    np.testing.assert_allclose(got[0], [7.5, 2.5, 4.5, 10.5, 12.5])  # all, then the 2x2 squares row by row


def test_ridge_recovers_a_linear_map_and_falls_back_to_the_mean_on_noise():
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
    w = rng.normal(size=(8, 3))
    groups = np.repeat(np.arange(30), 10)
    pred = probe.fit_predict(x, x @ w + 5 + 0.01 * rng.normal(size=(300, 3)), groups, x_test)
    assert ((pred - (x_test @ w + 5)) ** 2).mean() < 1e-3 * (w**2).sum(0).mean()
    y = rng.normal(size=(300, 3))  # nothing to learn: the probe should predict about the mean
    pred = probe.fit_predict(rng.normal(size=(300, 50)), y, groups, rng.normal(size=(100, 50)))
    assert ((pred - y.mean(0)) ** 2).mean() < 0.05


def test_pixels_average_the_frame_down_to_a_grid():
    class Eps:  # a 96² frame, dark but for one 4x4 block at row 8, column 20 of the 24² grid
        def frames(self, i):
            f = np.zeros((3, 96, 96, 3), np.uint8)
            f[1, 32:36, 80:84] = 200
            return f

    row = probe.pixels(Eps(), [(0, 1), (0, 0)], side=24)
    assert row.shape == (2, 24 * 24 * 3)
    grid = row[0].reshape(24, 24, 3)
    assert np.argwhere(grid[..., 0] > 0).tolist() == [[8, 20]] and grid[8, 20, 0] == 200
    assert row[1].max() == 0  # the other time's frame


def test_position_errors_are_per_task_over_that_tasks_variance():
    truth = np.array([[0.0, 1.0], [2.0, 1.0], [10.0, 0.0], [30.0, 0.0], [5.0, 5.0]])
    pred = truth + np.array([[1.0, 0.0], [-1.0, 0.0], [20.0, 5.0], [-20.0, 5.0], [3.0, 3.0]])
    tasks = np.array(["a", "a", "b", "b", "d"])
    var = {"a": np.array([1.0, 0.0]), "b": np.array([100.0, 25.0]), "c": np.array([1.0, 1.0]), "d": np.zeros(2)}
    got = probe.position_errors(pred, truth, tasks, var)
    # a: error 1 on x over variance 1 (y never varies: left out); b: (400 / 100 + 25 / 25) / 2; c: no test sample;
    # d: its target never varies in training, so there is nothing to find: left out
    assert got == {"nmse": 1.75, "a": 1.0, "b": 2.5}
    assert probe.position_errors(truth, truth, tasks, var)["nmse"] == 0.0
