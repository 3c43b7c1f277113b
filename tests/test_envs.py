"""Meta-World headless: shapes, an upright camera, collecting a dataset, expert rollouts, the sample reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidpolicy.common.io import read_jsonl
from vidpolicy.datasets.robot import RobotEpisodes, chunk_steps, clip_indices
from vidpolicy.envs.collect import CollectConfig, collect
from vidpolicy.envs.metaworld import MetaWorldEnv
from vidpolicy.envs.rollout import RolloutConfig, rollout
from _util import run_cli, shared


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach"
    collect(CollectConfig(tasks="reach", episodes=2, out=str(out), size=64))
    return out


def test_reset_step_render_shapes_and_upright():
    env = MetaWorldEnv("reach", size=64)
    obs = env.reset(0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (39,) and obs["instruction"].startswith("reach")
    obs, r, done, info = env.step(np.zeros(4))
    assert isinstance(r, float) and not done and "success" in info
    img = obs["image"].astype(float)
    # upright: the plain grey backdrop is at the top, the table's edge and the floor below (busy and darker)
    top, bottom = img[:10], img[-10:]
    assert top.std(axis=(0, 1)).mean() < 0.6 * bottom.std(axis=(0, 1)).mean()
    assert top.mean() > bottom.mean() + 10
    env.close()


def test_a_branch_is_undone_and_the_episode_goes_on_as_if_not_taken():
    envs = [MetaWorldEnv("push", size=32) for _ in range(2)]
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (16, 4)).astype(np.float32)
    for env in envs:
        env.reset(3)
        for a in actions[:6]:
            env.step(a)
    taken, plain = envs
    before = taken.render()
    with taken.branch():  # the expert moves the hand and maybe the puck for 15 steps
        expert = taken.expert()
        obs = taken._observation(taken._obs)
        for _ in range(15):
            obs, *_ = taken.step(expert(obs))
        assert np.abs(obs["state"][:3] - plain._obs[:3]).max() > 0.01 and taken.steps == 21
    assert taken.steps == 6 and np.array_equal(taken.render(), before)
    for a in actions[6:]:  # both go on with the same actions: identical to the last bit
        (o1, r1, d1, i1), (o2, r2, d2, i2) = taken.step(a), plain.step(a)
        assert np.array_equal(o1["state"], o2["state"]) and np.array_equal(o1["image"], o2["image"])
        assert (r1, d1, i1) == (r2, d2, i2)
    for env in envs:
        env.close()


def test_every_seed_is_its_own_scene_and_lerobots_for_that_seed():
    from vidpolicy.envs.lerobot_view import LeRobotMetaWorldEnv

    ours, theirs = MetaWorldEnv("push", size=32), LeRobotMetaWorldEnv("push")
    # seeds 50 apart once shared one of Meta-World's 50 variations: evaluation (1000+) replayed the demos (0..)
    scenes = {s: ours.reset(s)["state"] for s in (0, 50, 1000)}
    goal_and_puck = slice(4, 7), slice(36, 39)
    assert all(np.abs(scenes[0][p] - scenes[s][p]).max() > 1e-3 for s in (50, 1000) for p in goal_and_puck)
    for s in (0, 1000):
        theirs.reset(s)
        assert np.abs(ours.reset(s)["state"] - theirs._obs).max() < 1e-6
    assert np.array_equal(ours.reset(50)["state"], scenes[50])
    ours.close(), theirs.close()


def test_fast_render_is_the_full_render_supersampled_without_shadows():
    fast, full = MetaWorldEnv("reach", size=64), MetaWorldEnv("reach", size=64, shadows=True)
    a, b = fast.reset(3)["image"], full.reset(3)["image"]
    # rendered at 128² without multisampling, averaged 2x2 (anti-aliased as Meta-World's 4x multisampling is)
    assert a.shape == b.shape == (64, 64, 3) and fast.env.width == 128 and full.env.width == 64
    assert fast.env.model.vis.quality.offsamples == 0 < full.env.model.vis.quality.offsamples
    # the same scene from the same camera, upright: most pixels within a few levels; the shadows differ
    diff = np.abs(a.astype(float) - b).mean(-1)
    assert np.median(diff) < 3 and diff.mean() < 15 and diff.max() > 20
    fast.close(), full.close()


def test_collect_two_episodes_reopens_with_frames_and_actions(demos):
    log = json.loads((demos / "meta" / "vidpolicy_collect.json").read_text())
    assert [e["seed"] for e in log["episodes"]] == [0, 1]
    eps = RobotEpisodes(demos, size=64)
    assert len(eps) == 2 and eps.action_dim == 4
    for i, e in enumerate(log["episodes"]):
        assert eps.episodes[i].length == e["length"]
        assert eps.frames(i).shape == (e["length"], 64, 64, 3)
        assert eps.actions(i).shape == (e["length"], 4)
        assert e["success_step"] is not None


def test_rerun_adds_only_missing_episodes(tmp_path):
    out = tmp_path / "d"
    collect(CollectConfig(tasks="reach", episodes=1, out=str(out), size=32))
    collect(CollectConfig(tasks="reach", episodes=2, out=str(out), size=32))
    log = json.loads((out / "meta" / "vidpolicy_collect.json").read_text())
    assert [e["seed"] for e in log["episodes"]] == [0, 1]
    assert len(RobotEpisodes(out, size=32)) == 2


def test_expert_rollout_succeeds(tmp_path):
    res = rollout(RolloutConfig(tasks="reach", episodes=5, out=str(tmp_path / "r"), size=64))
    assert res["reach-v3"]["successes"] >= 4
    assert (tmp_path / "r" / "success.png").exists()
    assert len(list((tmp_path / "r" / "videos").glob("*.mp4"))) == 5
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["mean_success_rate"] == res["mean_success_rate"]


class _OffsetExpert:
    """The scripted expert with its x displacement shifted by 0.3 (clipped to the action box)."""

    def __init__(self, env):
        self._act = env.expert()

    def reset(self):
        pass

    def select_action(self, obs):
        return self._act(obs) + np.array([0.3, 0, 0, 0], np.float32)


def test_rollout_scores_actions_against_the_expert_in_the_visited_states(tmp_path):
    cfg = RolloutConfig(policy="offset", tasks="reach", episodes=2, out=str(tmp_path / "r"), size=64, max_steps=40,
                        videos=False)
    res = rollout(cfg, make_policy=_OffsetExpert)
    err = np.array(res["reach-v3"]["expert_action_sq_error"])
    assert err.shape == (2, 4)
    # y, z and the gripper agree exactly; x differs by 0.3 except where clipping at +1 shrinks the gap
    assert np.all(err[:, 1:] == 0) and np.all(err[:, 0] > 0) and np.all(err[:, 0] <= 0.09 + 1e-6)
    size = np.array(res["reach-v3"]["expert_magnitude"])  # mean |action| over the expert's, per dimension
    assert size.shape == (2, 4) and np.all(size[:, 1:3] == 1.0) and np.all(size[:, 0] != 1.0)
    assert list(size[:, 3]) == [None, None]  # reach never moves the gripper: no ratio
    expert = rollout(RolloutConfig(tasks="reach", episodes=1, out=str(tmp_path / "e"), size=64, max_steps=5,
                                   videos=False))
    assert "expert_action_sq_error" not in expert["reach-v3"]  # nothing to compare the expert with


def test_history_clips_pad_at_episode_starts():
    idx, valid = clip_indices(1, 4, 50)
    assert idx.tolist() == [0, 0, 0, 1] and valid.tolist() == [False, False, True, True]
    idx, valid = clip_indices(49, 4, 50)
    assert idx.tolist() == [46, 47, 48, 49] and valid.all()


def test_action_chunks_match_lerobot_delta_timestamps(demos):
    """The episodes, their order and the chunk convention are LeRobotDataset's: a chunk read with
    ``delta_timestamps`` equals ours, its padding flags included."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    eps, horizon = RobotEpisodes(demos, size=64), 6
    ds = LeRobotDataset(demos.name, root=demos, delta_timestamps={"action": [k / eps.fps for k in range(horizon)]})
    first = 0
    for i, e in enumerate(eps.episodes):
        for t in (0, e.length - 3, e.length - 1):
            item = ds[first + t]
            steps, pad = chunk_steps(t, horizon, e.length)
            assert int(item["episode_index"]) == e.index and int(item["frame_index"]) == t
            assert np.allclose(item["action"].numpy(), eps.actions(i)[steps])
            assert item["action_is_pad"].numpy().tolist() == pad.tolist()
        first += e.length
    assert pad.sum() == horizon - 1


def test_episodes_of_the_g1_dataset():
    root = shared("robot/g1_pick_bottle")
    eps = RobotEpisodes(root, size=96)
    assert len(eps) == 20 and eps.action_dim == 26
    assert eps.actions(0).shape == (eps.episodes[0].length, 26)
    assert eps.frames(0).shape == (eps.episodes[0].length, 96, 96, 3)
    assert eps.episodes[0].task == "Pick up the yellow bottle on the table."


def test_bad_input_exit_2(tmp_path):
    r = run_cli("rollout", "--tasks", "reach,flyaway", "--episodes", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "flyaway" in r.stderr and "reach-v3" in r.stderr
    (tmp_path / "ds" / "meta").mkdir(parents=True)
    (tmp_path / "ds" / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 10, "features": {"observation.state": {"dtype": "float32", "shape": [3]}},
        "total_episodes": 0, "total_frames": 0, "total_tasks": 0, "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None}))
    from vidpolicy.common.errors import VidpolicyError

    with pytest.raises(VidpolicyError, match="action"):
        RobotEpisodes(tmp_path / "ds")


def test_no_gl_backend_names_what_was_tried(monkeypatch):
    import mujoco

    from vidpolicy.common.errors import VidpolicyError
    from vidpolicy.envs import metaworld as mw

    def broken(*a, **k):
        raise RuntimeError("cannot initialize a display")

    monkeypatch.setattr(mujoco, "GLContext", broken)
    monkeypatch.setattr(mw, "_checked", {})
    monkeypatch.setenv("MUJOCO_GL", "egl")
    with pytest.raises(VidpolicyError) as e:
        mw.ensure_gl()
    assert "MUJOCO_GL=egl" in str(e.value) and "osmesa" in str(e.value) and "apt-get install" in str(e.value)


def test_agent_pos_state_is_what_a_real_robot_knows(tmp_path):
    from vidpolicy.common.errors import VidpolicyError
    from vidpolicy.envs.views import make_env

    full, pos = make_env("vidpolicy", "reach", size=32), make_env("vidpolicy", "reach", size=32, state="agent_pos")
    a, b = full.reset(3), pos.reset(3)
    assert a["state"].shape == (39,) and b["state"].shape == (4,) and np.allclose(a["state"][:4], b["state"])
    assert np.array_equal(pos.expert()(b), full.expert()(a))  # the scripted expert still reads the full state
    with pytest.raises(VidpolicyError, match="agent_pos only"):
        make_env("lerobot", "reach", state="full")
    out = tmp_path / "pos"
    collect(CollectConfig(tasks="reach", episodes=1, out=str(out), size=32, state="agent_pos"))
    assert json.loads((out / "meta" / "info.json").read_text())["features"]["observation.state"]["shape"] == [4]
    with pytest.raises(VidpolicyError, match="with the agent_pos state, not vidpolicy with full"):
        collect(CollectConfig(tasks="reach", episodes=2, out=str(out), size=32))


class _NoisyExpert(_OffsetExpert):
    """The expert plus noise from torch's global stream (as LeRobot's Diffusion Policy samples); stops the process
    (KeyboardInterrupt, as a kill would) at its ``stop_at``-th episode."""

    episodes, stop_at = 0, None

    def reset(self):
        _NoisyExpert.episodes += 1
        if _NoisyExpert.episodes == _NoisyExpert.stop_at:
            raise KeyboardInterrupt

    def select_action(self, obs):
        return self._act(obs) + 0.5 * torch.randn(4).numpy()


def test_a_killed_rollout_resumes_after_its_last_episode_and_reports_as_if_never_stopped(tmp_path):
    def run(out, stop_at=None):
        _NoisyExpert.episodes, _NoisyExpert.stop_at = 0, stop_at
        cfg = RolloutConfig(policy="noisy", tasks="reach,push", episodes=2, out=str(out), size=32, max_steps=12,
                            videos=False)
        return rollout(cfg, make_policy=_NoisyExpert)

    whole = run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", stop_at=4)  # the last episode of push starts, then the process dies
    assert len((tmp_path / "cut" / "episodes.jsonl").read_text().splitlines()) == 3
    with open(tmp_path / "cut" / "episodes.jsonl", "a") as f:
        f.write('{"task": "push-v3", "se')  # the kill tore a line being written
    resumed = run(tmp_path / "cut")
    assert _NoisyExpert.episodes == 1  # only the missing episode ran
    for task in ("reach-v3", "push-v3"):
        assert resumed[task]["expert_action_sq_error"] == whole[task]["expert_action_sq_error"]
        assert resumed[task]["seeds"] == [1000, 1001]
    assert len(read_jsonl(tmp_path / "cut" / "episodes.jsonl")) == 4
    again = run(tmp_path / "cut", stop_at=1)  # a finished rollout rerun runs nothing
    assert again["push-v3"]["expert_action_sq_error"] == whole["push-v3"]["expert_action_sq_error"]
