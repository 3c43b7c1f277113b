"""`VPDDConfig`: what a fine-tuned VPDD policy needs to act, besides its weights; saved as ``policy_config.json``.

Shaped like LeRobot's policy configs (``configuration_<name>.py``): one typed dataclass, strict on load (an unknown
key or a wrong type names itself), with the version of the format that wrote it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vidpolicy import __version__
from vidpolicy.common.config import load_config, to_dict
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json
from vidpolicy.common.text import DEFAULT_TEXT_ENCODER
from vidpolicy.finetune.binning import RULES as BIN_CENTERS

CONFIG_NAME = "policy_config.json"
FORMAT_VERSION = 1
ACTION_HEADS = ("auto", "tokens", "regression")
TOKEN_HEAD_MAX_DIM = 8  # auto: binned tokens up to end-effector deltas + gripper; joint-space robots regress
ACTION_DECODES = ("mode", "mean")
ACT_ON = ("joint", "imagined", "history")


@dataclass
class VPDDConfig:
    action_dim: int = 4
    state_dim: int = 0  # 0: the action model reads no robot state
    horizon: int = 4  # actions per imagined chunk
    execute: int = 1  # actions of a chunk executed before imagining again (LeRobot's n_action_steps)
    bins: int = 48  # quantile bins per action dimension
    # where a bin decodes: its "midpoint" (the paper), or the "mean" of the training actions in it (saturated
    # actions stay nearer their limit; no closed-loop gain measured)
    bin_centers: str = "midpoint"
    # tokens: binned actions denoised with the video (the paper); regression: continuous; auto: by action_dim
    action_head: str = "auto"
    sampling_steps: int = 10  # reverse-diffusion steps per plan
    guidance: float = 1.0  # classifier-free guidance of the imagined video (1 = off)
    top_r: float | None = 0.88  # imagined video: sample among the likeliest codes up to this mass
    action_top_r: float | None = 0.0  # action bins: the same; 0 takes the mode
    # tokens head: "mode" (paper) acts on the sampled bins; "mean" on the expected bin centre under the model's
    # belief when each token was unmasked (the squared-error optimum where the model is unsure)
    action_decode: str = "mode"
    # joint (paper): action tokens denoised with the video's at one t, reading its noisy future; imagined: the
    # future clip is imagined whole first and the action model reads all of it; history: it reads the features of
    # the future all masked (the history and instruction alone) and nothing is imagined
    act_on: str = "joint"
    text_encoder: str = DEFAULT_TEXT_ENCODER
    image_size: int = 96  # square frames the tokenizer reads
    frames: int = 4  # frames per clip
    gap: int = 20  # the imagined clip ends this many steps ahead
    observation_pix_fmt: str = ""  # the demonstrations' pixel format (e.g. yuv420p)
    yuv420: bool = False  # live frames pass through yuv420p chroma, as the recorded demonstrations did
    video_frozen: bool = True  # the video model is the pre-trained one (guidance needs its null instruction)
    format_version: int = FORMAT_VERSION
    vidpolicy_version: str = __version__  # the vidpolicy that wrote it

    def __post_init__(self) -> None:
        if self.action_head not in ACTION_HEADS:
            raise VidpolicyError(f"action_head {self.action_head!r}: must be one of {', '.join(ACTION_HEADS)}")
        if self.action_decode not in ACTION_DECODES:
            raise VidpolicyError(f"action_decode {self.action_decode!r}: must be one of {', '.join(ACTION_DECODES)}")
        if self.bin_centers not in BIN_CENTERS:
            raise VidpolicyError(f"bin_centers {self.bin_centers!r}: must be one of {', '.join(BIN_CENTERS)}")
        if self.act_on not in ACT_ON:
            raise VidpolicyError(f"act_on {self.act_on!r}: must be one of {', '.join(ACT_ON)}")
        if not 1 <= self.execute <= self.horizon:
            raise VidpolicyError(f"execute {self.execute}: must be 1..{self.horizon} (the action chunk)")
        if self.guidance != 1.0 and not self.video_frozen:
            raise VidpolicyError(f"guidance {self.guidance}: needs the video model as pre-trained (with instruction "
                                 f"dropout); this policy's video model was trained in fine-tuning")

    @property
    def head(self) -> str:
        """The action head this policy uses ("auto" resolved by its action_dim)."""
        return resolve_action_head(self.action_head, self.action_dim)

    def with_overrides(self, **overrides) -> "VPDDConfig":
        """A copy with the given settings changed (None: keep the saved one), checked again."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        write_json(path, to_dict(self))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "VPDDConfig":
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise VidpolicyError(f"{directory}: not a policy directory of this vidpolicy (no {CONFIG_NAME}); a policy "
                                 f"fine-tuned by an earlier version needs `vidpolicy finetune` again")
        cfg = load_config(cls, path)
        if cfg.format_version > FORMAT_VERSION:
            raise VidpolicyError(f"{path}: format_version {cfg.format_version} (vidpolicy {cfg.vidpolicy_version}), "
                                 f"but vidpolicy {__version__} reads up to {FORMAT_VERSION}; upgrade vidpolicy")
        return cfg


def resolve_action_head(head: str, action_dim: int) -> str:
    """``auto``: the paper's binned tokens for actions of up to TOKEN_HEAD_MAX_DIM dimensions (end-effector deltas
    and a gripper), regression above (joint space)."""
    if head != "auto":
        return head
    return "tokens" if action_dim <= TOKEN_HEAD_MAX_DIM else "regression"
