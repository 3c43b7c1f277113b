"""Shared fixtures: tiny synthetic videos, a tiny trained tokenizer, a tiny fine-tuned policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import moving_square, run_cli  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    """Two test files at a time when pytest-xdist is installed (each file's tests in one process, so its fixtures
    are built once); without it, or with -n given, or inside a worker, pytest runs as asked."""
    if (config.pluginmanager.hasplugin("xdist") and config.option.numprocesses is None
            and not config.option.usepdb and not hasattr(config, "workerinput")):
        config.option.numprocesses, config.option.dist = 2, "loadfile"
    return (yield)


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


@pytest.fixture(scope="session")
def policy(tmp_path_factory):
    """collect -> tokenizer -> tokenize -> pretrain -> finetune, all tiny, through the CLI."""
    d = tmp_path_factory.mktemp("ft")
    steps = [
        ["collect", "--tasks", "reach", "--episodes", "2", "--out", str(d / "demos"), "--size", "32"],
        ["tokenizer", "train", "--videos", str(d / "demos" / "videos"), "--out", str(d / "tok"), "--size", "32",
         "--codebook-size", "32", "--embedding-dim", "16", "--hidden-channels", "32", "--res-layers", "1",
         "--max-steps", "10", "--batch-size", "4", "--num-workers", "0"],
        ["tokenize", "--tokenizer", str(d / "tok"), "--dataset", str(d / "demos"), "--out", str(d / "tokens"),
         "--num-workers", "0"],
        ["pretrain", "--tokens", str(d / "tokens"), "--tokenizer", str(d / "tok"), "--out", str(d / "pre"),
         "--width", "32", "--depth", "1", "--encoder-depth", "1", "--heads", "2", "--max-steps", "5",
         "--batch-size", "2"],
        ["finetune", "--pretrained", str(d / "pre"), "--dataset", str(d / "demos"), "--out", str(d / "policy"),
         "--width", "32", "--depth", "1", "--max-steps", "60", "--batch-size", "16", "--log-every", "5",
         "--lr", "3e-3", "--warmup-steps", "5", "--sampling-steps", "4", "--holdout-episodes", "1"],
    ]
    for cmd in steps:
        r = run_cli(*cmd)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
    return d / "policy"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with VIDPOLICY_SLOW=1 (they exceed the CI budget)."""
    if os.environ.get("VIDPOLICY_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set VIDPOLICY_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
