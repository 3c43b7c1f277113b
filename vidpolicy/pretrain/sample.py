"""Reverse sampling: from all-[MASK] to tokens in S respaced steps, with top-r truncation and guidance.

Works on several token streams at once (future video, and in fine-tuning the action tokens) that share one
timestep: ``predict(x, t) -> {name: log p(x̃_0)}`` is called once per step for all streams.
"""

from __future__ import annotations

from typing import Callable

import torch

from vidpolicy.pretrain.schedule import MaskReplaceScheduler


def truncate(log_x0: torch.Tensor, r: float | None, first: int = 32) -> torch.Tensor:
    """Keep the most likely classes up to cumulative mass ``r`` (always the top one), and every class as likely as the
    last one kept (bf16 logits tie often; a tie is kept or dropped whole); the rest get log 1e-30. The threshold comes
    from each row's ``first`` most likely classes, and from a full sort only for the rows that need more."""
    if r is None or r >= 1.0:
        return log_x0
    flat = log_x0.reshape(-1, log_x0.shape[-1])
    top = flat.topk(min(first, flat.shape[-1]), dim=-1).values  # each row's classes, most likely first
    kept = _kept(top, r)
    threshold = top.gather(-1, kept[:, None] - 1)
    wider = (kept == top.shape[-1]).nonzero().squeeze(-1)  # rows whose mass r may lie past their first classes
    if len(wider) and top.shape[-1] < flat.shape[-1]:
        full = flat[wider].sort(dim=-1, descending=True).values
        threshold[wider] = full.gather(-1, _kept(full, r)[:, None] - 1)
    keep = (flat >= threshold).view_as(log_x0)
    return torch.where(keep, log_x0, torch.full_like(log_x0, -69.0))


def _kept(sorted_lp: torch.Tensor, r: float) -> torch.Tensor:
    """How many of each row's classes (log p, sorted descending) lie before cumulative mass ``r`` (at least one)."""
    mass = sorted_lp.exp().cumsum(-1)
    before = torch.cat([torch.zeros_like(mass[:, :1]), mass[:, :-1]], -1)  # not mass - p: that rounds off r's edge
    return (before < r).sum(-1).clamp(min=1)


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance in log space, renormalised."""
    return torch.log_softmax(uncond + scale * (cond - uncond), dim=-1)


@torch.no_grad()
def sample_tokens(predict: Callable[[dict, int], dict], scheduler: MaskReplaceScheduler,
                  streams: dict[str, tuple[int, int]], batch: int, steps: int,
                  top_r: float | dict[str, float | None] | None = None,
                  generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                  callback: Callable[[int, dict], None] | None = None) -> dict[str, torch.Tensor]:
    """``streams``: name -> (tokens per sample, classes K); ``top_r``: one truncation for every stream or one per
    stream name. Returns name -> LongTensor ``(batch, n)``, no [MASK]."""
    r_of = top_r if isinstance(top_r, dict) else {k: top_r for k in streams}
    x = {k: torch.full((batch, n), K, dtype=torch.long, device=device) for k, (n, K) in streams.items()}
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps.tolist():
        log_x0 = predict(x, t)
        for k in x:
            x[k] = scheduler.step(truncate(log_x0[k], r_of.get(k)), t, x[k], generator).prev_sample
        if callback is not None:
            callback(scheduler.previous_timestep(t), x)
    return x
