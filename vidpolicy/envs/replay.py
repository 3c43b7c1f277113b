"""Blind replay: each demo's recorded actions executed open loop, no observation read, in other scenes. It is the
floor a policy learned from those demos has to clear: one that solves only what some demo's replay solves has
learned the demos' motion, not to look where things are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidpolicy.common.checksum import sha256_bytes, sha256_file
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.envs.collect import SIDE_CAR
from vidpolicy.envs.metaworld import MetaWorldEnv


def demo_actions(data: Path) -> dict[str, list[np.ndarray]]:
    """A dataset from `vidpolicy collect`: each task's episodes' actions, in episode order."""
    import pandas as pd

    if not (data / SIDE_CAR).is_file():
        raise VidpolicyError(f"{data / SIDE_CAR}: missing; blind replay reads demos recorded by `vidpolicy collect`")
    episodes = json.loads((data / SIDE_CAR).read_text())["episodes"]
    frames = pd.concat(pd.read_parquet(p, columns=["episode_index", "frame_index", "action"])
                       for p in sorted((data / "data").rglob("*.parquet")))
    out: dict[str, list[np.ndarray]] = {}
    for e in episodes:
        rows = frames[frames.episode_index == e["episode_index"]].sort_values("frame_index")
        out.setdefault(e["task"], []).append(np.stack(rows.action.to_numpy()).astype(np.float32))
    return out


def demos_digest(data: Path) -> str:
    """What the demos are: their record and action files' bytes. A floor scored on other demos is not reused."""
    files = [data / SIDE_CAR, *sorted((data / "data").rglob("*.parquet"))]
    return sha256_bytes("".join(sha256_file(f) for f in files if f.is_file()).encode())


def replay(env, actions: np.ndarray, seed: int, max_steps: int = 500) -> bool:
    """Whether ``actions``, executed open loop in scene ``seed`` of ``env`` (a MetaWorldEnv), succeed at any step.
    No frame is rendered, none is read."""
    env.reset(seed)
    for a in actions[:max_steps]:
        *_, info = env.step(a, render=False)
        if info["success"]:
            return True
    return False


def blind_scores(data: Path, episodes: int, seed: int = 1000, max_steps: int = 500,
                 tasks: list[str] | None = None) -> dict:
    """Per task (those of ``tasks`` the demos hold; default all), each evaluation scene's share of the demos whose
    replay solves it (scenes ``seed``, ``seed`` + 1, ..., as `rollout` evaluates), with each task's mean (a policy
    replaying a demo at random) and share of scenes some demo solves (one picking the right demo per scene, which no
    blind policy can know)."""
    from tqdm import tqdm

    demos = {t: a for t, a in demo_actions(data).items() if tasks is None or t in tasks}
    scenes = {}
    with tqdm(total=sum(map(len, demos.values())) * episodes, desc="blind replay", unit="ep") as bar:
        for task, actions in demos.items():
            env = MetaWorldEnv(task, size=16, max_steps=max_steps)  # renders only at reset
            scenes[task] = []
            for k in range(episodes):
                scenes[task].append(float(np.mean([replay(env, a, seed + k, max_steps) for a in actions])))
                bar.update(len(actions))
            env.close()
    return {"scenes": scenes, "replay": {t: float(np.mean(v)) for t, v in scenes.items()},
            "best_demo": {t: float(np.mean([s > 0 for s in v])) for t, v in scenes.items()}}
