"""The clip index of a token directory, by column: ``index/<column>.npy`` memory-mapped, strings (sources,
instructions) as one byte blob with offsets. It opens in constant memory at any size (nothing is read until used),
where a JSON list of clips would be parsed whole into Python objects (benchmarks/index_scale.py measures it).

Every index file's size and SHA-256 are recorded in ``index.json`` (small: counts, the tokenizer, the files) and
checked when the index is opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vidpolicy.common.checksum import sha256_file
from vidpolicy.common.io import atomic_path

COLUMNS = {"shard": np.uint32, "offset": np.uint32, "source": np.uint32, "clip": np.uint32, "start": np.int64,
           "start_frame": np.int64, "fps": np.float32, "instruction": np.uint32}
STRINGS = ("source", "instruction")  # columns holding ids into a string table of their own
SHARD_COLUMNS = {"shard_bytes": np.int64, "shard_sha256": "S64"}


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


class StringTable(Sequence):
    """Strings stored as one UTF-8 blob and ``n + 1`` offsets; ``table[i]`` decodes one."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob, self.offsets = blob, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return bytes(self.blob[self.offsets[i] : self.offsets[i + 1]]).decode()


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_clip_index(root: Path, shards: Iterable[tuple[dict, list[dict]]]) -> dict:
    """Write ``root/index/`` from each shard's (checksum record, clip rows), in shard order; return the files'
    sizes and checksums for ``index.json``."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}  # one small array per shard and column
    records: dict[str, list] = {c: [] for c in SHARD_COLUMNS}
    ids: dict[str, dict[str, int]] = {s: {} for s in STRINGS}
    for k, (record, rows) in enumerate(shards):
        records["shard_bytes"].append(record["npy_bytes"])
        records["shard_sha256"].append(record["npy_sha256"])
        for c, dtype in COLUMNS.items():
            if c == "shard":
                values = [k] * len(rows)
            elif c in STRINGS:
                values = [ids[c].setdefault(r.get(c, ""), len(ids[c])) for r in rows]
            else:
                values = [r[c] for r in rows]
            parts[c].append(np.asarray(values, dtype=dtype))
    columns = {c: np.concatenate(parts[c]) if parts[c] else np.zeros(0, COLUMNS[c]) for c in COLUMNS}
    columns.update({c: np.asarray(records[c], dtype=dtype) for c, dtype in SHARD_COLUMNS.items()})
    return write_columns(root, columns, {s: list(ids[s]) for s in STRINGS})


def write_columns(root: Path, columns: dict[str, np.ndarray], strings: dict[str, list[str]]) -> dict:
    """``root/index/``: each column as ``.npy``, each string table as a blob and offsets (string ``i`` is id ``i``);
    the files' sizes and checksums."""
    out = root / "index"
    out.mkdir(parents=True, exist_ok=True)
    for c, dtype in {**COLUMNS, **SHARD_COLUMNS}.items():
        _save(out / f"{c}.npy", np.asarray(columns[c], dtype=dtype))
    for s in STRINGS:
        encoded = [t.encode() for t in strings[s]]
        _save(out / f"{s}_blob.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))
        _save(out / f"{s}_offsets.npy", np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64))
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(out.glob("*.npy"))}


def index_problem(root: Path, files: dict) -> str | None:
    """What is wrong with ``root/index`` against the sizes and checksums ``files`` recorded (None: nothing)."""
    for name, want in files.items():
        path = root / "index" / name
        if not path.exists():
            return f"{path.name} missing"
        if path.stat().st_size != want["bytes"] or sha256_file(path) != want["sha256"]:
            return f"{path.name} damaged (size or checksum differs from index.json)"
    return None


class ClipIndex:
    """The columns memory-mapped: ``index.column("start")``, ``index.strings("source")``, ``index.row(i)``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cols = {c: np.load(self.root / "index" / f"{c}.npy", mmap_mode="r")
                      for c in (*COLUMNS, *SHARD_COLUMNS)}
        self._strings = {s: StringTable(np.load(self.root / "index" / f"{s}_blob.npy", mmap_mode="r"),
                                        np.load(self.root / "index" / f"{s}_offsets.npy", mmap_mode="r"))
                         for s in STRINGS}

    def __len__(self) -> int:
        return len(self._cols["shard"])

    def column(self, name: str) -> np.ndarray:
        return self._cols[name]

    def strings(self, name: str) -> StringTable:
        return self._strings[name]

    def shard_record(self, k: int) -> dict:
        return {"npy_bytes": int(self._cols["shard_bytes"][k]), "npy_sha256": self._cols["shard_sha256"][k].decode()}

    def row(self, i: int) -> dict:
        row = {c: self._cols[c][i].item() for c in COLUMNS}
        row.update({s: self._strings[s][row[s]] for s in STRINGS}, shard=shard_name(row["shard"]))
        return row

    def pairs(self, gap: int) -> np.ndarray:
        """(history, future) row pairs ``(m, 2)``, the future clip ``gap`` sampled frames after the history clip in
        the same video; in row order, computed on the columns (no per-clip Python objects)."""
        # + not |: a padded clip's start is negative (clips.ClipSpec.pad_start)
        key = (self._cols["source"].astype(np.int64) << 32) + self._cols["start"].astype(np.int64)
        order = np.argsort(key, kind="stable")
        ranked = key[order]
        pos = np.searchsorted(ranked, key + gap)
        hit = pos < len(ranked)
        hit[hit] = ranked[pos[hit]] == (key + gap)[hit]
        return np.stack([np.flatnonzero(hit), order[pos[hit]]], axis=1).astype(np.int64)


class ClipRows(Sequence):
    """``rows[i]`` as a dict (source, clip, start, start_frame, fps, instruction, shard, offset), built on access."""

    def __init__(self, index: ClipIndex):
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.index.row(k) for k in range(*i.indices(len(self)))]
        return self.index.row(int(i))
