"""Two ways to see Meta-World: ``vidpolicy`` (our corner camera at any size, shadows off: fast on a CPU; the full
39-d state, or with ``state="agent_pos"`` only what a real robot knows) and ``lerobot`` (exactly what ``lerobot-eval
--env.type=metaworld`` feeds a policy: corner2 at 480², the 4-d agent_pos). ``collect`` records demos, and
``rollout`` evaluates, in either."""

from __future__ import annotations

from vidpolicy.common.errors import VidpolicyError

VIEWS = ("vidpolicy", "lerobot")
STATES = {"full": 39, "agent_pos": 4}  # Meta-World's observation (objects included) / hand xyz + gripper
ACTION_DIM = 4  # Meta-World: xyz displacement + gripper


def state_kind(view: str, state: str | None) -> str:
    """The robot state a view gives: ``state``, or the view's own (vidpolicy: full, lerobot: agent_pos)."""
    kind = state or ("agent_pos" if view == "lerobot" else "full")
    if kind not in STATES:
        raise VidpolicyError(f"--state: unknown state {kind!r} ({' or '.join(STATES)})")
    if view == "lerobot" and kind != "agent_pos":
        raise VidpolicyError("--state full: LeRobot's Meta-World gives the policy agent_pos only")
    return kind


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise VidpolicyError(f"--view: unknown view {view!r} ({' or '.join(VIEWS)})")
    return view


def make_env(view: str, task: str, size: int = 96, shadows: bool = False, max_steps: int = 500,
             state: str | None = None):
    """A `MetaWorldEnv` or a `LeRobotMetaWorldEnv` (which always renders 480², ignoring ``size`` and ``shadows``)."""
    kind = state_kind(check_view(view), state)
    if view == "lerobot":
        from vidpolicy.envs.lerobot_view import LeRobotMetaWorldEnv

        return LeRobotMetaWorldEnv(task, max_steps=max_steps)
    from vidpolicy.envs.metaworld import MetaWorldEnv

    return MetaWorldEnv(task, size=size, shadows=shadows, max_steps=max_steps, state=kind)
