"""LeRobot's processor pipelines for vpdd: the observation as the policy's tokenizer saw its demonstrations.

`VPDDObservationStep` brings every camera image of any size to the policy's square clip size (shorter side resized,
centre square, through the demonstrations' pixel format) and normalises ``observation.state`` with the statistics
saved beside the policy — vidpolicy's own `VPDDProcessor`, not a second implementation. Actions need no
post-processing: the policy returns them in the robot's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lerobot.configs.types import PipelineFeatureType, PolicyFeature
from lerobot.processor import (AddBatchDimensionProcessorStep, DeviceProcessorStep, ObservationProcessorStep,
                               PolicyAction, PolicyProcessorPipeline, ProcessorStepRegistry,
                               RenameObservationsProcessorStep)
from lerobot.processor.factory import make_policy_processor_pipelines
from lerobot.utils.constants import OBS_IMAGE, OBS_STATE

from vidpolicy.policies.lerobot_vpdd.configuration_vpdd import VPDDConfig
from vidpolicy.finetune.state import StateNorm
from vidpolicy.policies.vpdd import VPDDProcessor


@ProcessorStepRegistry.register("vpdd_observation")
@dataclass
class VPDDObservationStep(ObservationProcessorStep):
    image_size: int = 96
    yuv420: bool = False
    read_state: bool = False
    state_mean: torch.Tensor | None = None
    state_std: torch.Tensor | None = None

    def _processor(self) -> VPDDProcessor:
        norm = StateNorm(self.state_mean.numpy(), self.state_std.numpy()) if self.state_mean is not None else None
        return VPDDProcessor(None, norm, self.image_size, self.yuv420)

    def _frames(self, images: torch.Tensor, proc: VPDDProcessor) -> torch.Tensor:
        """float ``(..., 3, h, w)`` in [0, 1] -> float ``(..., 3, S, S)`` in [0, 1] (exact uint8 values)."""
        lead = images.shape[:-3]
        hwc = (images.reshape(-1, *images.shape[-3:]).permute(0, 2, 3, 1).float().cpu() * 255).round()
        frames = np.stack([proc.frame(f) for f in hwc.to(torch.uint8).numpy()])
        out = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)
        return out.reshape(*lead, *out.shape[1:]).to(images.device)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        proc = self._processor()
        for key in [k for k in observation if k.startswith(OBS_IMAGE) and not k.endswith("_is_pad")]:
            observation[key] = self._frames(observation[key], proc)
        if self.read_state:
            state = observation[OBS_STATE]
            observation[OBS_STATE] = proc.state(state.float().cpu().numpy(), OBS_STATE).to(state.device)
        return observation

    def get_config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "yuv420": self.yuv420, "read_state": self.read_state}

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.state_mean is None:
            return {}
        return {"state_mean": self.state_mean, "state_std": self.state_std}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state_mean, self.state_std = state.get("state_mean"), state.get("state_std")

    def transform_features(self, features: dict[PipelineFeatureType, dict[str, PolicyFeature]]):
        obs = features.get(PipelineFeatureType.OBSERVATION, {})
        for key, ft in obs.items():
            if key.startswith(OBS_IMAGE):
                obs[key] = PolicyFeature(type=ft.type, shape=(3, self.image_size, self.image_size))
        return features


def state_norm_from_stats(stats: dict | None) -> StateNorm | None:
    """The robot state's normalisation from LeRobot's dataset statistics (vidpolicy's floor on the std)."""
    if not stats or OBS_STATE not in stats:
        return None
    mean, std = (np.asarray(stats[OBS_STATE][k], dtype=np.float64).reshape(-1) for k in ("mean", "std"))
    return StateNorm(mean, np.maximum(std, 1e-3))


def make_vpdd_pre_post_processors(config: VPDDConfig, dataset_stats: dict | None = None,
                                  state_norm: StateNorm | None = None) -> tuple[
        PolicyProcessorPipeline[dict[str, Any], dict[str, Any]], PolicyProcessorPipeline[PolicyAction, PolicyAction]]:
    """Rename -> batch -> `VPDDObservationStep` -> device, and device(cpu) for the actions. ``state_norm`` (or
    the dataset's statistics) normalises the state when the policy reads it."""
    norm = state_norm or (state_norm_from_stats(dataset_stats) if config.reads_state else None)
    step = VPDDObservationStep(config.image_size, config.yuv420, read_state=norm is not None,
                               state_mean=torch.from_numpy(norm.mean) if norm else None,
                               state_std=torch.from_numpy(norm.std) if norm else None)
    return make_policy_processor_pipelines(
        input_steps=[RenameObservationsProcessorStep(rename_map={}), AddBatchDimensionProcessorStep(), step,
                     DeviceProcessorStep(device=config.device)],
        output_steps=[DeviceProcessorStep(device="cpu")])
