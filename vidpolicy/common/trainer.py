"""One training loop for every stage: Accelerator, bf16 autocast, gradient accumulation, clipping, NaN guard,
TensorBoard + JSONL metrics, progress bar with ETA, atomic checkpoints every N steps, and exact resume.

A stage supplies ``compute(batch) -> (loss, logs)`` and a batch iterator; the loop does the rest. Checkpoints are
``checkpoints/step-XXXXXXX/`` written by ``accelerator.save_state`` into a temporary directory and renamed, so a
kill -9 mid-save leaves the previous checkpoint intact. Loading uses weights-only deserialisation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.heartbeat import Heartbeat
from vidpolicy.common.io import append_jsonl, remove_stale_temps, write_json

CKPT_RE = re.compile(r"^step-(\d{7})$")


class TrainingDiverged(VidpolicyError):
    """The loss went NaN/Inf and the policy says stop."""


@dataclass
class LoopSettings:
    max_steps: int
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    save_every: int = 500
    log_every: int = 10
    keep_checkpoints: int = 2
    nan_policy: str = "stop"  # "stop" or "skip"
    max_skips: int = 20
    mixed_precision: str = "bf16"

    @classmethod
    def from_config(cls, cfg) -> "LoopSettings":
        """The loop settings a stage config carries (fields of the same name)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)})


def make_accelerator(mixed_precision: str, grad_accum: int) -> Accelerator:
    cpu = not torch.cuda.is_available()
    if not cpu:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # fp32 leftovers on tensor cores
        if mixed_precision == "bf16" and not torch.cuda.is_bf16_supported():
            mixed_precision = "fp16"  # pre-Ampere GPUs: accelerate adds the gradient scaler
    # schedules count optimizer steps of the whole job (max_steps): accelerate's default would step a prepared
    # scheduler once per process per step, finishing a cosine N times early under N processes
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum, cpu=cpu,
                       step_scheduler_with_optimizer=False)


def list_checkpoints(out: Path) -> list[Path]:
    root = Path(out) / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.iterdir() if CKPT_RE.match(p.name) and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: p.name)


class Trainer:
    def __init__(self, out: Path, settings: LoopSettings, accelerator: Accelerator):
        self.out, self.s, self.acc = Path(out), settings, accelerator
        self.step = 0
        self.skipped = 0
        self.model = self.optimizer = self.scheduler = None
        self._writer = None
        self._extra_save: list[Callable[[Path], None]] = []
        self._extra_load: list[Callable[[Path], None]] = []
        self._notes: dict[str, float] = {}

    # ---- set-up -------------------------------------------------------------------------------------------
    def prepare(self, model, optimizer, scheduler=None):
        objs = [model, optimizer] + ([scheduler] if scheduler is not None else [])
        prepared = self.acc.prepare(*objs)
        self.model, self.optimizer = prepared[0], prepared[1]
        self.scheduler = prepared[2] if scheduler is not None else None
        return prepared

    def on_checkpoint(self, save: Callable[[Path], None], load: Callable[[Path], None]) -> None:
        """Extra state (EMA weights, a timestep sampler) saved into and restored from each checkpoint dir."""
        self._extra_save.append(save)
        self._extra_load.append(load)

    def resume(self) -> int:
        """Load the newest complete checkpoint, if any; return the step to start from."""
        name = None
        if self.acc.is_main_process:  # a checkpoint torn by a kill mid-save never became step-XXXXXXX
            remove_stale_temps(self.out / "checkpoints")
            ckpts = list_checkpoints(self.out)
            name = ckpts[-1].name if ckpts else None
        if self.acc.num_processes > 1:  # every process resumes from the checkpoint the main one chose
            from accelerate.utils import broadcast_object_list

            name = broadcast_object_list([name])[0]
        if name is None:
            return 0
        ckpt = self.out / "checkpoints" / name
        self.acc.load_state(str(ckpt))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        for load in self._extra_load:
            load(ckpt)
        self.step, self.skipped = int(state["step"]), int(state.get("skipped", 0))
        self.acc.print(f"resumed from {ckpt} (step {self.step})")
        return self.step

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        root = self.out / "checkpoints"
        final = root / f"step-{self.step:07d}"
        tmp = root / f".{final.name}.tmp"  # one name on every process (save_state writes from all of them)
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        try:
            self.acc.save_state(str(tmp))
            if self.acc.is_main_process:
                for save in self._extra_save:
                    save(tmp)
                write_json(tmp / "trainer_state.json", {"step": self.step, "skipped": self.skipped,
                                                        "time": time.time()})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # e.g. disk full: earlier checkpoints stay as they were
            raise
        self.acc.wait_for_everyone()  # every process has written its part before the directory moves
        if self.acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in list_checkpoints(self.out)[: -self.s.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        return final

    # ---- logging --------------------------------------------------------------------------------------------
    def log(self, logs: dict[str, float]) -> None:
        if not self.acc.is_main_process:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "logs"))
        for k, v in logs.items():
            self._writer.add_scalar(k, v, self.step)
        append_jsonl(self.out / "logs" / "metrics.jsonl", {"step": self.step, **logs})

    def note(self, logs: dict[str, float]) -> None:
        """Scalars measured after this step (a held-out evaluation): written with this step's row of the training
        averages, which is then logged even off the ``log_every`` grid."""
        self._notes.update(logs)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---- the loop -------------------------------------------------------------------------------------------
    def _finite_everywhere(self, loss: torch.Tensor) -> bool:
        # accelerate's reduce knows mean, sum and max (an unknown "min" silently sums): reduce "bad" with max
        bad = torch.tensor([float(not torch.isfinite(loss.detach()).all())], device=self.acc.device)
        return bool(self.acc.reduce(bad, reduction="max").item() == 0)

    def fit(self, batches: Iterable, compute: Callable[[object], tuple[torch.Tensor, dict]],
            after_step: Callable[[int], None] | None = None) -> None:
        """Run optimizer steps ``self.step..max_steps``; ``batches`` yields ``grad_accum`` micro-batches per step."""
        s = self.s
        it: Iterator = iter(batches)
        bar = tqdm(total=s.max_steps, initial=self.step, desc=self.out.name, disable=not self.acc.is_main_process,
                   dynamic_ncols=True, unit="step")
        beat = Heartbeat(self.out, self.acc.process_index, self.acc.num_processes, self._job_id()).start()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        count = 0
        t0 = time.time()
        while self.step < s.max_steps:
            bad = False
            for _ in range(s.grad_accum):
                batch = next(it)
                with self.acc.accumulate(self.model):
                    with self.acc.autocast():
                        loss, logs = compute(batch)
                    if not self._finite_everywhere(loss):
                        bad = True
                        self.optimizer.zero_grad(set_to_none=True)
                        continue
                    self.acc.backward(loss)
                    if self.acc.sync_gradients and not bad:
                        logs["grad_norm"] = float(self.acc.clip_grad_norm_(self.model.parameters(), s.max_grad_norm))
                    if not bad:
                        self.optimizer.step()
                        if self.scheduler is not None and self.acc.sync_gradients:
                            self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
                count += 1
            if bad:
                self._handle_nonfinite()
                continue
            self.step += 1
            if after_step is not None:
                after_step(self.step)
            bar.update(1)
            if self.step % s.log_every == 0 or self.step == s.max_steps or self._notes:
                logs = {k: v / counts[k] for k, v in sums.items()} | self._notes
                self._notes = {}
                if self.scheduler is not None:
                    logs["lr"] = self.scheduler.get_last_lr()[0]
                logs["step_time_s"] = (time.time() - t0) / max(count / s.grad_accum, 1)
                self.log(logs)
                bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}")
                sums, counts, count, t0 = {}, {}, 0, time.time()
            if self.step % s.save_every == 0 or self.step == s.max_steps:
                self.save_checkpoint()
        beat.stop()
        bar.close()
        self.close()

    def _job_id(self) -> str:
        """One identifier for every process of this launch (the main process draws it)."""
        job = uuid.uuid4().hex[:12] if self.acc.is_main_process else None
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            job = broadcast_object_list([job])[0]
        return job

    def _handle_nonfinite(self) -> None:
        last = list_checkpoints(self.out)
        where = f"last good checkpoint: {last[-1]}" if last else "no checkpoint saved yet"
        if self.s.nan_policy == "skip" and self.skipped < self.s.max_skips:
            self.skipped += 1
            self.acc.print(f"warning: non-finite loss at step {self.step + 1}, batch skipped ({self.skipped} so far)")
            return
        raise TrainingDiverged(
            f"{self.out}: non-finite loss at step {self.step + 1} ({self.skipped} skipped before); {where}"
        )


def warmup_cosine(optimizer, warmup: int, total: int):
    from diffusers.optimization import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=max(total, 1))

