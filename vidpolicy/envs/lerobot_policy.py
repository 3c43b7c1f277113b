"""Any LeRobot policy directory (``lerobot-train`` output: Diffusion Policy, ACT, vpdd, ...) behind the interface
`rollout` drives: ``reset()``, ``select_action(observation) -> action``. The policy's own processor pipelines
prepare each observation, as in ``lerobot-eval``; the environment's camera feeds the policy's one camera input,
through the pixel format of the video it was trained on (yuv420p: chroma at half resolution), as vidpolicy's own
policies see it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.device import resolve
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.media import yuv420_round_trip
from vidpolicy.datasets.robot import video_pix_fmt
from vidpolicy.policies.vpdd.processor_vpdd import halves_chroma


def is_lerobot_policy(path: str | Path) -> bool:
    cfg = Path(path) / "config.json"
    try:
        return cfg.exists() and "type" in json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def training_pix_fmt(path: str | Path, image_key: str) -> str | None:
    """The pixel format of ``image_key``'s video in the dataset ``lerobot-train`` trained the policy of ``path`` on
    (its train_config.json names the dataset): "" where that camera is stored as pictures, None where the dataset
    cannot be read (no such file, dataset moved)."""
    from lerobot.utils.constants import HF_LEROBOT_HOME

    try:
        dataset = json.loads((Path(path) / "train_config.json").read_text())["dataset"]
        root = Path(dataset["root"]) if dataset.get("root") else HF_LEROBOT_HOME / dataset["repo_id"]
        feature = json.loads((root / "meta" / "info.json").read_text())["features"][image_key]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return video_pix_fmt(feature) or ""


def camera_view(path: str | Path, yuv420: bool | None = None):
    """From the policy's files alone (no weights): its config, its one camera's key and side, and whether live frames
    go through yuv420p (``yuv420`` None: when its training video was yuv420p; a vidpolicy policy's own processor does
    it itself)."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.configs.types import FeatureType
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    config = PreTrainedConfig.from_pretrained(Path(path))
    images = [k for k, ft in config.input_features.items() if ft.type is FeatureType.VISUAL]
    if len(images) != 1:
        raise VidpolicyError(f"{path}: the policy reads {len(images)} cameras ({', '.join(images) or 'none'}); "
                             f"Meta-World gives one")
    image_key = images[0]
    if yuv420 is None and config.type != "vpdd":  # vidpolicy's own processor matches the recording itself
        pix_fmt = training_pix_fmt(path, image_key)
        if pix_fmt is None:
            print(f"warning: {path}: the pixel format of its training video is unknown (the dataset in "
                  f"train_config.json is gone); live frames go in raw (--yuv420 passes them through yuv420p)",
                  file=sys.stderr)
        yuv420 = halves_chroma(pix_fmt)
    return config, image_key, int(config.input_features[image_key].shape[-1]), bool(yuv420)


class LeRobotPolicy:
    def __init__(self, path: str | Path, state_dim: int, yuv420: bool | None = None, device: str = "cpu"):
        """``yuv420``: as in `camera_view`."""
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.path = Path(path)
        config, self.image_key, self.image_size, self.yuv420 = camera_view(path, yuv420)
        config.device = str(resolve(device))
        state = config.input_features.get("observation.state")
        self.state = state is not None
        if state is not None and int(state.shape[0]) != state_dim:
            raise VidpolicyError(f"{path}: observation.state has {state.shape[0]} dimension(s) in the policy but "
                                 f"{state_dim} in this view of Meta-World; use the --view it was trained in")
        self.policy = get_policy_class(config.type).from_pretrained(self.path, config=config).eval()
        self.pre, self.post = make_pre_post_processors(config, pretrained_path=str(self.path), preprocessor_overrides={
            "device_processor": {"device": config.device}})
        self.action_dim = int(config.output_features["action"].shape[0])

    def reset(self) -> None:
        self.policy.reset()
        self.pre.reset()
        self.post.reset()

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        image = observation["image"]
        image = yuv420_round_trip(image) if self.yuv420 else np.ascontiguousarray(image)
        image = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
        batch = {self.image_key: image[None], "task": [observation.get("instruction", "")]}
        if self.state:
            batch["observation.state"] = torch.as_tensor(observation["state"], dtype=torch.float32)[None]
        action = self.post(self.policy.select_action(self.pre(batch)))
        return action[0].cpu().numpy().astype(np.float32)

    def imagined_frames(self) -> np.ndarray | None:
        core = getattr(self.policy, "core", None)  # a vpdd policy keeps what it imagined
        return core.imagined_frames() if core is not None else None
