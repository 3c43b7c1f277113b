"""Run by test_reliability under torchrun: a checkpoint holds every process's part even when one process is slow
to write it, and every process resumes from the checkpoint the main process chose (here the second process sees
no checkpoint, as on a node without the shared directory). argv: the run directory."""

import os
import sys
import time
from pathlib import Path

import torch

from vidpolicy.common import trainer as trainer_module
from vidpolicy.common.trainer import LoopSettings, Trainer, make_accelerator

out = Path(sys.argv[1])
acc = make_accelerator("no", 1)
torch.manual_seed(0)
tr = Trainer(out, LoopSettings(max_steps=4, save_every=2, log_every=1), acc)
model = torch.nn.Linear(2, 1)
tr.prepare(model, torch.optim.SGD(model.parameters(), 0.1))
save_state = acc.save_state
if acc.process_index == 1:
    def slow_save(path):
        time.sleep(1.0)
        return save_state(path)

    acc.save_state = slow_save
tr.step = 2
final = tr.save_checkpoint()
assert (final / f"random_states_{acc.process_index}.pkl").exists(), f"rank {acc.process_index}'s part is missing"
if acc.process_index == 1:
    trainer_module.list_checkpoints = lambda out: []
tr.step = 0
print(f"rank {acc.process_index} resumed at {tr.resume()}", flush=True)
acc.end_training()
sys.stdout.flush()
os._exit(0)
