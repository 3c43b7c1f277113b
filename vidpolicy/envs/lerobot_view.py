"""Meta-World as ``lerobot-eval --env.type=metaworld`` shows it to a policy: LeRobot's own env class (camera corner2
moved and flipped as LeRobot does, 480² with Meta-World's shadows and multisampling), the state is ``agent_pos``
(hand xyz + gripper, 4-d), the instruction is LeRobot's task description, and ``reset(seed)`` places the objects
as ``lerobot-eval --seed`` does. A policy trained on demos collected this way meets the same pixels in both harnesses.

A `MetaWorldEnv` (stepping, action clipping, the scripted expert, closing are its) built, seeded and observed as
LeRobot does; unlike LeRobot's env it does not reset itself at the first success (so a video can show a few steps
after it).
"""

from __future__ import annotations

import numpy as np

from vidpolicy.envs.metaworld import MetaWorldEnv, ensure_gl
from vidpolicy.envs.tasks import resolve_tasks

IMAGE_KEY = "observation.image"  # what lerobot-eval names the Meta-World camera
SIZE = 480


class LeRobotMetaWorldEnv(MetaWorldEnv):
    def __init__(self, task: str, max_steps: int = 500):  # LeRobot builds the env, not MetaWorldEnv.__init__
        ensure_gl()
        from lerobot.envs.metaworld import TASK_DESCRIPTIONS, MetaworldEnv

        self.task = resolve_tasks(task)[0]
        self.size, self.max_steps = SIZE, max_steps
        self.instruction = TASK_DESCRIPTIONS[self.task]
        self.env = MetaworldEnv(self.task, obs_type="pixels_agent_pos", observation_width=SIZE,
                                observation_height=SIZE)
        self.env._ensure_env()
        self._sim = self.env._env  # Meta-World's own env inside LeRobot's
        space = self._sim.action_space
        self.action_low, self.action_high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.steps = 0
        self._obs: np.ndarray | None = None  # Meta-World's full 39-d observation (for the scripted expert only)

    def _observation(self, raw: np.ndarray, render: bool = True) -> dict:
        self._obs = raw
        if not render:  # LeRobot's formatting renders the 480² frame; its agent_pos is the raw state's first 4
            return {"image": None, "state": np.asarray(raw[:4], np.float32), "instruction": self.instruction}
        obs = self.env._format_raw_obs(raw)
        return {"image": np.ascontiguousarray(obs["pixels"]), "state": np.asarray(obs["agent_pos"], np.float32),
                "instruction": self.instruction}

    def reset(self, seed: int = 0) -> dict:
        self._sim.seed(seed)  # as LeRobot's MetaworldEnv.reset(seed)
        raw, _ = self._sim.reset(seed=seed)
        self.steps = 0
        return self._observation(raw)
