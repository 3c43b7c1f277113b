"""`ImaginationPolicy`: ``reset()`` / ``select_action(observation)`` over a fine-tuned policy directory.

Each plan: tokenize the last T frames (the first frame repeats at an episode's start), jointly denoise the future
clip's tokens and the action chunk's tokens from all-[MASK] in S steps (conditioned on the robot state too when the
policy was trained with one), decode the chunk's bins to actions and execute the first ``execute`` of them
(receding horizon). Live frames pass through the pixel format the demonstrations were recorded in (yuv420p), so
that they tokenize as the training clips did. ``guidance`` > 1 sharpens the imagined video towards the instruction
(classifier-free guidance against the pre-trained model's null instruction). The last imagined future is kept for
rollout videos.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.media import yuv420_round_trip
from vidpolicy.common.pretrained import load_model
from vidpolicy.common.text import DEFAULT_TEXT_ENCODER, TextEncoder
from vidpolicy.datasets.clips import to_uint8, to_unit_range
from vidpolicy.finetune.binning import ActionBinner
from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.finetune.state import StateNorm
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.sample import guide, sample_tokens
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.tokenizer.model import VideoTokenizer


class ImaginationPolicy:
    def __init__(self, tokenizer: VideoTokenizer, video: FutureDenoiser, action: ActionDenoiser,
                 binner: ActionBinner, config: dict, sampling_steps: int | None = None, seed: int = 0,
                 state_norm: StateNorm | None = None, execute: int | None = None, guidance: float | None = None,
                 yuv420: bool | None = None, scheduler: MaskReplaceScheduler | None = None):
        self.tokenizer, self.video, self.action, self.binner, self.config = tokenizer, video, action, binner, config
        self.state_norm = state_norm
        self.schedule = scheduler or MaskReplaceScheduler.named(config.get("schedule", "paper"),
                                                                video.config.num_timesteps,
                                                                config.get("replace_mass", 0.1))
        self.text = TextEncoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
        self.steps = int(sampling_steps or config.get("sampling_steps", 10))
        self.execute = int(execute if execute is not None else config.get("execute", 1))
        if not 1 <= self.execute <= action.config.horizon:
            raise VidpolicyError(f"execute {self.execute}: must be 1..{action.config.horizon} (the action chunk)")
        self.guidance = float(guidance if guidance is not None else config.get("guidance", 1.0))
        if self.guidance != 1.0 and (config.get("from_scratch") or config.get("train_video")):
            raise VidpolicyError(f"guidance {self.guidance}: needs the video model as pre-trained (with instruction "
                                 f"dropout); this policy's video model was trained in fine-tuning")
        # live frames seen as the demonstrations' video stored them (yuv420p: chroma at half resolution); raw renders
        # tokenize differently (half the tokens of a Meta-World clip) and a frozen pre-trained video model acts on that
        recorded = str(config.get("observation_pix_fmt") or "").startswith(("yuv420", "yuvj420"))
        self.yuv420 = bool(recorded if yuv420 is None else yuv420)
        self.seed = seed
        self.reset()

    @classmethod
    def load(cls, path: str | Path, sampling_steps: int | None = None, seed: int = 0,
             execute: int | None = None, guidance: float | None = None,
             yuv420: bool | None = None) -> "ImaginationPolicy":
        path = Path(path)
        cfg_file = path / "config.json"
        if not (path / "binning.json").exists() or not cfg_file.exists():
            raise VidpolicyError(f"{path}: not a policy directory (needs config.json and binning.json from finetune)")
        config = json.loads(cfg_file.read_text())
        config.update(json.loads((path / "policy.json").read_text()) if (path / "policy.json").exists() else {})
        norm = StateNorm.load(path / "state_norm.json") if (path / "state_norm.json").exists() else None
        video = load_model(FutureDenoiser, path, "video_model")
        scheduler = MaskReplaceScheduler.load(path, video.config.num_timesteps, config)
        tokenizer = load_model(VideoTokenizer, path, "tokenizer")
        action = load_model(ActionDenoiser, path, "action_model")
        return cls(tokenizer, video, action, ActionBinner.load(path / "binning.json"), config, sampling_steps, seed,
                   norm, execute, guidance, yuv420, scheduler)

    @property
    def image_size(self) -> int:
        return int(self.tokenizer.config.size)

    @property
    def action_dim(self) -> int:
        return int(self.action.config.action_dim)

    def reset(self) -> None:
        self._frames: list[np.ndarray] = []
        self._queue: list[np.ndarray] = []
        self._imagined_tokens = None
        self._imagined_frames = None
        self._generator = torch.Generator().manual_seed(self.seed)

    def state_input(self, states, source: str = "observation") -> torch.Tensor | None:
        """Raw robot states ``(b, state_dim)`` -> the action model's normalised input (None: the policy reads none)."""
        if self.state_norm is None:
            return None
        if states is None:
            raise VidpolicyError(f"{source}: the policy reads the robot state but the observation has no 'state'")
        states = np.asarray(states, dtype=np.float32)
        return torch.from_numpy(self.state_norm(states[None] if states.ndim == 1 else states, source))

    @torch.no_grad()
    def plan(self, history_tokens: torch.Tensor, text: torch.Tensor, steps: int | None = None,
             generator: torch.Generator | None = None,
             state: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """Jointly imagine (future video tokens ``(b, n)``, actions ``(b, H, D)`` in the robot's units);
        ``state``: normalised robot states ``(b, state_dim)`` (see `state_input`) for a policy that reads them."""
        v, a = self.video, self.action
        H, D = a.config.horizon, a.config.action_dim
        regression = a.config.output == "regression"
        last: dict[str, torch.Tensor] = {}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ctx = v.context(history_tokens, v.text_input(text))
            uncond = (v.context(history_tokens, v.text_input(None).expand(history_tokens.shape[0], -1))
                      if self.guidance != 1.0 else None)

            def predict(x, t):
                tt = torch.full((x["video"].shape[0],), t, dtype=torch.long)
                log_v, feats = v.denoise(x["video"], tt, ctx)
                if uncond is not None:  # the action model still reads the conditional features
                    log_v = guide(log_v, v.denoise(x["video"], tt, uncond)[0], self.guidance)
                if regression:  # the chunk regressed from the sharpest imagined future so far
                    last["action"] = a(None, tt, feats, text, state).float()
                    return {"video": log_v}
                return {"video": log_v, "action": a(x["action"], tt, feats, text, state)}

            streams = {"video": (v.tokens_per_clip, v.config.codebook_size)}
            if not regression:
                streams["action"] = (H * D, a.num_classes)
            top_r = {"video": self.config.get("top_r"), "action": self.config.get("action_top_r")}
            out = sample_tokens(predict, self.schedule, streams, history_tokens.shape[0], steps or self.steps,
                                top_r=top_r, generator=generator)
        if regression:
            return out["video"], self.binner.denormalize(last["action"].view(-1, H, D).numpy())
        return out["video"], self.binner.decode(out["action"].view(-1, H, D).numpy())

    def _check(self, image: np.ndarray) -> None:
        if image.shape[:2] != (self.image_size, self.image_size):
            raise VidpolicyError(f"observation image is {image.shape[0]}x{image.shape[1]} but the policy expects "
                                 f"{self.image_size}x{self.image_size}")

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        image = np.asarray(observation["image"])
        self._check(image)
        self._frames.append(yuv420_round_trip(image) if self.yuv420 else image)
        T = self.tokenizer.config.frames
        self._frames = self._frames[-T:]
        if not self._queue:
            clip = [self._frames[0]] * (T - len(self._frames)) + self._frames
            hist = self.tokenizer.encode(to_unit_range(np.stack(clip))[None]).flatten(1)
            text = self.text([observation.get("instruction", "")])
            state = self.state_input(observation.get("state"))
            video, actions = self.plan(hist, text, generator=self._generator, state=state)
            self._queue = list(actions[0][: self.execute])
            self._imagined_tokens, self._imagined_frames = video, None
        return self._queue.pop(0).astype(np.float32)

    def imagined_frames(self) -> np.ndarray | None:
        """The last imagined future clip as uint8 ``(T, S, S, 3)`` (decoded on first request)."""
        if self._imagined_tokens is None:
            return None
        if self._imagined_frames is None:
            grid = self._imagined_tokens.view(1, *self.tokenizer.latent_shape)
            self._imagined_frames = to_uint8(self.tokenizer.decode(grid)[0])
        return self._imagined_frames
