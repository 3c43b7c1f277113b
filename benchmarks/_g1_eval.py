"""benchmarks/g1.py's offline scoring: the same held-out (episode, step) samples for every policy, each policy's
first CHUNK actions from there, normalised MSE against the recorded actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _imagination import action_errors


def _episodes(dataset: Path, size: int = 96):
    from vidpolicy.datasets.robot import RobotEpisodes

    return RobotEpisodes(dataset, size=size)


def heldout_samples(dataset: Path, first_heldout: int, n: int, chunk: int) -> list[tuple[int, int]]:
    """``n`` (episode, step) pairs from the episodes from ``first_heldout`` on, each with a step before it and
    ``chunk`` recorded actions from it; the same for every policy."""
    eps = _episodes(dataset)
    items = [(i, t) for i in range(first_heldout, len(eps)) for t in range(1, eps.episodes[i].length - chunk + 1)]
    pick = np.random.default_rng(0).choice(len(items), size=min(n, len(items)), replace=False)
    return [items[k] for k in sorted(pick)]


def score(pred: np.ndarray, dataset: Path, samples: list[tuple[int, int]]) -> dict:
    """Normalised MSE of ``pred (n, chunk, D)``: per dimension over the training episodes' variance, averaged."""
    eps = _episodes(dataset)
    first_heldout = min(i for i, _ in samples)
    var = np.concatenate([eps.actions(i) for i in range(first_heldout)]).var(0) + 1e-8
    chunk = pred.shape[1]
    true = np.stack([eps.actions(i)[t : t + chunk] for i, t in samples])
    err = (pred - true) ** 2 / var
    # the median over dimensions as well: a few idle joints that drift in held-out episodes dominate the mean
    return {**action_errors(pred, true, var), "first_action_median_dim": float(np.median(err[:, 0].mean(0))),
            "samples": len(samples),
            "per_dim_first_action": [round(float(v), 3) for v in err[:, 0].mean(0)]}


def mean_baseline(dataset: Path, first_heldout: int, n: int, chunk: int) -> dict:
    eps = _episodes(dataset)
    samples = heldout_samples(dataset, first_heldout, n, chunk)
    mean = np.concatenate([eps.actions(i) for i in range(first_heldout)]).mean(0)
    return score(np.broadcast_to(mean, (len(samples), chunk, len(mean))).copy(), dataset, samples)


@torch.no_grad()
def vpdd_chunks(policy_dir: str, dataset: Path, samples: list[tuple[int, int]], decode: str | None = None,
                chunk: int = 4, batch: int = 16) -> np.ndarray:
    from vidpolicy.datasets.clips import to_unit_range
    from vidpolicy.datasets.robot import clip_indices
    from vidpolicy.policies.vpdd import VPDDPolicy

    pol = VPDDPolicy.from_pretrained(policy_dir, action_decode=decode)
    eps = _episodes(dataset, pol.image_size)
    g, out = torch.Generator().manual_seed(0), []
    for b in range(0, len(samples), batch):
        part = samples[b : b + batch]
        clips = [eps.frames(i)[clip_indices(t, pol.config.frames, eps.episodes[i].length)[0]] for i, t in part]
        hist = pol.tokenizer.encode(torch.stack([to_unit_range(c) for c in clips])).flatten(1)
        states = None if eps.state_key is None else np.stack([eps.states(i)[t] for i, t in part])
        _, actions = pol.plan(hist, pol.text([eps.episodes[i].task for i, _ in part]), generator=g,
                              state=pol.processor.state(states, str(eps.root)))
        out.append(actions[:, :chunk])
    return np.concatenate(out)


@torch.no_grad()
def lerobot_chunks(policy_dir: str, dataset: Path, samples: list[tuple[int, int]], chunk: int = 4,
                   batch: int = 16) -> np.ndarray:
    """A LeRobot policy's chunks, its observations read by LeRobotDataset and prepared by its own pipelines."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    config = PreTrainedConfig.from_pretrained(policy_dir)
    config.device = "cpu"
    policy = get_policy_class(config.type).from_pretrained(policy_dir, config=config).eval()
    pre, post = make_pre_post_processors(config, pretrained_path=policy_dir,
                                         preprocessor_overrides={"device_processor": {"device": "cpu"}})
    ds = LeRobotDataset("local/g1", root=dataset)
    start = {i: int(ds.meta.episodes[i]["dataset_from_index"]) for i in {i for i, _ in samples}}
    n_obs = getattr(config, "n_obs_steps", 1)
    keys = list(config.input_features)
    out = []
    for b in range(0, len(samples), batch):
        part = samples[b : b + batch]
        steps = [[ds[start[i] + t - (n_obs - 1 - k)] for k in range(n_obs)] for i, t in part]
        obs = {key: torch.stack([torch.stack([s[key] for s in seq]) for seq in steps]) for key in keys}
        if n_obs == 1:
            obs = {key: v[:, 0] for key, v in obs.items()}
        obs["task"] = [steps[j][-1]["task"] for j in range(len(part))]
        policy.reset()
        actions = post(policy.predict_action_chunk(pre(obs)))
        out.append(actions[:, :chunk].float().numpy())
    return np.concatenate(out)
