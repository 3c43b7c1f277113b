"""The head-to-head benchmark's grid planner and its cell-by-cell resume (benchmarks/fewshot.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import _fewshot_plan  # noqa: E402
import _fewshot_report  # noqa: E402
import fewshot  # noqa: E402
from _common import cell_done, finish_cell, lock_cell, run_cells  # noqa: E402
from _tables import rows  # noqa: E402


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


def test_a_finished_cell_is_skipped_and_a_half_finished_one_restarts_clean(tmp_path):
    cell = fewshot.Cell("imagine", 5, 0, "vpdd", 0)  # scores held-out clips: restarts from nothing
    where = fewshot.claim(tmp_path, cell)
    (where / "partial.bin").write_bytes(b"x")  # a run killed here leaves no done.json
    assert not fewshot.is_done(tmp_path, cell)
    where = fewshot.claim(tmp_path, cell)
    assert list(where.iterdir()) == []
    finish_cell(tmp_path, cell.name, {"steps": 3})
    assert fewshot.is_done(tmp_path, cell)
    assert "yes" in _fewshot_plan.plan_table([cell], fewshot.Budget(), 8, tmp_path).splitlines()[1]
    # every trainer resumes from its checkpoints, so a killed training keeps them; so does a rollout, of any
    # policy, from its journal of finished episodes, and collecting episodes
    for cell in (fewshot.Cell("pretrain", 5, 20), fewshot.Cell("train", 5, None, "act", 0),
                 fewshot.Cell("rollout", 5, None, "act", 0), fewshot.Cell("actionless", 5, 20)):
        (fewshot.claim(tmp_path, cell) / "run").mkdir()
        assert (fewshot.claim(tmp_path, cell) / "run").is_dir()


def test_a_killed_lerobot_train_resumes_at_its_last_checkpoint_and_a_checkpointless_one_starts_over(tmp_path):
    from _fewshot_runner import LEROBOT_SAVE_EVERY, Runner

    runner, cell = Runner(tmp_path, fewshot.Budget(), fewshot.TASKS, None), fewshot.Cell("train", 5, None, "act", 1)
    run = fewshot.claim(tmp_path, cell) / "train"
    (run / "checkpoints").mkdir(parents=True)  # killed before its first checkpoint
    fresh = runner._lerobot_args(cell, run)
    assert not run.exists()  # lerobot-train refuses a directory it does not resume
    assert "--policy.type=act" in fresh and "--seed=1" in fresh and f"--output_dir={run}" in fresh
    assert f"--save_freq={LEROBOT_SAVE_EVERY}" in fresh and LEROBOT_SAVE_EVERY < fewshot.Budget().train_steps
    step = run / "checkpoints" / "000500"
    (step / "pretrained_model").mkdir(parents=True)
    (step / "pretrained_model" / "train_config.json").write_text("{}")
    (run / "checkpoints" / "last").symlink_to("000500")
    assert runner._lerobot_args(cell, run) == [
        f"--config_path={run / 'checkpoints/last/pretrained_model/train_config.json'}", "--resume=true"]
    assert step.is_dir()


@pytest.mark.slow
def test_a_killed_lerobot_train_goes_on_from_its_checkpoints_weights(tmp_path, monkeypatch):
    """LeRobot's resume is not bit-exact (its data loader draws from the restored random state), so the check is
    that the run goes on from the checkpoint: a mark put into step 2's weights is still there at step 4."""
    import _fewshot_runner
    from safetensors.torch import load_file, save_file

    from vidpolicy.envs.collect import CollectConfig, collect

    root = tmp_path / "grid"
    collect(CollectConfig(tasks="reach", episodes=2, out=str(root / "D5/demos/data"), size=96, state="agent_pos"))
    monkeypatch.setattr(_fewshot_runner, "LEROBOT_SAVE_EVERY", 2)
    runner, cell = _fewshot_runner.Runner(root, fewshot.Budget(train_steps=4), "reach", None), fewshot.Cell(
        "train", 5, None, "act", 0)
    with monkeypatch.context() as m:  # as if killed after step 2's checkpoint: step 4's never written
        m.setattr(_fewshot_runner, "prune_checkpoints", lambda checkpoints: None)
        ckpts = Path(runner.run(cell)["policy"]).parents[1]
    whole = load_file(ckpts / "000004/pretrained_model/model.safetensors")
    shutil.rmtree(ckpts / "000004")
    (ckpts / "last").unlink()
    (ckpts / "last").symlink_to("000002")
    at2 = ckpts / "000002/pretrained_model/model.safetensors"
    marked = load_file(at2)
    name = next(k for k, v in marked.items() if v.is_floating_point() and v.numel() > 100)
    marked[name] = marked[name] + 1.0
    save_file(marked, at2)
    policy = Path(runner.run(cell)["policy"])
    assert json.loads((policy.parent / "training_state/training_step.json").read_text())["step"] == 4
    assert sorted(p.name for p in ckpts.iterdir()) == ["000004", "last"]  # the older one pruned
    resumed = load_file(policy / "model.safetensors")
    assert torch.allclose(resumed[name] - whole[name], torch.ones_like(whole[name]), atol=1e-3)
    assert all(torch.allclose(resumed[k].float(), whole[k].float(), atol=1e-3) for k in whole if k != name)


def test_each_vidpolicy_cell_trains_as_its_name_says(tmp_path, monkeypatch):
    import vidpolicy.finetune.train
    from _fewshot_runner import Runner

    seen = []
    monkeypatch.setattr(vidpolicy.finetune.train, "finetune", seen.append)
    runner = Runner(tmp_path, fewshot.Budget(), fewshot.TASKS, None)
    for policy, k, seed in (("vpdd-history", 20, 1), ("vpdd", 0, 2), ("vpdd-tuned", 20, 0)):
        cell = fewshot.Cell("train", 5, k, policy, seed)
        assert runner.run(cell)["policy"] == str(tmp_path / cell.name / "policy")
    (history, paper, tuned) = seen
    assert (history.act_on, history.from_scratch, history.train_video, history.seed) == ("history", False, False, 1)
    assert history.pretrained == str(tmp_path / "D5/A20x/pretrain/run")
    assert (paper.act_on, paper.from_scratch, paper.seed) == ("joint", True, 2)
    assert (tuned.act_on, tuned.from_scratch, tuned.train_video) == ("joint", False, True)
    assert history.save_every == paper.save_every <= 100  # a killed worker loses little


def test_pretraining_draws_every_clip_of_corpus_other_tasks_and_human_video_alike(tmp_path, monkeypatch):
    import vidpolicy.pretrain.train
    import vidpolicy.tokenizer.tokenize
    import vidpolicy.tokenizer.train
    from _fewshot_runner import Runner

    human = tmp_path / "human"
    for where in ("D5/demos/data/videos", "D5/A20x/actionless/data/videos", "others/data/videos", "human"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "a.mp4").write_bytes(b"")
    clips = {"actionless": 300, "others": 100, "human": 600}  # what each source tokenizes to

    def tokenize(cfg):  # returns the merged index, as the real one does
        return {"num_clips": clips["human" if cfg.videos else cfg.dataset.split("/")[-2]]}

    tokenizer_videos, pretrained = [], []
    monkeypatch.setattr(vidpolicy.tokenizer.train, "train_tokenizer",
                        lambda cfg: tokenizer_videos.extend(Path(cfg.videos).read_text().split()))
    monkeypatch.setattr(vidpolicy.tokenizer.tokenize, "tokenize", tokenize)
    monkeypatch.setattr(vidpolicy.pretrain.train, "pretrain", pretrained.append)
    out = Runner(tmp_path, fewshot.Budget(), fewshot.TASKS, human).run(fewshot.Cell("pretrain", 5, 20))
    assert len(tokenizer_videos) == 4  # the demos' video too: the policy reads them through this tokenizer
    (cfg,) = pretrained
    assert [Path(t).name for t in cfg.tokens] == ["tokens0", "tokens1", "tokens_human"]
    assert cfg.token_weights == [300.0, 100.0, 600.0] and cfg.max_steps == fewshot.Budget().pretrain_steps
    assert out["clips"] == {"tokens0": 300, "tokens1": 100, "tokens_human": 600}


def test_the_other_tasks_corpus_holds_every_task_but_the_targets(tmp_path, monkeypatch):
    import vidpolicy.envs.collect
    from _fewshot_runner import Runner
    from vidpolicy.envs.tasks import MT50

    seen = []
    monkeypatch.setattr(vidpolicy.envs.collect, "collect", lambda cfg: seen.append(cfg) or {"episodes": []})
    for b in (fewshot.Budget(), fewshot.Budget.quick()):
        Runner(tmp_path, b, "reach,push", None).run(fewshot.Cell("others"))
    full, quick = (cfg.tasks.split(",") for cfg in seen)
    assert sorted(full) == [t for t in MT50 if t not in ("reach-v3", "push-v3")] and len(quick) == 4
    assert seen[0].episodes == 5 and seen[0].seed == 500  # the actionless corpus' seeds: never evaluated on


def test_workers_share_a_grid_each_cell_once_waiting_for_what_another_holds(tmp_path):
    ran = []

    def run(name: str) -> dict:
        (tmp_path / name).mkdir()
        ran.append(name)
        return {}

    other = lock_cell(tmp_path, "a")  # another worker is running a
    assert other is not None and lock_cell(tmp_path, "a") is None
    worker = threading.Thread(target=run_cells, args=(tmp_path, ["a", "b", "c"], lambda n: ["a"] * (n == "b"), run,
                                                      0.01))
    worker.start()
    deadline = time.monotonic() + 20
    while not cell_done(tmp_path, "c") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert ran == ["c"]  # a is the other's; b needs a
    (tmp_path / "a").mkdir()
    finish_cell(tmp_path, "a", {})
    os.close(other)
    worker.join(20)
    assert ran == ["c", "b"] and not worker.is_alive()
    done = json.loads((tmp_path / "b" / "done.json").read_text())
    assert done["commit"] and done["wall_s"] >= 0 and done["cpu"]  # which code ran the cell, where, for how long
    assert done["resumed"] is False
    assert done["threads"] == torch.get_num_threads() and done["cores"] == os.cpu_count() and done["load_15m"] >= 0
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "checkpoint").write_bytes(b"x")  # a killed run's leftovers: its wall_s is the last run's only
    run_cells(tmp_path, ["d"], lambda n: [], lambda n: {})
    assert json.loads((tmp_path / "d" / "done.json").read_text())["resumed"] is True


def test_a_cell_records_the_commit_that_started_it(tmp_path, monkeypatch):
    import _common

    checkout = {"head": "aaaaaaa"}
    monkeypatch.setattr(_common, "commit", lambda: checkout["head"])

    def run(name):
        (tmp_path / name).mkdir()
        checkout["head"] = "bbbbbbb"  # pulled while the cell ran
        return {}
    run_cells(tmp_path, ["x"], lambda n: [], run)
    assert json.loads((tmp_path / "x" / "done.json").read_text())["commit"] == "aaaaaaa"


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
    imagine = fewshot.Cell("imagine", 5, 4, "vpdd", 0)
    fewshot.claim(tmp_path, imagine)
    finish_cell(tmp_path, imagine.name, {"imagined": {"token_accuracy": 0.5, "psnr": 20.0},
                                         "copy_history": {"token_accuracy": 0.4, "psnr": 19.0}})
    table = _fewshot_report.summarize(tmp_path, cells)["D5"]
    assert table["vpdd A=4xD"]["imagination"]["copy_history"]["token_accuracy"] == 0.4
    assert table["vpdd A=4xD"]["mean"] == 1.0 and table["vpdd scratch"]["mean"] == 0.25
    # 3 episodes only the pre-trained policy solved, none the other way: exact two-sided p = 2 / 2**3
    assert table["vpdd scratch"]["vs_pretrained"] == {"wins": 3, "losses": 0, "p_value": 0.25}
    assert table["act"]["vs_pretrained"] == {"wins": 0, "losses": 0, "p_value": 1.0}
    assert table["diffusion"]["expert_magnitude"] == [0.5, 0.5, None] and "expert_magnitude" not in table["act"]
    assert table["diffusion"]["machines"] == ["AMD EPYC"] and table["act"]["machines"] == ["unknown"]
    assert table["vpdd A=4xD, act on history"]["vs_pretrained"] == {"wins": 1, "losses": 0, "p_value": 1.0}
    # every other vidpolicy against scratch, wins its own: the gap at its corpus size
    assert table["vpdd A=4xD"]["vs_scratch"] == {"wins": 3, "losses": 0, "p_value": 0.25}
    assert table["vpdd A=4xD, act on history"]["vs_scratch"]["wins"] == 2 and "vs_scratch" not in table["act"]
    assert ("fewshot", "D5, vpdd A=4xD: episodes only it / only vidpolicy from scratch solved, on the seeds both "
            "ran", "3 / 0 (p = 0.25)") in rows({"fewshot": {"summary": {"D5": table}}})
    assert _fewshot_report.corpora(table) == [4]  # the variant is its own row, not a point of the curve
    table["act"].update(min=0.5, mean=0.75)  # as if a second seed solved two of four
    table["vpdd scratch"]["seeds"] = [0, 1]  # the curve's pre-trained point has fewer seeds: it says so
    points = [(0, table["vpdd scratch"]), (4, table["vpdd A=4xD"])]
    assert _fewshot_report.seed_notes(points) == [(4, 100.0, "1 seed")]
    assert _fewshot_report.plot({"D5": table}, tmp_path / "plot.png") == {"D5": {
        "Diffusion Policy": (0.0, 0.0, 0.0), "ACT": (50.0, 75.0, 100.0)}}
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_the_readme_table_shows_seed_ranges_and_the_paired_test():
    from _tables import fewshot_table

    def run(lo, hi):
        return {"seeds": [0, 1], "mean": (lo + hi) / 2, "min": lo, "max": hi,
                "per_task": {"reach-v3": {"mean": (lo + hi) / 2, "min": lo, "max": hi}}}
    table = {"act": {**run(0.2, 0.2), "vs_pretrained": {"wins": 1, "losses": 3, "p_value": 0.625}},
             "vpdd A=20xD": run(0.4, 0.5), "vpdd scratch": {"imagination": {}},
             "vpdd A=20xD, act on history": run(0.9, 0.9),  # a variant: benchmarks/results only
             "vpdd A=5xD": run(0.7, 0.7), "vpdd A=40xD": {"imagination": {}}}  # a smaller corpus: the plot's
    budget = {"eval_episodes": 10, "max_steps": 500, "seeds": [0, 1, 2], "train_steps": 2000}

    def lines():
        return fewshot_table({"summary": {"D5": table}, "budget": budget, "commit": "abc1234",
                              "cpu": "Intel(R) Xeon(R) Processor"}).splitlines()
    first = lines()
    assert first[0] == "| policy | reach | all | vs pre-trained |"
    assert first[2] == "| vidpolicy pre-trained (20x D actionless) | 45 (40-50) | **45 (40-50)** |  |"
    assert first[3] == "| ACT | 20 | **20** | 1 / 3, p = 0.62 |"  # no scratch row: it has no rollout yet
    assert not any("**90**" in line or "**70**" in line for line in first)
    assert "2 of 3 seeds (range in brackets)" in first[-1] and "abc1234" in first[-1] and "CPU sizes" in first[-1]
    assert "p. Intel Xeon, 2 cores" in first[-1]  # no machine in the cells: the report's own
    table["act"]["commits"], table["vpdd A=20xD"]["commits"] = ["c2"], ["c1", "c2"]  # the cells' own commits
    table["act"]["machines"] = ["AMD EPYC", "Intel(R) Xeon(R) Processor"]  # and their processors
    assert lines()[-1].endswith("rollouts at c1, c2.") and "p. AMD EPYC and Intel Xeon, 2 cores" in lines()[-1]
    table["act"]["commits"] = ["c3", "c4", "c5", "c6"]
    table["act"]["seeds"] = [0, 1, 2]  # a grid part-way: the policy with fewer seeds is named
    assert lines()[-1].endswith("rollouts at c1 to c6 (6 commits).")  # none in this history: by name
    assert "3 of 3 seeds (pre-trained: 2; range in brackets)" in lines()[-1]


def test_a_fresh_checkout_restores_finished_leaves_and_runs_only_what_is_missing(tmp_path):
    from _common import cell_result, record_cells, restore_cells

    b = fewshot.Budget(demos=(5,), multiples=(0, 20), seeds=(0,), variants=())
    cells = fewshot.grid(b)
    old, new, ledger = tmp_path / "old", tmp_path / "new", tmp_path / "ledger"
    recorded = ledger / "cells"
    scratch = fewshot.Cell("rollout", 5, 0, "vpdd", 0)
    for c in (fewshot.Cell("demos", 5), fewshot.Cell("train", 5, 0, "vpdd", 0), scratch):
        fewshot.claim(old, c)
        finish_cell(old, c.name, {"reach-v3": {"successes": 1, "episodes": 2, "success_steps": [None, 7]}})
    assert record_cells(old, recorded, [c.name for c in cells if c.stage in fewshot.LEAVES]) == 1  # the leaf only
    assert record_cells(old, recorded, [scratch.name]) == 0  # already recorded
    assert restore_cells(new, recorded) == 1 and restore_cells(new, recorded) == 0
    assert cell_result(new, scratch.name) == cell_result(old, scratch.name)
    todo = fewshot.select(cells, new)
    # the restored rollout's policy is not retrained; the imagine cell of that seed still needs it
    assert scratch not in todo and fewshot.Cell("train", 5, 0, "vpdd", 0) in todo
    assert fewshot.Cell("rollout", 5, None, "act", 0) in todo and fewshot.Cell("demos", 5) in todo
    imagine = fewshot.Cell("imagine", 5, 0, "vpdd", 0)
    fewshot.claim(new, imagine)
    finish_cell(new, imagine.name, {})
    assert fewshot.Cell("train", 5, 0, "vpdd", 0) not in fewshot.select(cells, new)
    # --only: the matching cells and what they read, in grid order
    only = fewshot.select(cells, new, ("D5/A20x/vpdd/seed0/rollout",))
    assert [c.name for c in only] == ["D5/demos", "others", "D5/A20x/actionless", "D5/A20x/pretrain",
                                      "D5/A20x/vpdd/seed0/train", "D5/A20x/vpdd/seed0/rollout"]
    plan = _fewshot_plan.plan_table(cells, b, 8, new, only)
    assert "D5/A0x/vpdd/seed0/rollout" in plan and plan.count("  yes") == 2  # restored rollout, imagine
    # a ledger belongs to one grid's settings: more seeds may join it, other training budgets may not
    mine = fewshot.settings(b, fewshot.TASKS, human=True)
    (ledger / "settings.json").write_text(json.dumps(mine))
    assert fewshot.ledger_mismatch(ledger, mine) == ""
    assert fewshot.ledger_mismatch(ledger, fewshot.settings(fewshot.Budget(seeds=(0, 1, 2)), fewshot.TASKS, True)) == ""
    assert fewshot.ledger_mismatch(ledger, fewshot.settings(fewshot.Budget(train_steps=100), fewshot.TASKS, False)) == (
        "human_videos True (here False), train_steps 2000 (here 100)")
    # a ledger from before scenes were recorded drew them otherwise (a fixed set of 50): never mixed in
    (ledger / "settings.json").write_text(json.dumps({k: v for k, v in mine.items() if k != "scenes"}))
    assert fewshot.ledger_mismatch(ledger, mine).startswith("scenes None (here seeded")


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
