"""Meta-World speed: env steps/s without rendering, render fps at 96² and 128² with shadows on and off, and
scripted-expert episodes collected per minute (into a LeRobotDataset).

    python benchmarks/envs.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from _common import first_sentence, quiet, save
from vidpolicy.common.malloc import keep_freed_memory
from vidpolicy.envs.collect import CollectConfig, collect
from vidpolicy.envs.metaworld import MetaWorldEnv


def steps_per_s(task: str = "push", n: int = 1000) -> float:
    env = MetaWorldEnv(task, size=64)
    env.reset(0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n):
        if i % 400 == 399:  # Meta-World truncates episodes at 500 steps
            env.env.reset()
        env.env.step(rng.uniform(-1, 1, 4).astype(np.float32))  # physics only, no render
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def render_fps(size: int, shadows: bool, task: str = "push", n: int = 200) -> float:
    env = MetaWorldEnv(task, size=size, shadows=shadows)
    env.reset(0)
    env.render()
    t0 = time.perf_counter()
    for _ in range(n):
        env.render()
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def episodes_per_minute(tasks: str = "reach,push", episodes: int = 3) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        log = collect(CollectConfig(tasks=tasks, episodes=episodes, out=f"{d}/demos", size=96))
        return len(log["episodes"]) / ((time.perf_counter() - t0) / 60)


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--quick", action="store_true", help="a quarter of the frames and episodes")
    k = 4 if ap.parse_args().quick else 1
    keep_freed_memory()  # as the CLI does for its process: the stages run here as library calls
    save("envs", {
        "env_steps_per_s_no_render": steps_per_s(n=1000 // k),
        "render_fps": {f"{size}_{'shadows' if sh else 'no_shadows'}": render_fps(size, sh, n=(50 if sh else 200) // k)
                       for size in (96, 128) for sh in (False, True)},
        "collected_episodes_per_minute_96": episodes_per_minute(episodes=max(1, 3 // k)),
        "goal": ">= 80 rendered fps at 128² per core",
    })


if __name__ == "__main__":
    main()
