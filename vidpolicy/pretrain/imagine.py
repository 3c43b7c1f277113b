"""Imagine the future: history frames + instruction -> future tokens -> frames, with the pre-trained denoiser.

`Imaginer` is the Python API (``imagine(history_frames, instruction) -> {"tokens", "frames"}``);
``vidpolicy imagine`` wraps it for one video and writes history | imagined | truth as mp4 and a contact sheet.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.device import bf16, resolve
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.media import side_by_side, write_mp4
from vidpolicy.common.plots import contact_sheet
from vidpolicy.common.pretrained import load_model
from vidpolicy.common.text import TextEncoder
from vidpolicy.datasets.clips import to_unit_range
from vidpolicy.datasets.video import VideoError, VideoSource, resample_indices
from vidpolicy.pretrain.config import load_run_config
from vidpolicy.pretrain.foresight import copy_last_clip, future_scores
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.sample import guide, sample_tokens
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.tokenizer.model import VideoTokenizer


class Imaginer:
    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu"):  # or "auto"
        self.dir, self.device = Path(model_dir), resolve(device)
        self.cfg = load_run_config(self.dir)
        self.denoiser = load_model(FutureDenoiser, self.dir, "model").to(self.device)
        self.tokenizer = load_model(VideoTokenizer, self.dir, "tokenizer").to(self.device)
        self.schedule = MaskReplaceScheduler.load(self.dir, self.denoiser.config.num_timesteps)
        self.text = TextEncoder(self.cfg.text_encoder)
        self.frames = self.tokenizer.config.frames
        self.size = self.tokenizer.config.size
        self.gap = self.cfg.gap

    @torch.no_grad()
    def tokenize(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(T, S, S, 3)`` -> tokens ``(1, n)``."""
        return self.tokenizer.encode(to_unit_range(frames)[None].to(self.device)).flatten(1)

    @torch.no_grad()
    def imagine(self, history: np.ndarray | torch.Tensor, instruction: str, steps: int = 25,
                top_r: float | None = None, guidance: float = 1.0, seed: int = 0) -> dict:
        """``history``: uint8 frames ``(T, S, S, 3)`` or tokens ``(1, n)`` -> imagined tokens and frames."""
        hist = (history if isinstance(history, torch.Tensor) else self.tokenize(history)).to(self.device)
        m = self.denoiser
        with bf16(self.device):
            cond = m.context(hist, m.text_input(self.text([instruction]).to(self.device)))
            uncond = m.context(hist, m.text_input(None)) if guidance != 1.0 else None

            def predict(x, t):
                tt = torch.full((x["video"].shape[0],), t, dtype=torch.long, device=self.device)
                lp = m.denoise(x["video"], tt, cond)[0]
                if uncond is not None:
                    lp = guide(lp, m.denoise(x["video"], tt, uncond)[0], guidance)
                return {"video": lp}

            g = torch.Generator(self.device).manual_seed(seed)
            out = sample_tokens(predict, self.schedule, {"video": (m.tokens_per_clip, m.config.codebook_size)},
                                hist.shape[0], steps, top_r, g, device=self.device)
        return {"tokens": out["video"], "frames": self.decode(out["video"])}

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        """tokens ``(1, n)`` -> uint8 frames ``(T, S, S, 3)``."""
        return self.tokenizer.decode_frames(tokens[:1])[0]


def imagine_video(model: str, video: str, instruction: str, out: str, steps: int = 25, start: int = 0,
                  fps: float | None = None, top_r: float | None = None, guidance: float = 1.0, seed: int = 0,
                  device: str = "cpu") -> dict:
    im = Imaginer(model, device)
    try:
        src = VideoSource(video, im.size)
    except VideoError as e:
        raise VidpolicyError(f"{video}: {e}") from None
    idx = resample_indices(src.info.num_frames, src.info.fps, fps)
    if len(idx) < start + im.frames:
        raise VidpolicyError(f"{video}: {len(idx)} frame(s) from --start {start}; the history clip needs "
                             f"{start + im.frames} frames")
    history = src.read(idx[start : start + im.frames])
    t0 = time.time()
    res = im.imagine(history, instruction, steps=steps, top_r=top_r, guidance=guidance, seed=seed)
    latency = time.time() - t0
    panels = {"history": history, "imagined": res["frames"]}
    report = {"latency_s": latency, "steps": steps}
    fstart = start + im.gap
    if len(idx) >= fstart + im.frames:
        truth = src.read(idx[fstart : fstart + im.frames])
        truth_tokens = im.tokenize(truth)
        panels["truth"] = truth
        report.update(future_scores(res["tokens"], truth_tokens, res["frames"], truth))
        copy = copy_last_clip(im.tokenize(history), truth_tokens.shape[1])  # the baseline: nothing moves
        report["copy_history"] = future_scores(copy, truth_tokens, im.decode(copy), truth)
    write_mp4(out, side_by_side(*panels.values()), fps=4)
    sheet = contact_sheet(panels, Path(out).with_suffix(".png"))
    msg = f"imagined {Path(out)} in {latency:.2f}s ({steps} steps); contact sheet {sheet}"
    if "token_accuracy" in report:
        c = report["copy_history"]
        msg += (f"; vs truth: token accuracy {report['token_accuracy']:.3f} (copying the history: "
                f"{c['token_accuracy']:.3f}), PSNR {report['psnr']:.2f} dB ({c['psnr']:.2f} dB)")
    print(msg)
    return report
