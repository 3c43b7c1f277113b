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
    """The video denoiser and the action model as one module (one DDP wrapper, one optimizer)."""

    def __init__(self, video: FutureDenoiser, action: ActionDenoiser, train_video: bool, detach: bool = False):
        super().__init__()
        self.video, self.action, self.train_video, self.detach = video, action, train_video, detach
        video.requires_grad_(train_video)
        # parameters the loss never reaches get no gradient (DDP refuses to reduce over unused ones)
        video.null_text.requires_grad_(False)  # fine-tuning never drops the instruction
        if action.config.output == "regression":  # learned queries stand in for the noisy action tokens
            action.token_embed.requires_grad_(False)

    def forward(self, x_v, a_t, t, hist, text, state=None):
        with torch.set_grad_enabled(self.train_video and torch.is_grad_enabled()):
            log_v, feats = self.video.denoise(x_v, t, self.video.context(hist, self.video.text_input(text)))
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
    log_v, log_a = model(x_v, a_t, t, hist, txt, state)
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
