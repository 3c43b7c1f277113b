"""vidpolicy as a LeRobot policy type and env type: registration, lerobot-train / lerobot-eval on our policy and in
our view, our rollout on LeRobot's policies, demos recorded as LeRobot's Meta-World shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _util import ROOT, run_cli

BIN = Path(sys.executable).parent


def _lerobot(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(BIN / script)] if not script.endswith(".py") else [sys.executable, script]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})


@pytest.fixture(scope="module")
def lerobot_demos(tmp_path_factory) -> Path:
    """Two reach demos recorded as lerobot-eval's Meta-World shows them."""
    out = tmp_path_factory.mktemp("lr") / "demos"
    r = run_cli("collect", "--view", "lerobot", "--tasks", "reach", "--episodes", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def lerobot_policy(policy, lerobot_demos) -> Path:
    """`vidpolicy finetune` on those demos, from the tiny pre-training run of the `policy` fixture."""
    out = lerobot_demos.parent / "policy"
    r = run_cli("finetune", "--pretrained", str(policy.parent / "pre"), "--dataset", str(lerobot_demos), "--out",
                str(out), "--width", "32", "--depth", "1", "--max-steps", "10", "--batch-size", "8",
                "--sampling-steps", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_vpdd_and_vidpolicy_are_registered_lerobot_types():
    from lerobot.configs import PreTrainedConfig
    from lerobot.envs.configs import EnvConfig
    from lerobot.policies.factory import get_policy_class
    from lerobot.utils.import_utils import register_third_party_plugins

    from vidpolicy.envs.tasks import INSTRUCTIONS
    from vidpolicy.policies.lerobot_vpdd.modeling_vpdd import VPDDPolicy

    register_third_party_plugins()
    assert "vpdd" in PreTrainedConfig.get_known_choices()
    assert get_policy_class("vpdd") is VPDDPolicy
    env = EnvConfig.get_choice_class("vidpolicy")(task="reach", size=32, state="full")
    assert env.features["pixels/corner"].shape == (32, 32, 3) and env.features["agent_pos"].shape == (39,)
    assert env.features_map["pixels/corner"] == "observation.images.corner"  # the key `vidpolicy collect` records
    vec = env.create_envs(n_envs=2)["vidpolicy"][0]  # lerobot-eval's loop reads the instruction from the env
    assert vec.call("task_description") == (INSTRUCTIONS["reach-v3"],) * 2 and vec.call("_max_episode_steps")[0] == 500
    vec.close()


def test_collect_lerobot_view_records_what_lerobot_eval_shows(lerobot_demos):
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS, MetaworldEnv

    info = json.loads((lerobot_demos / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["shape"] == [480, 480, 3]
    assert info["features"]["observation.state"]["shape"] == [4]
    from vidpolicy.envs.lerobot_view import LeRobotMetaWorldEnv

    ours, theirs = LeRobotMetaWorldEnv("reach"), MetaworldEnv("reach-v3", obs_type="pixels_agent_pos")
    a, (b, _) = ours.reset(1003), theirs.reset(seed=1003)
    assert np.array_equal(a["image"], b["pixels"]) and np.allclose(a["state"], b["agent_pos"])
    assert a["instruction"] == TASK_DESCRIPTIONS["reach-v3"]
    ours.close(), theirs.close()
    r = run_cli("collect", "--tasks", "reach", "--episodes", "3", "--out", str(lerobot_demos))  # the other view
    assert r.returncode == 2 and "recorded in the lerobot view with the agent_pos state, not vidpolicy" in r.stderr


def test_lerobot_eval_runs_a_finetuned_policy_directory(lerobot_policy, tmp_path):
    r = _lerobot("tests/lerobot_eval_short.py", "12", f"--policy.path={lerobot_policy}", "--env.type=metaworld",
                 "--env.task=reach-v3", "--eval.n_episodes=1", "--eval.batch_size=1", "--eval.use_async_envs=false",
                 "--policy.device=cpu", "--policy.save_predicted_video=true", f"--output_dir={tmp_path / 'eval'}")
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert "pc_success" in info["overall"] and info["overall"]["n_episodes"] == 1
    assert list((tmp_path / "eval" / "videos").rglob("pred_episode_0.mp4"))  # the imagined futures


def test_lerobot_train_checkpoint_acts_as_vidpolicy_does(policy, lerobot_demos, tmp_path):
    out = tmp_path / "train"
    r = _lerobot("lerobot-train", "--policy.type=vpdd", f"--policy.pretrained_model={policy.parent / 'pre'}",
                 "--policy.width=32", "--policy.depth=1", "--policy.sampling_steps=2", "--policy.push_to_hub=false",
                 "--policy.device=cpu", "--dataset.repo_id=local/demos", f"--dataset.root={lerobot_demos}",
                 "--steps=2", "--batch_size=4", "--save_freq=2", "--num_workers=0", "--wandb.enable=false",
                 f"--output_dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    from vidpolicy.envs.lerobot_policy import LeRobotPolicy
    from vidpolicy.policies.vpdd import VPDDPolicy

    rng = np.random.default_rng(0)
    obs = [{"image": rng.integers(0, 255, (480, 480, 3), dtype=np.uint8), "state": rng.normal(size=4),
            "instruction": "Reach a goal position"} for _ in range(3)]
    through_lerobot, reloaded, direct = LeRobotPolicy(ckpt, 4), LeRobotPolicy(ckpt, 4), VPDDPolicy.from_pretrained(ckpt)
    for p in (through_lerobot, reloaded, direct):
        p.reset()
    for o in obs:  # LeRobot's pipelines and vidpolicy's own processor prepare the same inputs
        a = through_lerobot.select_action(o)
        assert np.array_equal(a, reloaded.select_action(o))
        np.testing.assert_allclose(a, direct.select_action(o), atol=1e-6)
    assert json.loads((ckpt / "config.json").read_text())["type"] == "vpdd"


def _train_act(demos: Path, out: Path) -> Path:
    """A 2-step ACT (deterministic: no sampling) trained by lerobot-train on ``demos``; its policy directory."""
    r = _lerobot("lerobot-train", "--policy.type=act", "--policy.pretrained_backbone_weights=null",
                 "--policy.dim_model=32", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
                 "--policy.dim_feedforward=64", "--policy.chunk_size=8", "--policy.n_action_steps=8",
                 "--policy.push_to_hub=false", "--policy.device=cpu", "--dataset.repo_id=local/demos",
                 f"--dataset.root={demos}", "--steps=2", "--batch_size=2", "--save_freq=2", "--num_workers=0",
                 "--wandb.enable=false", f"--output_dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    return out / "checkpoints" / "last" / "pretrained_model"


def _eval_returns(out: Path, *args: str, steps: int = 0) -> list[float]:
    """Each episode's return in lerobot-eval (``steps``: Meta-World's episodes cut short, as the test's own)."""
    script = ("tests/lerobot_eval_short.py", str(steps)) if steps else ("lerobot-eval",)
    r = _lerobot(*script, *args, "--eval.batch_size=1", "--eval.use_async_envs=false", "--policy.device=cpu",
                 "--seed=1000", f"--output_dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "eval_info.json").read_text())["per_task"][0]["metrics"]["sum_rewards"]


def test_rollout_runs_a_lerobot_act_policy(lerobot_demos, tmp_path, capsys):
    ckpt = _train_act(lerobot_demos, tmp_path / "act")
    _sees_frames_as_its_demos_video(ckpt, tmp_path, capsys)
    r = run_cli("rollout", "--policy", str(ckpt), "--view", "lerobot", "--tasks", "reach", "--episodes", "2",
                "--max-steps", "8", "--no-yuv420", "--out", str(tmp_path / "roll"))  # lerobot-eval shows raw frames
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "roll" / "results.json").read_text())
    assert res["reach-v3"]["episodes"] == 2 and res["reach-v3"]["seeds"] == [1000, 1001]
    theirs = _eval_returns(tmp_path / "eval", f"--policy.path={ckpt}", "--env.type=metaworld", "--env.task=reach-v3",
                           "--eval.n_episodes=2", steps=8)
    # the same policy, seeds and steps in both harnesses: the same trajectories, so the same dense-reward sums
    np.testing.assert_allclose(res["reach-v3"]["returns"], theirs, rtol=1e-5)
    assert abs(theirs[0] - theirs[1]) > 1e-3  # two different episodes: the comparison can tell them apart
    r = run_cli("rollout", "--policy", str(ckpt), "--tasks", "reach", "--episodes", "1", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "observation.state has 4 dimension(s)" in r.stderr and "--view" in r.stderr


def _sees_frames_as_its_demos_video(ckpt: Path, tmp_path: Path, capsys) -> None:
    """A LeRobot policy trained on yuv420p video sees each live frame through yuv420p and back, as the demos showed
    it; raw frames, and a warning saying so, where the demos' format is not known (its dataset moved)."""
    import shutil

    from vidpolicy.common.media import yuv420_round_trip
    from vidpolicy.envs.lerobot_policy import LeRobotPolicy, camera_view, training_pix_fmt

    seen, raw = LeRobotPolicy(ckpt, 4), LeRobotPolicy(ckpt, 4, yuv420=False)
    assert training_pix_fmt(ckpt, seen.image_key) == "yuv420p" and seen.yuv420 and not raw.yuv420
    frame = np.random.default_rng(0).integers(0, 256, (seen.image_size, seen.image_size, 3), dtype=np.uint8)
    obs = {"image": frame, "state": np.zeros(4, np.float32), "instruction": "reach"}

    def act(policy: LeRobotPolicy, o: dict) -> np.ndarray:
        policy.reset()  # a fresh chunk each time, not the queue of the last one
        return policy.select_action(o)

    np.testing.assert_allclose(act(seen, obs), act(raw, {**obs, "image": yuv420_round_trip(frame)}), atol=1e-6)
    assert np.abs(act(seen, obs) - act(raw, obs)).max() > 1e-4  # the round trip changed what the policy saw
    moved = tmp_path / "moved"
    shutil.copytree(ckpt, moved)
    cfg = json.loads((moved / "train_config.json").read_text())
    cfg["dataset"]["root"] = str(tmp_path / "gone")
    (moved / "train_config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert training_pix_fmt(moved, seen.image_key) is None and not LeRobotPolicy(moved, 4).yuv420
    assert "pixel format of its training video is unknown" in capsys.readouterr().err
    (moved / "model.safetensors").unlink()  # the camera's view comes from the policy's files, not its weights
    assert camera_view(moved, yuv420=True)[1:] == (seen.image_key, seen.image_size, True)


def test_mismatched_policy_files_and_directories_are_refused_by_name(lerobot_policy, tmp_path):
    import shutil

    from lerobot.configs.types import FeatureType, PolicyFeature

    from vidpolicy.policies.lerobot_vpdd.configuration_vpdd import VPDDConfig
    from vidpolicy.policies.lerobot_vpdd.modeling_vpdd import VPDDPolicy

    bad = tmp_path / "bad"
    shutil.copytree(lerobot_policy, bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "horizon": cfg["horizon"] + 1}))
    with pytest.raises(ValueError, match=r"horizon=5 but the saved policy \(policy_config.json\) has 4"):
        VPDDPolicy.from_pretrained(bad)
    config = VPDDConfig.from_pretrained(lerobot_policy)
    config.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}
    with pytest.raises(ValueError, match="the environment: action has 7 dimension.* trained with 4"):
        VPDDPolicy.from_pretrained(lerobot_policy, config=config)
    (tmp_path / "empty").mkdir()
    r = run_cli("rollout", "--policy", str(tmp_path / "empty"), "--tasks", "reach", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "not a policy directory" in r.stderr


def test_lerobot_eval_scores_in_vidpolicy_view_as_rollout_does(tmp_path):
    """`--env.type=vidpolicy`: a policy trained on `vidpolicy collect` demos (96², agent_pos) meets in lerobot-eval
    the frames, state, scenes and yuv420p round trip that `vidpolicy rollout` gives it: the same returns."""
    demos = tmp_path / "demos"
    r = run_cli("collect", "--tasks", "reach", "--state", "agent_pos", "--episodes", "2", "--out", str(demos))
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = _train_act(demos, tmp_path / "act")
    r = run_cli("rollout", "--policy", str(ckpt), "--state", "agent_pos", "--tasks", "reach", "--episodes", "2",
                "--max-steps", "12", "--steps-after-success", "0", "--out", str(tmp_path / "roll"))
    assert r.returncode == 0, r.stderr[-2000:]
    ours = json.loads((tmp_path / "roll" / "results.json").read_text())["reach-v3"]["returns"]
    env = [f"--policy.path={ckpt}", "--env.type=vidpolicy", "--env.task=reach", "--env.episode_length=12",
           "--eval.n_episodes=2"]
    theirs = _eval_returns(tmp_path / "eval", *env, "--env.yuv420=true")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert abs(theirs[0] - theirs[1]) > 1e-3  # two scenes: the comparison can tell episodes apart
    raw = _eval_returns(tmp_path / "raw", *env)  # frames not through yuv420p: not what rollout showed the policy
    assert not np.allclose(raw, theirs, rtol=1e-5)
