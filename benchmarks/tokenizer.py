"""Tokenization speed and tokenizer quality.

Decode throughput (clips/s, 4 frames at 96²) with decord and torchcodec; encoder throughput of the default
tokenizer (the trained 96² one when the budget run has made it) on real clips; end-to-end ``tokenize`` throughput
and its ratio to pure decoding (goal >= 0.8); held-out PSNR/SSIM after a fixed CPU training budget at 64² and 96²
(goal >= 26 dB at 96²). Uses ../shared/data/human when present, else generated clips.

    python benchmarks/tokenizer.py [--videos DIR] [--budget-min 20] [--sizes 64 96]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from _common import commit, cpu_model, first_sentence, previous, quiet, save, timed
from vidpolicy.common.pretrained import load_model, save_model
from vidpolicy.common.threads import torch_threads
from vidpolicy.datasets.clips import ClipSpec, VideoClipDataset, clip_starts
from vidpolicy.datasets.video import VideoSource, find_videos, resample_indices
from vidpolicy.tokenizer.model import VideoTokenizer
from vidpolicy.common.malloc import keep_freed_memory

SHARED_HUMAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "human"
# (decoder attention heads, training squares per frame): VideoGPT's blocks on centre squares, each change alone, both
AB_SHAPES = ((2, 1), (0, 1), (2, 5), (0, 5))
# the training settings a budget row records (from the run's config) and is told apart by
RUN_SHAPE = ("embedding_dim", "encoder_res_layers", "up_channels", "attn_heads", "crops", "batch_size", "lr", "flips",
             "codebook_restart", "adam_beta2", "small_crops", "small_crop_size")


def corpus(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if SHARED_HUMAN.exists():
        return SHARED_HUMAN
    from vidpolicy.common.media import write_mp4

    d = Path(tempfile.mkdtemp(prefix="vp-bench-"))
    rng = np.random.default_rng(0)
    for k in range(8):
        frames = rng.integers(0, 255, (120, 128, 160, 3), dtype=np.uint8)
        write_mp4(d / f"synthetic_{k}.mp4", frames, fps=30)
    return d


def decode_rate(files: list[Path], backend: str, size: int = 96) -> float:
    spec = ClipSpec(4, size)
    n, t0 = 0, time.perf_counter()
    for f in files:
        src = VideoSource(f, size, backend=backend)
        idx = resample_indices(src.info.num_frames, src.info.fps, None)
        starts = clip_starts(len(idx), spec)
        if starts:
            src.read(idx[: starts[-1] + 4])
            n += len(starts)
    return n / (time.perf_counter() - t0)


def real_clips(videos: Path, size: int, n: int = 64) -> torch.Tensor:
    """``n`` clips spread evenly over the corpus, (n, 3, 4, size, size) in [-0.5, 0.5]."""
    ds = VideoClipDataset(find_videos(videos), ClipSpec(4, size))
    return torch.stack([ds[int(i)] for i in np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)])


def encode_rate(model: VideoTokenizer, x: torch.Tensor, threads: int | None = None, bf16: bool = False) -> float:
    with torch_threads(threads), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return len(x) / timed(lambda: model.encode(x), repeat=2)


def tokenize_rate(videos: Path, model: VideoTokenizer) -> float:
    from vidpolicy.tokenizer.config import TokenizeConfig
    from vidpolicy.tokenizer.tokenize import tokenize

    with tempfile.TemporaryDirectory() as d:
        save_model(model, Path(d) / "tok" / "model")
        t0 = time.perf_counter()
        index = tokenize(TokenizeConfig(tokenizer=str(Path(d) / "tok"), out=str(Path(d) / "tokens"),
                                        videos=str(videos), num_workers=1))
        return index["num_clips"] / (time.perf_counter() - t0)


def psnr_after_budget(videos: Path, size: int, minutes: float, out: Path, **overrides) -> dict:
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.train import train_tokenizer

    cfg = TokenizerTrainConfig(videos=str(videos), out=str(out), size=size, save_every=10**9, num_workers=1,
                               eval_every=0, **overrides)  # the budget is for training steps only
    per_step = calibrate_step(cfg)
    cfg.max_steps = max(10, int(minutes * 60 / per_step))
    cfg.save_every = cfg.max_steps
    t0 = time.perf_counter()
    res = train_tokenizer(cfg, overwrite=True)
    return {"size": size, "budget_min": minutes, "commit": commit(), "steps": cfg.max_steps,
            "train_s": time.perf_counter() - t0, "step_s": per_step, **{k: getattr(cfg, k) for k in RUN_SHAPE},
            "cpu": cpu_model(), **res["heldout"]}


def calibrate_step(cfg, steps: int = 300) -> float:
    """Seconds per training step, data loading and logging included: the median logged step time of the second half
    of a short real run (a probe on random input misjudged it by 5-10% either way; the steps after the first 50 of
    150 still waited on the decode worker's first pass over the corpus at batch 4: 0.121 s calibrated, 0.104 s run).
    With ``--small-crops`` the mean of a full-clip probe and a small-square probe, weighted by their share of steps."""
    from vidpolicy.tokenizer.train import small_crop_steps, train_tokenizer

    def probe(small_crops: float) -> float:
        with tempfile.TemporaryDirectory() as d:
            run = replace(cfg, out=d, max_steps=steps, save_every=10**9, holdout_fraction=0.0, small_crops=small_crops)
            train_tokenizer(run, overwrite=True)
            rows = [json.loads(x) for x in (Path(d) / "logs" / "metrics.jsonl").read_text().splitlines()]
        return float(np.median([r["step_time_s"] for r in rows if r["step"] > steps // 2]))

    full = probe(0.0)
    if not small_crop_steps(replace(cfg, max_steps=steps)):
        return full
    return cfg.small_crops * probe(1.0) + (1 - cfg.small_crops) * full


# what makes two budget rows the same measurement (rows without a key predate it)
ROW_KEY = ("size", "budget_min", *RUN_SHAPE, "cpu")


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """The ``old`` rows that no ``new`` row measures again, then ``new``."""
    key = lambda r: tuple(r.get(k) for k in ROW_KEY)  # noqa: E731
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def main() -> None:
    quiet()
    keep_freed_memory()  # as the CLI does for its process: the stages run here as library calls
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--videos", help="video directory (default ../shared/data/human, else generated)")
    ap.add_argument("--budget-min", type=float, default=20.0, help="CPU training minutes per size for PSNR")
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 96], help="clip sizes for the PSNR runs")
    ap.add_argument("--ab-min", type=float, default=0.0,
                    help="also train 96² tokenizers for this many CPU-min each: decoder blocks with and without axial "
                         "attention, on centre squares and on 5 squares per frame (the default: attention, 5)")
    ap.add_argument("--repeats", type=int, default=3, help="decode / tokenize measurements, alternated (median)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "tokenizer_runs"),
                    help="where its tokenizers go (default: benchmarks/out/tokenizer_runs)")
    ap.add_argument("--quick", action="store_true", help="one 3-minute run at 96², one repeat")
    args = ap.parse_args()
    if args.quick:
        args.budget_min, args.sizes, args.repeats = min(args.budget_min, 3.0), [96], 1
    videos = corpus(args.videos)
    files = find_videos(videos)
    runs = [psnr_after_budget(videos, s, args.budget_min, Path(args.out) / f"s{s}")
            for s in args.sizes if args.budget_min > 0]
    # the same CPU budget for each shape (a larger code or encoder costs steps: a slower search, more convolutions)
    ab = [psnr_after_budget(videos, 96, args.ab_min, Path(args.out) / f"a{a}_c{c}", attn_heads=a, crops=c)
          for a, c in AB_SHAPES if args.ab_min > 0]
    # throughput of what tokenize would run: the trained default-size tokenizer when there is one (else a freshly
    # initialised one, same cost) on real clips
    trained = Path(args.out) / "s96" / "model"
    model = VideoTokenizer().eval()
    saved = load_model(VideoTokenizer, trained) if trained.exists() else None
    shape = ("embedding_dim", "encoder_res_layers")
    if saved is not None and all(saved.config[k] == model.config[k] for k in shape):  # not an earlier default's run
        model = saved
    else:
        trained = None
    clips = real_clips(videos, model.config.size)
    # decode and tokenize alternate, `--repeats` times: the ratio of each pair is taken on the same machine state
    # (this one's throughput drifts by +-10% over minutes), the medians are reported
    pairs = [(decode_rate(files, "decord"), tokenize_rate(videos, model)) for _ in range(args.repeats)]
    result = {"videos": str(videos), "files": len(files), "throughput_model": str(trained or "untrained"),
              "decode_clips_per_s": {"decord": float(np.median([d for d, _ in pairs])),
                                     "torchcodec": decode_rate(files, "torchcodec")},
              "encode_clips_per_s_default_96": encode_rate(model, clips),
              # what one core gives while the other decodes (tokenize's layout on 2 cores)
              "encode_clips_per_s_one_core_bf16": encode_rate(model, clips, threads=1, bf16=True)}
    # what a clip costs one core: tokenizing can reach decode's rate only where the model costs less than decoding
    result["ms_per_clip_one_core"] = {"decode_decord": 1e3 / result["decode_clips_per_s"]["decord"],
                                      "encode_bf16": 1e3 / result["encode_clips_per_s_one_core_bf16"]}
    result["tokenize_clips_per_s"] = float(np.median([t for _, t in pairs]))
    result["tokenize_over_decord_decode"] = float(np.median([t / d for d, t in pairs]))
    result["repeats"] = [{"decode_decord": d, "tokenize": t, "ratio": t / d} for d, t in pairs]
    # the earlier default on the same machine: the paper's 256-d codes, 2 encoder blocks (weights don't change cost)
    earlier = VideoTokenizer(embedding_dim=256, encoder_res_layers=2).eval()
    result["earlier_default"] = {"encode_clips_per_s_one_core_bf16": encode_rate(earlier, clips, threads=1, bf16=True),
                                 "tokenize_clips_per_s": tokenize_rate(videos, earlier)}
    result["earlier_default"]["tokenize_over_decord_decode"] = (result["earlier_default"]["tokenize_clips_per_s"]
                                                                / result["decode_clips_per_s"]["decord"])
    # earlier budget runs stay (they take long: run them one size or shape at a time), each with its own shape and
    # machine, unless this run measured the same one again
    last = previous("tokenize") or {}
    result["psnr_after_budget"] = sorted(merge_rows(last.get("psnr_after_budget", []), runs),
                                         key=lambda r: r["size"])
    result["psnr_equal_budget"] = merge_rows(last.get("psnr_equal_budget", []), ab)
    save("tokenize", result)


if __name__ == "__main__":
    main()
