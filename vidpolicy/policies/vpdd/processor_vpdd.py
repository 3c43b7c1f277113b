"""`VPDDProcessor`: between the robot and the models, as LeRobot's ``processor_<name>.py``: live frames of any size
to the policy's square clip size and through the demonstrations' pixel format, robot states normalised, action bins
(or normalised values) back to the robot's units.

Saved beside the policy as ``binning.json`` (bin edges and centres, action mean / std) and ``state_norm.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.media import yuv420_round_trip
from vidpolicy.datasets.video import square_frame
from vidpolicy.finetune.binning import ActionBinner
from vidpolicy.finetune.state import StateNorm

BINNING = "binning.json"
STATE_NORM = "state_norm.json"


def halves_chroma(pix_fmt: str | None) -> bool:
    """Whether a recording's pixel format keeps chroma at half resolution (yuv420p, yuvj420p): then live frames
    pass through the same round trip (`VPDDProcessor.frame`)."""
    return str(pix_fmt or "").startswith(("yuv420", "yuvj420"))


class VPDDProcessor:
    def __init__(self, binner: ActionBinner, state_norm: StateNorm | None, image_size: int, yuv420: bool):
        self.binner, self.state_norm, self.image_size, self.yuv420 = binner, state_norm, image_size, yuv420

    def frame(self, image: np.ndarray) -> np.ndarray:
        """A live camera frame uint8 ``(h, w, 3)`` of any size -> ``(S, S, 3)`` as the tokenizer saw the
        demonstrations' frames: shorter side resized to S, centre square, the recording's pixel format."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise VidpolicyError(f"observation image has shape {image.shape}; the policy reads (height, width, 3) RGB")
        image = square_frame(image, self.image_size)
        # yuv420p keeps chroma at half resolution: raw renders tokenize differently from the recorded demos
        return yuv420_round_trip(image) if self.yuv420 else image

    def state(self, states, source: str = "observation") -> torch.Tensor | None:
        """Raw robot states ``(b, state_dim)`` -> the action model's normalised input (None: the policy reads none)."""
        if self.state_norm is None:
            return None
        if states is None:
            raise VidpolicyError(f"{source}: the policy reads the robot state but the observation has no 'state'")
        states = np.asarray(states, dtype=np.float32)
        return torch.from_numpy(self.state_norm(states[None] if states.ndim == 1 else states, source))

    def actions_from_bins(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices ``(b, H, D)`` -> actions in the robot's units."""
        return self.binner.decode(bins)

    def actions_from_probs(self, probs: np.ndarray) -> np.ndarray:
        """Bin probabilities ``(b, H, D, K)`` -> expected actions in the robot's units."""
        return self.binner.expected(probs)

    def actions_from_normalized(self, z: np.ndarray) -> np.ndarray:
        """Normalised actions ``(b, H, D)`` (the regression head) -> actions in the robot's units."""
        return self.binner.denormalize(z)

    def save(self, directory: str | Path) -> None:
        self.binner.save(Path(directory) / BINNING)
        if self.state_norm is not None:
            self.state_norm.save(Path(directory) / STATE_NORM)

    @classmethod
    def load(cls, directory: str | Path, image_size: int, yuv420: bool) -> "VPDDProcessor":
        directory = Path(directory)
        norm = StateNorm.load(directory / STATE_NORM) if (directory / STATE_NORM).exists() else None
        return cls(ActionBinner.load(directory / BINNING), norm, image_size, yuv420)
