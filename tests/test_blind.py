"""Blind replay (vidpolicy.envs.replay), the floor a policy has to clear: demos replayed open loop, no observation
read; and the grid's report splitting success by it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from _util import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from _fewshot_report import split_by_blind  # noqa: E402

from vidpolicy.envs.replay import blind_scores, demo_actions, replay  # noqa: E402
from vidpolicy.envs.rollout import format_table  # noqa: E402


def report_rows(report: dict) -> dict:
    return {k: v for k, v in report.items() if isinstance(v, dict)}


def test_a_demo_replayed_blind_solves_its_own_scene_and_standing_still_none(tmp_path, monkeypatch):
    from vidpolicy.envs.collect import CollectConfig, collect
    from vidpolicy.envs.metaworld import MetaWorldEnv

    data = tmp_path / "demos"
    collect(CollectConfig(tasks="reach", episodes=2, out=str(data), size=32, state="agent_pos"))
    recorded = json.loads((data / "meta" / "vidpolicy_collect.json").read_text())["episodes"]
    (actions,) = demo_actions(data).values()
    assert [len(a) for a in actions] == [e["length"] for e in recorded] and actions[0].shape[1] == 4
    env = MetaWorldEnv("reach", size=16)
    for a, e in zip(actions, recorded):  # the simulator is deterministic: the demo's own scene, solved again
        assert replay(env, a, e["seed"])
        assert not replay(env, np.zeros_like(a), e["seed"])
        assert not replay(env, a[: e["success_step"]], e["seed"])  # solved at its recorded step, not before
    first = recorded[0]["seed"]
    scores = blind_scores(data, episodes=1, seed=first, max_steps=500)  # scene 0: demo 0's, solved by it
    assert scores["scenes"]["reach-v3"][0] in (0.5, 1.0) and scores["best_demo"]["reach-v3"] == 1.0
    # `rollout --blind-floor`: the same floor beside the policy's success, in its scenes; none for a task without demos
    from vidpolicy.envs.rollout import RolloutConfig, rollout

    report = rollout(RolloutConfig(policy="expert", tasks="reach,push", episodes=1, seed=first, max_steps=150,
                                   out=str(tmp_path / "eval"), videos=False, blind_floor=str(data)))
    assert report["reach-v3"]["blind_replay_rate"] == scores["replay"]["reach-v3"]
    assert report["push-v3"]["blind_replay_rate"] is None and report["reach-v3"]["successes"] == 1
    assert format_table(report_rows(report)).splitlines()[0].split() == ["task", "success", "rate", "blind"]
    # a resumed rollout reuses the floor it scored (same config, same scenes): no demo is replayed again
    import vidpolicy.envs.replay

    monkeypatch.setattr(vidpolicy.envs.replay, "blind_scores", lambda *a, **k: pytest.fail("scored again"))
    again = rollout(RolloutConfig(policy="expert", tasks="reach,push", episodes=1, seed=first, max_steps=150,
                                  out=str(tmp_path / "eval"), videos=False, blind_floor=str(data)))
    assert again["reach-v3"]["blind_replay_rate"] == scores["replay"]["reach-v3"]
    # demos rewritten in place under the same path: their floor is scored again, not the old one reused
    side_car = data / "meta" / "vidpolicy_collect.json"
    side_car.write_text(json.dumps(json.loads(side_car.read_text()), indent=1))
    monkeypatch.setattr(vidpolicy.envs.replay, "blind_scores", lambda *a, **k: {"replay": {"reach-v3": 0.25}})
    rescored = rollout(RolloutConfig(policy="expert", tasks="reach,push", episodes=1, seed=first, max_steps=150,
                                     out=str(tmp_path / "eval"), videos=False, blind_floor=str(data)))
    assert rescored["reach-v3"]["blind_replay_rate"] == 0.25


def test_demos_without_collects_record_get_a_one_line_error(tmp_path):
    from vidpolicy.common.errors import VidpolicyError

    with pytest.raises(VidpolicyError, match=r"vidpolicy_collect.json: missing"):
        demo_actions(tmp_path)


def test_success_splits_by_the_scenes_a_blind_replay_solves():
    scenes = {"a": [1.0, 0.0], "b": [0.0, 0.5]}
    seeds = {0: {"a": {"success_steps": [3, 9]}, "b": {"success_steps": [None, None]}},
             1: {"a": {"success_steps": [None, None]}, "b": {"success_steps": [None, 4]}}}
    assert split_by_blind(scenes, seeds) == {"blind": [2, 4], "not_blind": [1, 4]}
