"""EMA vector quantiser with dead-code restarts (VQ-VAE-2 / VideoGPT), synchronised across processes.

The codebook is updated by exponential moving averages of assigned encoder outputs (decay 0.99 as the paper), not
by gradients; a code whose EMA usage falls below ``dead_threshold`` rows per step (VideoGPT's 1) is re-initialised from
a random encoder output of the current batch, so the whole codebook stays in use (``restart="error"``: drawn with
probability proportional to its squared distance from its code, so fresh codes go where the codebook fits worst).
Small batches lower the threshold to ``dead_fraction`` of an even share of a step's rows (all processes together): at
batch 4 (96², 2048 codes, an even share 1.1 rows) a threshold of 1 would restart most codes that are used less than
average.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from vidpolicy.common.device import full_precision


def blocked_argmin(scores: torch.Tensor, block: int = 64) -> torch.Tensor:
    """``scores.argmin(1)``, the same indices (ties: the first), faster on a CPU: a row's minimum per block of
    ``block`` columns is a vectorised reduction, while argmin walks the row one element at a time; then argmin over
    the few block minima and over the one block that holds the row's minimum."""
    n, k = scores.shape
    if k % block or k <= block:
        return scores.argmin(1)
    blocks = scores.view(n, k // block, block)
    first = blocks.amin(2).argmin(1)  # the first block holding the row minimum
    inside = blocks[torch.arange(n, device=scores.device), first].argmin(1)
    return first * block + inside


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


RESTARTS = ("random", "error")  # where dead codes restart (`EMACodebook`'s ``restart``)


class EMACodebook(nn.Module):
    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1.0,
                 dead_fraction: float = 0.5, restart: str = "random"):
        super().__init__()
        if restart not in RESTARTS:
            raise ValueError(f"restart must be one of {RESTARTS}, got {restart!r}")
        self.restart = restart
        self.num_codes, self.dim, self.decay, self.eps = num_codes, dim, decay, eps
        self.dead_threshold, self.dead_fraction = dead_threshold, dead_fraction
        self.register_buffer("embed", torch.randn(num_codes, dim))
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _random_rows(self, z: torch.Tensor, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
        """n random rows of z (repeated with jitter when z has fewer rows; drawn with probability proportional to
        ``weights`` when given); identical on every process."""
        if weights is not None and int((weights > 0).sum()) >= n:
            pick = torch.multinomial(weights, n)
        else:
            if z.shape[0] < n:
                reps = (n + z.shape[0] - 1) // z.shape[0]
                jitter = torch.randn(z.shape[0] * reps, z.shape[1], device=z.device) / z.shape[1] ** 0.5
                z = z.repeat(reps, 1) + 0.01 * jitter
            pick = torch.randperm(z.shape[0], device=z.device)[:n]
        rows = z[pick].contiguous()
        if _distributed():
            dist.broadcast(rows, 0)
        return rows

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.embed)

    def nearest(self, z: torch.Tensor, chunk: int = 256,
                project: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Index of the nearest code for each row of ``z: (n, d)``: argmin of |e|² - 2 z·e (|z|² is the same for
        every code), one fused matmul + subtract per chunk of rows (chunks keep the (rows, codes) scores in cache).
        fp32 throughout: a bf16 product flips real tokens.
        ``project=(W, b)``: the rows are features ``h`` with ``z = h Wᵀ + b`` (the encoder's last linear layer),
        searched as |e|² - 2 e·b - 2 h·(Wᵀ e) without forming z (half the work with 128-d features).
        The argmin per row is `blocked_argmin`."""
        e, sq = self.embed, self.embed.pow(2).sum(1)
        if project is not None:
            w, b = (p.float() for p in project)
            e, sq = e @ w, sq - 2 * (e @ b)
        e = e.t().contiguous()
        return torch.cat([blocked_argmin(torch.addmm(sq, zz, e, alpha=-2)) for zz in z.split(chunk)])

    def forward(self, z: torch.Tensor, search: tuple[torch.Tensor, tuple] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """``z: (n, d)`` -> (straight-through z_q, indices (n,), commitment loss, stats). ``search=(h, (W, b))``:
        find the codes from the features ``h`` that ``z = h Wᵀ + b`` came from (`nearest`'s ``project``)."""
        with full_precision(z.device):
            z = z.float()
            if self.training and not bool(self.initialized):
                with torch.no_grad():
                    rows = self._random_rows(z, self.num_codes)
                    self.embed.copy_(rows)
                    self.embed_avg.copy_(rows)
                    self.cluster_size.fill_(1.0)
                    self.initialized.fill_(True)
            indices = self.nearest(z) if search is None else self.nearest(search[0].float(), project=search[1])
            z_q = self.lookup(indices)
            commitment = F.mse_loss(z, z_q.detach())
            counts = torch.bincount(indices, minlength=self.num_codes).float()
            if self.training:
                err = (z.detach() - z_q).pow(2).sum(1) if self.restart == "error" else None
                self._ema_update(z.detach(), indices, counts, err)
            probs = counts / counts.sum().clamp(min=1)
            stats = {
                "perplexity": torch.exp(-(probs * torch.log(probs + 1e-10)).sum()),
                "codebook_usage": (counts > 0).float().mean() * 100,
            }
            z_q = z + (z_q - z).detach()
        return z_q, indices, commitment, stats

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor,
                    err: torch.Tensor | None = None) -> None:
        embed_sum = torch.zeros_like(self.embed).index_add_(0, indices, z)
        counts = counts.clone()
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(embed_sum)
        if not torch.isfinite(embed_sum).all():  # one non-finite output (on any process) would poison every code
            return
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(embed_sum, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        dead = self.cluster_size < min(self.dead_threshold, self.dead_fraction * float(counts.sum()) / self.num_codes)
        if _distributed():
            dead = dead.float()
            dist.broadcast(dead, 0)
            dead = dead.bool()
        n_dead = int(dead.sum())
        if n_dead:
            fresh = self._random_rows(z, n_dead, err)
            self.embed[dead] = fresh
            self.embed_avg[dead] = fresh
            self.cluster_size[dead] = 1.0
