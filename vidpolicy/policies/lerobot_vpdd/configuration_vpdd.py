"""`VPDDConfig` for LeRobot: vidpolicy's policy settings (the same fields, one definition) plus what LeRobot's
trainer needs (where the pre-trained video model is, optimiser and schedule presets, which frames to load)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from lerobot.configs import NormalizationMode, PreTrainedConfig
from lerobot.configs.types import FeatureType
from lerobot.optim import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.utils.constants import OBS_STATE

from vidpolicy.policies.vpdd import VPDDConfig as CoreConfig


@PreTrainedConfig.register_subclass("vpdd")
@dataclass
class VPDDConfig(PreTrainedConfig, CoreConfig):
    pretrained_model: str | None = None  # a `vidpolicy pretrain` run: its tokenizer, video model and scheduler
    tokenizer: str | None = None  # no pretrained model: a `tokenizer train` run, the video model from scratch
    train_video: bool = False  # also train the video model (always on from scratch)
    use_state: bool = True  # the action model also reads observation.state when the dataset has one
    width: int = 256  # action model width
    depth: int = 6  # action model layers
    heads: int = 2  # action model attention heads
    mlp_ratio: float = 4.0  # action model FFN / width
    aux_weight: float = 5e-4  # auxiliary x_0 cross-entropy weight (times 2 - t/T)
    video_loss_weight: float = 1.0  # weight of the video loss when the video model trains
    optimizer_lr: float = 3e-4
    optimizer_weight_decay: float = 0.0
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 200
    scheduler_decay_steps: int = 4000
    save_predicted_video: bool = False  # lerobot-eval writes the imagined futures beside each rollout video
    # images and the state are prepared by the vpdd_observation processor step; actions are binned by the policy
    normalization_mapping: dict[str, NormalizationMode] = field(default_factory=lambda: {
        "VISUAL": NormalizationMode.IDENTITY, "STATE": NormalizationMode.IDENTITY,
        "ACTION": NormalizationMode.IDENTITY})

    def __post_init__(self) -> None:
        PreTrainedConfig.__post_init__(self)
        CoreConfig.__post_init__(self)

    def core(self) -> CoreConfig:
        """The same settings as vidpolicy's own `VPDDConfig` (what ``policy_config.json`` holds)."""
        return CoreConfig(**{f.name: getattr(self, f.name) for f in fields(CoreConfig)})

    @property
    def image_key(self) -> str:
        keys = [k for k, ft in self.input_features.items() if ft.type is FeatureType.VISUAL]
        return keys[0]

    @property
    def reads_state(self) -> bool:
        return self.use_state and OBS_STATE in self.input_features

    @property
    def observation_delta_indices(self) -> list[int]:
        """The history clip ending now and the future clip ending ``gap`` steps ahead (clamped into the episode)."""
        now = list(range(1 - self.frames, 1))
        return now + [self.gap + i for i in now]

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay,
                           grad_clip_norm=self.optimizer_grad_clip_norm)

    def get_scheduler_preset(self) -> CosineDecayWithWarmupSchedulerConfig:
        return CosineDecayWithWarmupSchedulerConfig(num_warmup_steps=self.scheduler_warmup_steps,
                                                    num_decay_steps=self.scheduler_decay_steps,
                                                    peak_lr=self.optimizer_lr, decay_lr=0.0)

    def validate_features(self) -> None:
        if not any(ft.type is FeatureType.VISUAL for ft in self.input_features.values()):
            raise ValueError("vpdd reads a camera: the inputs have no image feature (observation.image*)")
