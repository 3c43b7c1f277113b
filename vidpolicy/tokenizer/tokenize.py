"""``vidpolicy tokenize``: a video corpus (or a LeRobotDataset's camera) -> token shards + ``index.json``.

Inputs are split into shards of ``files_per_shard`` files (or episodes) in sorted order; under ``accelerate
launch`` process r takes the shards k with k % world == r. A shard is written to a temporary name and renamed, so
a rerun skips complete shards and redoes only the rest; the main process then merges every shard's clip list into
``index.json`` and ``manifest.csv``. The layout does not depend on the number of processes.

One set of decode workers runs ahead of the encoder through all of a process's shards, opening each file once
for its layout and all its clips; the main process encodes chunks as they arrive and writes each shard in input
order, so the encoder keeps close to the decoder's own rate.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.device import bf16
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import remove_stale_temps
from vidpolicy.common.pretrained import load_model, model_dir
from vidpolicy.common.runlock import releases_run_locks
from vidpolicy.common.threads import torch_threads
from vidpolicy.common.versions import stamp
from vidpolicy.common.workers import worker_init
from vidpolicy.datasets.clips import ClipSpec, clip_starts, layout, to_unit_range
from vidpolicy.datasets.manifest import ManifestRow, summarize, write_manifest
from vidpolicy.datasets.token_index import write_clip_index
from vidpolicy.datasets.tokens import TokenShardWriter, load_shard_json, write_index
from vidpolicy.datasets.video import VideoError, VideoSource
from vidpolicy.tokenizer.config import TokenizeConfig
from vidpolicy.tokenizer.model import VideoTokenizer
from vidpolicy.tokenizer.units import Unit, default_manifest, list_units

MAX_CLIPS_PER_ITEM = 64


def weights_sha(tokenizer: str | Path) -> str:
    where = model_dir(tokenizer, "model")
    h = hashlib.sha256()
    for f in sorted(where.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class _Piece:
    """What a decode worker sends: up to 64 clips of unit ``ui`` from clip ``c0`` on; the first piece of a unit
    carries its manifest row and frame layout; ``clips`` is None when the unit is skipped or fails mid-way."""

    ui: int
    c0: int = 0
    clips: np.ndarray | None = None
    last: bool = True
    row: ManifestRow | None = None
    layout: np.ndarray | None = None
    error: str = ""


class _DecodedUnits(IterableDataset):
    """Decodes units (index, Unit) in order, each opened once for its layout and all its clips (a reader opened
    again per chunk seeks back to a keyframe). Worker w of n takes the units at w, w + n, ..."""

    def __init__(self, units: list[tuple[int, Unit]], spec: ClipSpec):
        self.units, self.spec = units, spec

    def __iter__(self) -> Iterator[_Piece]:
        info = get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        for ui, unit in self.units[w::n]:
            yield from self._decode(ui, unit)

    def _decode(self, ui: int, u: Unit) -> Iterator[_Piece]:
        spec = self.spec
        try:
            src = VideoSource(u.path, spec.size)
        except VideoError as e:
            yield _Piece(ui, row=ManifestRow(u.source, "skipped", str(e)))
            return
        row, idx = layout(src, spec, u.source, u.first_frame, u.num_frames)
        if row.status != "ok":
            yield _Piece(ui, row=row)
            return
        starts = clip_starts(len(idx), spec)
        for c0 in range(0, len(starts), MAX_CLIPS_PER_ITEM):
            chunk = starts[c0 : c0 + MAX_CLIPS_PER_ITEM]
            head = dict(row=row, layout=idx) if c0 == 0 else {}
            needed = sorted({int(idx[f]) for s in chunk for f in spec.positions(s)})
            try:
                frames = src.read(needed)
            except VideoError as e:
                yield _Piece(ui, c0, error=str(e), **head)
                return
            pos = {k: i for i, k in enumerate(needed)}
            clips = np.stack([frames[[pos[int(idx[f])] for f in spec.positions(s)]] for s in chunk])
            yield _Piece(ui, c0, clips, c0 + MAX_CLIPS_PER_ITEM >= len(starts), **head)


def _shard_units(k: int, files_per_shard: int, n_units: int) -> range:
    """Indices of the units (files or episodes) in shard ``k``."""
    return range(k * files_per_shard, min((k + 1) * files_per_shard, n_units))


def _as_is(piece: _Piece) -> _Piece:
    return piece  # DataLoader's default would turn the arrays into tensors


def _encode(model: VideoTokenizer, clips: np.ndarray, cfg: TokenizeConfig) -> np.ndarray:
    tokens, device = [], model.device
    for b in range(0, len(clips), cfg.batch_size):
        batch = torch.stack([to_unit_range(c) for c in clips[b : b + cfg.batch_size]]).to(device)
        with bf16(device, enabled=cfg.precision == "bf16"):
            tokens.append(model.encode(batch).cpu().numpy())
    return np.concatenate(tokens)


class _ShardAssembler:
    """Collects encoded units as they arrive (in any order) and writes them to their shards in input order; a
    shard is closed (renamed into place) once its last unit is in, and ``on_shard`` is called."""

    def __init__(self, out: Path, units: list[Unit], order: list[int], files_per_shard: int, spec: ClipSpec,
                 cfg: TokenizeConfig, on_shard: Callable[[], Any]):
        self.out, self.units, self.order, self.per, self.spec, self.cfg = out, units, order, files_per_shard, spec, cfg
        self.on_shard = on_shard
        self.rows: dict[int, ManifestRow] = {}
        self.layouts: dict[int, np.ndarray] = {}
        self.tokens: dict[int, list[tuple[int, np.ndarray]]] = {}
        self.finished: set[int] = set()
        self.next = 0  # position in ``order`` of the next unit to write
        self.writer: TokenShardWriter | None = None

    def add(self, p: _Piece, tokens: np.ndarray | None) -> None:
        if p.row is not None:
            self.rows[p.ui], self.layouts[p.ui] = p.row, p.layout
        if p.error:  # a decode failure mid-way: the whole file is skipped, none of its clips written
            self.rows[p.ui].status, self.rows[p.ui].reason = "skipped", p.error
            self.tokens.pop(p.ui, None)
        elif tokens is not None:
            self.tokens.setdefault(p.ui, []).append((p.c0, tokens))
        if p.last or p.error:
            self.finished.add(p.ui)
        while self.next < len(self.order) and self.order[self.next] in self.finished:
            self._write(self.order[self.next])
            self.next += 1

    def _write(self, ui: int) -> None:
        k = ui // self.per
        if self.writer is None:
            self.writer = TokenShardWriter(self.out, k)
        row, unit = self.rows.pop(ui), self.units[ui]
        self.writer.extra.setdefault("manifest", []).append(vars(row))
        idx = self.layouts.pop(ui)
        chunks = self.tokens.pop(ui, [])
        starts = clip_starts(len(idx), self.spec) if chunks else []
        for c0, tokens in chunks:
            for j, tok in enumerate(tokens):
                s = starts[c0 + j]
                self.writer.add(tok[None], {"source": unit.source, "clip": c0 + j, "start": s,
                                            "start_frame": int(idx[max(s, 0)]) - unit.first_frame,
                                            "fps": self.cfg.fps or row.fps, "instruction": unit.instruction})
        if ui == _shard_units(k, self.per, len(self.units))[-1]:  # the shard's last unit
            self.writer.close()
            self.writer = None
            self.on_shard()


def _tokenize_shards(model: VideoTokenizer, units: list[Unit], shards: list[int], spec: ClipSpec,
                     cfg: TokenizeConfig, on_shard: Callable[[], Any]) -> None:
    """Decode the units of ``shards`` in one pass of one set of workers (no idle decoder at shard boundaries),
    encode each chunk as it arrives and write the shards in order."""
    per = cfg.files_per_shard
    order = [ui for k in shards for ui in _shard_units(k, per, len(units))]
    decoded = _DecodedUnits([(ui, units[ui]) for ui in order], spec)
    loader = DataLoader(decoded, batch_size=None, num_workers=min(cfg.num_workers, len(order)), collate_fn=_as_is,
                        worker_init_fn=worker_init)
    shards_out = _ShardAssembler(Path(cfg.out), units, order, per, spec, cfg, on_shard)
    for piece in loader:
        shards_out.add(piece, _encode(model, piece.clips, cfg) if piece.clips is not None else None)


def encoder_threads(num_workers: int) -> int | None:
    """On a CPU, the encoder gets the cores its decode workers leave it: an OpenMP pool as wide as the machine spins
    against busy decoders. None (leave torch's count) on a GPU or where
    OMP_NUM_THREADS is set: the user's setting wins."""
    if torch.cuda.is_available() or "OMP_NUM_THREADS" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores - num_workers)


@releases_run_locks
def tokenize(cfg: TokenizeConfig, overwrite: bool = False, report: bool = True) -> dict:
    """``report=False`` (a step inside another command): no summary line, and a bar only while shards are
    tokenized."""
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if bool(cfg.videos) == bool(cfg.dataset):
        raise VidpolicyError("tokenize: give exactly one of --videos DIR or --dataset DIR")
    if cfg.precision not in ("bf16", "fp32"):
        raise VidpolicyError(f"--precision: {cfg.precision!r} is not bf16 or fp32")
    if cfg.every_step and cfg.clip_stride not in (None, 1):
        raise VidpolicyError(f"--every-step: a clip at every frame needs stride 1, not --clip-stride {cfg.clip_stride}")
    owns_group = not torch.distributed.is_initialized()  # inside a training job: the job's group stays
    state = PartialState(cpu=not torch.cuda.is_available())
    model = load_model(VideoTokenizer, cfg.tokenizer).to(state.device)  # each process its own GPU, if any
    cfg.tokenizer_sha = weights_sha(cfg.tokenizer)
    default_manifest(cfg)
    out = Path(cfg.out)
    units = list_units(cfg)
    if state.is_main_process:
        prepare_run_dir(out, cfg, overwrite=overwrite)
        remove_stale_temps(out / "shards")  # a killed run's half-written shard files (rewritten below)
    n_shards = (len(units) + cfg.files_per_shard - 1) // cfg.files_per_shard
    if cfg.verify and state.is_main_process:
        discard_damaged(out, n_shards)
    state.wait_for_everyone()
    spec = ClipSpec(model.config.frames, model.config.size, cfg.fps, 1 if cfg.every_step else cfg.clip_stride,
                    pad_start=cfg.every_step)
    mine = [k for k in range(n_shards) if k % state.num_processes == state.process_index]
    todo = [k for k in mine if not TokenShardWriter(out, k).complete()]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=f"tokenize [{state.process_index}]", unit="shard",
               disable=not state.is_main_process or not (report or todo))

    with torch_threads(encoder_threads(cfg.num_workers)):
        if todo:
            _tokenize_shards(model, units, todo, spec, cfg, on_shard=bar.update)
    bar.close()
    state.wait_for_everyone()
    result = {}
    if state.is_main_process:
        result = merge_index(out, n_shards, model, spec)
        if report:
            print(result["summary"])
    state.wait_for_everyone()
    if owns_group:
        state.destroy_process_group()  # a live gloo group aborts the interpreter at exit
    return result


def discard_damaged(out: Path, n_shards: int) -> None:
    """The full check: every finished shard whose tokens do not match their checksum is deleted (and so
    re-tokenized by this run), naming it."""
    from tqdm.auto import tqdm

    for k in tqdm(range(n_shards), desc="verify", unit="shard"):
        w = TokenShardWriter(out, k)
        problem = w.problem() if w.complete() else None
        if problem:
            print(f"{w.npy}: {problem}; re-tokenizing it", file=sys.stderr)
            w.json.unlink()
            w.npy.unlink(missing_ok=True)


def merge_index(out: Path, n_shards: int, model: VideoTokenizer, spec: ClipSpec) -> dict:
    """``index/`` (every clip, by column) and ``index.json`` from the finished shards, read one at a time."""
    rows: list[ManifestRow] = []

    def shards():
        for k in range(n_shards):
            w = TokenShardWriter(out, k)
            if not w.complete():
                raise VidpolicyError(f"{w.json}: shard missing; rerun the same command to finish it")
            data = load_shard_json(w.json)
            rows.extend(ManifestRow(**r) for r in data["manifest"])
            yield data, data["clips"]

    files = write_clip_index(out, shards())
    write_manifest(out / "manifest.csv", rows)
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise VidpolicyError(f"{out}: no readable video among {len(rows)} input(s) ({summarize(rows)}); "
                             "see manifest.csv")
    index = {
        **stamp("tokens"),
        "tokenizer": {"codebook_size": model.config.codebook_size, "latent_shape": list(model.latent_shape),
                      "frames": spec.frames, "size": spec.size},
        "clip_stride": spec.step,
        "pad_start": spec.pad_start,
        "num_clips": int(np.load(out / "index" / "shard.npy", mmap_mode="r").shape[0]),
        "num_shards": n_shards,
        "summary": summarize(rows),
        "index_files": files,
    }
    write_index(out / "index.json", index)
    return index
