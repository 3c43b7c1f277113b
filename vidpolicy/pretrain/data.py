"""Pre-training samples: (history clip tokens, future clip tokens ``gap`` frames later, instruction embedding),
drawn from one or several token directories with weights, as a pure function of (seed, step)."""

from __future__ import annotations

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.sampling import my_share, step_generator
from vidpolicy.common.text import TEXT_DIM, TextEncoder
from vidpolicy.datasets.tokens import TokenDataset


class TokenPairs:
    def __init__(self, dirs: list[str], gap: int, codebook_size: int, latent_shape: tuple[int, ...],
                 text: TextEncoder, weights: list[float] | None = None, tokenizer_name: str = "tokenizer"):
        if not dirs:
            raise VidpolicyError("--tokens: give at least one token directory")
        self.sets: list[TokenDataset] = []
        self.pairs: list[np.ndarray] = []
        for d in dirs:
            ds = TokenDataset(d)
            if ds.codebook_size != codebook_size:
                raise VidpolicyError(f"{d}: tokens have codebook size {ds.codebook_size} but {tokenizer_name} has "
                                     f"{codebook_size}; tokenize with the same tokenizer")
            if tuple(ds.latent_shape) != tuple(latent_shape):
                raise VidpolicyError(f"{d}: token grid {tuple(ds.latent_shape)} but {tokenizer_name} makes "
                                     f"{tuple(latent_shape)}")
            pairs = ds.pairs(gap)
            if len(pairs) == 0:
                stride = ds.meta.get("clip_stride")
                raise VidpolicyError(f"{d}: no (history, future) pair {gap} frames apart (clip stride {stride}; "
                                     f"--gap must be a multiple of it and shorter than the videos)")
            self.sets.append(ds)
            self.pairs.append(pairs)
        w = np.asarray(weights if weights else [1.0] * len(dirs), dtype=np.float64)
        if len(w) != len(dirs) or np.any(w < 0) or w.sum() <= 0:
            raise VidpolicyError(f"--token-weights: need {len(dirs)} non-negative weights, got {weights}")
        self.weights = torch.tensor(w / w.sum())
        instructions = sorted({s for ds in self.sets for s in ds.instructions()})
        self.instructions = instructions
        self.text_table = text(instructions) if instructions else torch.zeros(0, TEXT_DIM)
        position = {s: i for i, s in enumerate(instructions)}
        # per directory: its instruction ids -> rows of text_table
        self.text_of = [np.asarray([position[s] for s in ds.instructions()], dtype=np.int64) for ds in self.sets]

    def __len__(self) -> int:
        return int(sum(len(p) for p in self.pairs))

    def get(self, which: int, k: int):
        ds = self.sets[which]
        i, j = self.pairs[which][k]
        text = int(self.text_of[which][ds.index.column("instruction")[i]])
        return ds.tokens(int(i)).reshape(-1), ds.tokens(int(j)).reshape(-1), text

    def batch(self, seed: int, step: int, micro: int, rank: int, size: int, world: int = 1):
        """Process ``rank``'s share of the step's global batch (see common/sampling.py)."""
        g = step_generator(seed, step, micro)
        which = torch.multinomial(self.weights, size * world, replacement=True, generator=g).tolist()
        drawn = [(w, int(torch.randint(len(self.pairs[w]), (1,), generator=g))) for w in which]
        hist, fut, txt = [], [], []
        for w, k in my_share(drawn, rank, size):
            h, f, ti = self.get(w, k)
            hist.append(h)
            fut.append(f)
            txt.append(ti)
        return torch.from_numpy(np.stack(hist)), torch.from_numpy(np.stack(fut)), self.text_table[txt]
