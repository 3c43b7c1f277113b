"""`ActionDenoiser`: predicts log p(ã_0) of the action tokens from the noisy action tokens, the timestep, the
instruction and the frozen video denoiser's features of the current noisy future (paper: GPT-2 style, 6 layers,
width 256, 2 heads, FFN 1024). Each action token is (step h, dimension d) and has its own number of valid bins.

``output="regression"`` is the continuous alternative: the same transformer reads learned queries instead of noisy
action tokens and regresses the normalised action chunk directly (MSE), from the same imagined-future features.

``state_dim > 0`` adds the robot's normalised state to the conditioning (with time and instruction) of every block."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from vidpolicy.common.model_size import forward_flops
from vidpolicy.common.text import TEXT_DIM
from vidpolicy.pretrain.model import DenoiserBlock, timestep_embedding


class ActionDenoiser(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, action_dim: int = 4, horizon: int = 4, bins_per_dim: tuple[int, ...] = (48, 48, 48, 2),
                 width: int = 256, depth: int = 6, heads: int = 2, mlp_ratio: float = 4.0, video_width: int = 256,
                 text_dim: int = TEXT_DIM, output: str = "tokens", state_dim: int = 0):
        super().__init__()
        if output not in ("tokens", "regression"):
            raise ValueError(f"output must be 'tokens' or 'regression', got {output!r}")
        self.num_classes = K = max(bins_per_dim)
        n = horizon * action_dim
        self.token_embed = nn.Embedding(K + 1, width)
        self.pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.video_proj = nn.Sequential(nn.LayerNorm(video_width), nn.Linear(video_width, width))
        self.text_proj = nn.Linear(text_dim, width)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        if state_dim:
            self.state_mlp = nn.Sequential(nn.Linear(state_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([DenoiserBlock(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, K if output == "tokens" else 1)
        valid = torch.zeros(n, K, dtype=torch.bool)
        for i in range(n):
            valid[i, : bins_per_dim[i % action_dim]] = True
        self.register_buffer("valid", valid, persistent=False)

    def flops_per_sample(self, video_tokens: int, trains: bool = True) -> int | None:
        """FLOPs of one training sample through this model, reading ``video_tokens`` features (`forward_flops`)."""
        c = self.config

        def forward(g):
            state = torch.zeros(1, c.state_dim) if c.state_dim else None
            return g(torch.zeros(1, c.horizon * c.action_dim, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                     torch.zeros(1, video_tokens, c.video_width), torch.zeros(1, c.text_dim), state)
        return forward_flops(self, forward, trains)

    def forward(self, a_t: torch.Tensor, t: torch.Tensor, video_features: torch.Tensor,
                text: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """``a_t: (b, H*D)`` noisy action tokens, ``video_features: (b, n, video_width)``, ``state: (b, state_dim)``
        -> log p ``(b, H*D, K)`` (regression: ``a_t`` is ignored and the result is the normalised chunk
        ``(b, H*D)``)."""
        ctx = self.video_proj(video_features)
        cond = self.time_mlp(timestep_embedding(t, self.config.width).to(ctx.dtype))
        cond = cond + self.text_proj(text.to(ctx.dtype))
        if self.config.state_dim:
            if state is None:
                raise ValueError(f"this action model reads a {self.config.state_dim}-d robot state; none was given")
            cond = cond + self.state_mlp(state.to(ctx.dtype))
        regression = self.config.output == "regression"
        x = self.pos.expand(ctx.shape[0], -1, -1) if regression else self.token_embed(a_t) + self.pos
        for blk in self.blocks:
            x = blk(x, cond, blk.attn.kv(ctx))
        logits = self.head(self.norm(x)).float()
        if regression:
            return logits.squeeze(-1)  # (b, H*D) normalised actions
        logits = logits.masked_fill(~self.valid, -69.0)
        return F.log_softmax(logits, dim=-1)
