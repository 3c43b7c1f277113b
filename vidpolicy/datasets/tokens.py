"""Token shards on disk and random access to them.

A token directory holds ``shards/shard-XXXXX.npy`` (uint16 ``(n, t, h, w)``) each with a ``.json`` twin listing its
clips; the ``.json`` is written last (atomically), so a shard counts as complete exactly when it exists.
``index.json`` lists every clip: source, video, clip ordinal, start frame, fps, instruction, shard, offset.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import save_npy, write_json


class TokenShardWriter:
    """Writes one shard: the token array first, then the json that marks it complete."""

    def __init__(self, root: str | Path, shard: int):
        self.dir = Path(root) / "shards"
        self.name = f"shard-{shard:05d}"
        self.tokens: list[np.ndarray] = []
        self.rows: list[dict] = []
        self.extra: dict = {}

    @property
    def npy(self) -> Path:
        return self.dir / f"{self.name}.npy"

    @property
    def json(self) -> Path:
        return self.dir / f"{self.name}.json"

    def complete(self) -> bool:
        return self.json.exists() and self.npy.exists()

    def add(self, tokens: np.ndarray, row: dict) -> None:
        if tokens.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError("token ids above 65535 do not fit the uint16 shard format")
        row = dict(row, shard=self.name, offset=sum(len(t) for t in self.tokens))
        self.tokens.append(tokens.astype(np.uint16))
        self.rows.append(row)

    def close(self) -> None:
        arr = np.concatenate(self.tokens) if self.tokens else np.zeros((0, 1, 1, 1), np.uint16)
        save_npy(self.npy, arr)
        write_json(self.json, {"clips": self.rows, **self.extra})


def load_shard_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class TokenDataset:
    """Random access to a token directory: ``ds.tokens(i)`` is int64 ``(t, h, w)``; ``ds.rows[i]`` its metadata."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / "index.json"
        if not index.exists():
            raise VidpolicyError(f"{self.root}: not a token directory (no index.json); run `vidpolicy tokenize` first")
        try:
            meta = json.loads(index.read_text())
        except json.JSONDecodeError as e:
            raise VidpolicyError(f"{index}: not valid JSON ({e})") from None
        self.meta = meta
        self.rows: list[dict] = meta["clips"]
        self.codebook_size = int(meta["tokenizer"]["codebook_size"])
        self.latent_shape = tuple(meta["tokenizer"]["latent_shape"])
        self._arrays: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.root / "shards" / f"{name}.npy", mmap_mode="r")
        return self._arrays[name]

    def tokens(self, i: int) -> np.ndarray:
        row = self.rows[i]
        return np.asarray(self._shard(row["shard"])[row["offset"]], dtype=np.int64)

    def videos(self) -> dict[str, list[int]]:
        """Row indices of each source video (or episode), in clip order."""
        out: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(self.rows):
            out[row["source"]].append(i)
        for idx in out.values():
            idx.sort(key=lambda i: self.rows[i]["clip"])
        return dict(out)

    def pairs(self, gap_frames: int) -> list[tuple[int, int]]:
        """(history, future) row pairs: the future clip starts ``gap_frames`` sampled frames after the history clip."""
        pairs = []
        for idx in self.videos().values():
            by_start = {self.rows[i]["start"]: i for i in idx}
            for i in idx:
                j = by_start.get(self.rows[i]["start"] + gap_frames)
                if j is not None:
                    pairs.append((i, j))
        return pairs
