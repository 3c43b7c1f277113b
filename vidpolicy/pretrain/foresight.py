"""How good an imagined future is: token accuracy and PSNR against the true future, beside the baseline every
imagined future has to beat — copying the last history clip, i.e. predicting that nothing moves."""

from __future__ import annotations

import numpy as np
import torch

from vidpolicy.common.media import psnr


def copy_last_clip(history: torch.Tensor, tokens_per_clip: int) -> torch.Tensor:
    """The future "nothing moves" predicts: the last clip of ``history (b, n)`` tokens, ``(b, tokens_per_clip)``."""
    if history.shape[1] < tokens_per_clip:
        raise ValueError(f"history of {history.shape[1]} tokens is shorter than one clip ({tokens_per_clip})")
    return history[:, -tokens_per_clip:]


def future_scores(tokens: torch.Tensor, truth_tokens: torch.Tensor, frames: np.ndarray | None = None,
                  truth_frames: np.ndarray | None = None) -> dict:
    """Token accuracy of ``tokens (b, n)`` against ``truth_tokens``; with frames (uint8, same shape), their PSNR."""
    if tokens.shape != truth_tokens.shape:
        raise ValueError(f"predicted tokens {tuple(tokens.shape)} vs true {tuple(truth_tokens.shape)}")
    scores = {"token_accuracy": float((tokens == truth_tokens).float().mean())}
    if frames is not None and truth_frames is not None:
        scores["psnr"] = psnr(frames, truth_frames)
    return scores
