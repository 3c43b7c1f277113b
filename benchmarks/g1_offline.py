"""Real-robot offline check: fine-tune on ../shared/data/robot/g1_pick_bottle (Unitree G1, 26-d actions) from a
pre-trained run and from scratch, with the paper's binned action tokens and with the regression head; report
normalised action MSE and bin accuracy of the first predicted action on held-out episodes, and what predicting
the training mean scores.

    python benchmarks/g1_offline.py --pretrained benchmarks/out/fewshot_runs/quick/pretrain [--steps 300]
                                    [--heads tokens regression]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidpolicy.common.malloc import keep_freed_memory
from _common import OUT, save

G1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "robot" / "g1_pick_bottle"


def main() -> None:
    keep_freed_memory()  # as the CLI does for its process: the stages run here as library calls
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", required=True, help="a pretrain run directory")
    ap.add_argument("--dataset", default=str(G1))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--holdout", type=int, default=4, help="held-out episodes (the last ones)")
    ap.add_argument("--heads", nargs="+", default=["tokens", "regression"], choices=["tokens", "regression"])
    ap.add_argument("--out", default=str(OUT / "g1_runs"))
    ap.add_argument("--quick", action="store_true", help="50 fine-tuning steps")
    args = ap.parse_args()
    if args.quick:
        args.steps = 50
    from vidpolicy.finetune.config import FinetuneConfig
    from vidpolicy.finetune.train import finetune

    rows = {}
    for head in args.heads:
        for name, scratch in (("pretrained", False), ("scratch", True)):
            res = finetune(FinetuneConfig(pretrained=args.pretrained, dataset=args.dataset, action_head=head,
                                          out=f"{args.out}/{head}/{name}", from_scratch=scratch, depth=2,
                                          max_steps=args.steps, lr=1e-3, warmup_steps=args.steps // 10,
                                          save_every=args.steps, holdout_episodes=args.holdout, sampling_steps=6),
                           overwrite=True)
            rows[f"{head}, {name}"] = res["offline"]
        rows["training mean"] = res["offline"]["mean_baseline"]
    save("g1_offline", {"dataset": args.dataset, "pretrained_run": args.pretrained, "steps": args.steps,
                        "heldout_episodes": args.holdout, "results": rows,
                        "pretrain_config": json.loads((Path(args.pretrained) / "config.json").read_text())})


if __name__ == "__main__":
    main()
