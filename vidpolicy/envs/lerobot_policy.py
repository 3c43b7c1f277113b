"""Any LeRobot policy directory (``lerobot-train`` output: Diffusion Policy, ACT, vpdd, ...) behind the interface
`rollout` drives: ``reset()``, ``select_action(observation) -> action``. The policy's own processor pipelines
prepare each observation, as in ``lerobot-eval``; the environment's camera feeds the policy's one camera input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError


def is_lerobot_policy(path: str | Path) -> bool:
    cfg = Path(path) / "config.json"
    try:
        return cfg.exists() and "type" in json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


class LeRobotPolicy:
    def __init__(self, path: str | Path, state_dim: int):
        from lerobot.configs import PreTrainedConfig
        from lerobot.configs.types import FeatureType
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        from lerobot.utils.import_utils import register_third_party_plugins

        register_third_party_plugins()
        self.path = Path(path)
        config = PreTrainedConfig.from_pretrained(self.path)
        config.device = "cpu"
        images = [k for k, ft in config.input_features.items() if ft.type is FeatureType.VISUAL]
        if len(images) != 1:
            raise VidpolicyError(f"{path}: the policy reads {len(images)} cameras ({', '.join(images) or 'none'}); "
                                 f"Meta-World gives one")
        self.image_key, self.image_size = images[0], int(config.input_features[images[0]].shape[-1])
        state = config.input_features.get("observation.state")
        self.state = state is not None
        if state is not None and int(state.shape[0]) != state_dim:
            raise VidpolicyError(f"{path}: observation.state has {state.shape[0]} dimension(s) in the policy but "
                                 f"{state_dim} in this view of Meta-World; use the --view it was trained in")
        self.policy = get_policy_class(config.type).from_pretrained(self.path, config=config).eval()
        self.pre, self.post = make_pre_post_processors(config, pretrained_path=str(self.path), preprocessor_overrides={
            "device_processor": {"device": "cpu"}})
        self.action_dim = int(config.output_features["action"].shape[0])

    def reset(self) -> None:
        self.policy.reset()
        self.pre.reset()
        self.post.reset()

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        image = torch.from_numpy(np.ascontiguousarray(observation["image"])).permute(2, 0, 1).float().div(255)
        batch = {self.image_key: image[None], "task": [observation.get("instruction", "")]}
        if self.state:
            batch["observation.state"] = torch.as_tensor(observation["state"], dtype=torch.float32)[None]
        action = self.post(self.policy.select_action(self.pre(batch)))
        return action[0].cpu().numpy().astype(np.float32)

    def imagined_frames(self) -> np.ndarray | None:
        core = getattr(self.policy, "core", None)  # a vpdd policy keeps what it imagined
        return core.imagined_frames() if core is not None else None
