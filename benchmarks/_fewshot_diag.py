"""Why one few-shot policy acts better than another, measured offline on held-out episodes of the target tasks
(expert episodes at the evaluation seeds, never trained on): how well each policy's video model imagines the future
clip ``gap`` steps ahead (token accuracy, beside copying the history clip), and how close its first action is to the
expert's (normalised MSE, bin accuracy)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def heldout_diagnostics(out: Path, tasks: str, size: int, policies: list[str], episodes: int = 2,
                        seed: int = 1000, samples: int = 96, every: int = 5) -> dict:
    from vidpolicy.datasets.robot import RobotEpisodes
    from vidpolicy.envs.collect import CollectConfig, collect
    from vidpolicy.finetune.data import tokenize_episodes
    from vidpolicy.finetune.offline import offline_eval
    from vidpolicy.finetune.policy import ImaginationPolicy

    held = out / "heldout_demos"
    collect(CollectConfig(tasks=tasks, episodes=episodes, out=str(held), size=size, seed=seed))
    eps = RobotEpisodes(str(held), size=size)
    result = {"episodes_per_task": episodes, "seeds_from": seed, "samples": samples}
    for name in policies:
        pol = ImaginationPolicy.load(out / name)
        with tempfile.TemporaryDirectory() as d:  # not cached: the held-out set grows when --tasks changes
            toks = tokenize_episodes(eps, pol.tokenizer, Path(d) / "tokens.npz")
        gap = int(pol.config.get("gap", 20))
        items = [(i, t) for i in range(len(eps)) for t in range(0, eps.episodes[i].length - gap, every)]
        rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
        pick = [items[k] for k in rng.choice(len(items), min(samples, len(items)), replace=False)]
        imagined, copied = [], []
        for b in range(0, len(pick), 16):
            chunk = pick[b : b + 16]
            hist = torch.from_numpy(np.stack([toks[i][t] for i, t in chunk]).astype(np.int64))
            future = np.stack([toks[i][t + gap] for i, t in chunk]).astype(np.int64)
            states = np.stack([eps.states(i)[t] for i, t in chunk]) if eps.state_key else None
            video, _ = pol.plan(hist, pol.text([eps.episodes[i].task for i, _ in chunk]), generator=g,
                                state=pol.state_input(states))
            imagined += list((video.numpy() == future).mean(1))
            copied += list((hist.numpy() == future).mean(1))
        result[name] = {"imagined_token_accuracy": float(np.mean(imagined)),
                        "copy_history_token_accuracy": float(np.mean(copied)),
                        "first_action": offline_eval(out / name, eps, toks, list(range(len(eps))),
                                                     max_samples=samples)}
    return result
