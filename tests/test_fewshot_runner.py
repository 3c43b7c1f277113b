"""How the head-to-head grid runs its cells (benchmarks/fewshot.py): each trainer's inputs, resume after a kill,
workers sharing a grid, and the ledger a fresh checkout restores from."""

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
import fewshot  # noqa: E402
from _common import cell_done, finish_cell, ledger_mismatch, lock_cell, run_cells  # noqa: E402


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
    assert ledger_mismatch(ledger, mine) == ""
    assert ledger_mismatch(ledger, fewshot.settings(fewshot.Budget(seeds=(0, 1, 2)), fewshot.TASKS, True)) == ""
    assert ledger_mismatch(ledger, fewshot.settings(fewshot.Budget(train_steps=100), fewshot.TASKS, False)) == (
        "human_videos True (here False), train_steps 2000 (here 100)")
    # a ledger from before scenes were recorded drew them otherwise (a fixed set of 50): never mixed in
    (ledger / "settings.json").write_text(json.dumps({k: v for k, v in mine.items() if k != "scenes"}))
    assert ledger_mismatch(ledger, mine).startswith("scenes None (here seeded")
