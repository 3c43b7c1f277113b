"""One prepared GPU check (issue #31): how fast vidpolicy trains, tokenizes and imagines on one accelerator.

Sections, each time-boxed and saved as it finishes (a run cut short keeps what it measured): the environment; the
bf16 matmul peak; for every preset, denoiser and tokenizer training throughput at the largest batch that fits
(tokens or clips per second, TFLOP/s, MFU against the measured and the datasheet peak, peak memory); tokenize
against decode-only with N decode workers; imagine latency (video + actions) at batch 1 and 64 for 10 and 25
steps; the policy acting from camera frames and its fine-tuning step; a 2-process DDP run on the one device
(parameters in sync, equal to one process at the same global batch).

    python benchmarks/gpu.py                      # on a GPU machine: about 8 minutes, writes out/gpu.json
    python benchmarks/gpu.py --smoke --out F.json # the same code at tiny sizes on the CPU (the test suite runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from vidpolicy.common.text import TEXT_DIM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_parts import (batch_sweep, finetune_loss, fresh_policy, optimizer_step,  # noqa: E402
                        synthetic_videos, timed)

DATASHEET_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}  # dense
PRESETS = ("tiny", "small", "base", "large")


class Run:
    def __init__(self, smoke: bool, out: Path, budget_s: float):
        self.smoke, self.out, self.t0, self.budget = smoke, out, time.time(), budget_s
        self.device = torch.device("cpu" if smoke or not torch.cuda.is_available() else "cuda")
        self.result: dict = {"smoke": smoke, "device": str(self.device), "sections": {}}
        self.peak: float | None = None  # measured bf16 TFLOP/s (the peak section); None if it failed
        self.sheet: float | None = None  # the datasheet's, where the GPU is known

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def section(self, name: str, fn, share: float) -> None:
        """Run ``fn(deadline_s)`` with ``share`` of the time left; its result (or its error) is saved at once."""
        t = time.time()
        try:
            value = fn(max(5.0, self.left() * share))
        except Exception as e:  # a broken section is a finding, not the end of the run
            value = {"error": f"{type(e).__name__}: {str(e)[:400]}"}
        value = value if isinstance(value, dict) else {"value": value}
        self.result["sections"][name] = {**value, "seconds": round(time.time() - t, 1)}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2) + "\n")
        print(f"{name}: {json.dumps(self.result['sections'][name])[:600]}", flush=True)


def env(run: Run) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpu_count": os.cpu_count()}
    if run.device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(), gpus=torch.cuda.device_count(),
                    bf16=torch.cuda.is_bf16_supported(), memory_gib=torch.cuda.get_device_properties(0).total_memory
                    / 2**30)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q = torch.randn(8, 2, 576, 128, device="cuda", dtype=torch.bfloat16)  # the denoiser's shapes
        kv = torch.randn(8, 2, 1152, 128, device="cuda", dtype=torch.bfloat16)
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            try:
                with sdpa_kernel([backend]):
                    torch.nn.functional.scaled_dot_product_attention(q, kv, kv)
                info[f"sdpa_{backend.name.lower()}"] = "ok"
            except RuntimeError as e:
                info[f"sdpa_{backend.name.lower()}"] = str(e)[:120]
    return info


def peak(run: Run) -> dict:
    n = 512 if run.smoke else 8192
    a = torch.randn(n, n, device=run.device, dtype=torch.bfloat16)
    s = timed(lambda: a @ a, run.device, iters=3 if run.smoke else 10)
    sheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in run.result["sections"]["env"].get("gpu", "")),
                 None)
    run.peak = 2 * n**3 / s / 1e12
    run.sheet = sheet
    return {"matmul_bf16_tflops": round(run.peak, 2), "datasheet_bf16_tflops": sheet, "n": n}


def mfu(run: Run, tflops: float) -> dict:
    return {"tflops": round(tflops, 3), "mfu_measured_peak": round(tflops / run.peak, 4) if run.peak else None,
            "mfu_datasheet": round(tflops / run.sheet, 4) if run.sheet else None}


def denoiser(run: Run, deadline: float) -> dict:
    from vidpolicy.common.config import preset_values
    from vidpolicy.pretrain.config import PretrainConfig
    from vidpolicy.pretrain.model import FutureDenoiser
    from vidpolicy.pretrain.schedule import MaskReplaceScheduler
    from vidpolicy.pretrain.timesteps import TimestepSampler
    from vidpolicy.pretrain.train import diffusion_loss

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    K, out = 2048, {}
    presets = PRESETS[:1] if run.smoke else PRESETS
    for i, name in enumerate(presets):
        p = {**PretrainConfig().__dict__, **preset_values(PretrainConfig, name)}
        model = FutureDenoiser(codebook_size=K, width=p["width"], depth=p["depth"], encoder_depth=p["encoder_depth"],
                               heads=p["heads"]).to(run.device)
        if p["gradient_checkpointing"]:
            model.enable_gradient_checkpointing()
        opt = torch.optim.AdamW(model.parameters(), 2e-4, fused=run.device.type == "cuda")
        sched, sampler = MaskReplaceScheduler(100), TimestepSampler(100, True)
        n, cfg = model.tokens_per_clip, SimpleNamespace(cond_drop=0.1, aux_weight=5e-4)

        def loss_of(b: int) -> torch.Tensor:
            hist, fut = (torch.randint(0, K, (b, n), device=run.device) for _ in range(2))
            text = torch.randn(b, TEXT_DIM, device=run.device)
            return diffusion_loss(model, K, sched, sampler, hist, fut, text, cfg)[0]

        step = optimizer_step(run.device, opt, loss_of)
        share = (deadline - 1) / (len(presets) - i)
        best = batch_sweep(step, run.device, first=2 if run.smoke else 8, last=4 if run.smoke else 1024,
                           seconds=share)
        flops = model.flops_per_sample()
        out[name] = {"parameters_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 1),
                     "gradient_checkpointing": p["gradient_checkpointing"], **best}
        if best.get("batch"):
            out[name].update(tokens_per_s=round(best["batch"] * n / best["step_s"]),
                             **mfu(run, flops * best["batch"] / best["step_s"] / 1e12))
        deadline -= share
    return out


def tokenizer(run: Run, deadline: float) -> dict:
    from vidpolicy.common.config import preset_values
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.train import build_tokenizer

    out, presets = {}, PRESETS[:1] if run.smoke else PRESETS
    for i, name in enumerate(presets):
        cfg = TokenizerTrainConfig(**preset_values(TokenizerTrainConfig, name))
        model = build_tokenizer(cfg).to(run.device).train()
        opt = torch.optim.Adam(model.parameters(), 6e-4, fused=True)

        def loss_of(b: int) -> torch.Tensor:
            return model(torch.rand(b, 3, cfg.frames, cfg.size, cfg.size, device=run.device) - 0.5)["loss"]

        step = optimizer_step(run.device, opt, loss_of)
        share = (deadline - 1) / (len(presets) - i)
        best = batch_sweep(step, run.device, first=2 if run.smoke else 8, last=4 if run.smoke else 256,
                           seconds=share)
        out[name] = {"parameters_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 2), **best}
        if best.get("batch"):
            out[name].update(clips_per_s=round(best["batch"] / best["step_s"], 1),
                             **mfu(run, model.flops_per_sample() * best["batch"] / best["step_s"] / 1e12))
        deadline -= share
    return out


def tokenize_vs_decode(run: Run, deadline: float) -> dict:
    from torch.utils.data import DataLoader

    from vidpolicy.common.pretrained import save_model
    from vidpolicy.datasets.clips import ClipSpec
    from vidpolicy.tokenizer.config import TokenizeConfig
    from vidpolicy.tokenizer.model import VideoTokenizer
    from vidpolicy.tokenizer.tokenize import _as_is, _DecodedUnits, tokenize
    from vidpolicy.tokenizer.units import list_units

    workers = [1, 2] if run.smoke else sorted({1, 4, max(1, (os.cpu_count() or 2) - 2)})
    out = {}
    with tempfile.TemporaryDirectory() as d:
        videos = synthetic_videos(Path(d) / "videos", count=4 if run.smoke else 48, frames=32 if run.smoke else 192)
        tok = Path(d) / "tok"
        save_model(VideoTokenizer(), tok / "model")  # the default (small) tokenizer: encoder cost as users have it
        for w in workers:
            cfg = TokenizeConfig(tokenizer=str(tok), videos=str(videos), out=str(Path(d) / f"t{w}"), num_workers=w)
            units = list_units(cfg)
            t = time.time()
            clips = sum(len(p.clips) for p in DataLoader(_DecodedUnits(list(enumerate(units)), ClipSpec(4, 96)),
                                                          batch_size=None, num_workers=w, collate_fn=_as_is)
                        if p.clips is not None)
            decode_s = time.time() - t
            t = time.time()
            tokenize(cfg)
            tok_s = time.time() - t
            out[f"workers_{w}"] = {"clips": clips, "decode_clips_per_s": round(clips / decode_s, 1),
                                   "tokenize_clips_per_s": round(clips / tok_s, 1),
                                   "tokenize_over_decode": round(decode_s / tok_s, 3)}
            if time.time() - run.t0 > run.budget - 60:
                break
    return out


def imagine(run: Run, deadline: float) -> dict:
    pol = fresh_policy(run.device, smoke=run.smoke)
    out = {}
    for b in (1, 2) if run.smoke else (1, 64):
        hist = torch.randint(0, pol.video.config.codebook_size, (b, pol.video.tokens_per_clip), device=run.device)
        text = torch.randn(b, TEXT_DIM, device=run.device)
        state = torch.zeros(b, pol.config.state_dim, device=run.device)
        for steps in (2,) if run.smoke else (10, 25):
            g = torch.Generator(run.device).manual_seed(0)
            s = timed(lambda: pol.plan(hist, text, steps=steps, generator=g, state=state), run.device,
                      iters=1 if run.smoke else 5)
            out[f"batch{b}_steps{steps}_ms"] = round(1000 * s, 1)
    try:  # a CPU generator drives a GPU policy (pretrain/schedule.draw)
        pol.plan(hist[:1], text[:1], steps=2, generator=torch.Generator().manual_seed(0), state=state[:1])
        out["cpu_generator"] = "ok"
    except Exception as e:  # recorded, not raised: the other sections still run
        out["cpu_generator"] = f"{type(e).__name__}: {str(e)[:160]}"
    return out


def policy(run: Run, deadline: float) -> dict:
    """The policy on the device as `vidpolicy rollout` and `finetune` use it: a chunk from camera frames (tokenize,
    imagine, actions) for 1 and 16 robots at once; the fine-tuning step at the largest batch that fits."""
    t0, pol = time.time(), fresh_policy(run.device, smoke=run.smoke)
    if run.smoke:
        pol.config = pol.config.with_overrides(sampling_steps=2)
    pol.text = lambda texts: torch.randn(len(texts), TEXT_DIM)  # no offline text encoder's wheel there
    cfg, out = pol.config, {}
    for b in (1, 2) if run.smoke else (1, 16):
        frames = np.random.default_rng(b).integers(0, 256, (b, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)

        def chunk() -> np.ndarray:
            pol.reset()
            return pol.chunk(frames, [""] * b, torch.zeros(b, cfg.state_dim))
        out[f"robots{b}_chunk_ms"] = round(1000 * timed(chunk, run.device, iters=1 if run.smoke else 3), 1)
        actions = chunk()
        out[f"robots{b}_actions_ok"] = actions.shape == (b, cfg.horizon, cfg.action_dim) and bool(
            np.isfinite(actions).all())
    joint, loss_of = finetune_loss(pol, run.device)
    before = {k: v.detach().clone() for k, v in joint.state_dict().items()}
    opt = torch.optim.AdamW([q for q in joint.parameters() if q.requires_grad], 1e-4)
    out["finetune"] = batch_sweep(optimizer_step(run.device, opt, loss_of), run.device, first=2 if run.smoke else 8,
                                  last=2 if run.smoke else 512, seconds=max(5.0, deadline - (time.time() - t0)))
    moved = {k for k, v in joint.state_dict().items() if not torch.equal(v, before[k])}
    out["video_model_frozen"] = not any(k.startswith("video.") for k in moved)
    out["action_model_trained"] = any(k.startswith("action.") for k in moved)
    return out


def ddp(run: Run, deadline: float) -> dict:
    script = Path(__file__).resolve().parent / "_gpu_ddp.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(run.device)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30, deadline))
    found = [json.loads(line[len("DDP "):]) for line in r.stdout.splitlines() if line.startswith("DDP ")]
    return found[0] if found and r.returncode == 0 else {"error": (r.stdout + r.stderr)[-600:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: the code path, not the numbers")
    ap.add_argument("--quick", action="store_true", help="the same as --smoke (every benchmark has --quick)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "gpu.json"),
                    help="the JSON report (default: benchmarks/out/gpu.json)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default: 450)")
    args = ap.parse_args()
    run = Run(args.smoke or args.quick, Path(args.out), args.budget)
    run.section("env", lambda _: env(run), 0.02)
    run.section("peak", lambda _: peak(run), 0.05)
    run.section("denoiser", lambda s: denoiser(run, s), 0.45)
    run.section("tokenizer", lambda s: tokenizer(run, s), 0.35)
    run.section("imagine", lambda s: imagine(run, s), 0.3)
    run.section("policy", lambda s: policy(run, s), 0.3)
    run.section("tokenize_vs_decode", lambda s: tokenize_vs_decode(run, s), 0.5)
    run.section("ddp", lambda s: ddp(run, s), 1.0)
    run.result["seconds"] = round(time.time() - run.t0, 1)
    run.out.write_text(json.dumps(run.result, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
