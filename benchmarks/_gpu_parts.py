"""Helpers of benchmarks/gpu.py: device-synchronised timing, the largest-batch sweep, a policy built from fresh
models (no training, no downloads), its fine-tuning loss, and synthetic videos for the tokenize section."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidpolicy.common.text import TEXT_DIM


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, iters: int = 5, warmup: int = 1) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` calls, the device synchronised around the timed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t) / iters


def optimizer_step(device: torch.device, opt: torch.optim.Optimizer,
                   loss_of: Callable[[int], torch.Tensor]) -> Callable[[int], None]:
    """One bf16 training step at batch ``b``: ``loss_of(b)``, backward, optimizer step."""
    def step(b: int) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_of(b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def batch_sweep(step: Callable[[int], None], device: torch.device, first: int, last: int, seconds: float) -> dict:
    """Time ``step(batch)`` at batch ``first``, doubling up to ``last`` until memory runs out or the next size would
    not finish within ``seconds``; the largest batch that ran, its step time and peak memory, and the sweep."""
    deadline, b, best, sweep = time.time() + seconds, first, {}, []
    while b <= last:
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step_s = timed(lambda: step(b), device, iters=3, warmup=2)
        except torch.OutOfMemoryError:
            best["out_of_memory_at"] = b
            break
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        best.update(batch=b, step_s=round(step_s, 4), peak_memory_gib=peak and round(peak, 2))
        sweep.append([b, round(step_s, 4)])
        if time.time() + 2 * step_s * 5 > deadline:  # the next size: ~2x the time, 5 calls
            break
        b *= 2
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {**best, "sweep": sweep}


def fresh_policy(device: torch.device, smoke: bool):
    """A VPDD policy of the default (small) sizes, tiny for ``smoke``, with untrained weights: its speed is its
    architecture's."""
    from vidpolicy.common.config import preset_values
    from vidpolicy.finetune.binning import ActionBinner
    from vidpolicy.finetune.model import ActionDenoiser
    from vidpolicy.policies.vpdd import VPDDPolicy
    from vidpolicy.policies.vpdd.configuration_vpdd import VPDDConfig
    from vidpolicy.policies.vpdd.processor_vpdd import VPDDProcessor
    from vidpolicy.pretrain.config import PretrainConfig
    from vidpolicy.pretrain.model import FutureDenoiser
    from vidpolicy.pretrain.schedule import MaskReplaceScheduler
    from vidpolicy.tokenizer.model import VideoTokenizer

    size = preset_values(PretrainConfig, "tiny" if smoke else "small")
    video = FutureDenoiser(**size)
    action = ActionDenoiser(state_dim=4, video_width=video.config.width, width=64 if smoke else 256,
                            depth=1 if smoke else 6)
    binner = ActionBinner.fit(np.random.default_rng(0).uniform(-1, 1, (256, 4)))
    config = VPDDConfig(action_dim=4, state_dim=4)
    return VPDDPolicy(config, VideoTokenizer(), video, action, MaskReplaceScheduler(100),
                      VPDDProcessor(binner, None, config.image_size, False)).to(device)


def finetune_loss(pol, device: torch.device) -> tuple[torch.nn.Module, Callable[[int], torch.Tensor]]:
    """The modules `vidpolicy finetune` trains (video model frozen) and ``loss_of(b)``: its loss at batch ``b`` on
    random clips' tokens, actions and states."""
    from vidpolicy.finetune.objective import JointDenoiser, LossWeights, joint_loss
    from vidpolicy.pretrain.timesteps import TimestepSampler

    joint = JointDenoiser(pol.video, pol.action, train_video=False)
    sampler = TimestepSampler(pol.scheduler.num_timesteps, importance=False).to(device)
    K, n, cfg = pol.video.config.codebook_size, pol.video.tokens_per_clip, pol.config
    binner = pol.processor.binner

    def loss_of(b: int) -> torch.Tensor:
        raw = np.random.default_rng(b).uniform(-1, 1, (b, cfg.horizon, cfg.action_dim))
        hist, fut = (torch.randint(0, K, (b, n), device=device) for _ in range(2))
        acts, cont = (t.to(device) for t in binner.targets(raw))
        parts = [hist, fut, acts, cont, torch.ones_like(acts, dtype=torch.bool),
                 torch.zeros(b, cfg.state_dim, device=device), torch.randn(b, TEXT_DIM, device=device)]
        return joint_loss(joint, pol.scheduler, sampler, parts, cfg.head == "regression", False, LossWeights())[0]

    return joint, loss_of


def synthetic_videos(root: Path, count: int, frames: int, size: int = 128) -> Path:
    """``count`` mp4 files (MPEG-4, written by OpenCV: no encoder package needed) of moving gradients."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(count):
        w = cv2.VideoWriter(str(root / f"v{k:03d}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size, size))
        for t in range(frames):
            img = np.stack([(xx + 3 * t + k) % 256, (yy + 2 * t) % 256, (xx + yy + k * 7) % 256], -1)
            w.write(img.astype(np.uint8))
        w.release()
    return root
