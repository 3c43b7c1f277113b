"""vidpolicy's view of Meta-World as a LeRobot environment type: ``lerobot-eval --env.type=vidpolicy`` (and
``lerobot-train --env.type=vidpolicy --env_eval_freq=N`` during training) score a policy trained on ``vidpolicy
collect`` demos in LeRobot's own loop, seeing what ``vidpolicy rollout`` shows it: the corner camera at ``size``²
without shadows (``observation.images.corner``), the 4-d agent_pos or the full 39-d state (``observation.state``),
our instruction per task, ``reset(seed)`` placing the scene as ``vidpolicy rollout --seed`` does. ``yuv420``
passes each frame through yuv420p and back, as ``vidpolicy rollout`` does for a LeRobot policy trained on such
video (a vpdd policy does it itself). An episode ends at the first success, as in LeRobot's Meta-World env.

The plugin distribution ``lerobot_env_vidpolicy`` imports this module when a LeRobot script starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from vidpolicy.common.media import yuv420_round_trip
from vidpolicy.envs.collect import IMAGE_KEY
from vidpolicy.envs.metaworld import MetaWorldEnv
from vidpolicy.envs.tasks import INSTRUCTIONS, resolve_tasks
from vidpolicy.envs.views import ACTION_DIM, STATES, state_kind

CAMERA = IMAGE_KEY.removeprefix(f"{OBS_IMAGES}.")  # "corner": the camera key `vidpolicy collect` records


class VidpolicyMetaWorld(gym.Env):
    """One Meta-World task as a gymnasium env; the simulator is built at the first reset (in the worker process
    when LeRobot vectorises asynchronously)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str, size: int = 96, state: str = "agent_pos", yuv420: bool = False,
                 max_steps: int = 500):
        super().__init__()
        self.task = resolve_tasks(task)[0]
        self.task_description = INSTRUCTIONS[self.task]
        self.size, self.state, self.yuv420 = size, state_kind("vidpolicy", state), yuv420
        self._max_episode_steps = max_steps
        self._env: MetaWorldEnv | None = None
        self._frame: np.ndarray | None = None
        self.observation_space = spaces.Dict({
            "pixels": spaces.Dict({CAMERA: spaces.Box(0, 255, (size, size, 3), np.uint8)}),
            "agent_pos": spaces.Box(-np.inf, np.inf, (STATES[self.state],), np.float32)})
        self.action_space = spaces.Box(-1, 1, (ACTION_DIM,), np.float32)

    def _observation(self, obs: dict) -> dict:
        self._frame = yuv420_round_trip(obs["image"]) if self.yuv420 else obs["image"]
        return {"pixels": {CAMERA: self._frame}, "agent_pos": obs["state"]}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if self._env is None:
            self._env = MetaWorldEnv(self.task, size=self.size, max_steps=self._max_episode_steps, state=self.state)
        if seed is None:  # gymnasium's autoreset after an episode: a scene drawn from the env's own generator
            seed = int(self.np_random.integers(2**31))
        return self._observation(self._env.reset(seed)), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, done, info = self._env.step(action)
        success = info["success"]
        return self._observation(obs), reward, success, done and not success, {"is_success": success,
                                                                              "task": self.task}

    def render(self) -> np.ndarray | None:
        return self._frame

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


@EnvConfig.register_subclass("vidpolicy")
@dataclass
class VidpolicyEnv(EnvConfig):
    task: str = "reach-v3"  # one task, several (comma-separated) or MT10 / MT50
    fps: int = 80
    size: int = 96  # camera side: the policy's training demos' (`vidpolicy collect --size`)
    state: str = "agent_pos"  # agent_pos (hand xyz + gripper) or full (Meta-World's 39-d, objects included)
    yuv420: bool = False  # frames through yuv420p, as a LeRobot policy trained on such video saw its demos
    episode_length: int = 500
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        dim = STATES[state_kind("vidpolicy", self.state)]
        self.features = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,)),
                         f"pixels/{CAMERA}": PolicyFeature(type=FeatureType.VISUAL, shape=(self.size, self.size, 3)),
                         "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(dim,))}
        self.features_map = {ACTION: ACTION, f"pixels/{CAMERA}": IMAGE_KEY, "agent_pos": OBS_STATE}

    @property
    def gym_kwargs(self) -> dict:
        return {"size": self.size, "state": self.state, "yuv420": self.yuv420, "max_steps": self.episode_length}

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        """One vector env of ``n_envs`` copies per task, as LeRobot's Meta-World builds them."""
        asynchronous = use_async_envs and n_envs > 1
        vec = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
        extra = {"context": "forkserver"} if asynchronous else {}
        envs = {}
        for i, task in enumerate(resolve_tasks(self.task)):
            make = [lambda t=task: VidpolicyMetaWorld(t, **self.gym_kwargs) for _ in range(n_envs)]
            envs[i] = vec(make, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, **extra)
        return {self.type: envs}
