"""Run by test_pretrain under torchrun: ``vidpolicy pretrain`` with every timestep it samples recorded per process
(argv: a directory for the records, then the command's arguments)."""

import json
import os
import sys
from pathlib import Path

from vidpolicy.pretrain.timesteps import TimestepSampler

record = Path(sys.argv.pop(1)) / f"t_rank{os.environ['RANK']}.jsonl"
_sample = TimestepSampler.sample


def _recorded(self, b, device):
    t, p = _sample(self, b, device)
    with open(record, "a") as f:
        f.write(json.dumps(t.tolist()) + "\n")
    return t, p


TimestepSampler.sample = _recorded
from vidpolicy.cli import main  # noqa: E402

raise SystemExit(main(sys.argv[1:]))
