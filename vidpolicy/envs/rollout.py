"""``vidpolicy rollout``: run a policy on Meta-World tasks and report success rates, videos and a bar chart.

A policy is any object with ``reset()`` and ``select_action(observation) -> action``; if it also has
``imagined_frames()`` the video shows what it imagined next to what the robot did. Meta-World's convention:
an episode succeeds if ``info["success"]`` is set at any step, within at most 500 steps. Each learned policy's
action is also scored against what the scripted expert would do in the same state (the states the policy's own
actions led to): ``expert_action_sq_error`` per episode and action dimension in results.json, beside each episode's
return (the sum of Meta-World's dense reward, lerobot-eval's ``sum_reward``). Each finished episode is journaled
(``episodes.jsonl``): the same command after a kill runs only the episodes not yet journaled, and each episode's
randomness comes from its seed, so the report equals an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.io import append_jsonl, read_jsonl, write_json
from vidpolicy.common.media import side_by_side, write_mp4
from vidpolicy.common.plots import plot_success
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.runlock import releases_run_locks
from vidpolicy.envs.lerobot_policy import LeRobotPolicy, is_lerobot_policy
from vidpolicy.envs.metaworld import MetaWorldEnv
from vidpolicy.envs.rollout_config import RolloutConfig
from vidpolicy.envs.tasks import resolve_tasks
from vidpolicy.envs.views import ACTION_DIM, STATES, check_view, make_env, state_kind
from vidpolicy.policies.vpdd.configuration_vpdd import CONFIG_NAME

EPISODES = "episodes.jsonl"  # one line per finished episode: a killed rollout resumes after the last one
BLIND_FLOOR = "blind_floor.json"  # --blind-floor's per-task rates, kept so that a resumed rollout reuses them
JOURNALED = ("success", "success_step", "steps", "return", "expert_sq_error", "expert_magnitude")


class ExpertPolicy:
    """Meta-World's scripted expert behind the policy interface."""

    def __init__(self, env: MetaWorldEnv):
        self._act = env.expert()

    def reset(self) -> None:
        pass

    def select_action(self, observation: dict) -> np.ndarray:
        return self._act(observation)


def run_episode(env: MetaWorldEnv, policy, seed: int, max_steps: int, after_success: int = 5,
                record: bool = True, expert: Callable[[dict], np.ndarray] | None = None) -> dict:
    """One episode; with ``expert`` (obs -> action) each action is also compared with the expert's in that state:
    ``expert_sq_error`` is the mean squared difference per action dimension (both clipped to the action box), and
    ``expert_magnitude`` the policy's mean |action| over the expert's, per dimension (below 1: it moves slower;
    None where the expert never moved that dimension)."""
    obs = env.reset(seed)
    policy.reset()
    frames, panels, success_at, sq_err, ret = [obs["image"]], [], None, [], 0.0
    size = 0.0  # summed |action| per dimension: the policy's, the expert's
    for step in range(max_steps):
        action = policy.select_action(obs)
        if expert is not None:
            mine, theirs = env.clip_action(action).astype(np.float64), env.clip_action(expert(obs)).astype(np.float64)
            sq_err.append((mine - theirs) ** 2)
            size = size + np.abs([mine, theirs])
        if record and hasattr(policy, "imagined_frames"):
            panels.append(policy.imagined_frames())
        obs, reward, done, info = env.step(action)
        ret += reward
        if record:
            frames.append(obs["image"])
        if info["success"] and success_at is None:
            success_at = step
        if done or (success_at is not None and step - success_at >= after_success):
            break
    return {"success": success_at is not None, "success_step": success_at, "steps": step + 1, "return": ret,
            "frames": np.stack(frames) if record else None, "panels": panels,
            "expert_sq_error": np.mean(sq_err, axis=0).tolist() if sq_err else None,
            "expert_magnitude": [m / e if e else None for m, e in zip(*size.tolist())] if sq_err else None}


def _video(result: dict) -> np.ndarray:
    frames = result["frames"]
    panels = [p for p in result["panels"] if p is not None]
    if not panels:
        return frames
    imagined = np.stack([p[-1] for p in result["panels"][: len(frames) - 1]] + [panels[-1][-1]])
    return side_by_side(frames, imagined[: len(frames)])


def _policy_maker(cfg: RolloutConfig) -> tuple[Callable[[MetaWorldEnv], object], int]:
    """How to make the policy of ``cfg.policy`` for a task's env, and the camera size it reads."""
    if cfg.policy == "expert":
        return ExpertPolicy, cfg.size
    path = Path(cfg.policy)
    if (path / CONFIG_NAME).exists():  # vidpolicy's own layout: acts without LeRobot's pipelines
        from vidpolicy.policies.vpdd import VPDDPolicy

        shared = VPDDPolicy.from_pretrained(path, sampling_steps=cfg.sampling_steps, execute=cfg.execute,
                                            guidance=cfg.guidance, yuv420=cfg.yuv420, device=cfg.device,
                                            action_decode=cfg.action_decode)
    elif is_lerobot_policy(path):
        shared = LeRobotPolicy(path, state_dim=STATES[state_kind(cfg.view, cfg.state)], yuv420=cfg.yuv420,
                               device=cfg.device)
    else:
        raise VidpolicyError(f"{path}: not a policy directory (no {CONFIG_NAME} of vidpolicy, no config.json with a "
                             f"LeRobot policy type)")
    if shared.action_dim != ACTION_DIM:
        raise VidpolicyError(f"{cfg.policy}: the policy acts in {shared.action_dim} dimensions but Meta-World takes "
                             f"{ACTION_DIM}")
    return (lambda env: shared), shared.image_size  # one policy object serves every task


@releases_run_locks
def rollout(cfg: RolloutConfig, overwrite: bool = False,
            make_policy: Callable[[MetaWorldEnv], object] | None = None) -> dict:
    tasks = resolve_tasks(cfg.tasks)
    state_kind(check_view(cfg.view), cfg.state)
    out = Path(cfg.out)
    resuming = prepare_run_dir(out, cfg, overwrite=overwrite)
    size = cfg.size
    if make_policy is None:
        make_policy, size = _policy_maker(cfg)
    journal = out / EPISODES
    done = {(r["task"], r["seed"]): r for r in read_jsonl(journal)} if resuming else {}
    floor = _blind_floor(cfg, tasks, out / BLIND_FLOOR) if cfg.blind_floor else {}
    results: dict = {}
    bar = tqdm(total=len(tasks) * cfg.episodes, desc="rollout", unit="ep")
    t0 = time.time()
    for task in tasks:
        env = make_env(cfg.view, task, size=size, max_steps=cfg.max_steps, state=cfg.state)
        policy = make_policy(env)
        expert = env.expert() if cfg.expert_labels and not isinstance(policy, ExpertPolicy) else None
        row = {"episodes": 0, "successes": 0, "seeds": [], "success_steps": []}
        for k in range(cfg.episodes):
            seed = cfg.seed + k
            res = done.get((task, seed))
            if res is None:  # not run before a kill: run it and journal it before moving on
                torch.manual_seed(seed)  # a policy sampling from torch's stream acts the same on a rerun
                res = run_episode(env, policy, seed, cfg.max_steps, cfg.steps_after_success, record=cfg.videos,
                                  expert=expert)
                if cfg.videos:
                    write_mp4(out / "videos" / f"{task}_seed{seed}_{'ok' if res['success'] else 'fail'}.mp4",
                              _video(res), fps=20)
                res = {"task": task, "seed": seed, **{key: res[key] for key in JOURNALED}}
                append_jsonl(journal, res)
            row["episodes"] += 1
            row["successes"] += int(res["success"])
            row["seeds"].append(seed)
            row["success_steps"].append(res["success_step"])
            row.setdefault("returns", []).append(res.get("return"))  # None: journaled before returns were
            if expert is not None:
                row.setdefault("expert_action_sq_error", []).append(res["expert_sq_error"])
                row.setdefault("expert_magnitude", []).append(res.get("expert_magnitude"))
            bar.update(1)
        env.close()
        row["success_rate"] = row["successes"] / max(row["episodes"], 1)
        if cfg.blind_floor:
            row["blind_replay_rate"] = floor.get(task)  # None: the dataset has no demo of the task
        results[task] = row
    bar.close()
    rates = {t: r["success_rate"] for t, r in results.items()}
    report = {**results, "mean_success_rate": float(np.mean(list(rates.values()))), "policy": cfg.policy,
              "seconds": time.time() - t0}
    write_json(out / "results.json", report)
    plot_success(rates, out / "success.png", title=f"success rate: {Path(cfg.policy).name}")
    print(format_table(results))
    return report


def _blind_floor(cfg: RolloutConfig, tasks: list[str], path: Path) -> dict[str, float]:
    """The floor the policy has to clear: the demos replayed blind in the rollout's scenes (seconds), scored once
    per run directory (a resumed run has the same config, so the same scenes) unless the demos changed since."""
    from vidpolicy.envs.replay import blind_scores, demos_digest

    digest = demos_digest(Path(cfg.blind_floor))
    kept = json.loads(path.read_text()) if path.is_file() else {}
    if kept.get("demos") == digest:
        return kept["replay"]
    floor = blind_scores(Path(cfg.blind_floor), cfg.episodes, cfg.seed, cfg.max_steps, tasks)["replay"]
    write_json(path, {"demos": digest, "replay": floor})
    return floor


def format_table(results: dict) -> str:
    """Success per task and the mean; a "blind" column where the demos' blind replay was scored beside it."""
    blind = any("blind_replay_rate" in r for r in results.values())

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    lines = [f"{'task':<28} {'success':>9} {'rate':>6}" + (f" {'blind':>6}" if blind else "")]
    for task, r in results.items():
        lines.append(f"{task:<28} {r['successes']:>4}/{r['episodes']:<4} {pct(r['success_rate']):>6}"
                     + (f" {pct(r.get('blind_replay_rate')):>6}" if blind else ""))
    mean = np.mean([r["success_rate"] for r in results.values()]) if results else 0.0
    floors = [r["blind_replay_rate"] for r in results.values() if r.get("blind_replay_rate") is not None]
    lines.append(f"{'mean':<28} {'':>9} {pct(mean):>6}" + (f" {pct(np.mean(floors) if floors else None):>6}"
                                                           if blind else ""))
    return "\n".join(lines)
