"""The G1 offline benchmark (benchmarks/g1.py): its ledger of scores across seeds, and the README row they make."""

from __future__ import annotations

import sys

from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import g1  # noqa: E402
from _common import finish_cell, open_ledger, pending, record_ledger, restore_cells  # noqa: E402
from _tables import g1_headline  # noqa: E402


def test_a_restored_score_is_not_retrained_and_a_new_seed_runs_whole(tmp_path):
    b = g1.Budget()
    assert b.seeds == (0, 1, 2) and "seeds" not in b.settings(g1.G1)  # more seeds only add cells
    old, new, ledger = tmp_path / "old", tmp_path / "new", tmp_path / "ledger"
    for name in ("tokenizer", "train/act/seed0", "eval/act/seed0"):
        (old / name).mkdir(parents=True)
        finish_cell(old, name, {"default": {"first_action_median_dim": 0.4}})
    evals = [n for n in g1.cells(b) if n.startswith("eval/")]
    assert record_ledger(old, ledger, b.settings(g1.G1), evals) == 1  # the score only, not its checkpoints
    assert restore_cells(new, ledger / "cells") == 1
    todo = pending(new, g1.cells(b), evals, g1.needs)
    assert "eval/act/seed0" not in todo and "train/act/seed0" not in todo  # restored: its training is not redone
    assert todo[0] == "tokenizer" and {"train/act/seed1", "eval/act/seed1", "train/vpdd-tokens/seed0"} <= set(todo)
    assert len(todo) == len(g1.cells(b)) - 2  # every cell but the restored score and its training
    # another training budget's scores are not mixed in
    assert open_ledger(tmp_path / "other", ledger, g1.Budget(train_steps=50).settings(g1.G1)) is None
    assert not (tmp_path / "other").exists()


def test_the_readme_row_gives_each_policys_mean_over_seeds_and_their_range():
    def score(x):
        return {"first_action_median_dim": x}
    results = {"act/seed0": {"default": score(0.4)}, "act/seed1": {"default": score(0.6)},
               "vpdd-tokens/seed0": {"mode": score(4.0), "mean": score(1.0)},  # the paper's decoding: mode
               "vpdd-regression/seed0": {"default": score(0.3)}}
    g = {"results": results, "budget": {"train_steps": 1000}, "heldout_episodes": 4, "training_mean": score(1.1)}
    question, answer = g1_headline(g)
    assert "1000 steps each, 4 held-out episodes, 2 seeds)" in question
    assert answer == "vidpolicy 0.30, its token head 4.00, ACT 0.50 (0.40-0.60), training mean 1.10"
