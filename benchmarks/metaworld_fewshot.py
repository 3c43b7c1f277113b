"""Does pre-training on actionless video help? Meta-World few-shot: (a) pre-trained then fine-tuned, (b) the same
architecture from scratch, (c) the scripted expert — evaluated on seeds disjoint from the demonstrations.

Mini-suite by default: reach, button-press-topdown, drawer-close, door-open, push; 10 expert demos per task. The
actionless corpus is Meta-World expert video of *other* tasks plus ../shared/data/human when present.

    python benchmarks/metaworld_fewshot.py --quick      # ~10 min on 2 CPU cores
    python benchmarks/metaworld_fewshot.py              # the default budget (~2 h on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import OUT, save

TASKS = "reach,button-press-topdown,drawer-close,door-open,push"
ACTIONLESS = "window-open,drawer-open,button-press,door-close,reach-wall,push-back"
SHARED_HUMAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "human"

SIZES = {
    True: dict(demos=10, actionless=3, size=64, codebook=512, hidden=64, tok_steps=150, tok_batch=8, width=128,
               depth=2, pre_steps=200, ft_steps=250, ft_depth=2, episodes=3, max_steps=120, sampling_steps=4),
    False: dict(demos=10, actionless=10, size=96, codebook=2048, hidden=128, tok_steps=2000, tok_batch=8,
                width=256, depth=6, pre_steps=2500, ft_steps=2500, ft_depth=6, episodes=10, max_steps=200,
                sampling_steps=6),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small models and budgets (~10 min)")
    ap.add_argument("--tasks", default=TASKS)
    ap.add_argument("--no-human", action="store_true", help="leave ../shared/data/human out of pre-training")
    ap.add_argument("--out", default=str(OUT / "fewshot_runs"))
    args = ap.parse_args()
    from vidpolicy.demo import run_pipeline
    from vidpolicy.envs.rollout import RolloutConfig, rollout

    s = SIZES[args.quick]
    human = str(SHARED_HUMAN) if SHARED_HUMAN.exists() and not args.no_human else None
    out = Path(args.out) / ("quick" if args.quick else "default")
    t0 = time.time()
    summary = run_pipeline(out, s, args.tasks, ACTIONLESS, human, overwrite=True, compare_scratch=True)
    expert = rollout(RolloutConfig(policy="expert", tasks=args.tasks, episodes=s["episodes"],
                                   out=str(out / "rollout_expert"), max_steps=500, seed=1000, videos=False),
                     overwrite=True)
    rows = {}
    for task in summary["variants"]["policy"]["success"]:
        rows[task] = {"pretrained": summary["variants"]["policy"]["success"][task],
                      "scratch": summary["variants"]["policy_scratch"]["success"][task],
                      "expert": expert[task]["success_rate"]}
    means = {k: sum(r[k] for r in rows.values()) / len(rows) for k in ("pretrained", "scratch", "expert")}
    save("metaworld_fewshot" + ("_quick" if args.quick else ""), {
        "budget": "quick" if args.quick else "default", "minutes": (time.time() - t0) / 60, "sizes": s,
        "human_videos": human, "demos_per_task": s["demos"], "eval_episodes_per_task": s["episodes"],
        "eval_seeds_from": 1000, "per_task": rows, "mean": means,
        "tokenizer_psnr_db": summary["tokenizer_psnr_db"],
        "imagined_token_accuracy": summary["imagined_token_accuracy"], "stage_seconds": summary["stage_seconds"]})


if __name__ == "__main__":
    main()
