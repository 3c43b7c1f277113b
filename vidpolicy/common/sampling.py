"""Batches as a pure function of (seed, step): resuming at step N reproduces the batches an unbroken run sees.

Each step's global batch (every process's samples together) is drawn from (seed, step) alone and process ``rank``
of ``world`` takes its slice, so a job resumed on another number of processes with the same global batch trains on
the same samples in the same order."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import Sampler


def step_generator(seed: int, step: int, micro: int = 0, rank: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7_919 + micro * 104_729 + rank * 15_485_863) % (2**63 - 1))
    return g


def my_share(items, rank: int, size: int):
    """Process ``rank``'s ``size`` items of a global batch."""
    return items[rank * size : (rank + 1) * size]


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for optimizer steps ``start_step, start_step + 1, ...``, ``accum`` micro-batches each, this
    process's share of each; endless, as `step_batches` (the trainer stops at ``max_steps``)."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, accum: int = 1, rank: int = 0,
                 world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.accum, self.rank, self.world = start_step, accum, rank, world

    def __iter__(self):
        for step in itertools.count(self.start_step):
            for micro in range(self.accum):
                g = step_generator(self.seed, step, micro)
                everyone = torch.randint(self.n, (self.batch_size * self.world,), generator=g).tolist()
                yield my_share(everyone, self.rank, self.batch_size)


def step_batches(batch, seed: int, start: int, accum: int, rank: int, size: int, world: int = 1):
    """``batch(seed, draw, micro, rank, size, world)`` for every micro-batch of draws ``start, start + 1, ...``: draw
    k is step k's batch, and the draws never run out, so that a batch skipped for a non-finite loss (``--nan-policy
    skip``) is replaced by a new one rather than ending the run before its last step (the trainer stops there)."""
    for step in itertools.count(start):
        for micro in range(accum):
            yield batch(seed, step, micro, rank, size, world)
