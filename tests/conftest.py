"""Shared fixtures: tiny synthetic videos and a tiny trained tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import moving_square  # noqa: E402


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    from vidpolicy.common.media import write_mp4

    d = tmp_path_factory.mktemp("videos")
    for k in range(3):
        write_mp4(d / f"clip_{k}.mp4", moving_square(12 + 4 * k, seed=k), fps=10)
    (d / "sub").mkdir()
    write_mp4(d / "sub" / "nested clip é.mp4", moving_square(16, 36, 52, seed=9), fps=10)
    return d


@pytest.fixture(scope="session")
def tiny_tokenizer(video_dir, tmp_path_factory) -> Path:
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.train import train_tokenizer

    out = tmp_path_factory.mktemp("tok") / "run"
    train_tokenizer(TokenizerTrainConfig(videos=str(video_dir), out=str(out), size=32, codebook_size=64,
                                         embedding_dim=32, hidden_channels=32, res_layers=1, max_steps=12,
                                         batch_size=4, save_every=6, eval_every=4, num_workers=0,
                                         mixed_precision="no", adam_beta2=0.95))
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with VIDPOLICY_SLOW=1 (they exceed the CI budget)."""
    if os.environ.get("VIDPOLICY_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set VIDPOLICY_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
