"""The resolved configuration of one ``vidpolicy finetune`` run (the policy it writes carries its own `VPDDConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vidpolicy.common.cli_args import opt


@dataclass
class FinetuneConfig:
    pretrained: str = opt("", "a `pretrain` run directory (its tokenizer and video model)")
    dataset: str = opt("", "a LeRobotDataset with actions (e.g. from `vidpolicy collect`)")
    out: str = opt("", "policy directory (lerobot-eval --policy.path loads it too)")
    from_scratch: bool = opt(False, "baseline: same architecture, no pre-trained video model")
    train_video: bool = opt(False, "also train the video model (on with --from-scratch)")
    detach_video_features: bool = opt(False, "the action loss does not reach a training video model", advanced=True)
    camera: str | None = opt(None, "LeRobot camera key (default: the first)")
    action_head: str = opt("auto", "tokens (paper), regression, or auto: tokens up to 8-d")
    act_on: str = opt("joint", "actions read: joint (paper), imagined (whole clip), history")
    state: bool = opt(True, "the action model also reads observation.state when present")
    horizon: int = opt(4, "actions per chunk H (paper: 4)")
    execute: int = opt(1, "actions of each chunk run before imagining again (paper: 1)")
    gap: int = opt(20, "the imagined clip ends this many steps ahead (paper: 20)")
    bins: int = opt(48, "quantile bins per action dimension (paper: 48)", advanced=True)
    bin_centers: str = opt("midpoint", "decode bins at midpoint (paper) or mean of their actions", advanced=True)
    sampling_steps: int = opt(10, "reverse-diffusion steps per imagined chunk")
    guidance: float = opt(1.0, "classifier-free guidance of the imagined video (1: off)")
    top_r: float = opt(0.88, "imagined video: sample the likeliest codes up to this mass", advanced=True)
    action_top_r: float = opt(0.0, "action bins: the same; 0 takes the likeliest bin", advanced=True)
    width: int = opt(256, "action model width (paper: 256)", advanced=True)
    depth: int = opt(6, "action model layers (paper: 6)", advanced=True)
    heads: int = opt(2, "action model heads (paper: 2)", advanced=True)
    mlp_ratio: float = opt(4.0, "action model FFN / width (paper: 4)", advanced=True)
    max_steps: int = opt(4000, "optimizer steps in total")
    batch_size: int = opt(16, "samples per process per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    lr: float = opt(3e-4, "AdamW learning rate")
    video_lr: float | None = opt(None, "learning rate of a training video model (default: --lr)", advanced=True)
    warmup_steps: int = opt(200, "linear warm-up steps, then cosine decay", advanced=True)
    max_grad_norm: float = opt(1.0, "gradient clipping norm", advanced=True)
    aux_weight: float = opt(5e-4, "auxiliary x_0 cross-entropy weight (times 2 - t/T)", advanced=True)
    video_loss_weight: float = opt(1.0, "weight of the video loss when the video model trains", advanced=True)
    mixed_precision: str = opt("bf16", "bf16 or no")
    nan_policy: str = opt("stop", "on a NaN/Inf loss: stop (keep the last checkpoint) or skip", advanced=True)
    save_every: int = opt(500, "checkpoint every N steps")
    log_every: int = opt(10, "log scalars every N steps")
    holdout_episodes: int = opt(0, "last N episodes held out for an offline action check")
    seed: int = opt(0, "random seed")

    # --preset: sizes of the action model; --config and explicit flags override them
    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": dict(width=64, depth=1, heads=2),  # tests
        "small": {},  # the defaults above: the paper's action model
        "base": dict(width=512, depth=6, heads=8),
        "large": dict(width=1024, depth=8, heads=16),
    }

    @property
    def trains_video(self) -> bool:
        """Whether the video model's weights move: always from scratch, else only with --train-video."""
        return self.from_scratch or self.train_video
