"""Does a policy's video model imagine the future better than copying the present? On held-out expert episodes
(seeds no policy trained on): token accuracy and PSNR of the imagined clip ``gap`` steps ahead, beside the same
scores for copying the last history clip. Both are decoded by the policy's own tokenizer, so neither is judged
through a different bottleneck."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def imagination_scores(policy_dir: str | Path, heldout: str | Path, samples: int = 96, every: int = 5,
                       batch: int = 16) -> dict:
    from vidpolicy.datasets.robot import RobotEpisodes, clip_indices
    from vidpolicy.finetune.data import tokenize_episodes
    from vidpolicy.policies.vpdd import VPDDPolicy
    from vidpolicy.pretrain.foresight import copy_last_clip, future_scores

    pol = VPDDPolicy.from_pretrained(policy_dir)
    eps = RobotEpisodes(heldout, size=pol.image_size)
    with tempfile.TemporaryDirectory() as d:
        toks = tokenize_episodes(eps, Path(policy_dir) / "tokenizer", Path(d) / "tokens")
    gap, frames = pol.config.gap, pol.tokenizer.config.frames
    items = [(i, t) for i in range(len(eps)) for t in range(0, eps.episodes[i].length - gap, every)]
    pick = [items[k] for k in np.random.default_rng(0).choice(len(items), min(samples, len(items)), replace=False)]
    scores: dict[str, list[dict]] = {"imagined": [], "copy_history": []}
    for b in range(0, len(pick), batch):
        chunk = pick[b : b + batch]
        hist = torch.from_numpy(np.stack([toks[i][t] for i, t in chunk]).astype(np.int64))
        future = torch.from_numpy(np.stack([toks[i][t + gap] for i, t in chunk]).astype(np.int64))
        state = pol.processor.state(np.stack([eps.states(i)[t] for i, t in chunk]) if eps.state_key else None)
        words = [eps.episodes[i].task for i, _ in chunk]
        video, _ = pol.plan(hist, pol.text(words), generator=torch.Generator().manual_seed(b), state=state)
        copy = copy_last_clip(hist, future.shape[1])
        for name, pred in (("imagined", video), ("copy_history", copy)):
            decoded = pol.decode_tokens(pred)
            for j, (i, t) in enumerate(chunk):
                n = eps.episodes[i].length
                truth = eps.frames(i)[clip_indices(t + gap, frames, n)[0]]
                scores[name].append(future_scores(pred[j : j + 1], future[j : j + 1], decoded[j], truth))
    return {"samples": len(pick), "gap": gap, **{
        name: {k: float(np.mean([s[k] for s in rows])) for k in ("token_accuracy", "psnr")}
        for name, rows in scores.items()}}
