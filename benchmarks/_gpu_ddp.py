"""benchmarks/gpu.py's DDP section, run by torchrun with 2 processes on ONE device (argv[1]: cpu or cuda): the
denoiser trained for a few steps by 2 processes on half a batch each must end with parameters identical across
ranks and equal to one process trained on the whole batch. Both ranks share the device, so the backend is gloo
(NCCL refuses two ranks on one GPU). Prints one line ``DDP {json}`` from rank 0."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from vidpolicy.common.text import TEXT_DIM
from vidpolicy.pretrain.model import FutureDenoiser

K, N, B, STEPS = 64, 16, 8, 3


def build(device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = FutureDenoiser(codebook_size=K, latent_shape=(1, 4, 4), width=32, depth=2, encoder_depth=1, heads=2)
    model.null_text.requires_grad_(False)  # no instruction dropout here: DDP refuses unused parameters
    model = model.to(device)
    return model, torch.optim.AdamW(model.parameters(), 1e-2)


def batches(device: torch.device) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)  # every rank draws the same global batches
    out = []
    for _ in range(STEPS):
        fut, hist = torch.randint(0, K, (B, N), generator=g), torch.randint(0, K, (B, N), generator=g)
        x_t = torch.where(torch.rand(B, N, generator=g) < 0.5, torch.full_like(fut, K), fut)
        t, text = torch.randint(1, 100, (B,), generator=g), torch.randn(B, TEXT_DIM, generator=g)
        out.append(tuple(v.to(device) for v in (x_t, t, hist, text, fut)))
    return out


def train(model, opt, data, part: slice) -> list[float]:
    losses = []
    for x_t, t, hist, text, fut in data:
        logp = model(x_t[part], t[part], hist[part], text[part])
        loss = F.nll_loss(logp.float().flatten(0, 1), fut[part].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    device = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu")
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, opt = build(device)
    ddp = DistributedDataParallel(model)
    half = B // world
    losses = train(ddp, opt, batches(device), slice(rank * half, (rank + 1) * half))
    mine = flat(model).cpu()
    everyone = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine)
    mean_first = torch.tensor([losses[0]])
    dist.all_reduce(mean_first)
    if rank == 0:
        alone, alone_opt = build(device)
        ref_losses = train(alone, alone_opt, batches(device), slice(0, B))
        result = {"device": str(device), "processes": world, "steps": STEPS,
                  "ranks_max_abs_diff": float(max((p - everyone[0]).abs().max() for p in everyone)),
                  "vs_one_process_max_abs_diff": float((flat(alone).cpu() - mine).abs().max()),
                  "first_loss_ranks_mean": float(mean_first) / world, "first_loss_one_process": ref_losses[0]}
        print("DDP " + json.dumps(result), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # gloo can abort during interpreter finalization


if __name__ == "__main__":
    main()
