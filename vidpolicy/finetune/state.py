"""`StateNorm`: per-dimension mean/std of the robot state (``observation.state``) fitted on the training episodes;
the action model reads states normalised with it. Saved as ``state_norm.json`` beside the policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json


class StateNorm:
    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, states: np.ndarray) -> "StateNorm":
        states = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
        # constant dimensions (a zeroed slot of the observation) map to 0, not to +-inf
        return cls(states.mean(0), np.maximum(states.std(0), 1e-3))

    def __call__(self, states: np.ndarray, source: str = "observation") -> np.ndarray:
        states = np.asarray(states, dtype=np.float32)
        if states.shape[-1] != self.dim:
            raise VidpolicyError(f"{source}: state has {states.shape[-1]} dimension(s) but the policy was trained on "
                                 f"{self.dim}")
        return np.clip((states - self.mean) / self.std, -10, 10)

    def save(self, path: str | Path) -> None:
        write_json(path, {"mean": self.mean.tolist(), "std": self.std.tolist()})

    @classmethod
    def load(cls, path: str | Path) -> "StateNorm":
        data = json.loads(Path(path).read_text())
        return cls(data["mean"], data["std"])
