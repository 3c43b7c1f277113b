"""Run by test_pretrain under torchrun: two processes, different data, parameters must stay identical, and a
learning-rate schedule advances once per optimizer step (not once per process)."""

import os
import sys

import torch
from types import SimpleNamespace

from vidpolicy.common.trainer import make_accelerator, warmup_cosine
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.pretrain.train import diffusion_loss

acc = make_accelerator("no", 1)
torch.manual_seed(0)
model = FutureDenoiser(codebook_size=16, latent_shape=(1, 4, 4), width=32, depth=1, encoder_depth=1, heads=2,
                       text_dim=8, num_timesteps=20)
opt = torch.optim.AdamW(model.parameters(), 1e-2)
model, opt, lr_sched = acc.prepare(model, opt, warmup_cosine(opt, 0, 6))
torch.manual_seed(100 + acc.process_index)  # different batches and noise per process
sched, sampler = MaskReplaceScheduler(20), TimestepSampler(20, False)
cfg = SimpleNamespace(cond_drop=0.1, aux_weight=5e-4)
for _ in range(3):
    hist, fut = torch.randint(0, 16, (4, 16)), torch.randint(0, 16, (4, 16))
    loss, _ = diffusion_loss(model, 16, sched, sampler, hist, fut, torch.randn(4, 8), cfg)
    acc.backward(loss)
    opt.step()
    lr_sched.step()
    opt.zero_grad()
flat = torch.cat([p.detach().flatten() for p in acc.unwrap_model(model).parameters()])
gathered = acc.gather(flat[None])
assert acc.num_processes == 2, acc.num_processes
assert torch.equal(gathered[0], gathered[1]), "parameters diverged across processes"
# 3 of 6 cosine steps: half the base rate (stepping once per process would have reached 0)
assert abs(lr_sched.get_last_lr()[0] - 0.5e-2) < 1e-9, lr_sched.get_last_lr()
if acc.is_main_process:
    print("SYNC OK")
acc.end_training()  # destroys the process group
# gloo on a CPU can abort or hang during interpreter finalization (pytorch/pytorch#190489); the CLI leaves the same way
sys.stdout.flush()
os._exit(0)
