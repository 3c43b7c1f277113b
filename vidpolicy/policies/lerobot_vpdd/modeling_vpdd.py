"""`VPDDPolicy` for LeRobot: vidpolicy's policy (tokenizer, video denoiser, action model, scheduler) behind
LeRobot's `PreTrainedPolicy`. Acting is vidpolicy's `VPDDPolicy.act`; the training loss is vidpolicy's
`joint_loss`, the one ``vidpolicy finetune`` minimises.

A new policy (``lerobot-train --policy.type=vpdd``) starts from a ``vidpolicy pretrain`` run
(``--policy.pretrained_model``: its tokenizer and video model, frozen unless ``--policy.train_video=true``) or, from
scratch, from a tokenizer run (``--policy.tokenizer``). A saved policy directory holds vidpolicy's files
(``policy_config.json``, ``tokenizer/``, ``video_model/``, ``action_model/``, ``scheduler/``, ``binning.json``,
``state_norm.json``) and LeRobot's beside them (``config.json``, ``policy_preprocessor.json``,
``policy_postprocessor.json``): ``vidpolicy finetune`` and ``lerobot-train`` write the same layout.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_STATE

from vidpolicy.policies.lerobot_vpdd.configuration_vpdd import VPDDConfig
from vidpolicy.policies.lerobot_vpdd.processor_vpdd import make_vpdd_pre_post_processors, state_norm_from_stats
from vidpolicy.common.pretrained import load_model
from vidpolicy.common.text import TextEncoder
from vidpolicy.datasets.robot import RobotEpisodes
from vidpolicy.finetune.binning import ActionBinner
from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.finetune.objective import JointDenoiser, LossWeights, joint_loss
from vidpolicy.policies.vpdd import VPDDConfig as CoreConfig
from vidpolicy.policies.vpdd import VPDDPolicy as CorePolicy
from vidpolicy.policies.vpdd import VPDDProcessor
from vidpolicy.policies.vpdd.processor_vpdd import halves_chroma
from vidpolicy.pretrain.config import PretrainConfig, load_run_config
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.tokenizer.model import VideoTokenizer

# settings that change how a trained policy acts, not what it learned: LeRobot's config (or its CLI) may change them
ACTING = ("sampling_steps", "execute", "guidance", "top_r", "action_top_r", "action_decode", "yuv420")
PROVENANCE = ("format_version", "vidpolicy_version")


class VPDDPolicy(PreTrainedPolicy):
    config_class = VPDDConfig
    name = "vpdd"

    def __init__(self, config: VPDDConfig, dataset_stats=None, dataset_meta=None, core: CorePolicy | None = None,
                 **kwargs):
        super().__init__(config)
        config.validate_features()
        self.core = core if core is not None else _new_core(config, dataset_stats, dataset_meta)
        check_features(config, {k: list(ft.shape) for k, ft in config.output_features.items()}, "the environment")
        if dataset_meta is not None:
            check_features(config, {k: list(v["shape"]) for k, v in dataset_meta.features.items()},
                           str(dataset_meta.root), camera=True)
        self.tokenizer = self.core.tokenizer.eval().requires_grad_(False)
        self.joint = JointDenoiser(self.core.video, self.core.action, train_video=not config.video_frozen,
                                   act_on=config.act_on)
        self.sampler = TimestepSampler(self.core.video.config.num_timesteps, importance=False)
        self.last_predicted_latents = None

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, config: VPDDConfig | None = None,
                        **kwargs) -> "VPDDPolicy":
        """A policy directory written by ``vidpolicy finetune`` or ``lerobot-train``; ``config`` (LeRobot's, with
        its CLI overrides) may change how it acts (`ACTING`), and must agree with the weights on everything else."""
        path = Path(pretrained_name_or_path)
        if config is None:
            config = PreTrainedConfig.from_pretrained(path)
        saved = CoreConfig.load(path)
        for f in fields(CoreConfig):
            if f.name not in ACTING + PROVENANCE and getattr(config, f.name) != getattr(saved, f.name):
                raise ValueError(f"{path}: config.json has {f.name}={getattr(config, f.name)!r} but the saved policy "
                                 f"(policy_config.json) has {getattr(saved, f.name)!r}")
        core = CorePolicy.from_pretrained(path, **{k: getattr(config, k) for k in ACTING})
        policy = cls(config, core=core)
        policy.to(config.device)
        return policy.eval()

    def _save_pretrained(self, save_directory: Path, state_dict=None) -> None:
        self.config._save_pretrained(save_directory)
        self.core.save_pretrained(save_directory)

    def train(self, mode: bool = True) -> "VPDDPolicy":
        super().train(mode)
        self.tokenizer.eval()  # the tokenizer never trains here (its codebook would move)
        return self

    def get_optim_params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.joint.parameters() if p.requires_grad]

    def reset(self) -> None:
        self.core.reset()
        self.last_predicted_latents = None

    def _inputs(self, batch: dict) -> tuple[np.ndarray, list[str], torch.Tensor | None]:
        images = batch[self.config.image_key]
        frames = (images.float().cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        state = batch[OBS_STATE].float().cpu() if self.config.state_dim else None
        return frames, _tasks(batch, len(frames)), state

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> torch.Tensor:
        plans = self.core.plans
        actions = self.core.act(*self._inputs(batch))
        if self.config.save_predicted_video and self.core.plans > plans:
            self.last_predicted_latents = self.core.imagined_tokens[:, None, None]  # (b, 1, 1, n): one clip
        return torch.from_numpy(actions).to(batch[self.config.image_key].device)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> torch.Tensor:
        return torch.from_numpy(self.core.chunk(*self._inputs(batch))).to(batch[self.config.image_key].device)

    def decode_predicted_latents(self, latents: torch.Tensor) -> np.ndarray:
        """The first robot's imagined clips, in the order imagined, as uint8 frames ``(k * T, S, S, 3)``."""
        clips = self.core.decode_tokens(latents[0, 0].long())
        return clips.reshape(-1, *clips.shape[2:])

    def forward(self, batch: dict, reduction: str = "mean") -> tuple[torch.Tensor, dict]:
        """The joint loss of `vidpolicy finetune` on a LeRobot batch: the history and future clips (frames at
        `observation_delta_indices`), the action chunk and its padding, the state now and the task."""
        cfg, F = self.config, self.config.frames
        clips = batch[cfg.image_key].float().permute(0, 2, 1, 3, 4) - 0.5  # (b, 3, 2F, S, S), as to_unit_range
        with torch.no_grad():
            hist = self.tokenizer.encode(clips[:, :, :F]).flatten(1)
            fut = self.tokenizer.encode(clips[:, :, F:]).flatten(1)
        raw = batch[ACTION].float().cpu().numpy()
        b = len(raw)
        acts, cont = self.core.processor.binner.targets(raw)
        pad = batch.get(f"{ACTION}_is_pad")
        keep = ~pad.cpu() if pad is not None else torch.ones(raw.shape[:2], dtype=torch.bool)
        amask = keep[:, :, None].expand(raw.shape).reshape(b, -1)
        state = batch[OBS_STATE][:, F - 1].float() if cfg.state_dim else None
        device = hist.device
        parts = [hist, fut, acts.to(device), cont.to(device), amask.to(device),
                 state.to(device) if state is not None else None, self.core.text(_tasks(batch, b)).to(device)]
        loss, logs = joint_loss(self.joint, self.core.scheduler, self.sampler, parts, cfg.head == "regression",
                                not cfg.video_frozen, LossWeights(cfg.aux_weight, cfg.video_loss_weight))
        return loss, {k: float(v) for k, v in logs.items()}


def _tasks(batch: dict, b: int) -> list[str]:
    """Each sample's instruction (LeRobot's ``task``; empty when the batch has none)."""
    tasks = batch.get("task")
    return list(tasks) if tasks is not None else [""] * b


def check_features(config: VPDDConfig, shapes: dict[str, list[int]], where: str, camera: bool = False) -> None:
    """What a policy meets (a dataset's or an environment's feature shapes) must be what it was trained on."""
    wanted = [(ACTION, config.action_dim)] + ([(OBS_STATE, config.state_dim)] if config.state_dim else [])
    for key, dim in wanted:
        if key in shapes and shapes[key][0] != dim:
            raise ValueError(f"{where}: {key} has {shapes[key][0]} dimension(s) but the policy was trained with {dim}")
    if camera and config.image_key not in shapes:
        raise ValueError(f"{where}: no camera {config.image_key} (the policy's); it has "
                         f"{', '.join(k for k in shapes if k.startswith('observation.image')) or 'none'}")


def _new_core(config: VPDDConfig, dataset_stats, dataset_meta) -> CorePolicy:
    """A new policy for ``lerobot-train``: the pre-trained (or a fresh) video model, an action model sized by the
    dataset, action bins fitted on its actions. Sets the config's data-derived fields."""
    if dataset_meta is None:
        raise ValueError("vpdd: a new policy needs a dataset (lerobot-train); to evaluate, pass --policy.path=DIR")
    if config.pretrained_model:
        pre = Path(config.pretrained_model)
        tokenizer = load_model(VideoTokenizer, pre, "tokenizer")
        video = load_model(FutureDenoiser, pre, "model")
        scheduler = MaskReplaceScheduler.load(pre, video.config.num_timesteps)
        config.text_encoder = load_run_config(pre).text_encoder
    elif config.tokenizer:
        tokenizer = load_model(VideoTokenizer, config.tokenizer)
        p = PretrainConfig()  # the pre-training defaults size the video model
        video = FutureDenoiser(codebook_size=tokenizer.config.codebook_size,
                               latent_shape=tuple(tokenizer.latent_shape), width=p.width, depth=p.depth,
                               encoder_depth=p.encoder_depth, heads=p.heads, mlp_ratio=p.mlp_ratio,
                               text_dim=TextEncoder(config.text_encoder).dim, num_timesteps=p.num_timesteps)
        scheduler = MaskReplaceScheduler.named(p.schedule, p.num_timesteps)
        config.train_video = True
    else:
        raise ValueError("vpdd: give --policy.pretrained_model=PRETRAIN_RUN (a `vidpolicy pretrain` run), or "
                         "--policy.tokenizer=TOKENIZER_RUN to train the video model from scratch")
    reads = (video.config.codebook_size, tuple(video.config.latent_shape))
    writes = (tokenizer.config.codebook_size, tuple(tokenizer.latent_shape))
    if reads != writes:
        raise ValueError(f"{config.pretrained_model or config.tokenizer}: the video model reads {reads[0]} codes in a "
                         f"{reads[1]} grid but the tokenizer writes {writes[0]} in {writes[1]}")
    eps = RobotEpisodes(dataset_meta.root, size=tokenizer.config.size, camera=config.image_key)
    binner = ActionBinner.fit(np.concatenate([eps.actions(i) for i in range(len(eps))]), bins=config.bins,
                              centers=config.bin_centers)
    norm = state_norm_from_stats(dataset_stats) if config.reads_state else None
    config.action_dim, config.state_dim = eps.action_dim, norm.dim if norm else 0
    config.action_head = config.head  # "auto" decided by the data's action_dim and saved decided
    config.image_size, config.frames = tokenizer.config.size, tokenizer.config.frames
    config.observation_pix_fmt = eps.pix_fmt or ""
    config.yuv420 = halves_chroma(config.observation_pix_fmt)
    config.video_frozen = not config.train_video
    CoreConfig.__post_init__(config)  # the data-derived settings checked again
    action = ActionDenoiser(action_dim=config.action_dim, horizon=config.horizon,
                            bins_per_dim=tuple(binner.bins_per_dim), width=config.width, depth=config.depth,
                            heads=config.heads, mlp_ratio=config.mlp_ratio, video_width=video.config.width,
                            text_dim=video.config.text_dim, output=config.head, state_dim=config.state_dim)
    processor = VPDDProcessor(binner, norm, config.image_size, config.yuv420)
    return CorePolicy(config.core(), tokenizer, video.train(), action, scheduler, processor)


def save_lerobot_files(core: CorePolicy, dataset_features: dict, camera: str, directory: str | Path,
                       **settings) -> None:
    """Write LeRobot's files beside a policy that ``vidpolicy finetune`` saved (``config.json`` and the processor
    pipelines), so ``lerobot-eval --policy.path`` loads it as it is. ``dataset_features``: the demos' LeRobot
    features; ``camera``: the one the policy reads; ``settings``: further `VPDDConfig` fields (provenance)."""
    from lerobot.configs.types import FeatureType
    from lerobot.utils.feature_utils import dataset_to_policy_features

    features = dataset_to_policy_features(dataset_features)
    config = VPDDConfig(**{f.name: getattr(core.config, f.name) for f in fields(CoreConfig)}, device="cpu",
                        push_to_hub=False, use_state=core.config.state_dim > 0, **settings)
    config.output_features = {k: ft for k, ft in features.items() if ft.type is FeatureType.ACTION}
    config.input_features = {k: ft for k, ft in features.items() if k not in config.output_features
                             and (ft.type is not FeatureType.VISUAL or k == camera)}
    config._save_pretrained(Path(directory))
    for pipeline in make_vpdd_pre_post_processors(config, state_norm=core.processor.state_norm):
        pipeline.save_pretrained(directory)


__all__ = ["VPDDPolicy", "make_vpdd_pre_post_processors", "save_lerobot_files"]
