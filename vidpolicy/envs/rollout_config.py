"""``vidpolicy rollout``'s config: what to run, where, and the overrides of a policy's own settings. Apart from
the harness (`vidpolicy.envs.rollout`) so that reading its flags imports no simulator or model."""

from __future__ import annotations

from dataclasses import dataclass

from vidpolicy.common.cli_args import opt


@dataclass
class RolloutConfig:
    policy: str = opt("expert", "a policy directory (vidpolicy or LeRobot), or `expert`")
    env: str = opt("metaworld", "simulator (metaworld)")
    tasks: str = opt("", "comma-separated Meta-World tasks or MT10 / MT50")
    view: str = opt("vidpolicy", "vidpolicy or lerobot: the view of its demos")
    state: str | None = opt(None, "full or agent_pos: the state of its demos (default: the view's own)")
    episodes: int = opt(10, "episodes per task")
    out: str = opt("", "report directory: results.json, videos/, success.png")
    seed: int = opt(1000, "seed of the first episode (lerobot-eval's default too)")
    max_steps: int = opt(500, "episode step limit (Meta-World: 500)")
    size: int = opt(96, "camera image side (a policy directory's own size wins)")
    steps_after_success: int = opt(5, "frames kept in the video after the first success", advanced=True)
    videos: bool = opt(True, "write one mp4 per episode")
    sampling_steps: int | None = opt(None, "override the policy's reverse-diffusion steps", advanced=True)
    execute: int | None = opt(None, "override the actions run per imagined chunk", advanced=True)
    guidance: float | None = opt(None, "override the policy's classifier-free guidance (1: off)", advanced=True)
    yuv420: bool | None = opt(None, "pass live frames through yuv420p chroma (default: as the demos' video)",
                              advanced=True)
    action_decode: str | None = opt(None, "override the token head's decoding: mode or mean", advanced=True)
    expert_labels: bool = opt(True, "score each action against the scripted expert's", advanced=True)
    device: str = opt("auto", "cpu, cuda[:N] or auto (cuda when there is one)")
    blind_floor: str | None = opt(None, "a `collect` dataset whose demos are also replayed blind in the same scenes")
