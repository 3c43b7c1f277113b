"""`FutureDenoiser`: predicts log p(x̃_0) of the future clip's tokens from noisy future tokens, the history clip's
tokens, the diffusion step and the instruction.

A DiT-style transformer: a small history encoder (text token + history tokens, no timestep) runs once per sample;
each denoiser block self-attends over the future tokens with the history context appended to its keys and values,
and is modulated by adaLN-Zero from (timestep + instruction). History keys/values do not change across sampling
steps, so a sampler computes them once (`context`) instead of once per step.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from einops import rearrange

from vidpolicy.common.model_size import forward_flops
from vidpolicy.common.text import TEXT_DIM


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention. ``scaled_dot_product_attention`` (flash / memory-efficient kernels on CUDA) everywhere
    except bf16 on a CPU, where two bf16 matmuls around a softmax are faster (docs/experiments.md)."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return k, v

    def forward(self, x: torch.Tensor, extra_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        if extra_kv is not None:
            k, v = torch.cat([k, extra_kv[0].to(k.dtype)], 2), torch.cat([v, extra_kv[1].to(v.dtype)], 2)
        return self.out(rearrange(attend(q, k, v), "b h n d -> b n (h d)"))


def mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class EncoderBlock(nn.Module):
    """Pre-LN transformer block (history encoder)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.mlp = Attention(dim, heads), mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class DenoiserBlock(nn.Module):
    """adaLN-Zero block: attention over [future | history context], then MLP, both gated by the condition."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.n1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.n2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn, self.mlp = Attention(dim, heads), mlp(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, ctx_kv) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(cond)[:, None].chunk(6, dim=-1)
        x = x + g1 * self.attn(self.n1(x) * (1 + sc1) + sh1, ctx_kv)
        return x + g2 * self.mlp(self.n2(x) * (1 + sc2) + sh2)


class FutureDenoiser(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        codebook_size: int = 2048,
        latent_shape: tuple[int, int, int] = (1, 24, 24),
        width: int = 256,
        depth: int = 6,
        encoder_depth: int = 2,
        heads: int = 2,
        mlp_ratio: float = 4.0,
        text_dim: int = TEXT_DIM,
        num_timesteps: int = 100,
    ):
        super().__init__()
        n = math.prod(latent_shape)
        self.mask_id = codebook_size
        self.token_embed = nn.Embedding(codebook_size + 1, width)
        self.future_pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.history_pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.text_proj = nn.Linear(text_dim, width)
        self.null_text = nn.Parameter(torch.zeros(text_dim))  # the "no instruction" input for guidance
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.encoder = nn.ModuleList([EncoderBlock(width, heads, mlp_ratio) for _ in range(encoder_depth)])
        self.encoder_norm = nn.LayerNorm(width)
        self.blocks = nn.ModuleList([DenoiserBlock(width, heads, mlp_ratio) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.head = nn.Linear(width, codebook_size)
        nn.init.zeros_(self.final_ada[1].weight)
        nn.init.zeros_(self.final_ada[1].bias)
        self.gradient_checkpointing = False  # diffusers' enable_gradient_checkpointing() turns it on

    @property
    def tokens_per_clip(self) -> int:
        return math.prod(self.config.latent_shape)

    def flops_per_sample(self, trains: bool = True) -> int | None:
        """FLOPs of one training sample through this model (`forward_flops`)."""
        def forward(g):
            ids = torch.zeros(1, g.tokens_per_clip, dtype=torch.long)
            return g(ids, torch.zeros(1, dtype=torch.long), ids, torch.zeros(1, g.config.text_dim))
        return forward_flops(self, forward, trains)

    def text_input(self, text: torch.Tensor | None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Instruction embeddings ``(b, text_dim)``; None or dropped rows use the learned null instruction."""
        if text is None:
            return self.null_text[None]
        text = text.to(self.null_text.dtype)
        if drop is not None:
            text = torch.where(drop[:, None], self.null_text[None].expand_as(text), text)
        return text

    def context(self, history: torch.Tensor, text: torch.Tensor) -> dict:
        """Encode ``history: (b, n)`` tokens + ``text: (b, text_dim)`` once; reused by every denoising step."""
        txt = self.text_proj(text)
        h = self.token_embed(history.flatten(1)) + self.history_pos
        h = torch.cat([txt[:, None], h], dim=1)
        for blk in self.encoder:
            h = blk(h)
        h = self.encoder_norm(h)
        return {"kv": [blk.attn.kv(h) for blk in self.blocks], "text": txt}

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, ctx: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_t: (b, n)`` noisy future tokens -> (log p(x̃_0) ``(b, n, K)``, features ``(b, n, width)``)."""
        b = x_t.shape[0]
        cond = self.time_mlp(timestep_embedding(t, self.config.width).to(self.null_text.dtype)) + ctx["text"]
        cond = cond.expand(b, -1) if cond.shape[0] == 1 else cond
        x = self.token_embed(x_t) + self.future_pos
        for blk, kv in zip(self.blocks, ctx["kv"]):  # recomputed in backward with --gradient-checkpointing
            ckpt = self.gradient_checkpointing and torch.is_grad_enabled()
            x = self._gradient_checkpointing_func(blk, x, cond, kv) if ckpt else blk(x, cond, kv)
        shift, scale = self.final_ada(cond)[:, None].chunk(2, dim=-1)
        feats = self.final_norm(x) * (1 + scale) + shift
        return F.log_softmax(self.head(feats).float(), dim=-1), feats

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, history: torch.Tensor, text: torch.Tensor | None = None,
                drop_text: torch.Tensor | None = None) -> torch.Tensor:
        """Training entry: log p(x̃_0 | x_t, history, instruction) ``(b, n, K)``."""
        txt = self.text_input(text, drop_text)
        if txt.shape[0] != history.shape[0]:
            txt = txt.expand(history.shape[0], -1)
        return self.denoise(x_t, t, self.context(history, txt))[0]
