"""`MaskReplaceSchedule`: the VQ-Diffusion forward process, its posterior, respaced sampling steps and the loss.

Classes ``0..K-1`` are tokens and ``K`` is [MASK] (absorbing). Cumulative tables are indexed ``0..T`` with index 0
the clean data (ᾱ=1, γ̄=0), so step ``t`` of diffusers' `VQDiffusionScheduler` is our ``t + 1``. Between any two
levels ``s < t`` the process is again mask-and-replace, with ``α = ᾱ_t/ᾱ_s``, ``1-γ = (1-γ̄_t)/(1-γ̄_s)`` and
``Kβ = 1-α-γ``, which gives the exact skip posterior ``q(x_s | x_t, x_0)`` used for respaced sampling (S << T).
Everything is in log space, channel-last: log-probabilities are ``(b, n, K)`` or ``(b, n, K+1)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LOG_EPS = math.log(1e-30)


def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp(min=1e-30))


class MaskReplaceSchedule:
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

    @classmethod
    def with_replace(cls, num_timesteps: int = 100, replace_mass: float = 0.1) -> "MaskReplaceSchedule":
        """A schedule with a real uniform-replace mass, as the VQ-Diffusion paper (ᾱ_T + γ̄_T = 1 - replace)."""
        return cls(num_timesteps, 0.99999, 9e-6, 9e-6, 1.0 - replace_mass - 9e-6)

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

    def set_timesteps(self, num_steps: int) -> list[int]:
        """Respaced levels ``T = t_0 > t_1 > ... > 0`` for ``num_steps`` reverse steps."""
        num_steps = max(1, min(num_steps, self.num_timesteps))
        levels = np.round(np.linspace(self.num_timesteps, 0, num_steps + 1)).astype(int)
        return sorted(set(levels.tolist()), reverse=True)

    # ---- forward process ------------------------------------------------------------------------------------
    def q_probs(self, x0: torch.Tensor, t: torch.Tensor, K: int) -> torch.Tensor:
        """q(x_t | x_0) as probabilities ``(b, n, K+1)``."""
        a, b, g = (v.to(torch.float32).to(x0.device)[:, None, None] for v in self.cumulative(t, K))
        probs = b.expand(x0.shape[0], x0.shape[1], K).clone()
        probs = torch.cat([probs, g.expand(x0.shape[0], x0.shape[1], 1)], dim=-1)
        probs.scatter_add_(-1, x0[..., None], a.expand(x0.shape[0], x0.shape[1], 1))
        return probs

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, K: int, generator: torch.Generator | None = None):
        """Sample x_t ~ q(x_t | x_0): keep with ᾱ_t, uniform class with Kβ̄_t, [MASK] with γ̄_t. ``x0: (b, n)``."""
        a, _, g = (v.to(torch.float32).to(x0.device)[:, None] for v in self.cumulative(t, K))
        u = torch.rand(x0.shape, generator=generator, device=x0.device)
        rand_cls = torch.randint(0, K, x0.shape, generator=generator, device=x0.device)
        out = torch.where(u < a, x0, rand_cls)
        return torch.where(u >= 1 - g, torch.full_like(x0, K), out)

    # ---- posterior ------------------------------------------------------------------------------------------
    def _posterior_parts(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor):
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
        tok, mask = self._posterior_parts(log_x0, x_t, t, s)
        return torch.cat([tok, mask], dim=-1)

    def true_posterior_kl(self, log_x0_pred: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                          t: torch.Tensor) -> torch.Tensor:
        """KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) per token, ``(b, n)``, for levels t >= 1.

        With x_0 known, q(x_{t-1} | x_t, x_0) takes one value on x_0, one on x_t, one on [MASK] and one shared by
        every other class, so the KL needs only gathers and one sum over the model's posterior.
        """
        K = log_x0_pred.shape[-1]
        dev = log_x0_pred.device
        s = (t - 1).clamp(min=0)
        col = lambda v: v.to(torch.float64).to(dev)[:, None]  # noqa: E731
        a_s, b_s, g_s = (col(v) for v in self.cumulative(s, K))
        alpha, beta, gamma = (col(v) for v in self.between(s, t, K))
        is_mask = x_t == K
        same = x_t == x0
        # unnormalised q over (x_0, x_t, [MASK], each other class) and how many "other" classes there are
        u_x0 = torch.where(is_mask, gamma * (a_s + b_s), torch.where(same, (alpha + beta) * (a_s + b_s),
                                                                      beta * (a_s + b_s)))
        u_xt = torch.where(is_mask | same, 0.0, (alpha + beta) * b_s)
        u_mask = torch.where(is_mask, g_s, 0.0)
        u_other = torch.where(is_mask, gamma * b_s, beta * b_s)
        n_other = torch.where(is_mask | same, K - 1.0, K - 2.0)
        z = u_x0 + u_xt + u_mask + n_other * u_other
        q_x0, q_xt, q_mask, q_other = (v / z for v in (u_x0, u_xt, u_mask, u_other))
        log_tok, log_mask = self._posterior_parts(log_x0_pred, x_t, t, s)
        lp_x0 = log_tok.gather(-1, x0[..., None]).squeeze(-1).double()
        lp_xt = log_tok.gather(-1, x_t.clamp(max=K - 1)[..., None]).squeeze(-1).double()
        lp_other_sum = log_tok.sum(-1).double() - lp_x0 - torch.where(is_mask | same, 0.0, lp_xt)
        xlogx = lambda q: torch.where(q > 0, q * torch.log(q.clamp(min=1e-300)), 0.0)  # noqa: E731
        neg_entropy = xlogx(q_x0) + xlogx(q_xt) + xlogx(q_mask) + n_other * xlogx(q_other)
        cross = q_x0 * lp_x0 + torch.where(q_xt > 0, q_xt * lp_xt, 0.0) + torch.where(
            q_mask > 0, q_mask * log_mask.squeeze(-1).double(), 0.0) + q_other * lp_other_sum
        return (neg_entropy - cross).float()

    def step(self, log_x0: torch.Tensor, x_t: torch.Tensor, t: int, s: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample x_s ~ p(x_s | x_t) by the Gumbel-max trick (noise drawn as diffusers does, class-major)."""
        b = x_t.shape[0]
        tt = torch.full((b,), t, dtype=torch.long)
        ss = torch.full((b,), s, dtype=torch.long)
        logp = log_x0.float() if s == 0 else self.posterior(log_x0, x_t, tt, ss)
        u = torch.rand((b, logp.shape[-1], logp.shape[1]), generator=generator, device=logp.device).transpose(1, 2)
        gumbel = -torch.log(-torch.log(u + 1e-30) + 1e-30)
        return (logp + gumbel).argmax(-1)

    # ---- loss -----------------------------------------------------------------------------------------------
    def loss_terms(self, log_x0_pred: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (variational-bound term, auxiliary x_0 cross-entropy), averaged over (unpadded) tokens.

        t = 1: decoder NLL -log p(x_0 | x_1). t > 1: KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)).
        """
        log_x0_pred = log_x0_pred.float()
        nll = -log_x0_pred.gather(-1, x0[..., None]).squeeze(-1)
        kl = self.true_posterior_kl(log_x0_pred, x0, x_t, t.clamp(min=1))
        vb = torch.where((t == 1)[:, None], nll, kl)
        mask = torch.ones_like(vb) if mask is None else mask.float()
        denom = mask.sum(1).clamp(min=1)
        return (vb * mask).sum(1) / denom, (nll * mask).sum(1) / denom
