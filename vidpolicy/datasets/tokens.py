"""Token shards on disk and random access to them.

A token directory holds ``shards/shard-XXXXX.npy`` (uint16 ``(n, t, h, w)``) each with a ``.json`` twin listing its
clips and the SHA-256 of the ``.npy``; the ``.json`` is written last (atomically), so a shard counts as complete
exactly when it exists. ``index.json`` lists every clip (source, video, clip ordinal, start frame, fps, instruction,
shard, offset) and every shard's checksum. Both JSON files carry a checksum of their own; a shard's bytes are checked
on first read, so a file damaged after it was written is refused by name and never trained on.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from vidpolicy.common.checksum import ChecksumError, read_sealed_json, sha256_bytes, sha256_file, write_sealed_json
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_bytes
from vidpolicy.common.versions import check

REPAIR = "rerun the `vidpolicy tokenize` command that wrote {root} with --verify to re-tokenize what is damaged"


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
        """Both files written and the json intact (a damaged json makes the shard count as not written)."""
        if not (self.json.exists() and self.npy.exists()):
            return False
        try:
            return "npy_sha256" in read_sealed_json(self.json)
        except ValueError:
            return False

    def problem(self) -> str | None:
        """What is wrong with a complete shard's ``.npy`` (None when its size and checksum match)."""
        return npy_problem(self.npy, read_sealed_json(self.json))

    def add(self, tokens: np.ndarray, row: dict) -> None:
        if tokens.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError("token ids above 65535 do not fit the uint16 shard format")
        row = dict(row, shard=self.name, offset=sum(len(t) for t in self.tokens))
        self.tokens.append(tokens.astype(np.uint16))
        self.rows.append(row)

    def close(self) -> None:
        arr = np.concatenate(self.tokens) if self.tokens else np.zeros((0, 1, 1, 1), np.uint16)
        buf = io.BytesIO()
        np.save(buf, arr)
        data = buf.getvalue()  # the checksum is of the bytes meant for disk, not of what a bad disk returns
        write_bytes(self.npy, data)
        write_sealed_json(self.json, {"clips": self.rows, **self.extra, "npy_sha256": sha256_bytes(data),
                                      "npy_bytes": len(data)})


def npy_problem(npy: Path, expected: dict) -> str | None:
    """None when ``npy`` has the size and SHA-256 recorded in ``expected`` (``npy_bytes``, ``npy_sha256``)."""
    if not npy.exists():
        return "missing"
    size = npy.stat().st_size
    if size != expected["npy_bytes"]:
        return f"{size} bytes, written as {expected['npy_bytes']} (truncated or overwritten)"
    if sha256_file(npy) != expected["npy_sha256"]:
        return "checksum mismatch (damaged after it was written)"
    return None


def load_shard_json(path: Path) -> dict:
    try:
        return read_sealed_json(path)
    except ValueError as e:
        raise VidpolicyError(f"{path}: {e}; {REPAIR.format(root=Path(path).parents[1])}") from None


def write_index(path: str | Path, index: dict) -> None:
    """Write a token directory's ``index.json`` with its checksum (after changing one by hand, too)."""
    write_sealed_json(path, index)


class TokenDataset:
    """Random access to a token directory: ``ds.tokens(i)`` is int64 ``(t, h, w)``; ``ds.rows[i]`` its metadata."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / "index.json"
        if not index.exists():
            raise VidpolicyError(f"{self.root}: not a token directory (no index.json); run `vidpolicy tokenize` first")
        try:
            meta = read_sealed_json(index)
        except ChecksumError as e:
            raise VidpolicyError(f"{index}: {e}; {REPAIR.format(root=self.root)}") from None
        except ValueError as e:
            raise VidpolicyError(f"{index}: {e}") from None
        check(meta, "tokens", index, f"tokenize again into a new directory (or rerun the command that wrote "
              f"{self.root} with --overwrite)")
        self.meta = meta
        self.rows: list[dict] = meta["clips"]
        self.codebook_size = int(meta["tokenizer"]["codebook_size"])
        self.latent_shape = tuple(meta["tokenizer"]["latent_shape"])
        self._arrays: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _shard(self, name: str) -> np.ndarray:
        """The shard's tokens, memory-mapped; its bytes are checked against the index on first use."""
        if name not in self._arrays:
            path = self.root / "shards" / f"{name}.npy"
            problem = npy_problem(path, self.meta["shards"][name])
            if problem:
                raise VidpolicyError(f"{path}: {problem}; {REPAIR.format(root=self.root)}")
            self._arrays[name] = np.load(path, mmap_mode="r")
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
