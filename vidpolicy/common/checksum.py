"""Checksums that travel with the data: SHA-256 of a file's bytes, and JSON files that carry their own.

A file damaged after it was written (a bad disk, a partial copy between machines) then fails loudly where it is
read instead of being trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vidpolicy.common.io import write_json

CHUNK = 1 << 20
KEY = "checksum"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _digest(obj: dict) -> str:
    body = {k: v for k, v in obj.items() if k != KEY}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode())


def write_sealed_json(path: str | Path, obj: dict) -> dict:
    """Write ``obj`` (atomically) with a ``checksum`` of its own content; return what was written."""
    plain = json.loads(json.dumps(obj, default=str))  # the checksum is of what a reader will load
    sealed = {**plain, KEY: _digest(plain)}
    write_json(path, sealed)
    return sealed


class ChecksumError(ValueError):
    """A file whose content does not match the checksum it was written with (or that has none)."""


def read_sealed_json(path: str | Path) -> dict:
    """Load a JSON object written by `write_sealed_json`; `ChecksumError` when it was changed since, or never
    sealed; `ValueError` when it is not a JSON object."""
    try:
        obj = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if KEY not in obj:
        raise ChecksumError("has no checksum (written by an older vidpolicy)")
    if obj[KEY] != _digest(obj):
        raise ChecksumError("checksum mismatch: changed or damaged after it was written")
    return obj
