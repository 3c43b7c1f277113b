"""Does a policy's video model imagine the future better than copying the present, and does its action model act on
that future? On held-out expert episodes (seeds no policy trained on):

- the imagined clip ``gap`` steps ahead: token accuracy and PSNR, beside the same scores for copying the last
  history clip. Both are decoded by the policy's own tokenizer, so neither is judged through another bottleneck.
- the action chunk planned with each of four futures in the action model's view: the imagined one (how the policy
  acts), the true one (imagination made perfect), the last history clip (nothing moves) and another sample's true
  future (a wrong one), each noised to the sampler's t at every step as in training; the true and the wrong one
  also shown whole at every step (``_clean``). Normalised MSE against the expert's actions, beside predicting the
  demos' mean action. Imagined far above true: imagination errors cost actions. Wrong about equal to true: what
  the sampler shows the action model of a future does not move its actions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

FUTURES = ("imagined", "true", "copy_history", "another_sample")
CLEAN = ("true", "another_sample")  # also shown whole at every step (t = 0), not noised to the step's t


def imagination_scores(policy_dir: str | Path, heldout: str | Path, samples: int = 96, every: int = 5,
                       batch: int = 16, episodes: list[int] | None = None) -> dict:
    """``episodes``: the held-out ones of ``heldout`` (default: all of it)."""
    from vidpolicy.datasets.robot import RobotEpisodes, clip_indices
    from vidpolicy.finetune.data import tokenize_episodes
    from vidpolicy.policies.vpdd import VPDDPolicy
    from vidpolicy.pretrain.foresight import copy_last_clip, future_scores

    pol = VPDDPolicy.from_pretrained(policy_dir)
    eps = RobotEpisodes(heldout, size=pol.image_size)
    with tempfile.TemporaryDirectory() as d:
        toks = tokenize_episodes(eps, Path(policy_dir) / "tokenizer", Path(d) / "tokens")
    gap, frames, H = pol.config.gap, pol.tokenizer.config.frames, pol.config.horizon
    items = [(i, t) for i in (range(len(eps)) if episodes is None else episodes)
             for t in range(0, eps.episodes[i].length - max(gap, H), every)]
    pick = [items[k] for k in np.random.default_rng(0).choice(len(items), min(samples, len(items)), replace=False)]
    futures = torch.from_numpy(np.stack([toks[i][t + gap] for i, t in pick]).astype(np.int64))
    wrong = futures.roll(1, 0)  # each sample gets the next one's true future
    scores: dict[str, list[dict]] = {"imagined": [], "copy_history": []}
    actions: dict[str, list[np.ndarray]] = {name: [] for name in FUTURES}
    for b in range(0, len(pick), batch):
        chunk, future = pick[b : b + batch], futures[b : b + batch]
        hist = torch.from_numpy(np.stack([toks[i][t] for i, t in chunk]).astype(np.int64))
        state = pol.processor.state(np.stack([eps.states(i)[t] for i, t in chunk]) if eps.state_key else None)
        text = pol.text([eps.episodes[i].task for i, _ in chunk])
        copy = copy_last_clip(hist, future.shape[1])
        shown = dict(zip(FUTURES, (None, future, copy, wrong[b : b + batch])))
        for name, seen in [*shown.items(), *((f"{n}_clean", shown[n]) for n in CLEAN)]:
            video, acts = pol.plan(hist, text, generator=torch.Generator().manual_seed(b), state=state, future=seen,
                                   future_t=0 if name.endswith("_clean") else None)
            actions.setdefault(name, []).append(acts)
            if name == "imagined":
                imagined = video
        for name, pred in (("imagined", imagined), ("copy_history", copy)):
            decoded = pol.decode_tokens(pred)
            for j, (i, t) in enumerate(chunk):
                truth = eps.frames(i)[clip_indices(t + gap, frames, eps.episodes[i].length)[0]]
                scores[name].append(future_scores(pred[j : j + 1], future[j : j + 1], decoded[j], truth))
    expert = np.stack([eps.actions(i)[t : t + H] for i, t in pick])
    mean, var = np.broadcast_to(pol.processor.binner.mean, expert.shape), eps.action_variance()
    return {"samples": len(pick), "gap": gap, **{
        name: {k: float(np.mean([s[k] for s in rows])) for k in ("token_accuracy", "psnr")}
        for name, rows in scores.items()},
        "actions_given_future": {**{name: action_errors(np.concatenate(a), expert, var)
                                    for name, a in actions.items()},
                                 "demos_mean": action_errors(mean, expert, var)}}


def action_errors(pred: np.ndarray, expert: np.ndarray, var: np.ndarray) -> dict:
    """Normalised MSE (per dimension over ``var``, averaged) of ``pred (n, H, D)``: first action and whole chunk;
    and the chunk's mean |action| over the expert's (below 1: the policy would move more slowly than the expert)."""
    err = (pred - expert) ** 2 / var
    return {"first_action": float(err[:, 0].mean()), "chunk": float(err.mean()),
            "magnitude": float(np.abs(pred).mean() / max(np.abs(expert).mean(), 1e-12))}
