"""``vidpolicy tokenizer reconstruct``: one video through the tokenizer, original | reconstruction side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.media import psnr, side_by_side, ssim, write_mp4
from vidpolicy.common.pretrained import load_model
from vidpolicy.datasets.clips import ClipSpec, clip_starts, to_uint8, to_unit_range
from vidpolicy.datasets.video import VideoError, VideoSource, resample_indices
from vidpolicy.tokenizer.model import VideoTokenizer


@torch.no_grad()
def reconstruct(tokenizer: str, video: str, out: str, fps: float | None = None, max_clips: int = 64) -> dict:
    model = load_model(VideoTokenizer, tokenizer)
    spec = ClipSpec(model.config.frames, model.config.size, fps)
    try:
        src = VideoSource(video, spec.size)
    except VideoError as e:
        raise VidpolicyError(f"{video}: {e}") from None
    idx = resample_indices(src.info.num_frames, src.info.fps, fps)
    starts = clip_starts(len(idx), spec)[:max_clips]
    if not starts:
        raise VidpolicyError(f"{video}: {len(idx)} frame(s); a clip needs {spec.frames}")
    frames = src.read(idx[: starts[-1] + spec.frames])
    clips = torch.stack([to_unit_range(frames[s : s + spec.frames]) for s in starts])
    recon = torch.cat([model.decode(model.encode(clips[b : b + 16])) for b in range(0, len(clips), 16)])
    original = np.concatenate([to_uint8(c) for c in clips])
    rebuilt = np.concatenate([to_uint8(c) for c in recon])
    write_mp4(out, side_by_side(original, rebuilt), fps=min(30.0, fps or src.info.fps))
    result = {"psnr": psnr(original, rebuilt), "ssim": ssim(original, rebuilt), "clips": len(starts), "out": str(out)}
    print(f"PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  ({len(starts)} clips) -> {Path(out)}")
    return result
