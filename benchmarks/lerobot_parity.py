"""Do vidpolicy's harness and LeRobot's agree? The scripted expert (and optionally a vpdd policy) on the same
Meta-World tasks and seeds in ``vidpolicy rollout --view lerobot`` and in LeRobot's own rollout loop; and what the
LeRobot plugin's pipelines add to a policy's ``select_action`` time.

    python benchmarks/lerobot_parity.py --quick
    python benchmarks/lerobot_parity.py --policy runs/policy_lr --episodes 10
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

from _common import quiet, save

os.environ.setdefault("MUJOCO_GL", "egl")


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


def vidpolicy_rollout(policy: str, tasks: str, episodes: int, out: Path) -> dict:
    from vidpolicy.envs.rollout import RolloutConfig, rollout

    return rollout(RolloutConfig(policy=policy, view="lerobot", tasks=tasks, episodes=episodes, out=str(out),
                                 videos=False, expert_labels=False, steps_after_success=0))  # LeRobot stops there


def lerobot_eval(policy: str, task: str, episodes: int, out: Path) -> tuple[float, list[float]]:
    """Success rate and each episode's return."""
    exe = Path(sys.executable).with_name("lerobot-eval")
    subprocess.run([str(exe), f"--policy.path={policy}", "--env.type=metaworld", f"--env.task={task}",
                    f"--eval.n_episodes={episodes}", "--eval.batch_size=1", "--eval.use_async_envs=false",
                    "--policy.device=cpu", f"--output_dir={out}"], check=True, capture_output=True)
    info = json.loads((out / "eval_info.json").read_text())
    return info["overall"]["pc_success"] / 100, info["per_task"][0]["metrics"]["sum_rewards"]


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


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="reach,button-press-topdown,drawer-close")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--policy", help="a policy directory (vpdd or any LeRobot policy) trained on --view lerobot demos")
    ap.add_argument("--quick", action="store_true", help="2 episodes of one task")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.episodes = "reach", 2
    tasks = args.tasks.split(",")
    seeds = [1000 + k for k in range(args.episodes)]  # lerobot-eval's default seeds
    result: dict = {"episodes": args.episodes, "seeds": seeds, "expert": {}}
    _keep_raw()
    with tempfile.TemporaryDirectory() as tmp:
        ours = vidpolicy_rollout("expert", args.tasks, args.episodes, Path(tmp) / "expert")
        for task in tasks:
            name = f"{task}-v3"
            theirs = lerobot_loop_expert(name, seeds)
            result["expert"][name] = {"vidpolicy_rollout": ours[name]["success_rate"],
                                      "lerobot_loop": float(np.mean(theirs)),
                                      "episodes_agreeing": sum(int(a is not None) == b for a, b in
                                                               zip(ours[name]["success_steps"], theirs))}
        if args.policy:
            pol = vidpolicy_rollout(args.policy, args.tasks, args.episodes, Path(tmp) / "policy")
            kind = json.loads((Path(args.policy) / "config.json").read_text())["type"]
            result["policy"] = {"path": args.policy, "type": kind}
            for t in tasks:
                rate, returns = lerobot_eval(args.policy, f"{t}-v3", args.episodes, Path(tmp) / f"ev_{t}")
                ours = pol[f"{t}-v3"]
                result["policy"][f"{t}-v3"] = {  # the same trajectory gives the same return to rounding
                    "vidpolicy_rollout": ours["success_rate"], "lerobot_eval": rate,
                    "returns_agreeing": int(np.isclose(ours["returns"], returns, rtol=1e-5).sum())}
            if kind == "vpdd":  # the plugin's cost over vidpolicy's own path
                result["select_action_s"] = latency(args.policy)
    save("lerobot_parity_policy" if args.policy else "lerobot_parity", result)


if __name__ == "__main__":
    main()
