"""``vidpolicy collect``: scripted-expert demonstrations recorded as a LeRobotDataset v3 (H.264, decord-readable).

Each episode runs Meta-World's scripted expert from a recorded seed, keeps only successes by default, and stops a
few steps after the first success. ``meta/vidpolicy_collect.json`` lists every episode's task, seed and success
step; rerunning the same command adds only the missing episodes. Episodes are added to a copy of the dataset that
replaces it whole about once a minute, so a kill -9 leaves the dataset as the last pass left it, never torn.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vidpolicy.common.cli_args import opt
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import atomic_dir, recover_dir, write_json
from vidpolicy.common.runlock import lock_run_dir, releases_run_locks
from vidpolicy.envs import lerobot_view
from vidpolicy.envs.metaworld import MetaWorldEnv
from vidpolicy.envs.tasks import resolve_tasks
from vidpolicy.envs.views import STATES, check_view, make_env, state_kind

SIDE_CAR = "meta/vidpolicy_collect.json"
# seconds of collecting per pass: a kill loses at most about this much
COMMIT_EVERY_S = float(os.environ.get("VIDPOLICY_COLLECT_PASS_S", 60))
IMAGE_KEY = "observation.images.corner"


@dataclass
class CollectConfig:
    env: str = opt("metaworld", "simulator (metaworld)")
    tasks: str = opt("", "comma-separated tasks (reach,push or reach-v3) or MT10 / MT50")
    episodes: int = opt(10, "successful episodes per task")
    out: str = opt("", "LeRobotDataset root to create (or extend)")
    view: str = opt("vidpolicy", "vidpolicy or lerobot (as lerobot-eval sees Meta-World)")
    state: str | None = opt(None, "full (39-d, objects included) or agent_pos (default: the view's own)")
    size: int = opt(96, "camera image side in pixels (the vidpolicy view)")
    fps: int = opt(80, "frame rate recorded in the dataset (Meta-World steps at 80 Hz)")
    seed: int = opt(0, "first seed; each episode takes the next unused one")
    action_noise: float = opt(0.0, "std of Gaussian noise added to expert actions", advanced=True)
    max_steps: int = opt(500, "episode step limit")
    steps_after_success: int = opt(10, "keep recording this many steps after the first success", advanced=True)
    keep_failures: bool = opt(False, "also keep episodes where the expert failed")
    max_attempts: int = opt(5, "give up on a task after episodes x this many attempts", advanced=True)
    shadows: bool = opt(False, "render Meta-World's own look (slow on a CPU)", advanced=True)


def _keys(view: str, state: str | None) -> tuple[str, int]:
    """The camera key and the state size recorded in ``view``."""
    return lerobot_view.IMAGE_KEY if view == "lerobot" else IMAGE_KEY, STATES[state_kind(view, state)]


def _features(view: str, state: str | None, size: int) -> dict:
    image, state = _keys(view, state)
    size = lerobot_view.SIZE if view == "lerobot" else size
    return {
        image: {"dtype": "video", "shape": (size, size, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (state,), "names": None},
        "action": {"dtype": "float32", "shape": (4,), "names": ["dx", "dy", "dz", "gripper"]},
    }


def run_expert_episode(env: MetaWorldEnv, seed: int, cfg: CollectConfig) -> tuple[list[dict], int | None]:
    rng = np.random.default_rng(seed)
    expert = env.expert()
    obs = env.reset(seed)
    frames, success_at = [], None
    for step in range(cfg.max_steps):
        action = expert(obs)
        if cfg.action_noise > 0:
            action = action + rng.normal(0, cfg.action_noise, action.shape)
        # record what the robot executes: the experts' raw outputs can exceed the [-1, 1] action space
        action = env.clip_action(action)
        frames.append({_keys(cfg.view, cfg.state)[0]: obs["image"], "observation.state": obs["state"], "action": action,
                       "task": env.instruction})
        obs, _, done, info = env.step(action)
        if info["success"] and success_at is None:
            success_at = step
        if success_at is not None and step - success_at >= cfg.steps_after_success or done:
            break
    return frames, success_at


@releases_run_locks
def collect(cfg: CollectConfig, overwrite: bool = False) -> dict:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if cfg.env != "metaworld":
        raise VidpolicyError(f"--env: unknown environment {cfg.env!r} (metaworld)")
    kind = state_kind(check_view(cfg.view), cfg.state)
    tasks = resolve_tasks(cfg.tasks)
    out = Path(cfg.out)
    lock_run_dir(out, beside=True)  # LeRobot creates the dataset directory itself
    recover_dir(out)  # a kill in the middle of swapping in a pass
    side = out / SIDE_CAR
    if out.exists() and any(out.iterdir()):
        if overwrite:  # start over (the lock lives beside the dataset)
            shutil.rmtree(out)
        elif not side.exists():
            raise VidpolicyError(f"{out}: exists and was not made by `vidpolicy collect`; pass --overwrite")
    log = json.loads(side.read_text()) if side.exists() else {"episodes": []}
    old = log.get("config", {})
    recorded = (old.get("view", "vidpolicy"), state_kind(old.get("view", "vidpolicy"), old.get("state")))
    if log["episodes"] and recorded != (cfg.view, kind):
        raise VidpolicyError(f"{out}: holds demos recorded in the {recorded[0]} view with the {recorded[1]} state, not "
                             f"{cfg.view} with {kind}; pass --overwrite or another --out")
    encoder = RGBEncoderConfig(vcodec="h264", crf=18, g=2)
    log["config"] = vars(cfg)  # the resolved config travels inside the dataset's meta/
    done = {t: sum(1 for e in log["episodes"] if e["task"] == t) for t in tasks}
    pending = [t for t in tasks if done[t] < cfg.episodes]
    bar = tqdm(total=cfg.episodes * len(tasks), initial=sum(min(v, cfg.episodes) for v in done.values()),
               desc="collect", unit="ep")
    envs: dict[str, MetaWorldEnv] = {}
    try:
        while pending:  # each pass adds episodes to a copy, swapped in whole: a kill keeps the last pass's dataset
            with atomic_dir(out) as stage:
                ds = _stage(stage, out, cfg, encoder, LeRobotDataset)
                try:
                    until = time.monotonic() + COMMIT_EVERY_S
                    while pending and time.monotonic() < until:
                        task = pending[0]
                        if task not in envs:
                            envs[task] = make_env(cfg.view, task, size=cfg.size, shadows=cfg.shadows,
                                                  max_steps=cfg.max_steps, state=cfg.state)
                        if _add_episode(ds, envs[task], task, log, cfg):
                            done[task] += 1
                            bar.update(1)
                        if done[task] >= cfg.episodes:
                            envs.pop(pending.pop(0)).close()
                finally:
                    ds.finalize()
                write_json(stage / SIDE_CAR, log)
    finally:
        for env in envs.values():
            env.close()
        bar.close()
    n = len(log["episodes"])
    print(f"{out}: {n} episode(s), {sum(e['length'] for e in log['episodes'])} frames, tasks {', '.join(tasks)}")
    return log


def _stage(stage: Path, out: Path, cfg: CollectConfig, encoder, dataset_cls):
    """A writable copy of the dataset at ``out`` (or a new one) in ``stage``."""
    if out.exists():
        shutil.copytree(out, stage, dirs_exist_ok=True)
    if (stage / "meta" / "info.json").exists():
        return dataset_cls.resume(out.name, root=stage, rgb_encoder=encoder)
    stage.rmdir()  # LeRobot creates the root itself
    return dataset_cls.create(out.name, fps=cfg.fps, features=_features(cfg.view, cfg.state, cfg.size), root=stage,
                              robot_type="sawyer", use_videos=True, rgb_encoder=encoder)


def _add_episode(ds, env: MetaWorldEnv, task: str, log: dict, cfg: CollectConfig) -> bool:
    """One expert attempt from the task's next unused seed; True when it was kept (a success, or any with
    ``keep_failures``)."""
    used = {e["seed"] for e in log["episodes"] if e["task"] == task} | set(log.get("failed", {}).get(task, []))
    if len(used) >= cfg.episodes * cfg.max_attempts:
        raise VidpolicyError(f"{task}: the expert failed too often ({len(used)} attempts)")
    seed = cfg.seed
    while seed in used:
        seed += 1
    frames, success_at = run_expert_episode(env, seed, cfg)
    if success_at is None and not cfg.keep_failures:
        log.setdefault("failed", {}).setdefault(task, []).append(seed)
        return False
    for f in frames:
        ds.add_frame(f)
    ds.save_episode()
    log["episodes"].append({"episode_index": ds.meta.total_episodes - 1, "task": task, "seed": seed,
                            "success_step": success_at, "length": len(frames)})
    return True
