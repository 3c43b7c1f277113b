"""Offline check of a policy on held-out episodes: normalised action MSE and bin accuracy of the first action,
beside what predicting the training actions' mean scores (normalised MSE about 1: the bar a policy has to clear)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.datasets.robot import RobotEpisodes
from vidpolicy.policies.vpdd import VPDDPolicy


@torch.no_grad()
def offline_eval(policy_dir: str | Path, eps: RobotEpisodes, tokens: dict[int, np.ndarray], episodes: list[int],
                 max_samples: int = 64, batch: int = 16, seed: int = 0) -> dict:
    policy = VPDDPolicy.from_pretrained(policy_dir)
    items = [(i, t) for i in episodes for t in range(eps.episodes[i].length)]
    rng = np.random.default_rng(seed)
    pick = [items[k] for k in rng.choice(len(items), size=min(max_samples, len(items)), replace=False)]
    g = torch.Generator().manual_seed(seed)
    pred, true = [], []
    for b in range(0, len(pick), batch):
        chunk = pick[b : b + batch]
        hist = torch.from_numpy(np.stack([tokens[i][t].astype(np.int64) for i, t in chunk]))
        text = policy.text([eps.episodes[i].task for i, _ in chunk])
        states = None if eps.state_key is None else np.stack([eps.states(i)[t] for i, t in chunk])
        _, actions = policy.plan(hist, text, generator=g, state=policy.processor.state(states, str(eps.root)))
        pred.append(actions[:, 0])
        true.append(np.stack([eps.actions(i)[t] for i, t in chunk]))
    pred, true = np.concatenate(pred), np.concatenate(true)
    # the dataset's action variance: a held-out episode may barely move some joints (near-zero variance there)
    var = eps.action_variance()
    mean = np.broadcast_to(policy.processor.binner.mean.astype(np.float32), true.shape)
    true_bins = policy.processor.binner.encode(true)

    def scores(p: np.ndarray) -> tuple[float, float]:
        return float((((p - true) ** 2) / var).mean()), float((policy.processor.binner.encode(p) == true_bins).mean())

    (mse, acc), (mean_mse, mean_acc) = scores(pred), scores(mean)
    return {"samples": len(pick), "normalized_mse": mse, "bin_accuracy": acc,
            "mean_baseline": {"normalized_mse": mean_mse, "bin_accuracy": mean_acc}}
