"""The head-to-head benchmark's grid and its plan (benchmarks/fewshot.py --plan): cell order and estimated cost."""

from __future__ import annotations

import sys

import pytest

from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import _fewshot_plan  # noqa: E402
import fewshot  # noqa: E402
from _common import cell_done, cell_result, finish_cell, share_cells  # noqa: E402


def test_the_grid_runs_each_cell_after_the_cells_it_reads():
    b = fewshot.Budget(demos=(5, 10), multiples=(0, 1, 5), seeds=(0, 1))
    cells = fewshot.grid(b)
    names = [c.name for c in cells]
    assert len(names) == len(set(names))
    pos = {c: i for i, c in enumerate(cells)}
    for c in cells:
        if c.stage == "train":
            assert pos[fewshot.Cell("demos", c.demos)] < pos[c]
            if c.family == "vpdd" and c.multiple:
                assert pos[fewshot.Cell("pretrain", c.demos, c.multiple)] < pos[c]
        if c.stage in ("rollout", "imagine"):
            assert pos[fewshot.Cell("train", c.demos, c.multiple, c.policy, c.seed)] < pos[c]
        if c.stage == "imagine":
            assert pos[fewshot.Cell("heldout", c.demos)] < pos[c]
        assert all(pos[d] < pos[c] for d in fewshot.needs(c))  # what the workers wait for
    # the floor: each D's demos replayed blind in the evaluation scenes, once, as soon as the demos are there
    assert [c.name for c in cells if c.stage == "blind"] == ["D5/blind", "D10/blind"]
    assert fewshot.needs(fewshot.Cell("blind", 5)) == [fewshot.Cell("demos", 5)] and "blind" in fewshot.LEAVES
    assert fewshot.needs(fewshot.Cell("imagine", 5, 1, "vpdd", 0)) == [fewshot.Cell("train", 5, 1, "vpdd", 0),
                                                                      fewshot.Cell("heldout", 5)]
    # vidpolicy at every corpus size (0: from scratch), the LeRobot baselines once per D (they never read it)
    trains = [c for c in cells if c.stage == "train"]
    assert sum(c.policy == "vpdd" for c in trains) == 2 * 3 * 2
    assert sum(c.policy == "diffusion" for c in trains) == 2 * 2 and all(
        c.multiple is None for c in trains if c.family != "vpdd")
    # vidpolicy's variants, on the first seed by default: acting on the history from scratch and on the largest
    # corpus; the pre-trained video model trained on (from scratch it trains anyway)
    assert sorted((c.demos, c.multiple, c.seed) for c in trains if c.policy == "vpdd-history") == [
        (d, k, 0) for d in (5, 10) for k in (0, 5)]
    assert sorted((c.demos, c.multiple, c.seed) for c in trains if c.policy == "vpdd-tuned") == [
        (d, 5, 0) for d in (5, 10)]
    every = fewshot.grid(fewshot.Budget(demos=(5,), multiples=(0, 5), seeds=(0, 1), variant_seeds=2))
    assert sorted(c.seed for c in every if c.stage == "train" and c.policy == "vpdd-tuned") == [0, 1]
    assert fewshot.Cell("train", 5, 5, "vpdd-history", 0).variant == "history"
    assert fewshot.Cell("train", 5, 5, "vpdd", 0).variant is None
    assert sum(c.stage == "pretrain" for c in cells) == 2 * 3  # k = 0 (scratch: tokenizer on demos only), 1, 5
    assert sum(c.stage == "actionless" for c in cells) == 2 * 2
    # every pre-training on a corpus also reads the other Meta-World tasks' episodes, collected once for every D
    assert [c.name for c in cells if c.stage == "others"] == ["others"]
    assert fewshot.Cell("others") in fewshot.needs(fewshot.Cell("pretrain", 10, 1))
    assert fewshot.needs(fewshot.Cell("pretrain", 5, 0)) == [fewshot.Cell("demos", 5)]
    # each corpus size's first-seed video model is scored against copying the present, once
    assert sorted((c.demos, c.multiple) for c in cells if c.stage == "imagine") == [(d, k) for d in (5, 10)
                                                                                    for k in (0, 1, 5)]


def test_the_plan_scales_its_estimates_by_cells_finished_here_in_one_go(tmp_path):
    from _common import cpu_model

    b = fewshot.Budget(demos=(5,), multiples=(0,), seeds=(0, 1, 2), variants=())
    cells = fewshot.grid(b)
    train = [c for c in cells if c.stage == "train" and c.policy == "vpdd"]
    ref = _fewshot_plan.estimate_s(train[0], b, 8)

    def finish(cell, wall_s, **kw):
        fewshot.claim(tmp_path, cell)
        finish_cell(tmp_path, cell.name, {"wall_s": wall_s, "cpu": cpu_model(), "resumed": False, **kw})

    def minutes(cell) -> float:
        row = next(r for r in _fewshot_plan.plan_table(cells, b, 8, tmp_path).splitlines() if r.startswith(cell.name))
        return float(row.split()[1])

    assert minutes(train[2]) == round(ref / 60, 1)
    assert "scaled" not in _fewshot_plan.plan_table(cells, b, 8, tmp_path).splitlines()[-1]  # nothing finished here
    finish(train[0], ref / 4)
    finish(train[1], ref / 2)  # median of 1/4 and 1/2: 3/8
    finish(cells[0], 1e6, resumed=True)  # the demos, resumed: not a measure
    finish(cells[1], 1e6, cpu="another processor")
    assert minutes(train[2]) == round(ref * 3 / 8 / 60, 1)
    # a stage none finished here keeps the reference estimate
    rollout = next(c for c in cells if c.stage == "rollout" and c.policy == "act")
    assert minutes(rollout) == round(_fewshot_plan.estimate_s(rollout, b, 8) / 60, 1)
    assert "train 0.38" in _fewshot_plan.plan_table(cells, b, 8, tmp_path).splitlines()[-1]


def test_the_grid_puts_the_decisive_comparison_first():
    cells = fewshot.grid(fewshot.Budget(demos=(5, 10), multiples=(0, 1, 5, 20), seeds=(0, 1, 2)))
    pos = {c: i for i, c in enumerate(cells)}
    seed0 = [fewshot.Cell("rollout", 5, k, p, 0) for p, k in (("vpdd", 0), ("diffusion", None), ("act", None),
                                                               ("vpdd", 20))]
    assert max(pos[c] for c in seed0) < min(pos[c] for c in cells if c.seed == 1)
    assert pos[fewshot.Cell("rollout", 5, 0, "vpdd", 0)] < pos[fewshot.Cell("pretrain", 5, 20)]  # no long wait
    assert max(pos[c] for c in cells if c.multiple in (0, 20)) < pos[fewshot.Cell("pretrain", 5, 1)]
    # every seed of the four policies before the diagnostics (vidpolicy's variants)
    four = [c for c in cells if c.demos == 5 and c.stage == "rollout" and c.multiple in (None, 0, 20)]
    assert max(pos[c] for c in four if not c.variant) < min(pos[c] for c in four if c.variant)


def test_the_quick_grid_fits_its_budget():
    b = fewshot.Budget.quick()
    minutes = sum(_fewshot_plan.estimate_s(c, b, 8) for c in fewshot.grid(b)) / 60
    assert minutes <= 15, minutes


def test_the_plan_prices_fine_tuning_by_what_the_video_model_does():
    def cost(k, policy):
        return _fewshot_plan.estimate_s(fewshot.Cell("train", 5, k, policy, 0), fewshot.Budget(), 8)

    # a second video pass only where the video model trains; one recipe from two initialisations costs the same
    assert cost(0, "vpdd-history") > cost(0, "vpdd") == cost(20, "vpdd-tuned")
    # frozen (the paper's recipe, acting on the imagined future or the present): no backward pass through it
    assert cost(20, "vpdd") == cost(20, "vpdd-history") < cost(0, "vpdd") / 2


def test_a_changed_budget_names_a_grid_of_its_own_and_bad_changes_stop_with_one_line():
    b, suffix = fewshot.with_budget(fewshot.Budget(), ["pretrain_steps=16000", "train_steps=2000"])
    assert b.pretrain_steps == 16000 and b.train_steps == 2000 and suffix == "-pretrain_steps16000"  # 2000: unchanged
    assert fewshot.with_budget(fewshot.Budget(), []) == (fewshot.Budget(), "")
    for bad, says in (("pretrain_steps", "KEY one of"), ("seeds=3", "KEY one of"), ("small=1", "KEY one of"),
                      ("pretrain_steps=lots", "not a number of type int")):
        with pytest.raises(SystemExit, match=says):
            fewshot.with_budget(fewshot.Budget(), [bad])


def test_a_changed_budget_shares_only_the_cells_no_changed_field_reaches():
    cells = fewshot.grid(fewshot.Budget())

    def shared(*changed):
        return {c.name for c in _fewshot_plan.unchanged_by(cells, set(changed))}
    pre = shared("pretrain_steps")  # the corpora, the baselines and scratch (one pre-training step) stay
    assert {"others", "D10/demos", "D10/A20x/actionless", "D10/heldout", "D10/blind", "D10/A0x/pretrain",
            "D10/A0x/vpdd/seed0/rollout", "D10/diffusion/seed2/rollout"} <= pre
    assert not pre & {"D10/A1x/pretrain", "D10/A20x/vpdd/seed0/train", "D10/A20x/vpdd-history/seed0/rollout",
                      "D10/A20x/vpdd/seed0/imagine"}
    fine = shared("train_steps")
    assert "D10/A20x/pretrain" in fine and not any(n.endswith(("/train", "/rollout", "/imagine")) for n in fine)
    assert not shared("max_steps") & {c.name for c in cells if c.stage in ("rollout", "blind")}
    # every field that changes a cell's result is read by some stage: a new field is never shared past
    read = set().union(*map(_fewshot_plan.reads, cells))
    assert read == set(fewshot.settings(fewshot.Budget(), "", False)) - {"tasks", "human_videos", "scenes"}


def test_a_grid_beside_another_links_only_the_cells_that_one_finished_and_it_has_not_begun(tmp_path):
    here, there = tmp_path / "default-x", tmp_path / "default"
    for name in ("D5/demos", "others"):
        (there / name).mkdir(parents=True)
        finish_cell(there, name, {"episodes": 40})
    (there / "D5/heldout").mkdir(parents=True)  # begun there, not finished
    (here / "others").mkdir(parents=True)  # begun here: its own run goes on
    names = ["D5/demos", "D5/heldout", "others", "D5/blind"]
    assert share_cells(here, there, names) == 1 and share_cells(here, there, names) == 0
    assert cell_done(here, "D5/demos") and cell_result(here, "D5/demos")["episodes"] == 40
    assert (here / "D5/demos").is_symlink() and not (here / "D5/heldout").exists()
    assert not cell_done(here, "others") and not (here / "others").is_symlink()
