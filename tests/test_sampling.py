"""Batches as a function of (seed, step): each process takes its slice of one global batch, so the data order does
not depend on how many processes share it (common/sampling.py)."""

from __future__ import annotations

import itertools

from vidpolicy.common.sampling import StepBatchSampler, step_batches


def _take(sampler, k):
    return list(itertools.islice(iter(sampler), k))


def test_the_global_batch_is_the_same_for_one_process_or_two():
    one = _take(StepBatchSampler(1000, 8, seed=3, start_step=5, accum=2), 6)
    two = [_take(StepBatchSampler(1000, 4, seed=3, start_step=5, accum=2, rank=r, world=2), 6) for r in (0, 1)]
    assert [a + b for a, b in zip(*two)] == one
    assert len({tuple(b) for b in one}) == 6  # steps and micro-batches differ
    # resuming at step 7 gives what an unbroken run sees there (step 7, micro 0 is the 5th batch from step 5)
    assert _take(StepBatchSampler(1000, 8, seed=3, start_step=7, accum=2), 1)[0] == one[4]


def test_step_batches_pass_the_process_count():
    seen = []
    batches = step_batches(lambda *a: seen.append(a) or a, seed=1, start=2, accum=1, rank=1, size=4, world=3)
    next(batches)
    assert seen == [(1, 2, 0, 1, 4, 3)]
