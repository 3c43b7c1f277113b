"""Fine-tuning samples from a LeRobotDataset, tokenized once with the policy's tokenizer and cached on disk.

For every step t of every episode: tokens of the clip ending at t (history), of the clip ending at t + gap
(future, clamped to the episode's end), the action chunk a[t:t+H] binned and normalised, its pad mask, the
instruction and the normalised robot state at t (empty when the policy reads no state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vidpolicy.common.io import atomic_path
from vidpolicy.common.sampling import my_share, step_generator
from vidpolicy.datasets.clips import to_unit_range
from vidpolicy.datasets.robot import RobotEpisodes, clip_indices
from vidpolicy.finetune.binning import ActionBinner


@torch.no_grad()
def tokenize_episodes(eps: RobotEpisodes, tokenizer, cache: Path, batch: int = 32) -> dict[int, np.ndarray]:
    """Clip tokens ending at every step of every episode: {episode: (length, n)} (cached as an .npz)."""
    if cache.exists():
        with np.load(cache) as z:
            return {int(k): z[k] for k in z.files}
    frames_per_clip = tokenizer.config.frames
    out = {}
    for i in tqdm(range(len(eps)), desc="tokenize episodes", unit="ep"):
        video = eps.frames(i)
        n = len(video)
        clips = [video[clip_indices(t, frames_per_clip, n)[0]] for t in range(n)]
        toks = []
        for b in range(0, n, batch):
            x = torch.stack([to_unit_range(c) for c in clips[b : b + batch]])
            toks.append(tokenizer.encode(x).flatten(1).numpy().astype(np.uint16))
        out[i] = np.concatenate(toks)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{str(k): v for k, v in out.items()})
    return out


class RobotTokenSamples:
    def __init__(self, eps: RobotEpisodes, tokens: dict[int, np.ndarray], binner: ActionBinner, gap: int,
                 horizon: int, text_table: torch.Tensor, episodes: list[int], state_norm=None):
        self.eps, self.tokens, self.binner, self.gap, self.horizon = eps, tokens, binner, gap, horizon
        self.text_table = text_table
        self.task_index = {t: i for i, t in enumerate(sorted({e.task for e in eps.episodes}))}
        self.items = np.asarray([(i, t) for i in episodes for t in range(eps.episodes[i].length)], np.int64)
        self.binned = {i: binner.encode(eps.actions(i)) for i in episodes}
        self.normalized = {i: binner.normalize(eps.actions(i)) for i in episodes}
        self.states = {i: (state_norm(eps.states(i), str(eps.root)) if state_norm else
                           np.zeros((eps.episodes[i].length, 0), np.float32)) for i in episodes}

    def __len__(self) -> int:
        return len(self.items)

    def get(self, k: int):
        i, t = (int(v) for v in self.items[k])
        toks, n = self.tokens[i], self.eps.episodes[i].length
        steps = t + np.arange(self.horizon)
        acts = self.binned[i][np.clip(steps, 0, n - 1)]
        cont = self.normalized[i][np.clip(steps, 0, n - 1)]
        mask = np.repeat((steps < n)[:, None], acts.shape[1], axis=1)
        return (toks[t].astype(np.int64), toks[min(t + self.gap, n - 1)].astype(np.int64), acts.reshape(-1),
                cont.reshape(-1), mask.reshape(-1), self.states[i][t], self.task_index[self.eps.episodes[i].task])

    def batch(self, seed: int, step: int, micro: int, rank: int, size: int, world: int = 1):
        """Process ``rank``'s share of the step's global batch (see common/sampling.py)."""
        g = step_generator(seed, step, micro)
        ks = my_share(torch.randint(len(self.items), (size * world,), generator=g).tolist(), rank, size)
        h, f, a, c, m, s, ti = zip(*(self.get(k) for k in ks))
        return (*(torch.from_numpy(np.stack(x)) for x in (h, f, a, c, m, s)), self.text_table[list(ti)])
