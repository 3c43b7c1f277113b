"""Headless Meta-World v3: the corner camera upright at a fixed size, shadows and reflections off by default.

Rendering uses ``MUJOCO_GL=egl`` (osmesa as fallback). Meta-World's shadow map is slow to render on a CPU, so the
default turns shadows and reflections off and anti-aliases by 2x2 supersampling instead of 4x multisampling: faster,
and as good for the tokenizer (docs/experiments.md). Observations are dicts:
``{"image": uint8 (S, S, 3), "state": float32 (39,) or (4,), "instruction": str}``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.envs.tasks import INSTRUCTIONS, resolve_tasks

GL_BACKENDS = ("egl", "osmesa")
# how reset(seed) places objects and goal; a recorded result names it, since another scheme gives other scenes
SCENES = "seeded as LeRobot's (every seed its own scene)"
_checked: dict[str, bool] = {}


def ensure_gl() -> str:
    """Pick a working MuJoCo GL backend, or exit 2 saying which were tried and what to install."""
    if "ok" in _checked:
        return os.environ["MUJOCO_GL"]
    tried = []
    first = os.environ.get("MUJOCO_GL")
    for backend in dict.fromkeys([b for b in (first, *GL_BACKENDS) if b]):
        os.environ["MUJOCO_GL"] = backend
        try:
            import mujoco

            ctx = mujoco.GLContext(8, 8)
            ctx.make_current()
            ctx.free()
            _checked["ok"] = True
            return backend
        except Exception as e:  # each GL backend fails in its own way
            tried.append(f"{backend} ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})")
    raise VidpolicyError("no working MuJoCo GL backend; tried MUJOCO_GL=" + ", ".join(tried)
                         + ". Install EGL (apt-get install libegl1 libgl1) or OSMesa (apt-get install libosmesa6)")


class MetaWorldEnv:
    """One Meta-World v3 task; ``reset(seed)`` places the objects and goal from ``seed``, as LeRobot's Meta-World env
    does (the same seed, the same scene), so every seed is a scene of its own."""

    def __init__(self, task: str, size: int = 96, camera: str = "corner", shadows: bool = False,
                 max_steps: int = 500, state: str = "full"):
        task = resolve_tasks(task)[0]
        ensure_gl()
        import metaworld
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.task, self.size, self.camera, self.max_steps = task, size, camera, max_steps
        self.state = state  # full: Meta-World's 39-d observation; agent_pos: its first 4 (hand xyz, gripper)
        self.instruction = INSTRUCTIONS[task]
        # the fast path renders twice the size without multisampling and averages 2x2 pixels: anti-aliased as
        # Meta-World's 4x multisampling is, and cheaper on a CPU
        self._ss = 1 if shadows else 2
        self.env = self._sim = ALL_V3_ENVIRONMENTS[task](render_mode="rgb_array", camera_name=camera,
                                                         width=size * self._ss, height=size * self._ss)
        if not shadows:  # before the first render: the GL context is made then, with these settings
            self.env.model.light_castshadow[:] = 0
            self.env.model.mat_reflectance[:] = 0
            self.env.model.vis.quality.offsamples = 0
        # LeRobot's sampling: one task for its flags, then positions drawn from reset(seed) (a fixed set of 50
        # variations would give evaluation seeds the demos' scenes)
        self.env.set_task(metaworld.MT1(task, seed=0).train_tasks[0])
        self.env._freeze_rand_vec, self.env.seeded_rand_vec = False, True
        vis = self.env.model.vis.global_  # the offscreen buffer (640x480 in Meta-World) must hold the render
        vis.offwidth, vis.offheight = max(vis.offwidth, size * self._ss), max(vis.offheight, size * self._ss)
        self.action_low = self.env.action_space.low.astype(np.float32)
        self.action_high = self.env.action_space.high.astype(np.float32)
        self.steps = 0
        self._obs = None

    def render(self) -> np.ndarray:
        frame = self.env.render()
        if self._ss > 1:
            s, k = self.size, self._ss
            frame = (frame.reshape(s, k, s, k, 3).mean((1, 3), dtype=np.float32) + 0.5).astype(np.uint8)
        if self.camera == "corner":
            frame = frame[::-1, ::-1]  # the corner camera's image comes out upside down
        return np.ascontiguousarray(frame)

    def _observation(self, state: np.ndarray, render: bool = True) -> dict:
        self._obs = state  # the full state, for the scripted expert
        seen = state[:4] if self.state == "agent_pos" else state
        return {"image": self.render() if render else None, "state": seen.astype(np.float32),
                "instruction": self.instruction}

    def reset(self, seed: int = 0) -> dict:
        self.env.seed(seed)
        state, _ = self.env.reset(seed=seed)
        self.steps = 0
        return self._observation(state)

    def clip_action(self, action) -> np.ndarray:
        """``action`` as float32 inside the action box (what ``step`` executes)."""
        return np.clip(np.asarray(action, dtype=np.float32), self.action_low, self.action_high)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict, float, bool, dict]:
        """One step; ``render=False`` leaves the observation's image None (a lookahead that needs no picture)."""
        action = self.clip_action(action)
        state, reward, terminated, truncated, info = self._sim.step(action)  # Meta-World's own env
        self.steps += 1
        done = bool(terminated or truncated or self.steps >= self.max_steps)
        return self._observation(state, render), float(reward), done, {"success": bool(info.get("success", 0.0))}

    @contextmanager
    def branch(self) -> Iterator["MetaWorldEnv"]:
        """Step ahead and come back: on leaving the block the simulation (MuJoCo's integration state, the solver's
        warm start included) and the episode's bookkeeping are as they were on entering it, so the episode goes on,
        to the last bit, as if the branch had not been taken (a lookahead: where the expert would take the scene)."""
        import mujoco

        sim, spec = self._sim, mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(sim.model, spec))
        mujoco.mj_getState(sim.model, sim.data, physics, spec)
        # Meta-World keeps the previous observation, the step count and the last stable observation on the env
        kept = {k: copy.deepcopy(v) for k, v in vars(sim).items()
                if isinstance(v, (np.ndarray, np.generic, int, float))}
        steps, obs = self.steps, self._obs
        try:
            yield self
        finally:
            mujoco.mj_setState(sim.model, sim.data, physics, spec)
            mujoco.mj_forward(sim.model, sim.data)  # positions, contacts, ... for what reads them before a step
            mujoco.mj_setState(sim.model, sim.data, physics, spec)  # and the solver's warm start, which it moved
            for k, v in kept.items():
                setattr(sim, k, v)
            self.steps, self._obs = steps, obs

    def expert(self):
        """Meta-World's scripted expert for this task: ``expert(obs) -> action`` (it reads the full state)."""
        from metaworld.policies import ENV_POLICY_MAP

        policy = ENV_POLICY_MAP[self.task]()
        return lambda obs: policy.get_action(self._obs).astype(np.float32)

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:  # EGL contexts sometimes fail to free at teardown; nothing to recover
            pass
