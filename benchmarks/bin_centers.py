"""Where an action bin decodes: its midpoint (the paper) or the mean of the training actions in it (`finetune
--bin-centers`). Offline: each rule's round-trip error on demo datasets' actions (normalised by each dimension's
variance) and how much it shrinks them. Closed loop: one trained policy acting twice on the same seeds, its bins
decoded by each rule. Both rules cut the same quantile edges, so the policy's tokens are the same and only their
decoding differs; no retraining.

    python benchmarks/bin_centers.py --datasets out/fewshot_grid/default/D5/demos/data \\
        ../../shared/data/robot/g1_pick_bottle
    python benchmarks/bin_centers.py --policy out/fewshot_grid/default/D5/A0x/vpdd/seed0/train/policy \\
        --against out/fewshot_grid/default/D5/A0x/vpdd/seed0/rollout/eval   # that policy's own rollout, reused
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from _common import first_sentence, quiet, save

from vidpolicy.finetune.binning import RULES


def dataset_actions(root: Path, holdout: int = 0) -> np.ndarray:
    """The actions of a LeRobotDataset (v3 parquet), but for its last ``holdout`` episodes (as `finetune` holds out)."""
    import pandas as pd

    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise SystemExit(f"{root}: no data/*/*.parquet (not a LeRobotDataset)")
    rows = pd.concat([pd.read_parquet(f, columns=["action", "episode_index"]) for f in files])
    episodes = sorted(rows["episode_index"].unique())
    rows = rows[rows["episode_index"].isin(episodes[: len(episodes) - holdout])]
    return np.stack(rows["action"].to_numpy())


def round_trip(actions: np.ndarray) -> dict:
    """Per rule: mean and worst normalised MSE of decode(encode(a)) over dimensions, and mean |decoded| / mean |a|."""
    from vidpolicy.finetune.binning import ActionBinner

    out = {}
    for rule in RULES:
        b = ActionBinner.fit(actions, centers=rule)
        back = b.decode(b.encode(actions))
        nmse = ((back - actions) ** 2).mean(0) / np.maximum(actions.var(0), 1e-12)
        out[rule] = {"nmse_mean": float(nmse.mean()), "nmse_max": float(nmse.max()),
                     "magnitude": float(np.abs(back).mean() / max(np.abs(actions).mean(), 1e-12))}
    return out


def redecoded(policy: Path, out: Path, rule: str) -> Path:
    """A copy of ``policy`` whose bins decode by ``rule``, refitted on its training actions (the same edges)."""
    from vidpolicy.finetune.binning import ActionBinner
    from vidpolicy.policies.vpdd.processor_vpdd import BINNING

    run = json.loads((policy / "finetune_config.json").read_text())
    actions = dataset_actions(Path(run["dataset"]), run["holdout_episodes"])
    old = ActionBinner.load(policy / BINNING)
    new = ActionBinner.fit(actions, bins=run["bins"], centers=rule)
    if any(not np.array_equal(a, b) for a, b in zip(old.edges, new.edges)):
        raise SystemExit(f"{policy}: refitted bin edges differ from {BINNING}: not the policy's training actions")
    copy = out / f"policy_{rule}"
    if not copy.exists():
        shutil.copytree(policy, copy)
        new.save(copy / BINNING)
    return copy


def outcomes(results: dict) -> dict:
    return {(t, s): step is not None for t, r in results.items() if isinstance(r, dict)
            for s, step in zip(r["seeds"], r["success_steps"])}


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--datasets", nargs="*", default=[], help="LeRobotDatasets whose actions are binned offline")
    ap.add_argument("--policy", help="a trained vidpolicy policy (token head) to roll out with each rule")
    ap.add_argument("--against", help="that policy's finished rollout as it is (reused, not rerun)")
    ap.add_argument("--tasks", default=None, help="Meta-World tasks (default: the grid's)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes per task (default: 10)")
    ap.add_argument("--max-steps", type=int, default=500, help="episode step limit (default: 500)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "bin_centers"),
                    help="where its rollouts go (default: benchmarks/out/bin_centers)")
    args = ap.parse_args()
    result: dict = {"offline": {d: round_trip(dataset_actions(Path(d))) for d in args.datasets}}
    if args.policy:
        from _fewshot_report import paired
        from _fewshot_runner import SIZE
        from fewshot import TASKS

        from vidpolicy.envs.rollout import RolloutConfig, rollout
        from vidpolicy.finetune.binning import ActionBinner
        from vidpolicy.policies.vpdd.processor_vpdd import BINNING

        out, runs = Path(args.out), {}
        own = ActionBinner.load(Path(args.policy) / BINNING).rule
        for rule in RULES:
            if rule == own and args.against:
                runs[rule] = json.loads((Path(args.against) / "results.json").read_text())
                continue
            runs[rule] = rollout(RolloutConfig(
                policy=str(redecoded(Path(args.policy), out, rule)), tasks=args.tasks or TASKS,
                episodes=args.episodes, out=str(out / f"eval_{rule}"), seed=1000, max_steps=args.max_steps,
                state="agent_pos", size=SIZE, videos=False))
        a, b = outcomes(runs["mean"]), outcomes(runs["midpoint"])
        common = a.keys() & b.keys()
        result["closed_loop"] = {"policy": args.policy, "episodes": len(common),
                                 **{rule: sum(o[k] for k in common) for rule, o in (("mean", a), ("midpoint", b))},
                                 "mean_vs_midpoint": paired({k: a[k] for k in common}, {k: b[k] for k in common})}
    save("bin_centers", result)


if __name__ == "__main__":
    main()
