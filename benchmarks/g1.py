"""Real robot, offline (issue #33 item 3): on ../shared/data/robot/g1_pick_bottle (Unitree G1, one 120x160 camera,
26-d joint-space actions and state, 20 episodes), vidpolicy with each action head, LeRobot's Diffusion Policy and
ACT are trained on the first 16 episodes and scored on the last 4: normalised MSE (per dimension, divided by the
training episodes' variance, averaged) of the first action and of the first 4 actions of each chunk, beside
predicting the training mean. The token head is scored with both decodings (the paper's mode, and the mean).

Cells resume one by one as in fewshot.py, and the scores (the eval cells) go to a committed ledger
(benchmarks/results/g1/default) that a fresh checkout restores. vidpolicy's video model is trained from scratch on
the 16 episodes (its tokenizer on the dataset's video and ../shared/data/human: pixels only, no actions).

    python benchmarks/g1.py --quick      # minutes: tiny budgets, one seed, 16 samples
    python benchmarks/g1.py              # the default budget, three seeds (about two CPU-hours a seed on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from _common import (OUT, cell_done, cell_result, claim_cell, first_sentence, open_ledger, pending, quiet,
                     record_ledger, run_cells, save)

G1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "robot" / "g1_pick_bottle"
HUMAN = G1.parents[1] / "human"
HELD_OUT, CHUNK = 4, 4  # the last 4 episodes; actions scored per chunk
# LeRobot's baselines at CPU size (as _fewshot_runner.BASELINES); G1: 120x160 camera, Diffusion Policy crops 112x144
BASELINES = {
    "diffusion": ["--policy.type=diffusion", "--policy.pretrained_backbone_weights=null",
                  "--policy.crop_shape=[112,144]", "--policy.down_dims=[64,128,256]", "--policy.horizon=16",
                  "--policy.n_action_steps=8"],
    "act": ["--policy.type=act", "--policy.pretrained_backbone_weights=null", "--policy.dim_model=128",
            "--policy.dim_feedforward=512", "--policy.n_encoder_layers=2", "--policy.n_decoder_layers=1",
            "--policy.chunk_size=20", "--policy.n_action_steps=20"],
}
POLICIES = ("vpdd-tokens", "vpdd-regression", "diffusion", "act")
LEDGER = Path(__file__).resolve().parent / "results" / "g1" / "default"  # the eval cells' results, committed


@dataclass(frozen=True)
class Budget:
    tokenizer_steps: int = 600
    train_steps: int = 1000  # every policy, its own trainer
    seeds: tuple[int, ...] = (0, 1, 2)  # fine-tuning seeds of every policy
    samples: int = 128  # held-out (episode, step) pairs scored

    @classmethod
    def quick(cls) -> "Budget":
        return cls(tokenizer_steps=30, train_steps=20, seeds=(0,), samples=16)

    def settings(self, dataset: Path) -> dict:
        """What changes an eval cell's result (a ledger holds one setting's): the seeds only add cells."""
        return {"dataset": dataset.name, "human_videos": HUMAN.exists(), "held_out": HELD_OUT, "chunk": CHUNK,
                **{k: v for k, v in asdict(self).items() if k != "seeds"}}


def needs(name: str) -> list[str]:
    """The cells whose outputs cell ``name`` reads."""
    stage, *rest = name.split("/")
    return {"tokenizer": [], "train": ["tokenizer"], "eval": ["/".join(["train", *rest])]}[stage]


def cells(b: Budget) -> list[str]:
    return ["tokenizer"] + [f"{stage}/{p}/seed{s}" for s in b.seeds for p in POLICIES for stage in ("train", "eval")]


class Runner:
    def __init__(self, root: Path, b: Budget, dataset: Path):
        self.root, self.b, self.dataset = root, b, dataset
        self.n_eps = self._episodes()

    def _episodes(self) -> int:
        from vidpolicy.datasets.robot import RobotEpisodes

        return len(RobotEpisodes(self.dataset))

    def run(self, name: str) -> dict:
        stage, *rest = name.split("/")
        # vidpolicy's own training resumes from its checkpoints; lerobot-train's cells restart
        where = claim_cell(self.root, name, keep=stage == "tokenizer" or (stage == "train" and "vpdd" in name))
        return getattr(self, stage)(where, *rest)

    def tokenizer(self, where: Path) -> dict:
        """The tokenizer and an untrained video model of the demo's sizes: vidpolicy trains it with the actions."""
        from vidpolicy.datasets.video import find_videos
        from vidpolicy.demo import SIZES
        from vidpolicy.pretrain.config import PretrainConfig
        from vidpolicy.pretrain.train import pretrain
        from vidpolicy.tokenizer.config import TokenizeConfig, TokenizerTrainConfig
        from vidpolicy.tokenizer.tokenize import tokenize
        from vidpolicy.tokenizer.train import train_tokenizer

        z = SIZES[False]
        videos = find_videos(self.dataset / "videos") + (find_videos(HUMAN) if HUMAN.exists() else [])
        (where / "videos.txt").write_text("\n".join(str(v) for v in videos) + "\n")
        train_tokenizer(TokenizerTrainConfig(videos=str(where / "videos.txt"), out=str(where / "tokenizer"), size=96,
                                             codebook_size=z["codebook"], hidden_channels=z["hidden"],
                                             batch_size=z["tok_batch"], max_steps=self.b.tokenizer_steps, flips="h",
                                             small_crops=0.0, num_workers=1))
        tok = str(where / "tokenizer")
        tokenize(TokenizeConfig(tokenizer=tok, out=str(where / "tokens"), dataset=str(self.dataset), num_workers=1))
        pretrain(PretrainConfig(tokens=[str(where / "tokens")], tokenizer=tok, out=str(where / "run"),
                                width=z["width"], depth=z["depth"], max_steps=1, warmup_steps=0))
        return {"videos": len(videos), "run": str(where / "run")}

    def train(self, where: Path, policy: str, seed: str) -> dict:
        seed_n = int(seed.removeprefix("seed"))
        if policy.startswith("vpdd"):
            from vidpolicy.demo import SIZES
            from vidpolicy.finetune.config import FinetuneConfig
            from vidpolicy.finetune.train import finetune

            steps = self.b.train_steps
            finetune(FinetuneConfig(pretrained=cell_result(self.root, "tokenizer")["run"], dataset=str(self.dataset),
                                    out=str(where / "policy"), from_scratch=True, action_head=policy.split("-")[1],
                                    max_steps=steps, depth=SIZES[False]["ft_depth"], warmup_steps=steps // 10,
                                    lr=1e-3, holdout_episodes=HELD_OUT, seed=seed_n, save_every=max(50, steps // 4)))
            return {"policy": str(where / "policy")}
        train_eps = ",".join(str(i) for i in range(self.n_eps - HELD_OUT))
        exe = Path(sys.executable).with_name("lerobot-train")
        subprocess.run([str(exe), *BASELINES[policy], "--policy.push_to_hub=false", "--policy.device=cpu",
                        "--dataset.repo_id=local/g1", f"--dataset.root={self.dataset}",
                        f"--dataset.episodes=[{train_eps}]", f"--steps={self.b.train_steps}", "--batch_size=8",
                        f"--save_freq={self.b.train_steps}", "--num_workers=1", f"--seed={seed_n}",
                        "--wandb.enable=false", f"--output_dir={where / 'train'}"],
                       check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return {"policy": str(where / "train" / "checkpoints" / "last" / "pretrained_model")}

    def eval(self, where: Path, policy: str, seed: str) -> dict:
        from _g1_eval import heldout_samples, lerobot_chunks, score, vpdd_chunks

        policy_dir = cell_result(self.root, f"train/{policy}/{seed}")["policy"]
        samples = heldout_samples(self.dataset, self.n_eps - HELD_OUT, self.b.samples, CHUNK)
        if policy == "vpdd-tokens":
            return {decode: score(vpdd_chunks(policy_dir, self.dataset, samples, decode), self.dataset, samples)
                    for decode in ("mode", "mean")}
        chunks = vpdd_chunks if policy.startswith("vpdd") else lerobot_chunks
        return {"default": score(chunks(policy_dir, self.dataset, samples), self.dataset, samples)}


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--quick", action="store_true", help="tiny budgets, one seed, 16 samples")
    ap.add_argument("--dataset", default=str(G1),
                    help="a LeRobotDataset (default: ../shared/data/robot/g1_pick_bottle)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="fine-tuning seeds (default: 0 1 2)")
    ap.add_argument("--out", default=str(OUT / "g1"), help="where the cells go (default: benchmarks/out/g1)")
    ap.add_argument("--report", action="store_true", help="score what is done so far; run nothing")
    args = ap.parse_args()
    b = Budget.quick() if args.quick else Budget()
    if args.seeds:
        b = Budget(**{**asdict(b), "seeds": tuple(args.seeds)})
    if not Path(args.dataset).exists():
        sys.exit(f"{args.dataset}: no such dataset (../shared/data is not here)")
    root = Path(args.out) / ("quick" if args.quick else "default")
    mine, evals = b.settings(Path(args.dataset)), [n for n in cells(b) if n.startswith("eval/")]
    ledger = open_ledger(root, None if args.quick or Path(args.dataset).resolve() != G1.resolve() else LEDGER, mine)
    runner = Runner(root, b, Path(args.dataset))
    if not args.report:
        run_cells(root, pending(root, cells(b), evals, needs), needs, runner.run)
    if ledger and (n := record_ledger(root, ledger, mine, evals)):
        print(f"recorded {n} cells in {ledger}")
    from _g1_eval import mean_baseline

    results = {name.split("/", 1)[1]: cell_result(root, name) for name in evals if cell_done(root, name)}
    samples_mean = mean_baseline(Path(args.dataset), runner.n_eps - HELD_OUT, b.samples, CHUNK)
    save("g1_quick" if args.quick else "g1", {"dataset": args.dataset, "budget": asdict(b), "chunk": CHUNK,
                                              "heldout_episodes": HELD_OUT, "training_mean": samples_mean,
                                              "results": results})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
