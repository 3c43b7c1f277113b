"""Fine-tuning samples from a LeRobotDataset, tokenized once with the policy's tokenizer into a token directory.

For every step t of every episode: tokens of the clip ending at t (history), of the clip ending at t + gap
(future, clamped to the episode's end), the action chunk a[t:t+H] binned and normalised, its pad mask, the
instruction and the normalised robot state at t (empty when the policy reads no state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.sampling import my_share, step_generator
from vidpolicy.datasets.robot import RobotEpisodes, chunk_steps
from vidpolicy.datasets.tokens import TokenDataset
from vidpolicy.finetune.binning import ActionBinner
from vidpolicy.tokenizer.config import TokenizeConfig
from vidpolicy.tokenizer.tokenize import tokenize


def tokenize_episodes(eps: RobotEpisodes, tokenizer: str | Path, out: Path, workers: int = 1) -> dict[int, np.ndarray]:
    """Clip tokens ending at every step of every episode, {episode: (length, n)}: the dataset's camera through
    `vidpolicy tokenize --every-step` (the one robot tokenizing path) into the token directory ``out``, read back.
    A rerun finds the shards written and only re-reads them. Under torchrun each process tokenizes its shards."""
    cfg = TokenizeConfig(tokenizer=str(tokenizer), out=str(out), dataset=str(eps.dataset), camera=eps.camera,
                         every_step=True, precision="fp32", num_workers=workers)
    tokenize(cfg, report=False)
    store, tokens = TokenDataset(out), {}
    rows = store.rows_by_source()
    for i, e in enumerate(eps.episodes):
        got = rows.get(eps.source(i), np.zeros(0, np.int64))
        if len(got) != e.length:
            raise VidpolicyError(f"{out}: episode {e.index} has {len(got)} clip(s) for {e.length} frames "
                                 f"(see {out / 'manifest.csv'})")
        tokens[i] = store.gather(got).reshape(len(got), -1)
    return tokens


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
        steps, pad = chunk_steps(t, self.horizon, n)
        acts, cont = self.binned[i][steps], self.normalized[i][steps]
        mask = np.repeat(~pad[:, None], acts.shape[1], axis=1)
        return (toks[t].astype(np.int64), toks[min(t + self.gap, n - 1)].astype(np.int64), acts.reshape(-1),
                cont.reshape(-1), mask.reshape(-1), self.states[i][t], self.task_index[self.eps.episodes[i].task])

    def batch(self, seed: int, step: int, micro: int, rank: int, size: int, world: int = 1):
        """Process ``rank``'s share of the step's global batch (see common/sampling.py)."""
        g = step_generator(seed, step, micro)
        ks = my_share(torch.randint(len(self.items), (size * world,), generator=g).tolist(), rank, size)
        h, f, a, c, m, s, ti = zip(*(self.get(k) for k in ks))
        return (*(torch.from_numpy(np.stack(x)) for x in (h, f, a, c, m, s)), self.text_table[list(ti)])
