"""Scoring an imagined future against the truth, beside copying the last history clip (pretrain/foresight.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpolicy.pretrain.foresight import copy_last_clip, future_scores


def test_copying_the_history_scores_what_stood_still():
    # a toy clip of 8 tokens: a scene where 6 of 8 latent cells stay, the last 2 change
    history = torch.tensor([[9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8]])  # the last 8 tokens are the last clip
    truth = torch.tensor([[1, 2, 3, 4, 5, 6, 0, 0]])
    copy = copy_last_clip(history, 8)
    assert copy.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert future_scores(copy, truth)["token_accuracy"] == pytest.approx(6 / 8)
    assert future_scores(truth, truth)["token_accuracy"] == 1.0
    with pytest.raises(ValueError, match="shorter than one clip"):
        copy_last_clip(history, 13)


def test_frames_add_a_psnr_that_ranks_closer_futures_higher():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    near = np.clip(truth.astype(int) + 4, 0, 255).astype(np.uint8)
    far = np.clip(truth.astype(int) + 40, 0, 255).astype(np.uint8)
    t = torch.zeros(1, 8, dtype=torch.long)
    s_near, s_far = future_scores(t, t, near, truth), future_scores(t, t, far, truth)
    assert 30 < s_near["psnr"] < 37 and s_far["psnr"] < s_near["psnr"] - 15
    assert future_scores(t, t, truth, truth)["psnr"] == float("inf")
    with pytest.raises(ValueError, match="predicted tokens"):
        future_scores(t, torch.zeros(1, 4, dtype=torch.long))
