"""The VQ-Diffusion training objective for a `MaskReplaceScheduler`: the variational bound per token and the
auxiliary x_0 cross-entropy."""

from __future__ import annotations

import torch

from vidpolicy.pretrain.schedule import MaskReplaceScheduler


def true_posterior_kl(scheduler: MaskReplaceScheduler, log_x0_pred: torch.Tensor, x0: torch.Tensor,
                      x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) per token, ``(b, n)``, for levels t >= 1.

    With x_0 known, q(x_{t-1} | x_t, x_0) takes one value on x_0, one on x_t, one on [MASK] and one shared by
    every other class, so the KL needs only gathers and one sum over the model's posterior.
    """
    K = log_x0_pred.shape[-1]
    dev = log_x0_pred.device
    s = (t - 1).clamp(min=0)
    col = lambda v: v.to(torch.float64).to(dev)[:, None]  # noqa: E731
    a_s, b_s, g_s = (col(v) for v in scheduler.cumulative(s, K))
    alpha, beta, gamma = (col(v) for v in scheduler.between(s, t, K))
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
    log_tok, log_mask = scheduler.posterior_parts(log_x0_pred, x_t, t, s)
    lp_x0 = log_tok.gather(-1, x0[..., None]).squeeze(-1).double()
    lp_xt = log_tok.gather(-1, x_t.clamp(max=K - 1)[..., None]).squeeze(-1).double()
    lp_other_sum = log_tok.sum(-1).double() - lp_x0 - torch.where(is_mask | same, 0.0, lp_xt)
    xlogx = lambda q: torch.where(q > 0, q * torch.log(q.clamp(min=1e-300)), 0.0)  # noqa: E731
    neg_entropy = xlogx(q_x0) + xlogx(q_xt) + xlogx(q_mask) + n_other * xlogx(q_other)
    cross = q_x0 * lp_x0 + torch.where(q_xt > 0, q_xt * lp_xt, 0.0) + torch.where(
        q_mask > 0, q_mask * log_mask.squeeze(-1).double(), 0.0) + q_other * lp_other_sum
    return (neg_entropy - cross).float()


def loss_terms(scheduler: MaskReplaceScheduler, log_x0_pred: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
               t: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (variational-bound term, auxiliary x_0 cross-entropy), averaged over (unpadded) tokens.

    t = 1: decoder NLL -log p(x_0 | x_1). t > 1: KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)).
    """
    log_x0_pred = log_x0_pred.float()
    nll = -log_x0_pred.gather(-1, x0[..., None]).squeeze(-1)
    kl = true_posterior_kl(scheduler, log_x0_pred, x0, x_t, t.clamp(min=1))
    vb = torch.where((t == 1)[:, None], nll, kl)
    mask = torch.ones_like(vb) if mask is None else mask.float()
    denom = mask.sum(1).clamp(min=1)
    return (vb * mask).sum(1) / denom, (nll * mask).sum(1) / denom
