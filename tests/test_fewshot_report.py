"""The head-to-head grid's report (benchmarks/fewshot.py --report): the paired statistic, the README table, the plot
and how results are collected."""

from __future__ import annotations

import json
import sys

import pytest
from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import _fewshot_report  # noqa: E402
import fewshot  # noqa: E402
from _common import finish_cell, share_cells  # noqa: E402
from _tables import rows  # noqa: E402


def test_the_paired_comparison_on_a_constructed_example(tmp_path):
    b = fewshot.Budget(demos=(5,), multiples=(0, 4), seeds=(0,), eval_episodes=4)
    cells = fewshot.grid(b)

    def rollout(cell, steps):  # steps per episode: None = failed
        fewshot.claim(tmp_path, cell)
        finish_cell(tmp_path, cell.name, {"reach-v3": {"successes": sum(s is not None for s in steps), "episodes": 4,
                                                     "success_steps": steps}, "wall_s": 12.5})

    rollout(fewshot.Cell("rollout", 5, 4, "vpdd", 0), [10, 12, 9, 30])  # solves all four
    half = fewshot.Cell("rollout", 5, None, "diffusion", 0)  # half the expert's speed in x, y; gripper never moved
    fewshot.claim(tmp_path, half)
    finish_cell(tmp_path, half.name, {"reach-v3": {"successes": 0, "episodes": 2, "success_steps": [None, None],
                                                 "expert_magnitude": [[0.4, 0.5, None], [0.6, 0.5, None]]},
                                     "cpu": "AMD EPYC"})
    rollout(fewshot.Cell("rollout", 5, 0, "vpdd", 0), [None, None, None, 40])  # only the last
    rollout(fewshot.Cell("rollout", 5, None, "act", 0), [10, 12, 9, 30])  # the same four
    rollout(fewshot.Cell("rollout", 5, 4, "vpdd-history", 0), [None, 12, 9, 30])
    blind = fewshot.Cell("blind", 5)  # a demo's blind replay solves scenes 0 and 3 only
    fewshot.claim(tmp_path, blind)
    finish_cell(tmp_path, blind.name, {"scenes": {"reach-v3": [0.5, 0.0, 0.0, 1.0]}, "replay": {"reach-v3": 0.375},
                                       "best_demo": {"reach-v3": 0.5}})
    imagine = fewshot.Cell("imagine", 5, 4, "vpdd", 0)
    fewshot.claim(tmp_path, imagine)
    finish_cell(tmp_path, imagine.name, {"imagined": {"token_accuracy": 0.5, "psnr": 20.0},
                                         "copy_history": {"token_accuracy": 0.4, "psnr": 19.0}})
    table = _fewshot_report.summarize(tmp_path, cells)["D5"]
    assert table["vpdd A=4xD"]["imagination"]["copy_history"]["token_accuracy"] == 0.4
    assert table["vpdd A=4xD"]["mean"] == 1.0 and table["vpdd scratch"]["mean"] == 0.25
    # 3 episodes only the pre-trained policy solved, none the other way: exact two-sided p = 2 / 2**3; one (seed,
    # task) cluster, so the bootstrap interval is the difference itself
    assert table["vpdd scratch"]["vs_pretrained"] == {"wins": 3, "losses": 0, "p_value": 0.25, "difference": 0.75,
                                                      "ci95": [0.75, 0.75], "clusters": 1}
    assert table["act"]["vs_pretrained"] == {"wins": 0, "losses": 0, "p_value": 1.0, "difference": 0.0,
                                             "ci95": [0.0, 0.0], "clusters": 1}
    assert table["diffusion"]["expert_magnitude"] == [0.5, 0.5, None] and "expert_magnitude" not in table["act"]
    assert table["diffusion"]["machines"] == ["AMD EPYC"] and table["act"]["machines"] == ["unknown"]
    assert table["vpdd A=4xD, act on history"]["vs_pretrained"]["wins"] == 1
    # every other vidpolicy against scratch, wins and the difference its own: the gap at its corpus size
    assert table["vpdd A=4xD"]["vs_scratch"] == {"wins": 3, "losses": 0, "p_value": 0.25, "difference": 0.75,
                                                 "ci95": [0.75, 0.75], "clusters": 1}
    assert table["vpdd A=4xD, act on history"]["vs_scratch"]["wins"] == 2 and "vs_scratch" not in table["act"]
    assert ("fewshot", "D5, vpdd A=4xD: episodes only it / only vidpolicy from scratch solved, on the seeds both "
            "ran; its success minus scratch's, points (95% interval)", "3 / 0 (p = 0.25); +75 (+75 to +75)") in rows(
        {"fewshot": {"summary": {"D5": table}}})
    # every policy's success where some demo's blind replay solves the scene, and where none does
    assert table["vpdd A=4xD"]["blind_split"] == {"blind": [2, 2], "not_blind": [2, 2]}
    assert table["vpdd scratch"]["blind_split"] == {"blind": [1, 2], "not_blind": [0, 2]}
    assert ("fewshot", "D5, blind replay: each demo's actions open loop in each scene, no observation: success of a "
            "random demo / scenes some demo solves", "38% / 50%") in rows({"fewshot": {"summary": {"D5": table}}})
    assert _fewshot_report.corpora(table) == [4]  # the variant is its own row, not a point of the curve
    table["act"].update(min=0.5, mean=0.75)  # as if a second seed solved two of four
    table["vpdd scratch"]["seeds"] = [0, 1]  # the curve's pre-trained point has fewer seeds: it says so
    points = [(0, table["vpdd scratch"]), (4, table["vpdd A=4xD"])]
    assert _fewshot_report.seed_notes(points) == [(4, 100.0, "1 seed")]
    assert _fewshot_report.plot({"D5": table}, tmp_path / "plot.png") == {"D5": {
        "Diffusion Policy": (0.0, 0.0, 0.0), "ACT": (50.0, 75.0, 100.0), "blind replay": (37.5, 37.5, 37.5)}}
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_the_success_difference_has_a_bootstrap_interval_over_seeds_and_tasks():
    # two (seed, task) clusters, 4 episodes each: a leads b by 1.0 in the first and by 0 in the second. Resampling two
    # clusters gives means 1, 0.5, 0 with probabilities 1/4, 1/2, 1/4: the 95% interval spans 0 to 1
    a = {(0, "reach", i): True for i in range(4)} | {(1, "reach", i): i < 2 for i in range(4)}
    b = {(0, "reach", i): False for i in range(4)} | {(1, "reach", i): i < 2 for i in range(4)}
    d = _fewshot_report.difference(a, b)
    assert d == {"difference": 0.5, "ci95": [0.0, 1.0], "clusters": 2}
    assert _fewshot_report.difference(b, a)["ci95"] == [-1.0, 0.0]  # the other way round: mirrored
    # the same lead spread over four tasks of one seed: only the tasks' spread widens it, not the episode count
    many = {(0, t, i): True for t in "abcd" for i in range(4)}
    half = {(0, t, i): t in "ab" for t in "abcd" for i in range(4)}
    lo, hi = _fewshot_report.difference(many, half)["ci95"]
    assert 0 <= lo < 0.5 < hi <= 1 and _fewshot_report.difference(many, half)["difference"] == 0.5
    assert _fewshot_report.difference({}, {}) == {}


def test_the_grid_table_shows_seed_ranges_and_the_paired_test():
    from _tables import fewshot_table

    def run(lo, hi):
        return {"seeds": [0, 1], "mean": (lo + hi) / 2, "min": lo, "max": hi,
                "per_task": {"reach-v3": {"mean": (lo + hi) / 2, "min": lo, "max": hi}}}
    table = {"act": {**run(0.2, 0.2), "vs_pretrained": {"wins": 1, "losses": 3, "p_value": 0.625,
                                                        "difference": -0.004, "ci95": [-0.121, 0.046]}},
             "vpdd A=20xD": run(0.4, 0.5), "vpdd scratch": {"imagination": {}},
             "vpdd A=20xD, act on history": run(0.9, 0.9),  # a variant: benchmarks/results only
             "vpdd A=5xD": run(0.7, 0.7), "vpdd A=40xD": {"imagination": {}}}  # a smaller corpus: the plot's
    budget = {"eval_episodes": 10, "max_steps": 500, "seeds": [0, 1, 2], "train_steps": 2000}

    def lines(full=False):
        return fewshot_table({"summary": {"D5": table}, "budget": budget, "commit": "abc1234",
                              "cpu": "Intel(R) Xeon(R) Processor"}, full).splitlines()
    first = lines()
    assert first[0] == "| policy | reach | all | pre-trained ahead by |"
    # the README's: a task's mean, the pooled range
    assert first[2] == "| vidpolicy pre-trained (20x D actionless) | 45 | **45 (40-50)** |  |"
    # the difference in points with its interval (rounded: -0.4 is 0), then McNemar's p; no scratch row: no rollout
    assert first[3] == "| ACT | 20 | **20** | 0 (-12 to +5), p = 0.62 |"
    assert not any("**90**" in line or "**70**" in line for line in first)
    # benchmarks/results.md's: every corpus and variant, each task's range too
    assert lines(full=True)[2:7] == ["| vidpolicy pre-trained (5x D actionless) | 70 | **70** |  |",
                                     "| vidpolicy pre-trained (20x D actionless) | 45 (40-50) | **45 (40-50)** |  |",
                                     "| ACT | 20 | **20** | 0 (-12 to +5), p = 0.62 |",
                                     "| vidpolicy A=20xD, act on history | 90 | **90** |  |", ""]
    assert "; all: range in brackets;" in first[-1]
    assert "2 of 3 seeds; range in brackets;" in lines(full=True)[-1]
    assert "Blind:" not in first[-1]
    table["blind replay"] = {"replay": {"reach-v3": 0.125}, "best_demo": {"reach-v3": 0.5}}
    assert lines()[4] == "| a demo replayed blind | 12 | **12** |  |" and "Blind: each demo's actions" in lines()[-1]
    assert "2 of 3 seeds; all: range" in first[-1] and "abc1234" in first[-1] and "CPU sizes" in first[-1]
    assert "McNemar p. Intel Xeon, 2 cores" in first[-1]  # no machine in the cells: the report's own
    table["act"]["commits"], table["vpdd A=20xD"]["commits"] = ["c2"], ["c1", "c2"]  # the cells' own commits
    table["act"]["machines"] = ["AMD EPYC", "Intel(R) Xeon(R) Processor"]  # and their processors
    assert lines()[-1].endswith("rollouts at c1, c2.") and "McNemar p. AMD EPYC and Intel Xeon, 2 cores" in lines()[-1]
    table["act"]["commits"] = ["c3", "c4", "c5", "c6"]
    table["act"]["seeds"] = [0, 1, 2]  # a grid part-way: the policy with fewer seeds is named
    assert lines()[-1].endswith("rollouts at c1 to c6 (6 commits).")  # none in this history: by name
    assert "3 of 3 seeds (pre-trained: 2); all: range in brackets" in lines()[-1]
    table["vpdd A=20xD"]["seeds"] = [0, 1, 2]  # every policy has every seed: said once
    assert "500 steps, 3 seeds; all: range in brackets" in lines()[-1]
    table["vpdd A=20xD"]["seeds"] = [0, 1]
    # the policies behind, grouped by their count; each corpus by its name where several are listed
    assert "3 of 3 seeds (pre-trained (5x D actionless) / pre-trained (20x D actionless) / A=20xD, act on history: 2" \
        in lines(full=True)[-1]
    # a second demo count with rollouts: a block of rows each, named in a first column; one without any, none
    more = {"vpdd scratch": {**run(0.3, 0.3), "seeds": [0]}, "blind replay": {"replay": {"reach-v3": 0.25}}}
    two = fewshot_table({"summary": {"D5": table, "D10": more, "D20": {"blind replay": {"replay": {"reach-v3": 0}}}},
                         "budget": budget, "commit": "abc1234"}).splitlines()
    assert two[:2] == ["| demos | policy | reach | all | pre-trained ahead by |", "| --- | --- | --- | --- | --- |"]
    assert two[3:5] == ["| 5 | ACT | 20 | **20** | 0 (-12 to +5), p = 0.62 |",
                        "| 5 | a demo replayed blind | 12 | **12** |  |"]
    assert two[5:7] == ["| 10 | vidpolicy from scratch | 30 | **30** |  |",
                        "| 10 | a demo replayed blind | 25 | **25** |  |"]
    assert len(two) == 9 and "5 or 10 demos per task (first column)" in two[-1]
    assert "3 of 3 seeds at 5 demos (pre-trained: 2), 1 of 3 seeds at 10 demos; all: range in" in two[-1]
    from _results_md import markdown  # results.md ends with the full table

    rollouts = {k: v for k, v in table.items() if "imagination" not in v}  # its rows want a whole imagination
    md = markdown({"fewshot": {"summary": {"D5": rollouts}, "budget": budget, "commit": "abc1234"}})
    assert "| vidpolicy A=20xD, act on history | 90 | **90** |  |" in md.split("**fewshot, per task**")[1]


def head_and_parent() -> tuple[str, str]:
    import subprocess

    head, parent = (subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True)
                    .stdout.strip() for rev in ("HEAD", "HEAD~1"))
    if not parent:
        pytest.skip("a checkout without history")
    return head, parent


def test_commits_are_listed_oldest_first_and_unknown_ones_last():
    from _common import oldest_first

    head, parent = head_and_parent()
    assert oldest_first(["zz9", head, "aa1", parent]) == [parent, head, "aa1", "zz9"]


def test_collect_keeps_a_newer_committed_result_and_merges_only_what_is_named(tmp_path, monkeypatch):
    import run_all
    head, parent = head_and_parent()
    monkeypatch.setattr(run_all, "OUT", tmp_path)
    (tmp_path / "fewshot.json").write_text(json.dumps({"commit": parent, "v": "stale"}))
    (tmp_path / "g1.json").write_text(json.dumps({"commit": head, "v": "new"}))
    (tmp_path / "fewshot_quick.json").write_text(json.dumps({"commit": parent, "v": "quick"}))
    committed = {"fewshot": {"commit": head, "v": "committed"}, "g1": {"commit": parent, "v": "old"}}
    everything = run_all.gather(committed)
    assert [everything[k]["v"] for k in ("fewshot", "g1", "fewshot_quick")] == ["committed", "new", "quick"]
    named = run_all.gather(committed, ["g1"])
    assert sorted(named) == ["fewshot", "g1"] and named["g1"]["v"] == "new"
    with pytest.raises(SystemExit, match="no gpu.json"):
        run_all.gather(committed, ["gpu"])


def test_a_changed_budget_is_compared_episode_by_episode_with_the_default_grids_ledger(tmp_path):
    cells = fewshot.grid(fewshot.Budget(demos=(5,), multiples=(0, 4), seeds=(0,), eval_episodes=4))
    roll, imagine = fewshot.Cell("rollout", 5, 4, "vpdd", 0), fewshot.Cell("imagine", 5, 4, "vpdd", 0)
    here, ledger = tmp_path / "here", tmp_path / "ledger"
    for root, steps, acc in ((here, [10, None, 9, 30], 0.7), (ledger, [None, None, 9, None], 0.6)):
        for cell, result in ((roll, {"reach-v3": {"successes": 4 - steps.count(None), "episodes": 4,
                                                   "success_steps": steps}, "wall_s": 3.0}),
                             (imagine, {"imagined": {"token_accuracy": acc}, "copy_history": {"token_accuracy": 0.5}})):
            fewshot.claim(root, cell)
            finish_cell(root, cell.name, result)
    for cell in (roll, imagine):  # the ledger holds each cell's done.json as <cell>.json
        (ledger / f"{cell.name}.json").write_text((ledger / cell.name / "done.json").read_text())
    fewshot.claim(here, other := fewshot.Cell("rollout", 5, 0, "vpdd", 0))  # not in the ledger: left out
    finish_cell(here, other.name, {"reach-v3": {"successes": 0, "episodes": 4, "success_steps": [None] * 4}})
    fewshot.claim(ledger, shared := fewshot.Cell("rollout", 5, None, "act", 0))  # the default grid's own: left out
    finish_cell(ledger, shared.name, {"reach-v3": {"successes": 0, "episodes": 4, "success_steps": [None] * 4}})
    (ledger / f"{shared.name}.json").write_text((ledger / shared.name / "done.json").read_text())
    assert share_cells(here, ledger, [shared.name]) == 1 and fewshot.is_done(here, shared)
    # two episodes solved only here, none only there: exact two-sided p = 2 / 2**2
    assert _fewshot_report.against(here, cells, ledger) == {
        roll.name: {"here": 3, "default": 1, "episodes": 4, "wins": 2, "losses": 0, "p_value": 0.5, "difference": 0.5,
                    "ci95": [0.5, 0.5], "clusters": 1},
        imagine.name: {"here": 0.7, "default": 0.6, "copy_history": 0.5}}
