"""How much would a perfect imagination be worth? A vidpolicy policy whose action model reads the future (`finetune
--act-on imagined`) acts in Meta-World with one of three futures in view at each plan: the clip it imagines (as
deployed); the true one, the clip the scripted expert would show ``gap`` steps from here, simulated on a branch of
the episode and undone (`MetaWorldEnv.branch`); or the present clip copied (no future at all). The same scenes as
the grid (seeds 1000+ of each task), paired episode by episode. If the true future lifts success little above the
imagined one, no better video model (more video, more compute) can help this policy; what it does lift is what
better imagination could buy.

    python benchmarks/oracle_future.py --policy RUN/policy --futures imagined true copy --name oracle_D10
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from _common import OUT, first_sentence, quiet, save
from foresight import clip_ending

os.environ.setdefault("MUJOCO_GL", "egl")
FUTURES = ("imagined", "true", "copy")
TASKS = "reach,drawer-close,window-open,coffee-push,sweep-into,hammer,push,pick-place"


def expert_future(env, seen: list[np.ndarray], gap: int, frames: int, process=lambda image: image) -> np.ndarray:
    """The clip of ``frames`` frames ending ``gap`` steps ahead if the scripted expert acted from the current state
    (earlier when the episode's step limit comes first), as the policy would see it (``process``); the episode is
    left as it was. ``seen``: the processed frames so far (this one last), for a clip reaching back before now."""
    ahead = []
    with env.branch():
        expert, n = env.expert(), min(gap, env.max_steps - env.steps)
        for k in range(n):
            obs, *_ = env.step(expert(None), render=k >= n - frames)
            if obs["image"] is not None:
                ahead.append(process(obs["image"]))
    return clip_ending(seen + ahead, len(seen) + len(ahead) - 1, frames)


class Foresighted:
    """A `VPDDPolicy` whose action model reads the chosen future at each plan (``future``: see FUTURES)."""

    def __init__(self, policy, future: str):
        from vidpolicy.datasets.clips import to_unit_range
        from vidpolicy.pretrain.foresight import copy_last_clip

        self.policy, self.future, self.env, self.seen = policy, future, None, []
        plan, T = policy.plan, policy.tokenizer.config.frames

        def planned(history, text, **kw):
            if future == "true":
                clip = expert_future(self.env, self.seen, policy.config.gap, T, policy.processor.frame)
                kw["future"] = policy.tokenizer.encode(to_unit_range(clip)[None].to(policy.device)).flatten(1)
            elif future == "copy":
                kw["future"] = copy_last_clip(history, policy.video.tokens_per_clip)
            return plan(history, text, **kw, future_t=0) if "future" in kw else plan(history, text, **kw)
        policy.plan = planned

    def reset(self) -> None:
        self.policy.reset()
        self.seen = []

    def select_action(self, observation: dict) -> np.ndarray:
        self.seen = (self.seen + [self.policy.processor.frame(observation["image"])])[-8:]
        return self.policy.select_action(observation)


def run(policy_dir: str, future: str, tasks: list[str], episodes: int, journal: Path) -> list[dict]:
    """Every episode of one future, journaled line by line (a rerun skips those done)."""
    from tqdm.auto import tqdm

    from vidpolicy.envs.rollout import run_episode
    from vidpolicy.envs.views import make_env
    from vidpolicy.policies.vpdd import VPDDPolicy

    done = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    have = {(r["task"], r["seed"]) for r in done}
    todo = [(t, 1000 + i) for t in tasks for i in range(episodes) if (t, 1000 + i) not in have]
    if not todo:
        return done
    policy = Foresighted(VPDDPolicy.from_pretrained(policy_dir), future)
    bar = tqdm(total=len(todo), desc=future, unit="ep")
    for task in dict.fromkeys(t for t, _ in todo):
        policy.env = env = make_env("vidpolicy", task, size=policy.policy.image_size, state="agent_pos")
        for _, seed in (x for x in todo if x[0] == task):
            res = run_episode(env, policy, seed, 500, record=False)
            row = {"task": task, "seed": seed, "success": res["success"], "steps": res["steps"]}
            with journal.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
            bar.update(1)
        env.close()
    bar.close()
    return done


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--policy", required=True, help="a vidpolicy policy directory that acts on the imagined clip")
    ap.add_argument("--futures", nargs="+", default=list(FUTURES), choices=FUTURES,
                    help="the futures to act on, each a full rollout (default: imagined true copy)")
    ap.add_argument("--tasks", default=TASKS, help="comma-separated Meta-World tasks (default: the grid's eight)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes per task, seeds 1000+ (default: 10)")
    ap.add_argument("--name", default="oracle_future", help="its journals' folder and its result in benchmarks/out")
    args = ap.parse_args()
    from _fewshot_report import difference, paired

    from vidpolicy.envs.tasks import resolve_tasks

    where = OUT / args.name
    where.mkdir(parents=True, exist_ok=True)
    tasks = resolve_tasks(args.tasks)
    rows = {f: run(args.policy, f, tasks, args.episodes, where / f"{f}.jsonl") for f in args.futures}
    solved = {f: {(0, r["task"], r["seed"]): r["success"] for r in v} for f, v in rows.items()}
    result = {"policy": args.policy, "episodes": args.episodes, "tasks": tasks,
              "success": {f: float(np.mean(list(s.values()))) for f, s in solved.items()},
              "per_task": {f: {t: float(np.mean([v for k, v in s.items() if k[1] == t])) for t in tasks}
                           for f, s in solved.items()}}
    for a, b in (("true", "imagined"), ("imagined", "copy"), ("true", "copy")):
        if a in solved and b in solved:  # wins: only a solved; difference a - b over task clusters
            common = solved[a].keys() & solved[b].keys()
            x, y = ({k: s[k] for k in common} for s in (solved[a], solved[b]))
            result[f"{a}_vs_{b}"] = {**paired(x, y), **difference(x, y)}
    save(args.name, result)
    for f, v in result["success"].items():
        print(f"{f:<9} {100 * v:5.1f}%  " + " ".join(f"{100 * p:3.0f}" for p in result["per_task"][f].values()))


if __name__ == "__main__":
    main()
