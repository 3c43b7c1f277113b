"""`VideoTokenizer`: a VideoGPT-style 3D-convolution VQ-VAE.

The decoder is VideoGPT's: residual blocks with axial attention over T, H and W (``attn_heads=0``: none), then
strided transposed 3D convolutions (kernel 4, stride 2) up to the clip, ``up_channels`` wide (half the hidden width:
as good, cheaper). Two encoders, both ending in an EMA codebook of 2048 codes (32-d by default: the paper's 256-d codes
search slower for no gain measured): ``encoder_type="patch"`` (default) projects each 4x4x4 patch on its own and
refines it with a convolution at the latent resolution (``encoder_res_layers`` residual blocks after it, none by
default), far fewer FLOPs than the mirror image; ``encoder_type="videogpt"`` is VideoGPT's mirror image of the decoder
(strided 3D convolutions, attention blocks). docs/experiments.md has the measurements behind each choice.
Pixels are in [-0.5, 0.5]; a 4-frame 96x96 clip becomes a 1x24x24 grid of tokens.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from einops import rearrange

from vidpolicy.common.device import full_precision
from vidpolicy.common.model_size import forward_flops
from vidpolicy.datasets.clips import to_uint8
from vidpolicy.tokenizer.quantizer import EMACodebook

# VideoGPT divides the reconstruction MSE by the data variance of its corpus (0.06 for pixels in [-0.5, 0.5]).
DATA_VARIANCE = 0.06


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm instead of VideoGPT's BatchNorm: independent of batch size and of the number of processes.
    return nn.GroupNorm(min(32, channels // 4), channels)


class LatentConv3d(nn.Conv3d):
    """A "same" 3D convolution that, on a one-frame-deep input (the 1x24x24 latent of a 4-frame clip), uses only the
    temporal tap that sees data: kernel 3 / padding 1 over T=1 is exactly its middle slice, at a third of the FLOPs.
    Same parameters as ``nn.Conv3d`` (checkpoints are interchangeable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding[0]
        if x.shape[2] == 1 and self.stride[0] == 1 and self.kernel_size[0] == 2 * p + 1 and p > 0:
            return F.conv3d(x, self.weight[:, :, p : p + 1], self.bias, self.stride, (0, *self.padding[1:]))
        return super().forward(x)


class LatentConvTranspose3d(nn.ConvTranspose3d):
    """A transposed 3D convolution that, on a latent one or two frames deep (4- and 8-frame clips), runs as a 2D
    transposed convolution with the frames folded into the channels: input frame i reaches output frame o through
    temporal tap o - stride * i + padding, so the folded weight holds each pair's tap (zeros where it falls outside
    the kernel) and only taps that land inside the output are computed: oneDNN's 2D path is faster than PyTorch's
    generic 3D kernel. Same parameters as ``nn.ConvTranspose3d`` (checkpoints are interchangeable)."""

    max_folded_frames = 2

    def _folded_weight(self, frames: int) -> tuple[torch.Tensor, int]:
        """``(in * frames, out * frames_out, kh, kw)`` weight: row ``i * in + c``, column ``o * out + c'``."""
        (k, *_), (s, *_), (p, *_) = self.kernel_size, self.stride, self.padding
        t_out = (frames - 1) * s - 2 * p + k
        zero, rows = self.weight.new_zeros(self.weight[:, :, 0].shape), []
        for i in range(frames):
            taps = [o - s * i + p for o in range(t_out)]
            rows.append(torch.cat([self.weight[:, :, j] if 0 <= j < k else zero for j in taps], dim=1))
        return torch.cat(rows), t_out

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        plain = self.groups == 1 and self.dilation == (1, 1, 1) and self.output_padding[0] == 0
        if x.shape[2] <= self.max_folded_frames and output_size is None and plain:
            w, t_out = self._folded_weight(x.shape[2])
            if t_out > 0:
                bias = None if self.bias is None else self.bias.repeat(t_out)
                y = F.conv_transpose2d(x.transpose(1, 2).flatten(1, 2), w, bias, self.stride[1:], self.padding[1:],
                                       self.output_padding[1:])
                return y.unflatten(1, (t_out, self.out_channels)).transpose(1, 2)
        return super().forward(x, output_size)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v: PyTorch's fused kernels on CUDA; written out on a CPU, where the axes are short
    (24 at 96²) and the fused CPU kernel is slower than the plain products in the backward pass."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v.to(q.dtype))
    return torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2), dim=-1).to(v.dtype) @ v


class AxialAttention(nn.Module):
    """Multi-head attention along T, H and W separately (each axis its own q, k, v), outputs summed.

    Computed channels-last: one matrix product makes every axis's q, k, v at once (only v for a length-1 axis, where
    attention is the identity), and the output projection is a second product: cheaper than 1x1 convolutions per
    axis. Same parameters as before (1x1 Conv3d weights), so checkpoints are interchangeable."""

    # (b t h w) rows -> sequences along one axis, and back
    _SEQ = ("b t h w (n d) -> b h w n t d", "b t h w (n d) -> b t w n h d", "b t h w (n d) -> b t h n w d")
    _BACK = tuple(" -> ".join(reversed(p.split(" -> "))) for p in _SEQ)

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.ModuleList([nn.Conv3d(channels, 3 * channels, 1) for _ in range(3)])
        self.out = nn.Conv3d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        sizes = (t, h, w)
        weights, biases = [], []
        for axis, proj in enumerate(self.qkv):
            keep = slice(2 * c, None) if sizes[axis] == 1 else slice(None)  # length-1 axis: v only
            weights.append(proj.weight.flatten(1)[keep])
            biases.append(proj.bias[keep])
        y = rearrange(self.norm(x), "b c t h w -> b t h w c")
        parts = F.linear(y, torch.cat(weights), torch.cat(biases)).split([len(bb) for bb in biases], dim=-1)
        total = 0
        for axis, z in enumerate(parts):
            if sizes[axis] == 1:
                total = total + z
                continue
            q, k, v = (rearrange(u, self._SEQ[axis], n=self.heads) for u in z.chunk(3, dim=-1))
            total = total + rearrange(_attend(q, k, v), self._BACK[axis])
        out = F.linear(total, self.out.weight.flatten(1), self.out.bias)
        return x + rearrange(out, "b t h w c -> b c t h w")


class ResidualBlock(nn.Module):
    """VideoGPT's AttentionResidualBlock: norm-act-conv3 (c -> c/2), norm-act-conv1 (c/2 -> c), axial attention
    (``heads=0``: no attention)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.conv = nn.Sequential(
            _norm(channels), nn.SiLU(), LatentConv3d(channels, channels // 2, 3, padding=1),
            _norm(channels // 2), nn.SiLU(), nn.Conv3d(channels // 2, channels, 1),
        )
        self.attn = AxialAttention(channels, heads) if heads else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x + self.conv(x))


def _strides(downsample: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per-layer strides: log2(factor) stride-2 layers per axis, the rest stride 1."""
    steps = [int(math.log2(d)) for d in downsample]
    return [tuple(2 if i < s else 1 for s in steps) for i in range(max(steps))]


def videogpt_encoder(c: int, in_channels: int, res_layers: int, heads: int, strides) -> list[nn.Module]:
    layers = []
    for i, s in enumerate(strides):
        layers += [nn.Conv3d(in_channels if i == 0 else c, c, _kernel(s), stride=s, padding=1), nn.SiLU()]
    layers += [LatentConv3d(c, c, 3, padding=1)]
    return layers + [ResidualBlock(c, heads) for _ in range(res_layers)]


def patch_encoder(c: int, in_channels: int, res_layers: int, downsample: tuple[int, int, int]) -> list[nn.Module]:
    """A patchifying convolution (kernel = stride = the down-sampling factors: each patch projected on its own), a 3x3x3
    convolution and ``res_layers`` convolutional residual blocks at the latent resolution (no attention: the encoder
    only has to describe its own patch and its neighbours)."""
    layers = [nn.Conv3d(in_channels, c, tuple(downsample), stride=tuple(downsample)), nn.SiLU(),
              LatentConv3d(c, c, 3, padding=1)]
    return layers + [ResidualBlock(c, 0) for _ in range(res_layers)]


def _channels_first(z: torch.Tensor) -> torch.Tensor:
    """A contiguous (b, d, t, h, w) copy of a code grid: rearranged from rows it is a channels-last view, which the
    convolutions propagate and PyTorch's CPU GroupNorm runs much slower on."""
    return z.contiguous()


def _kernel(stride: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(4 if s == 2 else 3 for s in stride)


class VideoTokenizer(ModelMixin, ConfigMixin):
    """``encode(video (b, 3, T, H, W)) -> tokens (b, t, h, w)``; ``decode(tokens) -> video``."""

    @register_to_config
    def __init__(
        self,
        frames: int = 4,
        size: int = 96,
        in_channels: int = 3,
        hidden_channels: int = 128,
        res_layers: int = 2,
        encoder_res_layers: int = 0,
        attn_heads: int = 2,
        embedding_dim: int = 32,
        codebook_size: int = 2048,
        downsample: tuple[int, int, int] = (4, 4, 4),
        ema_decay: float = 0.99,
        commitment_weight: float = 0.25,
        encoder_type: str = "patch",
        up_channels: int = 64,
        codebook_restart: str = "error",
    ):
        super().__init__()
        for d in downsample:
            if d < 1 or d & (d - 1):
                raise ValueError(f"downsample factors must be powers of two, got {downsample}")
        if encoder_type not in ("patch", "videogpt"):
            raise ValueError(f"encoder_type must be 'patch' or 'videogpt', got {encoder_type!r}")
        strides = _strides(tuple(downsample))
        c = hidden_channels
        # no residual blocks in the encoder by default: they bought no PSNR at equal CPU time and slow tokenize
        if encoder_type == "patch":
            enc = patch_encoder(c, in_channels, encoder_res_layers, tuple(downsample))
        else:
            enc = videogpt_encoder(c, in_channels, encoder_res_layers, attn_heads, strides)
        enc += [_norm(c), nn.SiLU(), nn.Conv3d(c, embedding_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.codebook = EMACodebook(codebook_size, embedding_dim, decay=ema_decay, restart=codebook_restart)
        dec = [nn.Conv3d(embedding_dim, c, 1)]
        dec += [ResidualBlock(c, attn_heads) for _ in range(res_layers)]
        dec += [_norm(c), nn.SiLU()]
        width = up_channels
        for i, s in enumerate(reversed(strides)):
            last = i == len(strides) - 1
            out = in_channels if last else width
            dec += [LatentConvTranspose3d(c if i == 0 else width, out, _kernel(s), stride=s, padding=1)]
            if not last:
                dec += [nn.SiLU()]
        self.decoder = nn.Sequential(*dec)

    def flops_per_sample(self, trains: bool = True) -> int | None:
        """FLOPs of one training clip through this model, encoder and decoder (`forward_flops`)."""
        c = self.config
        clip = (1, c.in_channels, c.frames, c.size, c.size)
        return forward_flops(self, lambda g: g.decode(g.encode(torch.zeros(clip))), trains)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        t, h, w = self.config.downsample
        return (self.config.frames // t, self.config.size // h, self.config.size // w)

    @property
    def tokens_per_clip(self) -> int:
        return math.prod(self.latent_shape)

    def _projection(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(W, b) of the encoder's last 1x1 convolution when ``features`` are narrower than the codes (128 vs 256
        with the paper's code size): the code search then runs in feature space, half the work
        (`EMACodebook.nearest`). Codes narrower than the features (32 by default) are searched as they are."""
        proj = self.encoder[-1]
        return (proj.weight.flatten(1), proj.bias) if features.shape[1] < proj.out_channels else None

    def _quantize(self, video: torch.Tensor):
        features = self.encoder[:-1](video)
        z = self.encoder[-1](features)
        b, d, t, h, w = z.shape
        flat = rearrange(z, "b d t h w -> (b t h w) d")
        project = self._projection(features)
        search = (rearrange(features, "b c t h w -> (b t h w) c"), project) if project else None
        z_q, idx, commit, stats = self.codebook(flat, search)
        z_q = _channels_first(rearrange(z_q, "(b t h w) d -> b d t h w", b=b, t=t, h=h, w=w))
        return z_q, idx.view(b, t, h, w), commit, stats

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``video: (b, 3, T, H, W)`` in [-0.5, 0.5] -> ``tokens: (b, t, h, w)`` int64 (the code search in fp32
        even under autocast)."""
        features = self.encoder[:-1](video.to(self.dtype))
        proj, project = self.encoder[-1], self._projection(features)
        b, _, t, h, w = features.shape
        with full_precision(features.device):
            rows = features if project else proj(features.to(proj.weight.dtype))
            idx = self.codebook.nearest(rearrange(rows.float(), "b d t h w -> (b t h w) d"), project=project)
        return idx.view(b, t, h, w)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens: (b, t, h, w)`` -> ``video: (b, 3, T, H, W)`` in about [-0.5, 0.5]."""
        z_q = _channels_first(rearrange(self.codebook.lookup(tokens.long()), "b t h w d -> b d t h w"))
        return self.decoder(z_q.to(self.dtype))

    def decode_frames(self, tokens: torch.Tensor) -> np.ndarray:
        """Flat tokens ``(k, n)`` (as the denoisers see them) -> uint8 frames ``(k, T, S, S, 3)``."""
        grid = tokens.to(self.device).reshape(len(tokens), *self.latent_shape)
        return np.stack([to_uint8(v) for v in self.decode(grid)])

    def forward(self, video: torch.Tensor) -> dict:
        """Training pass: reconstruction, the paper's loss (MSE/0.06 + 0.25 * commitment) and codebook stats."""
        z_q, idx, commit, stats = self._quantize(video)
        recon = self.decoder(z_q)
        recon_loss = F.mse_loss(recon.float(), video.float()) / DATA_VARIANCE
        loss = recon_loss + self.config.commitment_weight * commit
        return {"loss": loss, "recon_loss": recon_loss, "commitment": commit, "recon": recon, "tokens": idx, **stats}
