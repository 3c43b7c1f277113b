"""`VPDDPolicy`: a fine-tuned VPDD policy with LeRobot's verbs: ``reset()``, ``select_action(observation)``,
``predict_action_chunk(observation)``, ``save_pretrained(dir)`` / ``from_pretrained(dir)``.

Each plan tokenizes the last T frames (the first frame repeats at an episode's start) and jointly denoises the future
clip's tokens and the action chunk's tokens from all-[MASK] in S steps, conditioned on the instruction (and the robot
state when the policy was trained with one); the chunk's bins become actions and the first ``execute`` of them run
before the next plan (receding horizon). ``guidance`` > 1 sharpens the imagined video towards the instruction
(classifier-free guidance against the pre-trained model's null instruction). The last imagined future is kept for
rollout videos.

A policy directory: ``policy_config.json`` (`VPDDConfig`), ``tokenizer/``, ``video_model/``, ``action_model/``
(diffusers ``save_pretrained``), ``scheduler/`` (`MaskReplaceScheduler`), ``binning.json`` and ``state_norm.json``
(`VPDDProcessor`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidpolicy.common.device import bf16, resolve
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.pretrained import load_model, save_model
from vidpolicy.common.text import TextEncoder
from vidpolicy.datasets.clips import to_unit_range
from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.policies.vpdd.configuration_vpdd import VPDDConfig
from vidpolicy.policies.vpdd.processor_vpdd import VPDDProcessor
from vidpolicy.pretrain.foresight import copy_last_clip
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.sample import guide, sample_tokens
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.tokenizer.model import VideoTokenizer


class VPDDPolicy:
    def __init__(self, config: VPDDConfig, tokenizer: VideoTokenizer, video: FutureDenoiser, action: ActionDenoiser,
                 scheduler: MaskReplaceScheduler, processor: VPDDProcessor, seed: int = 0):
        a = action.config
        if (a.action_dim, a.horizon, a.output) != (config.action_dim, config.horizon, config.head):
            raise VidpolicyError(f"action model (action_dim {a.action_dim}, horizon {a.horizon}, {a.output}) does not "
                                 f"match the policy config ({config.action_dim}, {config.horizon}, "
                                 f"{config.head})")
        self.config, self.tokenizer, self.video, self.action = config, tokenizer, video, action
        self.scheduler, self.processor, self.seed = scheduler, processor, seed
        self.text = TextEncoder(config.text_encoder)
        self.reset()

    @classmethod
    def from_pretrained(cls, path: str | Path, seed: int = 0, device: str | torch.device = "cpu",
                        **overrides) -> "VPDDPolicy":
        """Load a policy directory onto ``device``; ``overrides`` (sampling_steps, execute, guidance, yuv420, ...;
        None keeps the saved value) change how it acts, not what it learned."""
        path = Path(path)
        config = VPDDConfig.load(path).with_overrides(**overrides)
        video = load_model(FutureDenoiser, path, "video_model")
        return cls(config, load_model(VideoTokenizer, path, "tokenizer"), video,
                   load_model(ActionDenoiser, path, "action_model"),
                   MaskReplaceScheduler.load(path, video.config.num_timesteps),
                   VPDDProcessor.load(path, config.image_size, config.yuv420), seed).to(device)

    @property
    def device(self) -> torch.device:
        return self.video.device

    def to(self, device: str | torch.device) -> "VPDDPolicy":
        """Move the models to ``device`` (or "auto"); the random stream restarts there from the seed."""
        for m in (self.tokenizer, self.video, self.action):
            m.to(resolve(device))
        self.reset()
        return self

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self.tokenizer, path / "tokenizer")
        save_model(self.video, path / "video_model")
        save_model(self.action, path / "action_model")
        self.scheduler.save(path)
        self.processor.save(path)
        self.config.save(path)  # last: a directory with a config is a complete policy
        return path

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    def reset(self) -> None:
        self._frames: list[np.ndarray] = []
        self._queue: list[np.ndarray] = []
        self._imagined_tokens = None
        self._imagined_frames = None
        self.plans = 0  # chunks imagined since the last reset
        self._generator = torch.Generator(self.device).manual_seed(self.seed)

    @torch.no_grad()
    def plan(self, history_tokens: torch.Tensor, text: torch.Tensor, steps: int | None = None,
             generator: torch.Generator | None = None, state: torch.Tensor | None = None,
             future: torch.Tensor | None = None, future_t: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """Imagine the future clip (video tokens ``(b, n)``) and the actions ``(b, H, D)`` (robot units): jointly, or
        the clip first when the policy acts on the whole imagined clip (``act_on``); act_on "history" imagines
        nothing (the clip is the last history clip, and ``future`` is not read). ``state``: normalised robot
        states ``(b, state_dim)`` (see `VPDDProcessor.state`) for a policy that reads them. ``future`` (tokens
        ``(b, n)``), a diagnosis: the action model reads that future instead of the imagined one, noised as it would
        see the imagined one (each step's t; the whole clip for act_on "imagined", which then imagines none and
        returns it) or to ``future_t`` at every step (0: all of it in view). Runs on the policy's device
        (``generator`` too)."""
        v, a, cfg, dev = self.video, self.action, self.config, self.device
        history_tokens, text = history_tokens.to(dev), text.to(dev)
        state, future = (None if x is None else x.to(dev) for x in (state, future))
        b, H, D, K = history_tokens.shape[0], cfg.horizon, cfg.action_dim, v.config.codebook_size
        steps, top_r = steps or cfg.sampling_steps, {"video": cfg.top_r, "action": cfg.action_top_r}
        regression = cfg.head == "regression"
        last: dict[str, torch.Tensor] = {}
        with bf16(dev):
            ctx = v.context(history_tokens, v.text_input(text))
            uncond = (v.context(history_tokens, v.text_input(None).expand(b, -1)) if cfg.guidance != 1.0 else None)

            def video(x_video, tt):  # the clip's (guided) log p and the features the action model reads
                log_v, feats = v.denoise(x_video, tt, ctx)
                if uncond is not None:  # the action model still reads the conditional features
                    log_v = guide(log_v, v.denoise(x_video, tt, uncond)[0], cfg.guidance)
                return log_v, feats

            def features_of(clip, tt):  # the features of a given clip, noised to tt
                return v.denoise(clip if not tt.any() else self.scheduler.add_noise(clip, tt, K, generator), tt,
                                 ctx)[1]

            def at(t):
                return torch.full((b,), t, dtype=torch.long, device=dev)

            whole = None
            if cfg.act_on == "imagined":  # the whole clip first (unless given); the action model reads all of it
                clip = future if future is not None else sample_tokens(
                    lambda x, t: {"video": video(x["video"], at(t))[0]}, self.scheduler,
                    {"video": (v.tokens_per_clip, K)}, b, steps, top_r, generator, dev)["video"]
                whole = features_of(clip, at(future_t or 0))
            elif cfg.act_on == "history":  # nothing imagined: the clip returned is the present, held still
                clip = copy_last_clip(history_tokens, v.tokens_per_clip)
                whole = v.denoise(torch.full_like(clip, K), at(v.config.num_timesteps), ctx)[1]

            def predict(x, t):
                tt, out = at(t), {}
                if whole is None:
                    out["video"], feats = video(x["video"], tt)
                    if future is not None:
                        feats = features_of(future, tt if future_t is None else at(future_t))
                else:
                    feats = whole
                if regression:  # the chunk regressed from the sharpest imagined future so far
                    last["action"] = a(None, tt, feats, text, state).float()
                    return out
                out["action"] = log_a = a(x["action"], tt, feats, text, state)
                if cfg.action_decode == "mean":  # each token's belief at the step it is still masked
                    masked = (x["action"] == a.num_classes)[..., None]
                    last["belief"] = torch.where(masked, log_a, last.get("belief", log_a))
                return out

            streams = {"video": (v.tokens_per_clip, K)} if whole is None else {}
            if not regression:
                streams["action"] = (H * D, a.num_classes)
            out = sample_tokens(predict, self.scheduler, streams, b, steps, top_r=top_r, generator=generator,
                                device=dev)
        clip = out["video"] if whole is None else clip
        if regression:
            return clip, self.processor.actions_from_normalized(last["action"].view(-1, H, D).cpu().numpy())
        if cfg.action_decode == "mean":
            probs = last["belief"].float().softmax(-1).view(-1, H, D, a.num_classes).cpu().numpy()
            return clip, self.processor.actions_from_probs(probs)
        return clip, self.processor.actions_from_bins(out["action"].view(-1, H, D).cpu().numpy())

    def _observe(self, frames: np.ndarray) -> None:
        self._frames.append(frames)
        self._frames = self._frames[-self.config.frames:]

    def _plan_chunk(self, instructions: list[str], state: torch.Tensor | None) -> np.ndarray:
        T = self.config.frames
        clips = np.stack([self._frames[0]] * (T - len(self._frames)) + self._frames, axis=1)  # (b, T, S, S, 3)
        hist = self.tokenizer.encode(torch.stack([to_unit_range(c) for c in clips]).to(self.device)).flatten(1)
        video, actions = self.plan(hist, self.text(list(instructions)), generator=self._generator, state=state)
        self._imagined_tokens, self._imagined_frames = video, None
        self.plans += 1
        return actions

    @torch.no_grad()
    def chunk(self, frames: np.ndarray, instructions: list[str], state: torch.Tensor | None = None) -> np.ndarray:
        """Processed inputs of ``b`` robots (see `act`) -> the next imagined chunk of each ``(b, H, D)``."""
        self._observe(frames)
        return self._plan_chunk(instructions, state)

    @torch.no_grad()
    def act(self, frames: np.ndarray, instructions: list[str], state: torch.Tensor | None = None) -> np.ndarray:
        """Processed inputs of ``b`` robots at once (frames uint8 ``(b, S, S, 3)`` as `VPDDProcessor.frame` gives
        them, normalised states as `VPDDProcessor.state` gives them) -> their next actions ``(b, D)``: the queued
        chunk's next ones, planning a new chunk when it has run out."""
        self._observe(frames)
        if not self._queue:
            self._queue = list(self._plan_chunk(instructions, state)[:, : self.config.execute].swapaxes(0, 1))
        return self._queue.pop(0).astype(np.float32)

    def _processed(self, observation: dict) -> tuple[np.ndarray, list[str], torch.Tensor | None]:
        return (self.processor.frame(observation["image"])[None], [observation.get("instruction", "")],
                self.processor.state(observation.get("state")))

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """Observe ``{"image", "instruction", "state"?}`` and imagine the next chunk: actions ``(H, D)``."""
        return self.chunk(*self._processed(observation))[0]

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        """The next action ``(D,)`` for one robot's raw observation ``{"image", "instruction", "state"?}``."""
        return self.act(*self._processed(observation))[0]

    @property
    def imagined_tokens(self) -> torch.Tensor | None:
        """The last imagined future clips' tokens ``(b, n)`` (None before the first plan)."""
        return self._imagined_tokens

    def imagined_frames(self) -> np.ndarray | None:
        """The last imagined future clip of the first robot as uint8 ``(T, S, S, 3)`` (decoded on first request)."""
        if self._imagined_tokens is None:
            return None
        if self._imagined_frames is None:
            self._imagined_frames = self.decode_tokens(self._imagined_tokens[:1])[0]
        return self._imagined_frames

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        """Imagined clips' tokens ``(k, n)`` -> uint8 frames ``(k, T, S, S, 3)``."""
        return self.tokenizer.decode_frames(tokens)
