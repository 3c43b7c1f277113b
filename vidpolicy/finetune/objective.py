"""What fine-tuning minimises, shared by ``vidpolicy finetune`` and the LeRobot plugin's ``forward``: the video
denoiser and the action model as one module, and the joint loss of one batch at one sampled timestep."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.pretrain.losses import loss_terms
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler


class JointDenoiser(nn.Module):
    """The video denoiser and the action model as one module (one DDP wrapper, one optimizer). ``act_on``: what
    the action model reads, the video model's features of the noisy future at the actions' own t ("joint", the
    paper), of the whole future ("imagined": trained on the true future, acting on the imagined one) or of the
    future all masked ("history")."""

    def __init__(self, video: FutureDenoiser, action: ActionDenoiser, train_video: bool, detach: bool = False,
                 act_on: str = "joint"):
        super().__init__()
        self.video, self.action, self.train_video, self.detach = video, action, train_video, detach
        self.act_on = act_on
        video.requires_grad_(train_video)
        # parameters the loss never reaches get no gradient (DDP refuses to reduce over unused ones)
        video.null_text.requires_grad_(False)  # fine-tuning never drops the instruction
        if action.config.output == "regression":  # learned queries stand in for the noisy action tokens
            action.token_embed.requires_grad_(False)

    def forward(self, x_v, a_t, t, hist, text, state=None, future=None, future_t=None):
        """``future`` (act_on "imagined", "history"): the clip whose features at ``future_t`` (default 0) the action
        model reads."""
        log_v = None
        with torch.set_grad_enabled(self.train_video and torch.is_grad_enabled()):
            ctx = self.video.context(hist, self.video.text_input(text))
            if future is None or self.train_video:  # the video loss needs the noisy future's prediction
                log_v, feats = self.video.denoise(x_v, t, ctx)
            if future is not None:
                feats = self.video.denoise(future, torch.zeros_like(t) if future_t is None else future_t, ctx)[1]
        return log_v, self.action(a_t, t, feats.detach() if self.detach else feats, text, state)


@dataclass
class LossWeights:
    aux_weight: float = 5e-4  # auxiliary x_0 cross-entropy, times 2 - t/T
    video_loss_weight: float = 1.0  # the video loss, when the video model trains


def joint_loss(model: nn.Module, schedule: MaskReplaceScheduler, sampler: TimestepSampler, batch, regression: bool,
               train_video: bool, weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``batch``: history and future clip tokens ``(b, n)``, action bins, normalised actions and their pad mask
    ``(b, H*D)``, normalised states ``(b, s)`` or None, instruction embeddings ``(b, e)``. ``model`` is a
    `JointDenoiser` (or its DDP wrapper)."""
    hist, fut, acts, cont, amask, state, txt = batch
    joint = model.module if hasattr(model, "module") else model
    Kv, Ka, T = joint.video.config.codebook_size, joint.action.num_classes, schedule.num_timesteps
    t, _ = sampler.sample(hist.shape[0], hist.device)
    x_v = schedule.add_noise(fut, t, Kv)
    a_t = torch.zeros_like(acts) if regression else schedule.add_noise(acts, t, Ka)
    view = {"imagined": (fut, None), "history": (torch.full_like(fut, Kv), torch.full_like(t, T))}
    future, future_t = view.get(joint.act_on, (None, None))
    log_v, log_a = model(x_v, a_t, t, hist, txt, state, future=future, future_t=future_t)
    w = 2 - t.float() / T
    if regression:
        mse = ((log_a.float() - cont) ** 2 * amask).sum(1) / amask.sum(1).clamp(min=1)
        loss, logs = mse.mean(), {"action_mse": mse.mean().detach()}
    else:
        vb, aux = loss_terms(schedule, log_a, acts, a_t, t, mask=amask)
        loss = (vb + weights.aux_weight * w * aux).mean()
        logs = {"action_vb": vb.mean().detach(), "action_ce": aux.mean().detach()}
    if train_video:
        vb_v, aux_v = loss_terms(schedule, log_v, fut, x_v, t)
        loss = loss + weights.video_loss_weight * (vb_v + weights.aux_weight * w * aux_v).mean()
        logs["video_vb"] = vb_v.mean().detach()
    if not regression:
        with torch.no_grad():
            masked = (a_t == Ka) & amask
            logs["action_acc_masked"] = ((log_a.argmax(-1) == acts) & masked).sum() / masked.sum().clamp(min=1)
    logs["loss"] = loss.detach()
    return loss, logs
