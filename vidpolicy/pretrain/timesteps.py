"""Importance sampling of the diffusion step t (VQ-Diffusion): p(t) ∝ sqrt(E[L_t²]) once every t was seen 10 times.

The running E[L_t²] lives in buffers, saved with each checkpoint (safetensors) so a resumed run samples alike.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class TimestepSampler(nn.Module):
    def __init__(self, num_timesteps: int, importance: bool = True, warmup_count: int = 10):
        super().__init__()
        self.T, self.importance, self.warmup_count = num_timesteps, importance, warmup_count
        self.register_buffer("loss_sq", torch.zeros(num_timesteps + 1, dtype=torch.float64))
        self.register_buffer("count", torch.zeros(num_timesteps + 1, dtype=torch.long))

    def ready(self) -> bool:
        return self.importance and bool((self.count[1:] >= self.warmup_count).all())

    def sample(self, b: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """t in 1..T and its probability p(t), each ``(b,)``."""
        if not self.ready():
            t = torch.randint(1, self.T + 1, (b,), device=device)
            return t, torch.full((b,), 1.0 / self.T, device=device)
        w = torch.sqrt(self.loss_sq[1:] + 1e-10) + 1e-4
        p = (w / w.sum()).float()
        t = torch.multinomial(p, b, replacement=True) + 1
        return t.to(device), p[t - 1].to(device)

    @torch.no_grad()
    def update(self, t: torch.Tensor, loss: torch.Tensor) -> None:
        t = t.detach().cpu().long()
        l2 = loss.detach().double().cpu() ** 2
        prev = self.loss_sq[t]
        self.loss_sq[t] = torch.where(self.count[t] > 0, 0.9 * prev + 0.1 * l2, l2)
        self.count.index_add_(0, t, torch.ones_like(t))
