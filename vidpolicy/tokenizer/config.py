"""Resolved configurations of ``vidpolicy tokenizer train`` and ``vidpolicy tokenize`` (saved as config.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vidpolicy.common.cli_args import opt


@dataclass
class TokenizerTrainConfig:
    videos: str = opt("", "a folder of videos (searched recursively) or a .txt list of paths")
    out: str = opt("", "run directory: model/, checkpoints/, logs/, loss.png, eval.json")
    frames: int = opt(4, "frames per clip")
    size: int = opt(96, "clip side in pixels (shorter side resized, centre square)")
    fps: float | None = opt(None, "sample videos at this frame rate (default: every frame)")
    clip_stride: int | None = opt(None, "sampled frames between clip starts (default: --frames)")
    codebook_size: int = opt(2048, "number of codes (paper: 2048)")
    embedding_dim: int = opt(32, "code dimension (paper: 256)", advanced=True)
    encoder: str = opt("patch", "patch (patches folded into channels) or videogpt (paper)", advanced=True)
    hidden_channels: int = opt(128, "width of the 3D convolutions")
    res_layers: int = opt(2, "residual blocks in the decoder", advanced=True)
    encoder_res_layers: int = opt(0, "residual blocks in the encoder", advanced=True)
    up_channels: int = opt(64, "width of the decoder's transposed convolutions", advanced=True)
    attn_heads: int = opt(2, "axial attention heads per decoder block (0: none)", advanced=True)
    downsample: tuple[int, int, int] = opt((4, 4, 4), "down-sampling factors over T H W (powers of two)", advanced=True)
    ema_decay: float = opt(0.99, "EMA decay of the codebook", advanced=True)
    codebook_restart: str = opt("error", "where unused codes restart: random or error (far outputs)", advanced=True)
    commitment_weight: float = opt(0.25, "weight of the commitment loss", advanced=True)
    augment: bool = opt(True, "random flips (--flips) and clip-start jitter", advanced=True)
    flips: str = opt("htvd", "random flips: h left-right, t time, v vertical, d transpose", advanced=True)
    crops: int = opt(5, "training squares per frame along its longer side", advanced=True)
    small_crops: float = opt(0.65, "share of the first steps on --small-crop-size squares", advanced=True)
    small_crop_size: int = opt(48, "side of the --small-crops squares in pixels", advanced=True)
    max_steps: int = opt(2000, "optimizer steps in total (raise it and rerun to go on)")
    batch_size: int = opt(4, "clips per process per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step", advanced=True)
    lr: float = opt(6e-4, "Adam learning rate")
    adam_beta2: float = opt(0.99, "Adam's second-moment decay", advanced=True)
    lr_decay: bool = opt(True, "cosine decay to 0 at --max-steps after 100 warm-up steps", advanced=True)
    max_grad_norm: float = opt(1.0, "gradient clipping norm", advanced=True)
    mixed_precision: str = opt("bf16", "bf16 or no")
    compile: bool = opt(False, "torch.compile the tokenizer (CUDA)", advanced=True)
    nan_policy: str = opt("stop", "on a NaN/Inf loss: stop (keep the last checkpoint) or skip", advanced=True)
    save_every: int = opt(250, "checkpoint every N steps")
    log_every: int = opt(10, "log scalars every N steps", advanced=True)
    eval_every: int = opt(1000, "log held-out PSNR/SSIM every N steps (0: only at the end)")
    num_workers: int = opt(-1, "decode workers per process (-1: from the cores; one on a CPU)")
    cache_gb: float = opt(2.0, "decoded-video cache per worker, GiB", advanced=True)
    holdout_fraction: float = opt(0.1, "share of files held out for the PSNR/SSIM evaluation")
    seed: int = opt(0, "random seed")

    # --preset: sizes of the tokenizer; --config and explicit flags override them
    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": dict(codebook_size=256, embedding_dim=16, hidden_channels=32, res_layers=1, up_channels=16,
                     attn_heads=0),  # tests
        "small": {},  # the defaults above: trains on CPUs
        "base": dict(encoder="videogpt", embedding_dim=256, hidden_channels=256, res_layers=4, encoder_res_layers=4,
                     up_channels=256),  # the paper's VideoGPT-style encoder and 2048 x 256 codebook
        "large": dict(encoder="videogpt", embedding_dim=256, hidden_channels=384, res_layers=6, encoder_res_layers=6,
                      up_channels=384, attn_heads=4),
    }


@dataclass
class TokenizeConfig:
    tokenizer: str = opt("", "a `tokenizer train` run directory (or its model/)")
    out: str = opt("", "token directory: shards/, index.json, manifest.csv")
    videos: str | None = opt(None, "directory of videos or a .txt list (or --dataset)")
    dataset: str | None = opt(None, "a LeRobotDataset root: its camera, episode by episode")
    camera: str | None = opt(None, "LeRobot camera key (default: the first)")
    manifest: str | None = opt(None, "CSV of file and caption columns (default: VIDEOS/manifest.csv when present)")
    fps: float | None = opt(None, "sample videos at this frame rate (default: every frame)")
    clip_stride: int | None = opt(None, "sampled frames between clip starts (default: clip length)")
    every_step: bool = opt(False, "one clip per frame, the first repeated (as finetune reads)", advanced=True)
    files_per_shard: int = opt(16, "input files (or episodes) per shard, the unit of resume")
    batch_size: int = opt(32, "clips per encoder batch")
    num_workers: int = opt(2, "decode workers")
    verify: bool = opt(False, "re-check finished shards first; re-tokenize damaged ones")
    precision: str = opt("bf16", "encoder precision: bf16 or fp32 (the code search is fp32)")
    tokenizer_sha: str = opt("", "fingerprint of the tokenizer weights (filled in automatically)", cli=False)
