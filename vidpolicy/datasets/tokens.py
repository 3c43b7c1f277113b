"""Token shards on disk and random access to them.

A token directory holds ``shards/shard-XXXXX.npy`` (uint16 ``(n, t, h, w)``) each with a ``.json`` twin listing its
clips and the SHA-256 of the ``.npy``; the ``.json`` is written last (atomically), so a shard counts as complete
exactly when it exists. ``index/`` holds every clip (source, clip ordinal, start frame, fps, instruction, shard,
offset) and every shard's checksum by column (see token_index.py); ``index.json`` the counts, the tokenizer and the
index files' checksums.
The JSON files carry a checksum of their own; a shard's bytes are checked on first read, so a file damaged after it
was written is refused by name and never trained on.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vidpolicy.common.checksum import ChecksumError, read_sealed_json, sha256_bytes, sha256_file, write_sealed_json
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_bytes
from vidpolicy.common.versions import check
from vidpolicy.datasets.token_index import ClipIndex, ClipRows, index_problem, shard_name

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
    """Random access to a token directory: ``ds.tokens(i)`` is int64 ``(t, h, w)``; ``ds.rows[i]`` its metadata
    (built on access); ``ds.index`` the columns. Opens in constant memory at any number of clips."""

    MAX_OPEN_SHARDS = 256  # memory maps kept open at once (each counts against vm.max_map_count)

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
              f"{self.root}: it rewrites the index)")
        problem = index_problem(self.root, meta["index_files"])
        if problem:
            raise VidpolicyError(f"{self.root / 'index'}: {problem}; {REPAIR.format(root=self.root)}")
        self.meta = meta
        self.index = ClipIndex(self.root)
        self.rows = ClipRows(self.index)
        self.codebook_size = int(meta["tokenizer"]["codebook_size"])
        self.latent_shape = tuple(meta["tokenizer"]["latent_shape"])
        self._arrays: OrderedDict[int, np.ndarray] = OrderedDict()
        self._checked: set[int] = set()  # shards whose bytes matched their checksum

    def __len__(self) -> int:
        return len(self.index)

    def _shard(self, k: int) -> np.ndarray:
        """Shard ``k``'s tokens, memory-mapped; its bytes are checked against the index on first use."""
        if k in self._arrays:
            self._arrays.move_to_end(k)
            return self._arrays[k]
        path = self.root / "shards" / f"{shard_name(k)}.npy"
        if k not in self._checked:
            problem = npy_problem(path, self.index.shard_record(k))
            if problem:
                raise VidpolicyError(f"{path}: {problem}; {REPAIR.format(root=self.root)}")
            self._checked.add(k)
        self._arrays[k] = np.load(path, mmap_mode="r")
        if len(self._arrays) > self.MAX_OPEN_SHARDS:
            self._arrays.popitem(last=False)
        return self._arrays[k]

    def tokens(self, i: int) -> np.ndarray:
        k, offset = int(self.index.column("shard")[i]), int(self.index.column("offset")[i])
        return np.asarray(self._shard(k)[offset], dtype=np.int64)

    def rows_by_source(self) -> dict[str, np.ndarray]:
        """Each source's rows (a video file's, or one LeRobot episode's clips) in clip order."""
        src, clip = self.index.column("source"), self.index.column("clip")
        order = np.lexsort((clip, src))
        cuts = np.flatnonzero(np.diff(src[order])) + 1
        names = self.index.strings("source")
        return {names[int(src[part[0]])]: part for part in np.split(order, cuts) if len(part)}

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The tokens of ``rows``, uint16 ``(len(rows), t, h, w)``, read shard by shard."""
        shards, offsets = self.index.column("shard")[rows], self.index.column("offset")[rows]
        out = np.zeros((len(rows), *self.latent_shape), np.uint16)
        for k in np.unique(shards):
            sel = shards == k
            out[sel] = self._shard(int(k))[offsets[sel]]
        return out

    def instructions(self) -> list[str]:
        """Every distinct instruction (the string table); ``index.column("instruction")`` holds each clip's."""
        table = self.index.strings("instruction")
        return [table[k] for k in range(len(table))]

    def pairs(self, gap_frames: int) -> np.ndarray:
        """(history, future) row pairs: the future clip starts ``gap_frames`` sampled frames after the history clip."""
        return self.index.pairs(gap_frames)
