"""How each cell of the head-to-head grid (benchmarks/fewshot.py) runs: collecting demos and the actionless
corpus, pre-training per corpus size, training each policy with its own trainer, one rollout harness for all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from _common import cell_result
from fewshot import HELDOUT, VARIANTS, Budget, Cell, claim, needs

# LeRobot's baselines at CPU size (their defaults: Diffusion Policy ~265 M parameters, ACT ~52 M); no downloads
BASELINES = {
    "diffusion": ["--policy.type=diffusion", "--policy.pretrained_backbone_weights=null", "--policy.crop_shape=[84,84]",
                  "--policy.down_dims=[64,128,256]", "--policy.horizon=16", "--policy.n_action_steps=8"],
    "act": ["--policy.type=act", "--policy.pretrained_backbone_weights=null", "--policy.dim_model=128",
            "--policy.dim_feedforward=512", "--policy.n_encoder_layers=2", "--policy.n_decoder_layers=1",
            "--policy.chunk_size=20", "--policy.n_action_steps=20"],
}
SIZE = 96  # camera side of the demos and of every policy's evaluation
SAVE_EVERY = 100  # training checkpoints: a worker killed with its session loses minutes, not most of an hour
EVAL_SEED = 1000  # the first evaluation scene (rollout's default, lerobot-eval's too); demos use 0.., corpora 500..
LEROBOT_SAVE_EVERY = 500  # lerobot-train's checkpoints hold ~185 MB (the optimizer's state with the weights)


def prune_checkpoints(checkpoints: Path) -> None:
    """Delete every lerobot-train checkpoint but the one ``last`` names: the rollout reads only that one."""
    last = (checkpoints / "last").resolve()
    for old in checkpoints.iterdir():
        if old.is_dir() and not old.is_symlink() and old != last:
            shutil.rmtree(old)


class Runner:
    def __init__(self, root: Path, b: Budget, tasks: str, human: Path | None):
        self.root, self.b, self.tasks, self.human = root, b, tasks, human

    def dir(self, cell: Cell) -> Path:
        return self.root / cell.name

    def run(self, cell: Cell) -> dict:
        where = claim(self.root, cell)
        return getattr(self, cell.stage)(cell, where)

    def _collect(self, out: Path, episodes: int, seed: int, tasks: str | None = None) -> dict:
        from vidpolicy.envs.collect import CollectConfig, collect

        log = collect(CollectConfig(tasks=tasks or self.tasks, episodes=episodes, out=str(out), size=SIZE, seed=seed,
                                    state="agent_pos"))
        return {"episodes": len(log["episodes"])}

    def demos(self, cell: Cell, where: Path) -> dict:
        return self._collect(where / "data", cell.demos, seed=0)

    def blind(self, cell: Cell, where: Path) -> dict:  # the demos replayed open loop in the evaluation scenes
        from vidpolicy.envs.replay import blind_scores

        return blind_scores(self.dir(Cell("demos", cell.demos)) / "data", self.b.eval_episodes, EVAL_SEED,
                            self.b.max_steps)

    def actionless(self, cell: Cell, where: Path) -> dict:
        return self._collect(where / "data", cell.demos * cell.multiple, seed=500)  # actions never read

    def others(self, cell: Cell, where: Path) -> dict:  # every Meta-World task not among the targets
        from vidpolicy.envs.tasks import MT50, resolve_tasks

        targets = set(resolve_tasks(self.tasks))
        others = [t for t in MT50 if t not in targets][: self.b.other_tasks]
        return self._collect(where / "data", self.b.other_episodes, seed=500, tasks=",".join(others))

    def heldout(self, cell: Cell, where: Path) -> dict:
        return self._collect(where / "data", HELDOUT, seed=EVAL_SEED)  # no policy trained on these

    def imagine(self, cell: Cell, where: Path) -> dict:
        from _imagination import imagination_scores

        policy = self.result(Cell("train", cell.demos, cell.multiple, cell.policy, cell.seed))["policy"]
        heldout = self.dir(Cell("heldout", cell.demos)) / "data"
        return imagination_scores(policy, heldout, samples=self.b.imagine_samples)

    def result(self, cell: Cell) -> dict:
        return cell_result(self.root, cell.name)

    def pretrain(self, cell: Cell, where: Path) -> dict:
        """Tokenizer on every video this setting may use; the video model pre-trained on the actionless corpus, the
        other tasks' episodes and the human videos, each clip as likely as any (k = 0: the tokenizer sees the demos
        only, and fine-tuning starts the video model fresh)."""
        from vidpolicy.datasets.video import find_videos
        from vidpolicy.pretrain.config import PretrainConfig
        from vidpolicy.pretrain.train import pretrain
        from vidpolicy.tokenizer.config import TokenizeConfig, TokenizerTrainConfig
        from vidpolicy.tokenizer.tokenize import tokenize
        from vidpolicy.tokenizer.train import train_tokenizer

        demos = self.dir(Cell("demos", cell.demos)) / "data"
        corpora = [self.dir(c) / "data" for c in needs(cell) if c.stage in ("actionless", "others")]
        human = self.human if cell.multiple else None
        videos = [v for src in [demos, *corpora] for v in find_videos(src / "videos")]
        videos += find_videos(human) if human else []
        (where / "videos.txt").write_text("\n".join(str(v.resolve()) for v in videos) + "\n")
        z = self.b.sizes
        train_tokenizer(TokenizerTrainConfig(videos=str(where / "videos.txt"), out=str(where / "tokenizer"),
                                             size=SIZE, codebook_size=z["codebook"], hidden_channels=z["hidden"],
                                             batch_size=z["tok_batch"], max_steps=self.b.tokenizer_steps, flips="h",
                                             small_crops=0.0, num_workers=1))
        token_dirs = [where / f"tokens{i}" for i in range(len(corpora or [demos]))]
        clips = [tokenize(TokenizeConfig(tokenizer=str(where / "tokenizer"), out=str(out), dataset=str(src),
                                         num_workers=1))["num_clips"]
                 for src, out in zip(corpora or [demos], token_dirs)]
        if human:
            token_dirs.append(where / "tokens_human")
            clips.append(tokenize(TokenizeConfig(tokenizer=str(where / "tokenizer"), out=str(token_dirs[-1]),
                                                 videos=str(human), num_workers=1))["num_clips"])
        steps = self.b.pretrain_steps if cell.multiple else 1  # k = 0: only the architecture is read
        pretrain(PretrainConfig(tokens=[str(d) for d in token_dirs], token_weights=[float(n) for n in clips],
                                tokenizer=str(where / "tokenizer"), out=str(where / "run"), width=z["width"],
                                depth=z["depth"], max_steps=steps, warmup_steps=steps // 10, save_every=SAVE_EVERY))
        return {"videos": len(videos), "clips": dict(zip([d.name for d in token_dirs], clips)), "pretrain_steps": steps}

    def train(self, cell: Cell, where: Path) -> dict:
        if cell.family == "vpdd":
            from vidpolicy.finetune.config import FinetuneConfig
            from vidpolicy.finetune.train import finetune

            demos = self.dir(Cell("demos", cell.demos)) / "data"
            pre = self.dir(Cell("pretrain", cell.demos, cell.multiple)) / "run"
            finetune(FinetuneConfig(pretrained=str(pre), dataset=str(demos), out=str(where / "policy"),
                                    from_scratch=cell.multiple == 0, max_steps=self.b.train_steps,
                                    depth=self.b.sizes["ft_depth"], sampling_steps=self.b.sizes["sampling_steps"],
                                    warmup_steps=self.b.train_steps // 10, lr=1e-3, execute=4, seed=cell.seed,
                                    save_every=SAVE_EVERY, **VARIANTS[cell.variant][1] if cell.variant else {}))
            return {"policy": str(where / "policy")}
        run = where / "train"
        subprocess.run([str(Path(sys.executable).with_name("lerobot-train")), *self._lerobot_args(cell, run)],
                       check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        prune_checkpoints(run / "checkpoints")
        return {"policy": str(run / "checkpoints" / "last" / "pretrained_model")}

    def _lerobot_args(self, cell: Cell, run: Path) -> list[str]:
        """lerobot-train's arguments: resuming a killed run at its last checkpoint (LeRobot restores the step, the
        optimizer, the random state and the data order), or a fresh run in an empty ``run``."""
        last = run / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
        if last.exists():
            return [f"--config_path={last}", "--resume=true"]
        shutil.rmtree(run, ignore_errors=True)  # lerobot-train refuses a directory it is not told to resume
        demos = self.dir(Cell("demos", cell.demos)) / "data"
        return [*BASELINES[cell.policy], "--policy.push_to_hub=false", "--policy.device=cpu",
                "--dataset.repo_id=local/demos", f"--dataset.root={demos}", f"--steps={self.b.train_steps}",
                "--batch_size=8", f"--save_freq={min(LEROBOT_SAVE_EVERY, self.b.train_steps)}", "--num_workers=1",
                f"--seed={cell.seed}", "--wandb.enable=false", f"--output_dir={run}"]

    def rollout(self, cell: Cell, where: Path) -> dict:
        from vidpolicy.envs.rollout import RolloutConfig, rollout

        policy = self.result(Cell("train", cell.demos, cell.multiple, cell.policy, cell.seed))["policy"]
        report = rollout(RolloutConfig(policy=policy, tasks=self.tasks, episodes=self.b.eval_episodes,
                                       out=str(where / "eval"), seed=EVAL_SEED, max_steps=self.b.max_steps,
                                       state="agent_pos", size=SIZE, videos=False))
        keep = ("successes", "episodes", "success_steps", "returns", "expert_magnitude")
        return {task: {k: r[k] for k in keep if k in r} for task, r in report.items() if isinstance(r, dict)}
