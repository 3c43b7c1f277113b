"""Do vidpolicy's harness and LeRobot's agree? The scripted expert (and optionally a policy) on the same
Meta-World tasks and seeds in ``vidpolicy rollout --view lerobot`` and in LeRobot's own rollout loop; and what the
LeRobot plugin's pipelines add to a vpdd policy's ``select_action`` time. A policy trained on demos of vidpolicy's
own view (the few-shot grid's: 96², agent_pos) runs in lerobot-eval as ``--env.type=vidpolicy`` (``--view
vidpolicy``), seeing the frames ``vidpolicy rollout`` shows it.

    python benchmarks/lerobot_parity.py --quick
    python benchmarks/lerobot_parity.py --policy runs/policy_lr --episodes 10
    python benchmarks/lerobot_parity.py --policy runs/act/checkpoints/last/pretrained_model --view vidpolicy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import first_sentence, quiet, save
from vidpolicy.envs.rollout_config import RolloutConfig

os.environ.setdefault("MUJOCO_GL", "egl")
FIRST_SEED = RolloutConfig.seed  # lerobot-eval's default first seed too


class _Expert(torch.nn.Module):
    """Meta-World's scripted expert inside LeRobot's loop: it reads the full state, which LeRobot's env formats away
    (`_keep_raw` keeps it)."""

    def __init__(self, vec_env):
        super().__init__()
        self.envs = vec_env.envs

    def reset(self) -> None:
        pass

    def select_action(self, batch) -> torch.Tensor:
        acts = [e.expert_policy.get_action(e.raw_obs) for e in self.envs]
        return torch.from_numpy(np.stack(acts)).float()


def _keep_raw() -> None:
    from lerobot.envs import metaworld

    fmt = metaworld.MetaworldEnv._format_raw_obs

    def keep(self, raw):
        self.raw_obs = raw
        return fmt(self, raw)

    metaworld.MetaworldEnv._format_raw_obs = keep


def lerobot_loop_expert(task: str, seeds: list[int]) -> list[bool]:
    from lerobot.envs.configs import MetaworldEnv
    from lerobot.envs.factory import make_env
    from lerobot.processor.factory import make_policy_processor_pipelines
    from lerobot.scripts.lerobot_eval import rollout

    cfg = MetaworldEnv(task=task)
    env = next(iter(next(iter(make_env(cfg, n_envs=1, use_async_envs=False).values())).values()))
    pre, post = make_policy_processor_pipelines([], [])
    env_pre, env_post = cfg.get_env_processors()
    out = []
    for seed in seeds:
        res = rollout(env, _Expert(env), env_pre, env_post, pre, post, seeds=[seed])
        out.append(bool(res["success"].any()))
    env.close()
    return out


def vidpolicy_rollout(policy: str, tasks: str, episodes: int, out: Path, view: str = "lerobot") -> dict:
    from vidpolicy.envs.rollout import rollout

    return rollout(RolloutConfig(policy=policy, view=view, state="agent_pos", tasks=tasks, episodes=episodes,
                                 seed=FIRST_SEED, out=str(out), videos=False, expert_labels=False,
                                 steps_after_success=0))  # LeRobot stops there


def env_args(policy: str, view: str) -> list[str]:
    """lerobot-eval's environment for ``view``; vidpolicy's at the policy's image size, through yuv420p where
    ``vidpolicy rollout`` passes that policy's frames so (a vpdd policy does it itself)."""
    if view == "lerobot":
        return ["--env.type=metaworld"]
    from vidpolicy.envs.lerobot_policy import camera_view

    _, _, size, yuv420 = camera_view(policy)
    return ["--env.type=vidpolicy", f"--env.size={size}", f"--env.yuv420={str(yuv420).lower()}"]


def lerobot_eval(policy: str, task: str, episodes: int, out: Path, env: list[str]) -> tuple[list[bool], list[float]]:
    """Each episode's success and return."""
    exe = Path(sys.executable).with_name("lerobot-eval")
    subprocess.run([str(exe), f"--policy.path={policy}", *env, f"--env.task={task}",
                    f"--eval.n_episodes={episodes}", "--eval.batch_size=1", "--eval.use_async_envs=false",
                    "--policy.device=cpu", f"--seed={FIRST_SEED}", f"--output_dir={out}"],
                   check=True, capture_output=True)
    metrics = json.loads((out / "eval_info.json").read_text())["per_task"][0]["metrics"]
    return [bool(s) for s in metrics["successes"]], metrics["sum_rewards"]


def latency(policy: str, calls: int = 40) -> dict:
    """Seconds per select_action on 480² frames, through LeRobot's pipelines vs vidpolicy's own processor: the mean
    (per action) and the median of the calls that imagine a new chunk (one in ``execute``)."""
    from vidpolicy.envs.lerobot_policy import LeRobotPolicy
    from vidpolicy.policies.vpdd import VPDDPolicy

    rng = np.random.default_rng(0)
    obs = [{"image": rng.integers(0, 255, (480, 480, 3), dtype=np.uint8), "state": rng.normal(size=4),
            "instruction": "Reach a goal position"} for _ in range(calls)]
    out = {}
    for name, p in (("plugin", LeRobotPolicy(policy, 4)), ("direct", VPDDPolicy.from_pretrained(policy))):
        p.reset()
        core = p.policy.core if name == "plugin" else p
        times, planned = [], []
        for o in obs:
            plans, t0 = core.plans, time.perf_counter()
            p.select_action(o)
            times.append(time.perf_counter() - t0)
            planned.append(core.plans > plans)
        times, planned = np.array(times[4:]), np.array(planned[4:])
        out[name] = {"mean": float(times.mean()), "planning_median": float(np.median(times[planned])),
                     "queued_median": float(np.median(times[~planned])) if (~planned).any() else None}
    return out


def expert_parity(tasks: list[str], seeds: list[int], tmp: Path) -> dict:
    """The scripted expert in ``vidpolicy rollout --view lerobot`` and in LeRobot's loop, episode by episode."""
    _keep_raw()
    ours = vidpolicy_rollout("expert", ",".join(tasks), len(seeds), tmp / "expert")
    out = {}
    for task in tasks:
        name = f"{task}-v3"
        theirs = lerobot_loop_expert(name, seeds)
        out[name] = {"vidpolicy_rollout": ours[name]["success_rate"], "lerobot_loop": float(np.mean(theirs)),
                     "episodes_agreeing": sum(int(a is not None) == b for a, b in
                                              zip(ours[name]["success_steps"], theirs))}
    return out


def policy_parity(policy: str, view: str, tasks: list[str], episodes: int, tmp: Path) -> dict:
    """A policy directory in ``vidpolicy rollout`` and in lerobot-eval: success and each episode's return."""
    ours = vidpolicy_rollout(policy, ",".join(tasks), episodes, tmp / "policy", view)
    kind = json.loads((Path(policy) / "config.json").read_text())["type"]
    env = env_args(policy, view)
    out: dict = {"path": policy, "type": kind, "view": view, "lerobot_eval_env": env}
    for t in tasks:
        successes, returns = lerobot_eval(policy, f"{t}-v3", episodes, tmp / f"ev_{t}", env)
        mine = ours[f"{t}-v3"]
        out[f"{t}-v3"] = {  # the same trajectory gives the same return to rounding
            "vidpolicy_rollout": mine["success_rate"], "lerobot_eval": float(np.mean(successes)),
            "successes": successes, "returns": returns,
            "returns_agreeing": int(np.isclose(mine["returns"], returns, rtol=1e-5).sum())}
    return out


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--tasks", default="reach,button-press-topdown,drawer-close",
                    help="comma-separated Meta-World tasks (default: reach,button-press-topdown,drawer-close)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes per task (default: 10)")
    ap.add_argument("--policy", help="a policy directory (vpdd or any LeRobot policy) trained on --view's demos")
    ap.add_argument("--view", default="lerobot", choices=("lerobot", "vidpolicy"),
                    help="the view of the policy's demos; vidpolicy compares the policy only (default: lerobot)")
    ap.add_argument("--quick", action="store_true", help="2 episodes of one task")
    args = ap.parse_args()
    if args.view == "vidpolicy" and not args.policy:
        ap.error("--view vidpolicy compares a policy: give --policy")
    if args.quick:
        args.tasks, args.episodes = "reach", 2
    tasks = args.tasks.split(",")
    seeds = [FIRST_SEED + k for k in range(args.episodes)]
    result: dict = {"episodes": args.episodes, "seeds": seeds}
    with tempfile.TemporaryDirectory() as tmp:
        if args.view == "lerobot":
            result["expert"] = expert_parity(tasks, seeds, Path(tmp))
        if args.policy:
            result["policy"] = policy_parity(args.policy, args.view, tasks, args.episodes, Path(tmp))
            if result["policy"]["type"] == "vpdd":  # the plugin's cost over vidpolicy's own path
                result["select_action_s"] = latency(args.policy)
    name = "lerobot_parity" + ("_policy" if args.policy else "") + ("_vidpolicy" if args.view == "vidpolicy" else "")
    save(name, result)


if __name__ == "__main__":
    main()
