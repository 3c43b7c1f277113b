"""`ActionBinner`: per-dimension quantile bins (paper: 48 for xyz); a dimension with few distinct values (a gripper)
is binned over its observed values instead. A bin decodes to its midpoint, as in the paper, or to the mean of the
training actions in it (the least squared error; a saturated action, often +-1 in scripted demos, decodes nearer
itself). Saved as JSON beside the policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.io import write_json

RULES = ("midpoint", "mean")  # where a bin decodes (see the module's docstring)


class ActionBinner:
    def __init__(self, edges: list[list[float]], centers: list[list[float]], rule: str = "midpoint"):
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]  # inner edges, len = bins - 1
        self.centers = [np.asarray(c, dtype=np.float64) for c in centers]
        self.rule = rule  # how the centers were placed: mean or midpoint (a file without it: midpoint)

    @classmethod
    def fit(cls, actions: np.ndarray, bins: int = 48, discrete_max: int = 8,
            centers: str = "midpoint") -> "ActionBinner":
        if centers not in RULES:
            raise ValueError(f"centers {centers!r}: must be one of {', '.join(RULES)}")
        actions = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
        edges, points = [], []
        for d in range(actions.shape[1]):
            col = actions[:, d]
            uniq = np.unique(col)
            if len(uniq) <= min(discrete_max, bins):
                c = uniq
                e = (c[1:] + c[:-1]) / 2
            else:
                q = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)))
                e = q[1:-1]
                c = (q[1:] + q[:-1]) / 2
                if centers == "mean":  # an empty bin (possible between interpolated quantiles) keeps its midpoint
                    which = np.searchsorted(e, col, side="right")
                    counts = np.bincount(which, minlength=len(c))
                    sums = np.bincount(which, weights=col, minlength=len(c))
                    c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
            edges.append(e.tolist())
            points.append(c.tolist())
        b = cls(edges, points, centers)
        b.mean, b.std = actions.mean(0), actions.std(0) + 1e-6
        return b

    @property
    def dim(self) -> int:
        return len(self.centers)

    @property
    def bins_per_dim(self) -> list[int]:
        return [len(c) for c in self.centers]

    @property
    def num_classes(self) -> int:
        return max(self.bins_per_dim)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """``(..., D)`` float -> ``(..., D)`` int64 bin indices."""
        actions = np.asarray(actions, dtype=np.float64)
        out = np.empty(actions.shape, dtype=np.int64)
        for d in range(self.dim):
            out[..., d] = np.searchsorted(self.edges[d], actions[..., d], side="right")
        return out

    def decode(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty(indices.shape, dtype=np.float32)
        for d in range(self.dim):
            out[..., d] = self.centers[d][np.clip(indices[..., d], 0, len(self.centers[d]) - 1)]
        return out

    def expected(self, probs: np.ndarray) -> np.ndarray:
        """``(..., D, K)`` class probabilities -> ``(..., D)`` expected bin centres (each dimension's own bins)."""
        out = np.empty(probs.shape[:-1], dtype=np.float32)
        for d in range(self.dim):
            p = np.asarray(probs[..., d, : len(self.centers[d])], dtype=np.float64)
            out[..., d] = (p @ self.centers[d]) / np.maximum(p.sum(-1), 1e-12)
        return out

    def save(self, path: str | Path) -> None:
        write_json(path, {"edges": [e.tolist() for e in self.edges], "centers": [c.tolist() for c in self.centers],
                          "rule": self.rule, "mean": self.mean.tolist(), "std": self.std.tolist()})

    @classmethod
    def load(cls, path: str | Path) -> "ActionBinner":
        data = json.loads(Path(path).read_text())
        b = cls(data["edges"], data["centers"], data.get("rule", "midpoint"))
        if "mean" in data:
            b.mean, b.std = np.asarray(data["mean"]), np.asarray(data["std"])
        return b

    # continuous head: per-dimension standardisation (fitted with the bins)
    mean: np.ndarray = np.zeros(0)
    std: np.ndarray = np.ones(0)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        return ((np.asarray(actions) - self.mean) / self.std).astype(np.float32)

    def targets(self, chunk: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b, H, D)`` action chunk -> the action model's two targets, each ``(b, H * D)``: bin indices (int64)
        and standardised values (float32)."""
        b = len(chunk)
        return (torch.from_numpy(self.encode(chunk).reshape(b, -1)),
                torch.from_numpy(self.normalize(chunk).reshape(b, -1)))

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        lo = np.array([c[0] for c in self.centers])
        hi = np.array([c[-1] for c in self.centers])
        return np.clip(np.asarray(z) * self.std + self.mean, lo, hi).astype(np.float32)
