"""Two ways to see Meta-World: ``vidpolicy`` (our corner camera at any size, shadows off: fast on a CPU; the full
39-d state) and ``lerobot`` (exactly what ``lerobot-eval --env.type=metaworld`` feeds a policy: corner2 at 480², the
4-d agent_pos). ``collect`` records demos, and ``rollout`` evaluates, in either."""

from __future__ import annotations

from vidpolicy.common.errors import VidpolicyError

VIEWS = ("vidpolicy", "lerobot")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise VidpolicyError(f"--view: unknown view {view!r} ({' or '.join(VIEWS)})")
    return view


def make_env(view: str, task: str, size: int = 96, shadows: bool = False, max_steps: int = 500):
    """A `MetaWorldEnv` or a `LeRobotMetaWorldEnv` (which always renders 480², ignoring ``size`` and ``shadows``)."""
    if check_view(view) == "lerobot":
        from vidpolicy.envs.lerobot_view import LeRobotMetaWorldEnv

        return LeRobotMetaWorldEnv(task, max_steps=max_steps)
    from vidpolicy.envs.metaworld import MetaWorldEnv

    return MetaWorldEnv(task, size=size, shadows=shadows, max_steps=max_steps)
