"""``vidpolicy tokenizer train``: fit the VQ-VAE on a video corpus with the shared training loop."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.device import decode_workers
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json
from vidpolicy.common.media import psnr, ssim
from vidpolicy.common.model_size import size_line
from vidpolicy.common.plots import plot_losses
from vidpolicy.common.pretrained import save_model
from vidpolicy.common.runlock import releases_run_locks
from vidpolicy.common.sampling import StepBatchSampler, step_generator
from vidpolicy.common.trainer import LoopSettings, Trainer, make_accelerator, warmup_cosine
from vidpolicy.common.workers import worker_init
from vidpolicy.datasets.augment import check_flips, random_flips, random_square
from vidpolicy.datasets.clips import ClipSpec, ShiftedClips, VideoClipDataset, to_uint8
from vidpolicy.datasets.manifest import summarize, write_manifest
from vidpolicy.datasets.video import find_videos
from vidpolicy.tokenizer.config import TokenizerTrainConfig
from vidpolicy.tokenizer.model import VideoTokenizer
from vidpolicy.tokenizer.quantizer import RESTARTS


def build_tokenizer(cfg: TokenizerTrainConfig) -> VideoTokenizer:
    return VideoTokenizer(
        frames=cfg.frames, size=cfg.size, hidden_channels=cfg.hidden_channels, res_layers=cfg.res_layers,
        encoder_res_layers=cfg.encoder_res_layers,
        attn_heads=cfg.attn_heads, embedding_dim=cfg.embedding_dim, codebook_size=cfg.codebook_size,
        downsample=tuple(cfg.downsample), ema_decay=cfg.ema_decay, commitment_weight=cfg.commitment_weight,
        encoder_type=cfg.encoder, up_channels=cfg.up_channels, codebook_restart=cfg.codebook_restart,
    )


def split_holdout(ds: VideoClipDataset, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Held-out clips for evaluation: whole files when there are enough of them, else every k-th clip."""
    n = len(ds)
    if fraction <= 0 or n < 2:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    k = max(2, round(1 / fraction))
    if len(ds.files) >= 2 * k:
        held_files = {i for i, f in enumerate(ds.files) if zlib.crc32(f.name.encode()) % k == 0}
        held = np.isin(ds.items[:, 0], list(held_files))
    else:
        held = np.arange(n) % k == k - 1
    if held.all() or not held.any():
        held = np.arange(n) % k == k - 1
    return np.flatnonzero(~held), np.flatnonzero(held)


@torch.no_grad()
def evaluate(model: VideoTokenizer, ds, indices: np.ndarray, max_clips: int = 128) -> dict:
    """Mean PSNR/SSIM over up to ``max_clips`` clips spread evenly over ``indices`` (not the first ones: those can
    all come from one long file)."""
    model.eval()
    scores_p, scores_s = [], []
    if len(indices) > max_clips:
        indices = indices[np.linspace(0, len(indices) - 1, max_clips).round().astype(int)]
    for i in indices:
        clip = ds[int(i)][None].to(model.device)  # the dataset's clips are on the CPU
        recon = model.decode(model.encode(clip))
        a, b = to_uint8(clip[0]), to_uint8(recon[0])
        scores_p.append(psnr(a, b))
        scores_s.append(ssim(a, b))
    model.train()
    return {"clips": len(scores_p), "psnr": float(np.mean(scores_p)) if scores_p else None,
            "ssim": float(np.mean(scores_s)) if scores_s else None}


def small_crop_steps(cfg: TokenizerTrainConfig) -> int:
    """How many of the first steps train on ``--small-crop-size`` squares (a VidpolicyError on a bad setting)."""
    if not 0 <= cfg.small_crops <= 1:
        raise VidpolicyError(f"--small-crops must be a fraction in [0, 1], got {cfg.small_crops}")
    side, (_, dh, dw) = cfg.small_crop_size, cfg.downsample
    if side <= 0 or side % dh or side % dw:
        raise VidpolicyError(f"--small-crop-size must be a positive multiple of the spatial down-sampling "
                             f"({dh}x{dw}), got {side}")
    return int(cfg.small_crops * cfg.max_steps) if side < cfg.size else 0


@releases_run_locks
def train_tokenizer(cfg: TokenizerTrainConfig, overwrite: bool = False) -> dict:
    out = Path(cfg.out)
    try:
        check_flips(cfg.flips)
    except ValueError as e:
        raise VidpolicyError(f"--flips: {e}") from None
    if cfg.codebook_restart not in RESTARTS:
        raise VidpolicyError(f"--codebook-restart must be one of {', '.join(RESTARTS)}, got {cfg.codebook_restart!r}")
    small_steps = small_crop_steps(cfg)
    files = find_videos(cfg.videos)
    spec = ClipSpec(cfg.frames, cfg.size, cfg.fps, cfg.clip_stride)
    ds = VideoClipDataset(files, spec, cache_bytes=int(cfg.cache_gb * (1 << 30)), whole_frames=cfg.crops > 1)
    if len(ds) == 0:
        raise VidpolicyError(f"{cfg.videos}: no readable video with at least {cfg.frames} frames "
                             f"({summarize(ds.rows)})")
    acc = make_accelerator(cfg.mixed_precision, cfg.grad_accum)
    if acc.is_main_process:
        prepare_run_dir(out, cfg, overwrite=overwrite, processes=acc.num_processes)
        write_manifest(out / "manifest.csv", ds.rows)
    acc.wait_for_everyone()
    acc.print(summarize(ds.rows))
    train_idx, held_idx = split_holdout(ds, cfg.holdout_fraction)
    torch.manual_seed(cfg.seed)
    model = build_tokenizer(cfg)
    acc.print(size_line("tokenizer", [model], model.flops_per_sample(),
                        cfg.batch_size * cfg.grad_accum * acc.num_processes))
    if cfg.compile:  # in place: the module and its state_dict keys stay as they are
        model.compile()
    # the fused kernel: one pass over all parameters, several times cheaper than the per-tensor default on a CPU
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, cfg.adam_beta2), fused=True)
    settings = LoopSettings.from_config(cfg)
    trainer = Trainer(out, settings, acc)
    trainer.prepare(model, optimizer, warmup_cosine(optimizer, min(100, cfg.max_steps // 10), cfg.max_steps)
                    if cfg.lr_decay else None)
    start = trainer.resume()
    train_set = ShiftedClips(ds, train_idx.tolist(), spec.step if cfg.augment else 1, cfg.crops if cfg.augment else 1)
    sampler = StepBatchSampler(len(train_set), cfg.batch_size, cfg.seed, start, cfg.grad_accum,
                               rank=acc.process_index, world=acc.num_processes)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=decode_workers(cfg.num_workers),
                        pin_memory=torch.cuda.is_available(), worker_init_fn=worker_init)

    def compute(batch: torch.Tensor):
        # flips and squares are drawn from (seed, step, rank): a resumed run sees the same batches
        g = step_generator(cfg.seed, trainer.step, 0, acc.process_index)
        if cfg.augment:
            batch = random_flips(batch, cfg.flips, g)
        if trainer.step < small_steps:
            batch = random_square(batch, cfg.small_crop_size, g)
        res = trainer.model(batch.to(acc.device))
        logs = {k: float(res[k].detach()) for k in ("loss", "recon_loss", "commitment", "perplexity", "codebook_usage")}
        with torch.no_grad():
            mse = torch.mean((res["recon"].float().clamp(-0.5, 0.5) - batch.to(acc.device)) ** 2)
            logs["psnr"] = float(10 * torch.log10(1.0 / mse.clamp(min=1e-10)))
        return res["loss"], logs

    def heldout_curve(step: int) -> None:  # the last step gets the full evaluation below
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps and acc.is_main_process:
            r = evaluate(acc.unwrap_model(trainer.model), ds, held_idx, max_clips=32)
            if r["clips"]:
                trainer.note({"heldout_psnr": r["psnr"], "heldout_ssim": r["ssim"]})

    trainer.fit(loader, compute, after_step=heldout_curve)
    result = {}
    if acc.is_main_process:
        model = acc.unwrap_model(trainer.model)
        save_model(model, out / "model")
        result = {"train_clips": int(len(train_idx)), "heldout": evaluate(model, ds, held_idx), "steps": trainer.step}
        write_json(out / "eval.json", result)
        plot_losses(out, ("loss", "recon_loss", "commitment", "psnr", "codebook_usage"))
        acc.print(f"held-out PSNR {result['heldout']['psnr']} dB, SSIM {result['heldout']['ssim']} "
                  f"over {result['heldout']['clips']} clips; model in {out / 'model'}")
    acc.wait_for_everyone()
    acc.end_training()
    return result
