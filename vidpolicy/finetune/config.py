"""The resolved configuration of one ``vidpolicy finetune`` run (the policy it writes carries its own `VPDDConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from vidpolicy.common.cli_args import opt


@dataclass
class FinetuneConfig:
    pretrained: str = opt("", "a `pretrain` run directory (its tokenizer and video model)")
    dataset: str = opt("", "a LeRobotDataset with actions (e.g. from `vidpolicy collect`)")
    out: str = opt("", "policy directory (vidpolicy's files and LeRobot's: lerobot-eval --policy.path loads it)")
    from_scratch: bool = opt(False, "same architecture, video model randomly initialised and trained on robot video")
    train_video: bool = opt(False, "also train the video model (always on with --from-scratch)")
    detach_video_features: bool = opt(False, "with a trained video model: the action loss does not reach it (it "
                                      "learns from its own video loss only)")
    camera: str | None = opt(None, "LeRobot camera key (default: the first)")
    action_head: str = opt("tokens", "tokens (paper: binned actions denoised with the video) or regression "
                           "(continuous, normalised actions regressed from the imagined future)")
    state: bool = opt(True, "the action model also reads the robot state (observation.state, normalised) when the "
                      "dataset has one; --no-state: imagined video only, as the paper")
    horizon: int = opt(4, "actions per chunk H (paper: 4)")
    execute: int = opt(1, "actions of each imagined chunk executed before imagining again (paper: 1)")
    gap: int = opt(20, "the imagined future clip ends this many steps ahead (paper: 20)")
    bins: int = opt(48, "quantile bins per action dimension (paper: 48)")
    sampling_steps: int = opt(10, "reverse-diffusion steps per imagined chunk at rollout")
    guidance: float = opt(1.0, "classifier-free guidance scale of the imagined video at rollout (1 = off; needs the "
                          "pre-trained video model, frozen: it learned the null instruction)")
    top_r: float = opt(0.88, "imagined video: sample among the most likely codes up to this mass (paper: 0.88)")
    action_top_r: float = opt(0.0, "action bins: the same truncation; 0 takes the most likely bin (the mode)")
    width: int = opt(256, "action model width (paper: 256)")
    depth: int = opt(6, "action model layers (paper: 6)")
    heads: int = opt(2, "action model heads (paper: 2)")
    mlp_ratio: float = opt(4.0, "action model FFN / width (paper: 1024 / 256)")
    max_steps: int = opt(4000, "optimizer steps in total")
    batch_size: int = opt(16, "samples per process per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    lr: float = opt(3e-4, "AdamW learning rate")
    video_lr: float | None = opt(None, "learning rate of the video model when it trains (--train-video, "
                                 "--from-scratch; default: --lr)")
    warmup_steps: int = opt(200, "linear warm-up steps, then cosine decay")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    aux_weight: float = opt(5e-4, "auxiliary x_0 cross-entropy weight (times 2 - t/T)")
    video_loss_weight: float = opt(1.0, "weight of the video loss when the video model trains")
    mixed_precision: str = opt("bf16", "bf16 or no")
    nan_policy: str = opt("stop", "on a NaN/Inf loss: stop (keep the last good checkpoint) or skip the batch")
    save_every: int = opt(500, "checkpoint every N steps")
    log_every: int = opt(10, "log scalars every N steps")
    holdout_episodes: int = opt(0, "last N episodes held out for the offline action-prediction check")
    seed: int = opt(0, "random seed")
