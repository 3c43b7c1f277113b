"""``vidpolicy finetune``: train the action model on robot demonstrations, conditioned on imagined futures.

Video tokens and action tokens share one timestep of the mask-and-replace process; the (frozen, by default)
video denoiser's features of the noisy future feed the action model. ``--from-scratch`` trains the same
architecture with a randomly initialised video model (then trained on the robot video too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json
from vidpolicy.common.model_size import size_line
from vidpolicy.common.plots import plot_losses
from vidpolicy.common.pretrained import load_model, model_dir
from vidpolicy.common.runlock import releases_run_locks
from vidpolicy.common.sampling import step_batches
from vidpolicy.common.text import TextEncoder
from vidpolicy.common.trainer import LoopSettings, Trainer, make_accelerator, warmup_cosine
from vidpolicy.datasets.robot import RobotEpisodes
from vidpolicy.finetune.binning import ActionBinner
from vidpolicy.finetune.config import FinetuneConfig
from vidpolicy.finetune.data import RobotTokenSamples, tokenize_episodes
from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.finetune.objective import JointDenoiser, LossWeights, joint_loss
from vidpolicy.finetune.state import StateNorm
from vidpolicy.policies.lerobot_vpdd.modeling_vpdd import save_lerobot_files
from vidpolicy.policies.vpdd import VPDDConfig, VPDDPolicy, VPDDProcessor
from vidpolicy.policies.vpdd.configuration_vpdd import CONFIG_NAME, resolve_action_head
from vidpolicy.policies.vpdd.processor_vpdd import halves_chroma
from vidpolicy.pretrain.config import PretrainConfig, load_run_config
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.tokenizer.model import VideoTokenizer


def policy_config(cfg: FinetuneConfig, pre_cfg: PretrainConfig, eps: RobotEpisodes,
                  tokenizer: VideoTokenizer) -> VPDDConfig:
    """What the fine-tuned policy needs to act, from this run's settings, the pre-training run and the data."""
    return VPDDConfig(
        action_dim=eps.action_dim,
        state_dim=int(eps.meta.features[eps.state_key]["shape"][0]) if cfg.state and eps.state_key else 0,
        horizon=cfg.horizon, execute=cfg.execute, bins=cfg.bins, bin_centers=cfg.bin_centers,
        action_head=resolve_action_head(cfg.action_head, eps.action_dim), act_on=cfg.act_on,
        sampling_steps=cfg.sampling_steps, guidance=cfg.guidance, top_r=cfg.top_r, action_top_r=cfg.action_top_r,
        text_encoder=pre_cfg.text_encoder, image_size=tokenizer.config.size,
        frames=tokenizer.config.frames, gap=cfg.gap, observation_pix_fmt=eps.pix_fmt or "",
        yuv420=halves_chroma(eps.pix_fmt),
        video_frozen=not cfg.trains_video)


RUN_CONFIG = "finetune_config.json"  # config.json is LeRobot's, in a policy directory


@releases_run_locks
def finetune(cfg: FinetuneConfig, overwrite: bool = False) -> dict:
    out = Path(cfg.out)
    pre = Path(cfg.pretrained)
    pre_cfg = load_run_config(pre)
    tokenizer = load_model(VideoTokenizer, pre, "tokenizer")
    video = load_model(FutureDenoiser, pre, "model")
    eps = RobotEpisodes(cfg.dataset, size=tokenizer.config.size, camera=cfg.camera)
    if (out / CONFIG_NAME).exists() and not overwrite:
        old = VPDDConfig.load(out)
        for key, now in (("action_dim", eps.action_dim), ("image_size", tokenizer.config.size)):
            if getattr(old, key) != now:
                raise VidpolicyError(f"{out}: holds a policy with {key} {getattr(old, key)}, but {cfg.dataset} with "
                                     f"{cfg.pretrained} gives {key} {now}; pass --overwrite or another --out")
    pol_cfg = policy_config(cfg, pre_cfg, eps, tokenizer)  # a bad setting fails here, before anything is written
    acc = make_accelerator(cfg.mixed_precision, cfg.grad_accum)
    if acc.is_main_process:
        prepare_run_dir(out, cfg, overwrite=overwrite, name=RUN_CONFIG, processes=acc.num_processes)
    acc.wait_for_everyone()
    n_train = len(eps) - cfg.holdout_episodes
    if n_train < 1:
        raise VidpolicyError(f"{cfg.dataset}: {len(eps)} episode(s), --holdout-episodes {cfg.holdout_episodes} "
                             f"leaves none to train on")
    train_eps, held_eps = list(range(n_train)), list(range(n_train, len(eps)))
    binner = ActionBinner.fit(np.concatenate([eps.actions(i) for i in train_eps]), bins=cfg.bins,
                              centers=cfg.bin_centers)
    state_norm = (StateNorm.fit(np.concatenate([eps.states(i) for i in train_eps]))
                  if cfg.state and eps.state_key else None)
    tokens = tokenize_episodes(eps, model_dir(pre, "tokenizer"), out / "robot_tokens")
    text = TextEncoder(pre_cfg.text_encoder)
    instructions = sorted({e.task for e in eps.episodes})
    text_table = text(instructions)
    data = RobotTokenSamples(eps, tokens, binner, cfg.gap, cfg.horizon, text_table, train_eps, state_norm)
    torch.manual_seed(cfg.seed)
    train_video = cfg.trains_video
    if cfg.from_scratch:
        video = FutureDenoiser.from_config(video.config)
    action = ActionDenoiser(action_dim=eps.action_dim, horizon=cfg.horizon, bins_per_dim=tuple(binner.bins_per_dim),
                            width=cfg.width, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio,
                            video_width=video.config.width, text_dim=video.config.text_dim,
                            output=pol_cfg.head, state_dim=state_norm.dim if state_norm else 0)
    model = JointDenoiser(video.train(), action, train_video, detach=cfg.detach_video_features,
                          act_on=pol_cfg.act_on)
    passes = 2 if train_video and pol_cfg.act_on != "joint" else 1  # the noisy future, then the one acted on
    flops = [video.flops_per_sample(train_video)] * passes + [action.flops_per_sample(video.tokens_per_clip)]
    acc.print(size_line("policy", [video, action], None if None in flops else sum(flops),
                        cfg.batch_size * cfg.grad_accum * acc.num_processes))
    schedule = MaskReplaceScheduler.load(pre, video.config.num_timesteps)
    groups = [{"params": list(action.parameters()), "lr": cfg.lr}]
    if train_video:  # its own learning rate: a pre-trained video model may want a smaller step (--video-lr)
        groups.append({"params": list(video.parameters()), "lr": cfg.lr if cfg.video_lr is None else cfg.video_lr})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)
    settings = LoopSettings.from_config(cfg)
    trainer = Trainer(out, settings, acc)
    trainer.prepare(model, optimizer, warmup_cosine(optimizer, cfg.warmup_steps, cfg.max_steps))
    sampler = TimestepSampler(video.config.num_timesteps, importance=False)
    start = trainer.resume()
    regression = pol_cfg.head == "regression"
    weights = LossWeights(cfg.aux_weight, cfg.video_loss_weight)

    def compute(batch):
        batch = [x.to(acc.device) for x in batch]
        if state_norm is None:
            batch[5] = None
        return joint_loss(trainer.model, schedule, sampler, batch, regression, train_video, weights)

    batches = step_batches(data.batch, cfg.seed, start, cfg.grad_accum, acc.process_index, cfg.batch_size,
                           world=acc.num_processes)
    trainer.fit(batches, compute)
    result = {"steps": trainer.step}
    if acc.is_main_process:
        joint = acc.unwrap_model(trainer.model)
        policy = VPDDPolicy(pol_cfg, tokenizer, joint.video, joint.action, schedule,
                            VPDDProcessor(binner, state_norm, pol_cfg.image_size, pol_cfg.yuv420))
        policy.save_pretrained(out)
        # LeRobot's files beside ours: lerobot-eval --policy.path=OUT loads the same directory
        save_lerobot_files(policy, eps.meta.features, eps.camera, out, pretrained_model=str(pre), width=cfg.width,
                           depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio)
        plot_losses(out, ("loss", "action_mse") if regression else ("loss", "action_vb", "action_acc_masked"))
        if held_eps:
            from vidpolicy.finetune.offline import offline_eval

            result["offline"] = offline_eval(out, eps, tokens, held_eps)
            write_json(out / "eval.json", result["offline"])
        acc.print(f"policy saved in {out}")
    acc.wait_for_everyone()
    acc.end_training()
    return result
