"""``vidpolicy tokenize``: a video corpus (or a LeRobotDataset's camera) -> token shards + ``index.json``.

Inputs are split into shards of ``files_per_shard`` files (or episodes) in sorted order; under ``accelerate
launch`` process r takes the shards k with k % world == r. A shard is written to a temporary name and renamed, so
a rerun skips complete shards and redoes only the rest; the main process then merges every shard's clip list into
``index.json`` and ``manifest.csv``. The layout does not depend on the number of processes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidpolicy.common.config import prepare_run_dir
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import remove_stale_temps, write_json
from vidpolicy.common.pretrained import load_model, model_dir
from vidpolicy.common.threads import torch_threads
from vidpolicy.datasets.clips import ClipSpec, clip_starts, probe, to_unit_range
from vidpolicy.datasets.manifest import ManifestRow, caption_for, read_captions, summarize, write_manifest
from vidpolicy.datasets.tokens import TokenShardWriter, load_shard_json
from vidpolicy.datasets.video import VideoError, VideoSource, find_videos
from vidpolicy.tokenizer.config import TokenizeConfig
from vidpolicy.tokenizer.model import VideoTokenizer

MAX_CLIPS_PER_ITEM = 64


@dataclass
class Unit:
    """One input: a video file, or one episode inside a LeRobot video file."""

    source: str
    path: Path
    instruction: str = ""
    first_frame: int = 0
    num_frames: int | None = None  # None: to the end of the file


def weights_sha(tokenizer: str | Path) -> str:
    where = model_dir(tokenizer, "model")
    h = hashlib.sha256()
    for f in sorted(where.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def list_units(cfg: TokenizeConfig) -> list[Unit]:
    if cfg.dataset:
        from vidpolicy.datasets.robot import RobotEpisodes

        eps = RobotEpisodes(cfg.dataset, camera=cfg.camera)
        return [Unit(f"{Path(cfg.dataset).name}/episode-{e.index:06d}", e.video, e.task, e.first_frame, e.length)
                for e in eps.episodes]
    files = find_videos(cfg.videos)
    if not files:
        raise VidpolicyError(f"{cfg.videos}: no video files found (looked for .mp4 .webm .mkv .avi .mov .gif)")
    captions = read_captions(cfg.manifest) if cfg.manifest else {}
    root = Path(cfg.videos) if Path(cfg.videos).is_dir() else None
    return [Unit(str(f), f, caption_for(captions, f, root)) for f in files]


class _ShardClips(Dataset):
    """Items are (unit, chunk of <=64 clips) of one shard, decoded in DataLoader workers."""

    def __init__(self, units: list[Unit], spec: ClipSpec):
        self.units, self.spec = units, spec
        self.rows: list[ManifestRow] = []
        self.layout: list[np.ndarray] = []  # native frame indices of the sampled stream, per unit
        self.items: list[tuple[int, int, int]] = []
        for ui, u in enumerate(units):
            row, idx = probe(u.path, spec, name=u.source, first_frame=u.first_frame, num_frames=u.num_frames)
            self.rows.append(row)
            self.layout.append(idx)
            if row.status == "ok":
                starts = clip_starts(len(idx), spec)
                for c in range(0, len(starts), MAX_CLIPS_PER_ITEM):
                    self.items.append((ui, c, min(len(starts), c + MAX_CLIPS_PER_ITEM)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        ui, c0, c1 = self.items[k]
        idx = self.layout[ui]
        starts = clip_starts(len(idx), self.spec)[c0:c1]
        try:
            src = VideoSource(self.units[ui].path, self.spec.size)
            needed = sorted({int(idx[s + f]) for s in starts for f in range(self.spec.frames)})
            frames = src.read(needed)
        except VideoError as e:
            return ui, c0, None, str(e)
        pos = {n: i for i, n in enumerate(needed)}
        clips = np.stack([frames[[pos[int(idx[s + f])] for f in range(self.spec.frames)]] for s in starts])
        return ui, c0, clips, ""


def _open_shard(units: list[Unit], spec: ClipSpec, num_workers: int) -> tuple[_ShardClips, Iterator]:
    """Probe a shard's inputs and start decoding it: the loader's workers begin on its first chunks at once."""
    shard = _ShardClips(units, spec)
    return shard, iter(DataLoader(shard, batch_size=None, num_workers=num_workers if len(shard) > 1 else 0))


def _encode_shard(model: VideoTokenizer, shard: _ShardClips, items: Iterator, writer: TokenShardWriter,
                  cfg: TokenizeConfig, open_next: Callable[[], Any] | None = None) -> Any:
    """Encode a shard's decoded chunks into ``writer``; return what ``open_next`` returned (None without one).
    ``open_next`` is called once the decoder has the shard's last
    chunk in hand, so the next shard's probing and first chunks overlap the encoding of this one's last (the decoder
    idled at every shard start: 32 files in 8 shards, 2 CPU cores, 203 -> 225 clips/s)."""
    spec = shard.spec
    fps_of = {i: (cfg.fps or r.fps) for i, r in enumerate(shard.rows)}
    opened = None
    for item, (ui, c0, clips, error) in enumerate(items):
        if open_next is not None and item >= len(shard) - 2:
            opened, open_next = open_next(), None
        row = shard.rows[ui]
        if clips is None:
            row.status, row.reason = "skipped", error
            continue
        clips = clips.numpy() if isinstance(clips, torch.Tensor) else clips
        tokens = []
        for b in range(0, len(clips), cfg.batch_size):
            batch = torch.stack([to_unit_range(c) for c in clips[b : b + cfg.batch_size]])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                tokens.append(model.encode(batch).numpy())
        tokens = np.concatenate(tokens)
        idx = shard.layout[ui]
        starts = clip_starts(len(idx), spec)
        unit = shard.units[ui]
        for j, tok in enumerate(tokens):
            s = starts[c0 + j]
            writer.add(tok[None], {"source": unit.source, "clip": c0 + j, "start": s,
                                   "start_frame": int(idx[s]) - unit.first_frame, "fps": fps_of[ui],
                                   "instruction": unit.instruction})
    if open_next is not None:  # a shard with fewer than two chunks
        opened = open_next()
    writer.extra["manifest"] = [vars(r) for r in shard.rows]
    return opened


def encoder_threads(num_workers: int) -> int | None:
    """On a CPU, the encoder gets the cores its decode workers leave it: an OpenMP pool as wide as the machine spins
    against busy decoders (2 cores, 1 worker: 147 -> 169 clips/s). None (leave torch's count) on a GPU or where
    OMP_NUM_THREADS is set: the user's setting wins."""
    if torch.cuda.is_available() or "OMP_NUM_THREADS" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores - num_workers)


def tokenize(cfg: TokenizeConfig, overwrite: bool = False) -> dict:
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if bool(cfg.videos) == bool(cfg.dataset):
        raise VidpolicyError("tokenize: give exactly one of --videos DIR or --dataset DIR")
    if cfg.precision not in ("bf16", "fp32"):
        raise VidpolicyError(f"--precision: {cfg.precision!r} is not bf16 or fp32")
    state = PartialState(cpu=not torch.cuda.is_available())
    model = load_model(VideoTokenizer, cfg.tokenizer)
    cfg.tokenizer_sha = weights_sha(cfg.tokenizer)
    out = Path(cfg.out)
    units = list_units(cfg)
    if state.is_main_process:
        prepare_run_dir(out, cfg, overwrite=overwrite)
        remove_stale_temps(out / "shards")  # a killed run's half-written shard files (rewritten below)
    state.wait_for_everyone()
    spec = ClipSpec(model.config.frames, model.config.size, cfg.fps, cfg.clip_stride)
    n_shards = (len(units) + cfg.files_per_shard - 1) // cfg.files_per_shard
    mine = [k for k in range(n_shards) if k % state.num_processes == state.process_index]
    todo = [k for k in mine if not TokenShardWriter(out, k).complete()]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=f"tokenize [{state.process_index}]", unit="shard",
               disable=not state.is_main_process)

    def open_shard(k: int) -> tuple[_ShardClips, Iterator]:
        return _open_shard(units[k * cfg.files_per_shard : (k + 1) * cfg.files_per_shard], spec, cfg.num_workers)

    with torch_threads(encoder_threads(cfg.num_workers)):
        opened = open_shard(todo[0]) if todo else None
        for i, k in enumerate(todo):
            shard, items = opened
            after = partial(open_shard, todo[i + 1]) if i + 1 < len(todo) else None
            writer = TokenShardWriter(out, k)
            opened = _encode_shard(model, shard, items, writer, cfg, after)
            writer.close()
            bar.update()
    bar.close()
    state.wait_for_everyone()
    result = {}
    if state.is_main_process:
        result = merge_index(out, n_shards, model, spec)
    state.wait_for_everyone()
    state.destroy_process_group()  # a live gloo group aborts the interpreter at exit
    return result


def merge_index(out: Path, n_shards: int, model: VideoTokenizer, spec: ClipSpec) -> dict:
    clips, rows = [], []
    for k in range(n_shards):
        w = TokenShardWriter(out, k)
        if not w.complete():
            raise VidpolicyError(f"{w.json}: shard missing; rerun the same command to finish it")
        data = load_shard_json(w.json)
        clips += data["clips"]
        rows += [ManifestRow(**r) for r in data["manifest"]]
    write_manifest(out / "manifest.csv", rows)
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise VidpolicyError(f"{out}: no readable video among {len(rows)} input(s) ({summarize(rows)}); see manifest.csv")
    index = {
        "tokenizer": {"codebook_size": model.config.codebook_size, "latent_shape": list(model.latent_shape),
                      "frames": spec.frames, "size": spec.size},
        "clip_stride": spec.step,
        "num_clips": len(clips),
        "summary": summarize(rows),
        "clips": clips,
    }
    write_json(out / "index.json", index)
    print(summarize(rows))
    return index
