"""`MaskReplaceScheduler`: the VQ-Diffusion forward process, its posterior and respaced sampling steps, in the shape
of a diffusers scheduler (``set_timesteps``, ``add_noise``, ``step``; ``save_pretrained`` / ``from_pretrained``).

Classes ``0..K-1`` are tokens and ``K`` is [MASK] (absorbing). Cumulative tables are indexed ``0..T`` with index 0
the clean data (ᾱ=1, γ̄=0), so step ``t`` of diffusers' `VQDiffusionScheduler` is our ``t + 1``. Between any two
levels ``s < t`` the process is again mask-and-replace, with ``α = ᾱ_t/ᾱ_s``, ``1-γ = (1-γ̄_t)/(1-γ̄_s)`` and
``Kβ = 1-α-γ``, which gives the exact skip posterior ``q(x_s | x_t, x_0)`` used for respaced sampling (S << T).
Everything is in log space, channel-last: log-probabilities are ``(b, n, K)`` or ``(b, n, K+1)``. Unlike diffusers'
`VQDiffusionScheduler`, the number of classes ``K`` is read from the inputs, not fixed in the config: one scheduler
serves the video tokens and the action tokens. The training loss lives in `vidpolicy.pretrain.losses`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import atomic_dir
from vidpolicy.common.versions import check_model, stamp_model

LOG_EPS = math.log(1e-30)
SUBFOLDER = "scheduler"  # beside the denoiser in a pretrain run and a policy directory


def draw(shape, generator: torch.Generator | None, device: torch.device, high: int | None = None) -> torch.Tensor:
    """Uniform in [0, 1) (or integers in [0, ``high``)) drawn on the generator's device, then moved to ``device``:
    a CPU generator drives sampling on a GPU too, one seed giving one stream on any device."""
    where = generator.device if generator is not None else device
    if high is None:
        return torch.rand(shape, generator=generator, device=where).to(device)
    return torch.randint(0, high, shape, generator=generator, device=where).to(device)


def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp(min=1e-30))


@dataclass
class MaskReplaceSchedulerOutput(BaseOutput):
    """``prev_sample``: the tokens at the next (lower) level, LongTensor ``(b, n)``."""

    prev_sample: torch.Tensor


class MaskReplaceScheduler(SchedulerMixin, ConfigMixin):
    config_name = "scheduler_config.json"
    order = 1

    @register_to_config
    def __init__(self, num_timesteps: int = 100, alpha_start: float = 0.99999, alpha_end: float = 9e-6,
                 gamma_start: float = 9e-6, gamma_end: float = 0.99999):
        """Linear cumulative schedules as the paper's code (defaults: replace mass ~1e-6, i.e. pure masking)."""
        self.num_timesteps = T = num_timesteps
        r = np.arange(T, dtype=np.float64) / max(T - 1, 1)
        att = np.concatenate([[1.0], alpha_start + r * (alpha_end - alpha_start)])
        ctt = np.concatenate([[0.0], gamma_start + r * (gamma_end - gamma_start)])
        if np.any(att + ctt > 1 + 1e-9) or np.any(np.diff(att) > 0) or np.any(np.diff(ctt) < 0):
            raise ValueError("schedule must keep ᾱ decreasing, γ̄ increasing and ᾱ + γ̄ <= 1")
        self.alpha_bar = torch.tensor(att)
        self.gamma_bar = torch.tensor(ctt)
        self.set_timesteps(T)  # every level until the caller respaces them

    @classmethod
    def with_replace(cls, num_timesteps: int = 100, replace_mass: float = 0.1) -> "MaskReplaceScheduler":
        """A schedule with a real uniform-replace mass, as the VQ-Diffusion paper (ᾱ_T + γ̄_T = 1 - replace)."""
        return cls(num_timesteps=num_timesteps, gamma_end=1.0 - replace_mass - 9e-6)

    @classmethod
    def named(cls, kind: str, num_timesteps: int, replace_mass: float = 0.1) -> "MaskReplaceScheduler":
        """``paper`` (pure masking) or ``replace`` (a real uniform-replace mass): pretrain's ``--schedule``."""
        if kind == "paper":
            return cls(num_timesteps=num_timesteps)
        if kind == "replace":
            return cls.with_replace(num_timesteps, replace_mass)
        raise VidpolicyError(f"--schedule: unknown schedule {kind!r} (paper or replace)")

    @classmethod
    def load(cls, run: str | Path, num_timesteps: int) -> "MaskReplaceScheduler":
        """The scheduler saved in ``run/scheduler``, checked against the denoiser's ``num_timesteps``."""
        where = Path(run) / SUBFOLDER
        if not (where / cls.config_name).exists():
            raise VidpolicyError(f"{where}: no {cls.config_name}; `vidpolicy pretrain` / `finetune` write it beside "
                                 "the denoiser")
        check_model(json.loads((where / cls.config_name).read_text()), where)
        scheduler = cls.from_pretrained(str(where))
        if scheduler.num_timesteps != num_timesteps:
            raise VidpolicyError(f"{where}: {scheduler.num_timesteps} diffusion steps, but the denoiser beside it was "
                                 f"trained with {num_timesteps}")
        return scheduler

    def save(self, run: str | Path) -> Path:
        """``save_pretrained`` into ``run/scheduler`` (atomically: no torn directory after a kill)."""
        with atomic_dir(Path(run) / SUBFOLDER) as tmp:
            self.save_pretrained(str(tmp))
            stamp_model(tmp / self.config_name)
        return Path(run) / SUBFOLDER

    # ---- tables ---------------------------------------------------------------------------------------------
    def cumulative(self, t: torch.Tensor, K: int):
        """(ᾱ_t, β̄_t, γ̄_t) as float64 tensors shaped like ``t``."""
        t = t.long().cpu()
        a, g = self.alpha_bar[t], self.gamma_bar[t]
        return a, (1 - a - g).clamp(min=0) / K, g

    def between(self, s: torch.Tensor, t: torch.Tensor, K: int):
        """One-hop parameters (α, β, γ) of q(x_t | x_s) for s < t."""
        a_s, _, g_s = self.cumulative(s, K)
        a_t, _, g_t = self.cumulative(t, K)
        alpha = a_t / a_s
        gamma = 1 - (1 - g_t) / (1 - g_s)
        return alpha, (1 - alpha - gamma).clamp(min=0) / K, gamma

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Respace the reverse process to ``num_inference_steps`` steps: ``self.timesteps`` are the levels
        ``T = t_0 > t_1 > ...`` a step starts from; each step lands on the next level, the last on 0."""
        n = max(1, min(num_inference_steps, self.num_timesteps))
        levels = sorted(set(np.round(np.linspace(self.num_timesteps, 0, n + 1)).astype(int).tolist()), reverse=True)
        self.timesteps = torch.tensor(levels[:-1], device=device)
        self._previous = dict(zip(levels[:-1], levels[1:]))

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The level a step from ``timestep`` lands on."""
        return self._previous[int(timestep)]

    # ---- forward process ------------------------------------------------------------------------------------
    def q_probs(self, x0: torch.Tensor, t: torch.Tensor, K: int) -> torch.Tensor:
        """q(x_t | x_0) as probabilities ``(b, n, K+1)``."""
        a, b, g = (v.to(torch.float32).to(x0.device)[:, None, None] for v in self.cumulative(t, K))
        probs = b.expand(x0.shape[0], x0.shape[1], K).clone()
        probs = torch.cat([probs, g.expand(x0.shape[0], x0.shape[1], 1)], dim=-1)
        probs.scatter_add_(-1, x0[..., None], a.expand(x0.shape[0], x0.shape[1], 1))
        return probs

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, K: int, generator: torch.Generator | None = None):
        """x_t ~ q(x_t | x_0): keep with ᾱ_t, uniform class with Kβ̄_t, [MASK] with γ̄_t. ``x0: (b, n)``."""
        a, _, g = (v.to(torch.float32).to(x0.device)[:, None] for v in self.cumulative(t, K))
        u = draw(x0.shape, generator, x0.device)
        rand_cls = draw(x0.shape, generator, x0.device, high=K)
        out = torch.where(u < a, x0, rand_cls)
        return torch.where(u >= 1 - g, torch.full_like(x0, K), out)

    # ---- posterior ------------------------------------------------------------------------------------------
    def posterior_parts(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor):
        """Normalised log p(x_s | x_t) split as (token classes ``(b, n, K)``, [MASK] ``(b, n, 1)``).

        Never materialises a (b, n, K) transition table: each one is a per-token constant plus a correction at the
        observed class x_t, so the work is a handful of elementwise passes over ``log_x0``.
        """
        K = log_x0.shape[-1]
        dev = log_x0.device
        col = lambda v: v.to(torch.float32).to(dev)[:, None, None]  # noqa: E731
        a_t, b_t, g_t = (col(v) for v in self.cumulative(t, K))
        a_s, b_s, g_s = (col(v) for v in self.cumulative(s, K))
        alpha, beta, gamma = (col(v) for v in self.between(s, t, K))
        is_mask = (x_t == K)[..., None]
        idx = x_t.clamp(max=K - 1)[..., None]
        # w_k = log p(x_0 = k) - log q(x_t | x_0 = k)
        w = log_x0.float() - torch.where(is_mask, _log(g_t), _log(b_t))
        w = w.scatter_add(-1, idx, torch.where(is_mask, 0.0, _log(b_t) - _log(a_t + b_t)).expand_as(idx).float())
        W = torch.logsumexp(w, dim=-1, keepdim=True)
        w = w - W
        # Σ_k w_k q(x_s = j | x_0 = k) for j < K, and for j = [MASK]
        m_tok = torch.logaddexp(w + _log(a_s), _log(b_s))
        # + log q(x_t | x_s = j): γ or β everywhere, α + β at j = x_t, 1 / 0 for the [MASK] column
        out_tok = m_tok + torch.where(is_mask, _log(gamma), _log(beta)) + W
        out_tok = out_tok.scatter_add(-1, idx, torch.where(is_mask, 0.0, _log(alpha + beta) - _log(beta))
                                      .expand_as(idx).float())
        out_mask = _log(g_s) + torch.where(is_mask, 0.0, LOG_EPS) + W
        z = torch.logaddexp(torch.logsumexp(out_tok, dim=-1, keepdim=True), out_mask)
        return out_tok - z, out_mask - z

    def posterior(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """log p(x_s | x_t) = log Σ_k q(x_s | x_t, x_0=k) p(x_0=k): ``(b, n, K+1)``; ``log_x0: (b, n, K)``."""
        tok, mask = self.posterior_parts(log_x0, x_t, t, s)
        return torch.cat([tok, mask], dim=-1)

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True):
        """Sample x_s ~ p(x_s | x_t) by the Gumbel-max trick (noise drawn as diffusers does, class-major), where
        ``model_output`` is log p(x̃_0) ``(b, n, K)``, ``sample`` is x_t ``(b, n)`` and s the next level."""
        log_x0, x_t, t = model_output, sample, int(timestep)
        s = self.previous_timestep(t)
        b = x_t.shape[0]
        tt = torch.full((b,), t, dtype=torch.long)
        ss = torch.full((b,), s, dtype=torch.long)
        logp = log_x0.float() if s == 0 else self.posterior(log_x0, x_t, tt, ss)
        u = draw((b, logp.shape[-1], logp.shape[1]), generator, logp.device).transpose(1, 2)
        gumbel = -torch.log(-torch.log(u + 1e-30) + 1e-30)
        prev = (logp + gumbel).argmax(-1)
        return MaskReplaceSchedulerOutput(prev_sample=prev) if return_dict else (prev,)
