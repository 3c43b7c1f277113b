"""Meta-World as ``lerobot-eval --env.type=metaworld`` shows it to a policy: LeRobot's own env class (camera corner2
moved and flipped as LeRobot does, 480² with Meta-World's shadows and multisampling), the state is ``agent_pos``
(hand xyz + gripper, 4-d), the instruction is LeRobot's task description, and ``reset(seed)`` places the objects
as ``lerobot-eval --seed`` does. A policy trained on demos collected this way meets the same pixels in both harnesses.

Same interface as `MetaWorldEnv`; unlike LeRobot's env it does not reset itself at the first success (so a
video can show a few steps after it).
"""

from __future__ import annotations

import numpy as np

from vidpolicy.envs.metaworld import ensure_gl
from vidpolicy.envs.tasks import resolve_tasks

IMAGE_KEY = "observation.image"  # what lerobot-eval names the Meta-World camera
SIZE = 480


class LeRobotMetaWorldEnv:
    def __init__(self, task: str, max_steps: int = 500):
        ensure_gl()
        from lerobot.envs.metaworld import TASK_DESCRIPTIONS, MetaworldEnv

        self.task = resolve_tasks(task)[0]
        self.size, self.max_steps = SIZE, max_steps
        self.instruction = TASK_DESCRIPTIONS[self.task]
        self.env = MetaworldEnv(self.task, obs_type="pixels_agent_pos", observation_width=SIZE,
                                observation_height=SIZE)
        self.env._ensure_env()
        space = self.env._env.action_space
        self.action_low, self.action_high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.steps = 0
        self._raw: np.ndarray | None = None  # Meta-World's full 39-d observation (for the scripted expert only)

    def _observation(self, raw: np.ndarray) -> dict:
        self._raw = raw
        obs = self.env._format_raw_obs(raw)
        return {"image": np.ascontiguousarray(obs["pixels"]), "state": np.asarray(obs["agent_pos"], np.float32),
                "instruction": self.instruction}

    def reset(self, seed: int = 0) -> dict:
        self.env._env.seed(seed)  # as LeRobot's MetaworldEnv.reset(seed)
        raw, _ = self.env._env.reset(seed=seed)
        self.steps = 0
        return self._observation(raw)

    def clip_action(self, action) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float32), self.action_low, self.action_high)

    def step(self, action) -> tuple[dict, float, bool, dict]:
        raw, reward, terminated, truncated, info = self.env._env.step(self.clip_action(action))
        self.steps += 1
        done = bool(terminated or truncated or self.steps >= self.max_steps)
        return self._observation(raw), float(reward), done, {"success": bool(info.get("success", 0.0))}

    def expert(self):
        """Meta-World's scripted expert; it reads the full state, which the policy never sees."""
        policy = self.env.expert_policy
        return lambda obs: policy.get_action(self._raw).astype(np.float32)

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:  # EGL contexts sometimes fail to free at teardown; nothing to recover
            pass
