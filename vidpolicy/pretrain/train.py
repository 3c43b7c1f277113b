"""``vidpolicy pretrain``: fit the `FutureDenoiser` on token pairs with the mask-and-replace bound."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.model_size import size_line
from vidpolicy.common.plots import plot_losses
from vidpolicy.common.pretrained import copy_model, load_model, model_dir, save_model
from vidpolicy.common.runlock import releases_run_locks
from vidpolicy.common.sampling import step_batches
from vidpolicy.common.text import TextEncoder
from vidpolicy.common.trainer import LoopSettings, Trainer, make_accelerator, warmup_cosine
from vidpolicy.pretrain.config import PretrainConfig
from vidpolicy.pretrain.data import TokenPairs
from vidpolicy.pretrain.losses import loss_terms
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.tokenizer.model import VideoTokenizer

T_BUCKETS = 4


def diffusion_loss(model, K: int, schedule: MaskReplaceScheduler, sampler: TimestepSampler, hist, fut, text, cfg):
    """The VQ-Diffusion objective for one batch of K-class tokens; returns (loss, logs)."""
    b, T = fut.shape[0], schedule.num_timesteps
    t, pt = sampler.sample(b, fut.device)
    x_t = schedule.add_noise(fut, t, K)
    drop = torch.rand(b, device=fut.device) < cfg.cond_drop
    log_x0 = model(x_t, t, hist, text, drop)
    vb, aux = loss_terms(schedule, log_x0, fut, x_t, t)
    sampler.update(t, vb)
    weight = 1.0 / (T * pt)
    loss = (weight * (vb + cfg.aux_weight * (2 - t.float() / T) * aux)).mean()
    logs = {"loss": loss.detach(), "vb": vb.mean().detach(), "aux_ce": aux.mean().detach()}
    with torch.no_grad():
        masked = x_t == K
        correct = (log_x0.argmax(-1) == fut) & masked
        bucket = ((t - 1) * T_BUCKETS // T).clamp(max=T_BUCKETS - 1)
        for q in range(T_BUCKETS):
            sel = bucket == q
            if sel.any() and masked[sel].any():
                logs[f"acc_masked/t{q * 100 // T_BUCKETS}-{(q + 1) * 100 // T_BUCKETS}%"] = (
                    correct[sel].sum() / masked[sel].sum()).detach()
    return loss, logs


@releases_run_locks
def pretrain(cfg: PretrainConfig, overwrite: bool = False) -> dict:
    out = Path(cfg.out)
    tokenizer = load_model(VideoTokenizer, cfg.tokenizer)
    text = TextEncoder(cfg.text_encoder)
    data = TokenPairs(cfg.tokens, cfg.gap, tokenizer.config.codebook_size, tokenizer.latent_shape, text,
                      cfg.token_weights, tokenizer_name=f"tokenizer {cfg.tokenizer}")
    schedule = MaskReplaceScheduler.named(cfg.schedule, cfg.num_timesteps, cfg.replace_mass)
    acc = make_accelerator(cfg.mixed_precision, cfg.grad_accum)
    if acc.is_main_process:
        prepare_run_dir(out, cfg, overwrite=overwrite, processes=acc.num_processes)
        copy_model(model_dir(cfg.tokenizer, "model"), out / "tokenizer")
    acc.wait_for_everyone()
    acc.print(f"{len(data)} (history, future) pairs from {len(cfg.tokens)} token dir(s), "
              f"{len(data.instructions)} instruction(s)")
    torch.manual_seed(cfg.seed)
    model = FutureDenoiser(
        codebook_size=tokenizer.config.codebook_size, latent_shape=tuple(tokenizer.latent_shape), width=cfg.width,
        depth=cfg.depth, encoder_depth=cfg.encoder_depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio,
        text_dim=int(data.text_table.shape[1]), num_timesteps=cfg.num_timesteps)
    acc.print(size_line("denoiser", [model], model.flops_per_sample(),
                        cfg.batch_size * cfg.grad_accum * acc.num_processes))
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if cfg.compile:  # in place: the module and its state_dict keys stay as they are
        model.compile()
    if acc.process_index:  # each process its own timesteps, masks and dropout (rank 0 keeps a lone process's)
        torch.manual_seed(cfg.seed + acc.process_index)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.warmup_steps, cfg.max_steps)
    settings = LoopSettings.from_config(cfg)
    trainer = Trainer(out, settings, acc)
    trainer.prepare(model, optimizer, scheduler)
    sampler = TimestepSampler(cfg.num_timesteps, cfg.importance_sampling)
    ema = EMAModel(acc.unwrap_model(trainer.model).parameters(), decay=cfg.ema_decay)

    def save_extra(ckpt: Path) -> None:
        save_file(dict(sampler.state_dict()), str(ckpt / "timestep_sampler.safetensors"))
        torch.save(ema.state_dict(), ckpt / "ema.pt")

    def load_extra(ckpt: Path) -> None:
        sampler.load_state_dict(load_file(str(ckpt / "timestep_sampler.safetensors")))
        ema.load_state_dict(torch.load(ckpt / "ema.pt", weights_only=True, map_location=acc.device))

    trainer.on_checkpoint(save_extra, load_extra)
    start = trainer.resume()

    def after_step(step: int) -> None:
        if step >= cfg.ema_start and step % cfg.ema_every == 0:
            ema.step(acc.unwrap_model(trainer.model).parameters())

    def compute(batch):
        hist, fut, txt = (x.to(acc.device) for x in batch)
        return diffusion_loss(trainer.model, model.config.codebook_size, schedule, sampler, hist, fut, txt, cfg)

    batches = step_batches(data.batch, cfg.seed, start, cfg.grad_accum, acc.process_index, cfg.batch_size,
                           world=acc.num_processes)
    trainer.fit(batches, compute, after_step)
    if acc.is_main_process:
        final = acc.unwrap_model(trainer.model)
        use_ema = ema.optimization_step > 0
        if use_ema:
            ema.copy_to(final.parameters())
        save_model(final, out / "model")
        schedule.save(out)
        plot_losses(out, ("loss", "vb", "aux_ce"))
        acc.print(f"saved {out / 'model'} ({'EMA' if use_ema else 'raw'} weights)")
    acc.wait_for_everyone()
    acc.end_training()
    return {"steps": trainer.step}
