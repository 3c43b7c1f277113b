"""Pre-training speed and imagination quality.

Training: tokens/s and achieved GFLOP/s (counted by torch's FlopCounterMode over forward + backward) of the
default `FutureDenoiser` at batch 8, next to this machine's measured bf16 / fp32 matmul peak. Sampling: latency of
one imagined clip (history tokens -> frames) at S = 10, 25, 50, 100 steps, with the action model when a policy is
given. With ``--model DIR --tokens DIR``: token accuracy of imagined futures on held-out clip pairs for each S.

    python benchmarks/pretrain.py [--model runs/pre --tokens runs/tokens] [--policy runs/policy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import first_sentence, matmul_peak, quiet, save, timed
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.pretrain.train import diffusion_loss
from vidpolicy.common.malloc import keep_freed_memory
from vidpolicy.common.text import TEXT_DIM


class _Cfg:
    cond_drop, aux_weight = 0.1, 5e-4


def train_speed(batch: int = 8, dtype=torch.bfloat16) -> dict:
    torch.manual_seed(0)
    m = FutureDenoiser()
    opt = torch.optim.AdamW(m.parameters(), 2e-4)
    sched, sampler = MaskReplaceScheduler(100), TimestepSampler(100, False)
    K, n = m.config.codebook_size, m.tokens_per_clip
    hist, fut, text = torch.randint(0, K, (batch, n)), torch.randint(0, K, (batch, n)), torch.randn(batch, TEXT_DIM)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss, _ = diffusion_loss(m, K, sched, sampler, hist, fut, text, _Cfg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    t = timed(step, repeat=3, warmup=1)
    return {"batch": batch, "params_m": sum(p.numel() for p in m.parameters()) / 1e6, "step_s": t,
            "gflop_per_step": flops / 1e9, "gflops": flops / t / 1e9, "tokens_per_s": batch * 2 * n / t}


def sample_latency(model: FutureDenoiser, steps_list, policy=None) -> dict:
    from vidpolicy.pretrain.sample import sample_tokens

    K, n = model.config.codebook_size, model.tokens_per_clip
    hist, text = torch.randint(0, K, (1, n)), torch.randn(1, model.config.text_dim)
    state = torch.zeros(1, policy.config.state_dim) if policy is not None and policy.config.state_dim else None
    out = {}
    for S in steps_list:
        def run():
            if policy is not None:
                policy.plan(hist, text, steps=S, state=state)
                return
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                ctx = model.context(hist, model.text_input(text))
                sample_tokens(lambda x, t: {"v": model.denoise(x["v"], torch.full((1,), t), ctx)[0]},
                              MaskReplaceScheduler(model.config.num_timesteps), {"v": (n, K)}, 1, S)
        out[str(S)] = timed(run, repeat=2, warmup=1)
    return out


def accuracy(model_dir: str, tokens_dir: str, steps_list, pairs: int = 32) -> dict:
    from vidpolicy.datasets.tokens import TokenDataset
    from vidpolicy.pretrain.imagine import Imaginer

    im = Imaginer(model_dir)
    ds = TokenDataset(tokens_dir)
    all_pairs = ds.pairs(im.gap)
    rng = np.random.default_rng(0)
    pick = [all_pairs[k] for k in rng.choice(len(all_pairs), min(pairs, len(all_pairs)), replace=False)]
    res = {}
    for S in steps_list:
        accs, t0 = [], time.time()
        for i, j in pick:
            hist = torch.from_numpy(ds.tokens(i).reshape(1, -1))
            out = im.imagine(hist, ds.rows[i].get("instruction", ""), steps=S)
            accs.append(float((out["tokens"][0].numpy() == ds.tokens(j).reshape(-1)).mean()))
        res[str(S)] = {"token_accuracy": float(np.mean(accs)), "seconds_per_clip": (time.time() - t0) / len(pick)}
    return res


def main() -> None:
    quiet()
    keep_freed_memory()  # as the CLI does for its process: the stages run here as library calls
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--model", help="a pretrain run directory (for accuracy on held-out pairs)")
    ap.add_argument("--tokens", help="token directory with the held-out pairs")
    ap.add_argument("--policy", help="a policy directory: time imagination with the action model")
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100],
                    help="denoising steps to time (and score) imagining at (default: 10 25 50 100)")
    ap.add_argument("--accuracy-only", action="store_true",
                    help="only measure --model/--tokens accuracy, merged into an existing out/pretrain.json")
    ap.add_argument("--quick", action="store_true", help="sampling latency at 10 and 25 steps only")
    args = ap.parse_args()
    if args.quick:
        args.steps = [10, 25]
    if args.accuracy_only:
        import json

        from _common import OUT

        prev = json.loads((OUT / "pretrain.json").read_text()) if (OUT / "pretrain.json").exists() else {}
        prev.pop("benchmark", None)
        save("pretrain", {**prev, "imagination": accuracy(args.model, args.tokens, args.steps),
                          "imagination_tokens": args.tokens})
        return
    torch.set_num_threads(torch.get_num_threads())
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    bf16 = train_speed(dtype=torch.bfloat16)
    fp32 = train_speed(dtype=torch.float32)
    result = {
        "matmul_peak_gflops": {"bf16": peak_bf16, "fp32": peak_fp32},
        "train_bf16": {**bf16, "fraction_of_peak": bf16["gflops"] / peak_bf16},
        "train_fp32": {**fp32, "fraction_of_peak": fp32["gflops"] / peak_fp32},
        "reference_train_step_s": {"bf16": 3.51, "fp32": 13.1},
    }
    model = FutureDenoiser().eval()
    result["sample_latency_s_default_model"] = sample_latency(model, args.steps)
    if args.policy:
        from vidpolicy.policies.vpdd import VPDDPolicy

        pol = VPDDPolicy.from_pretrained(args.policy)
        result["sample_latency_s_policy_with_actions"] = sample_latency(pol.video, args.steps, policy=pol)
    if args.model and args.tokens:
        result["imagination"] = accuracy(args.model, args.tokens, args.steps)
    save("pretrain", result)


if __name__ == "__main__":
    main()
