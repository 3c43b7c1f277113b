"""Does imagination hold in closed loop? A vidpolicy policy acts in Meta-World; each future it imagined (the clip
``gap`` steps ahead) is scored against what then happened in that episode, beside copying the present, as
`fewshot.py`'s imagine cell scores it on held-out expert episodes. Imagination that beats copying on the expert's
episodes but not on the policy's own is an error that compounds: the policy's states leave the demos' distribution.

    python benchmarks/foresight.py --policy out/fewshot_grid/default/D5/A0x/vpdd/seed0/train/policy
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from _common import first_sentence, quiet, save

os.environ.setdefault("MUJOCO_GL", "egl")
BUCKETS = (0, 50, 150, 500)  # plans grouped by the step they were made at


class Watched:
    """A `VPDDPolicy` that keeps every frame it saw (processed, as it sees them) and each plan's imagined tokens."""

    def __init__(self, policy):
        self.policy = policy

    def reset(self) -> None:
        self.policy.reset()
        self.frames, self.plans = [], []  # plans: (step, imagined tokens (n,))

    def select_action(self, observation: dict) -> np.ndarray:
        before = self.policy.plans
        self.frames.append(self.policy.processor.frame(observation["image"]))
        action = self.policy.select_action(observation)
        if self.policy.plans > before:
            self.plans.append((len(self.frames) - 1, self.policy.imagined_tokens[0].cpu()))
        return action


def clip_ending(frames: list[np.ndarray], end: int, length: int) -> np.ndarray:
    """The ``length`` frames ending at ``end``, the first repeated before the episode began (the clip rule the policy
    trained on: `clip_indices`)."""
    from vidpolicy.datasets.robot import clip_indices

    return np.stack([frames[i] for i in clip_indices(end, length, len(frames))[0]])


@torch.no_grad()
def score_episode(w: Watched, gap: int) -> list[dict]:
    """Each plan whose future the episode reached: token accuracy and PSNR of the imagined clip and of the copy, both
    decoded by the policy's tokenizer (PSNR against the frames as the policy saw them)."""
    from vidpolicy.common.media import psnr
    from vidpolicy.datasets.clips import to_unit_range

    pol, T = w.policy, w.policy.tokenizer.config.frames
    plans = [(t, toks) for t, toks in w.plans if t + gap < len(w.frames)]
    if not plans:
        return []
    truth = [clip_ending(w.frames, t + gap, T) for t, _ in plans]
    now = [clip_ending(w.frames, t, T) for t, _ in plans]
    enc = pol.tokenizer.encode(torch.stack([to_unit_range(c) for c in truth + now]).to(pol.device)).flatten(1).cpu()
    true_toks, copy_toks = enc[: len(plans)], enc[len(plans):]
    imagined = torch.stack([toks for _, toks in plans])
    seen = {name: (toks, pol.decode_tokens(toks)) for name, toks in (("imagined", imagined),
                                                                      ("copy_present", copy_toks))}
    return [{"step": t, **{f"{name}_{k}": v for name, (toks, frames) in seen.items() for k, v in (
        ("token_accuracy", float((toks[j] == true_toks[j]).float().mean())), ("psnr", psnr(frames[j], truth[j])))}}
        for j, (t, _) in enumerate(plans)]


def summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k.endswith(("token_accuracy", "psnr"))] if rows else []
    return {"plans": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--policy", required=True, help="a vidpolicy policy directory (camera + agent_pos)")
    ap.add_argument("--tasks", default="reach,drawer-close,window-open,coffee-push,sweep-into,hammer,push,pick-place",
                    help="comma-separated Meta-World tasks (default: the grid's eight)")
    ap.add_argument("--episodes", type=int, default=2, help="episodes per task (seeds 1000+, as the grid's)")
    ap.add_argument("--max-steps", type=int, default=500, help="episode step limit (default: 500)")
    ap.add_argument("--offline", help="the grid's imagine cell of this policy (its held-out scores, for the table)")
    ap.add_argument("--name", default="foresight", help="the result's name in benchmarks/out")
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from vidpolicy.envs.rollout import run_episode
    from vidpolicy.envs.views import make_env
    from vidpolicy.policies.vpdd import VPDDPolicy

    w = Watched(VPDDPolicy.from_pretrained(args.policy))
    gap, rows = w.policy.config.gap, []
    bar = tqdm(total=len(args.tasks.split(",")) * args.episodes, desc="foresight", unit="ep")
    for task in args.tasks.split(","):
        env = make_env("vidpolicy", task, size=w.policy.image_size, max_steps=args.max_steps, state="agent_pos")
        for seed in range(1000, 1000 + args.episodes):
            torch.manual_seed(seed)
            res = run_episode(env, w, seed, args.max_steps, record=False)
            rows += [{"task": task, "seed": seed, "solved": res["success"], **r} for r in score_episode(w, gap)]
            bar.update(1)
        env.close()
    bar.close()
    by_step = {f"steps {lo}-{hi}": summary([r for r in rows if lo <= r["step"] < hi])
               for lo, hi in zip(BUCKETS, BUCKETS[1:])}
    result = {"policy": args.policy, "gap": gap, "episodes": args.episodes, "tasks": args.tasks,
              "closed_loop": summary(rows), "solved_episodes": summary([r for r in rows if r["solved"]]),
              "failed_episodes": summary([r for r in rows if not r["solved"]]), "by_step": by_step}
    if args.offline:
        held = json.loads((Path(args.offline) / "done.json").read_text())
        result["heldout_expert_episodes"] = {k: held[k] for k in ("samples", "imagined", "copy_history")}
    save(args.name, result)
    for k, v in [(k, result[k]) for k in ("closed_loop", "solved_episodes", "failed_episodes")] + [*by_step.items()]:
        if v["plans"]:
            print(f"{k:<18} {v['plans']:>5} plans  token accuracy: imagined {v['imagined_token_accuracy']:.3f}, "
                  f"copy {v['copy_present_token_accuracy']:.3f}")


if __name__ == "__main__":
    main()
