"""Run by test_reliability under torchrun: a NaN loss on rank 1 only must stop both ranks at the same step."""

import os
import sys

import torch

from vidpolicy.common.trainer import LoopSettings, Trainer, TrainingDiverged, make_accelerator

acc = make_accelerator("no", 1)
out = sys.argv[1]
model = torch.nn.Linear(2, 1)
tr = Trainer(__import__("pathlib").Path(out), LoopSettings(max_steps=6, save_every=100, log_every=1), acc)
tr.prepare(model, torch.optim.SGD(model.parameters(), 0.1))


def batches():
    step = 0
    while True:
        step += 1
        bad = step == 3 and acc.process_index == 1
        yield torch.full((4, 2), float("nan")) if bad else torch.ones(4, 2)


try:
    tr.fit(batches(), lambda b: (tr.model(b).mean(), {"loss": 0.0}))
    print(f"rank {acc.process_index} finished", flush=True)
except TrainingDiverged as e:
    print(f"rank {acc.process_index} stopped: {e}", flush=True)
acc.end_training()
sys.stdout.flush()
os._exit(0)
