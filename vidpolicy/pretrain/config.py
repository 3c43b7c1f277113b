"""The resolved configuration of one ``vidpolicy pretrain`` run (saved as config.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

from vidpolicy.common.cli_args import opt
from vidpolicy.common.config import load_config
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.text import DEFAULT_TEXT_ENCODER
from vidpolicy.common.versions import check


@dataclass
class PretrainConfig:
    tokens: list[str] = opt([], "token directories from `vidpolicy tokenize` (several mix)")
    tokenizer: str = opt("", "the tokenizer run directory the tokens were made with")
    out: str = opt("", "run directory: model/, scheduler/, tokenizer/, checkpoints/")
    token_weights: list[float] | None = opt(None, "sampling weight per token directory (default: equal)")
    gap: int = opt(20, "the future clip starts this many frames after the history clip")
    # network
    width: int = opt(256, "transformer width")
    depth: int = opt(6, "denoiser blocks")
    encoder_depth: int = opt(2, "history encoder blocks (run once per sample)")
    heads: int = opt(2, "attention heads (paper: 1)", advanced=True)
    mlp_ratio: float = opt(4.0, "MLP width / transformer width", advanced=True)
    text_encoder: str = opt(DEFAULT_TEXT_ENCODER, "frozen sentence encoder (name or local path)")
    # diffusion
    num_timesteps: int = opt(100, "diffusion steps T (paper: 100)")
    schedule: str = opt("paper", "paper (pure masking) or replace (uniform-replace mass)", advanced=True)
    replace_mass: float = opt(0.1, "final uniform-replace mass with --schedule replace", advanced=True)
    aux_weight: float = opt(5e-4, "weight of the auxiliary x_0 cross-entropy, times (2 - t/T)", advanced=True)
    importance_sampling: bool = opt(True, "sample t by the running loss (VQ-Diffusion)", advanced=True)
    cond_drop: float = opt(0.1, "instruction dropout for classifier-free guidance", advanced=True)
    # optimisation
    max_steps: int = opt(20000, "optimizer steps in total")
    batch_size: int = opt(8, "samples per process per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step (paper: 2)")
    lr: float = opt(2e-4, "AdamW learning rate (paper: 2e-4)")
    weight_decay: float = opt(0.0, "AdamW weight decay", advanced=True)
    warmup_steps: int = opt(500, "linear warm-up steps, then cosine decay", advanced=True)
    max_grad_norm: float = opt(1.0, "gradient clipping norm", advanced=True)
    ema_decay: float = opt(0.995, "EMA decay of the saved weights (paper: 0.995)", advanced=True)
    ema_every: int = opt(10, "update the EMA every N steps", advanced=True)
    ema_start: int = opt(2000, "first step of EMA updates (the raw weights before it)", advanced=True)
    mixed_precision: str = opt("bf16", "bf16 or no")
    nan_policy: str = opt("stop", "on a NaN/Inf loss: stop (keep the last checkpoint) or skip", advanced=True)
    save_every: int = opt(500, "checkpoint every N steps")
    log_every: int = opt(10, "log scalars every N steps")
    seed: int = opt(0, "random seed")
    gradient_checkpointing: bool = opt(False, "recompute activations in backward: less memory", advanced=True)
    compile: bool = opt(False, "torch.compile the denoiser (CUDA)", advanced=True)

    # --preset: sizes of the denoiser; --config and explicit flags override them
    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": dict(width=64, depth=1, encoder_depth=1, heads=2),  # tests
        "small": {},  # the defaults above: about the paper's parameter count, trains on CPUs
        "base": dict(width=512, depth=8, encoder_depth=2, heads=8),
        "large": dict(width=1024, depth=16, encoder_depth=4, heads=16, gradient_checkpointing=True),
    }


def load_run_config(run: str | Path) -> PretrainConfig:
    """A pretrain run's settings, typed: what its model was trained with (text encoder, gap, ...)."""
    path = Path(run) / "config.json"
    if not path.exists():
        raise VidpolicyError(f"{run}: not a pretrain run directory (no config.json)")
    check(json.loads(path.read_text()), "run", run, "pre-train it again with this version")
    return load_config(PretrainConfig, path)
