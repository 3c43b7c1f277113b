"""Format versions: every artefact and run directory records the format that wrote it and the vidpolicy version.

A reader accepts its own format only and otherwise names both versions and what to do, instead of guessing how an
older writer behaved. Bump a format when a change makes saved files mean something else.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidpolicy import __version__
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json

FORMATS = {"run": 2, "model": 2, "tokens": 3}  # tokens 3: the clip index by column (index/)
FORMAT_KEY, VERSION_KEY = "format_version", "vidpolicy_version"


def stamp(kind: str, private: bool = False) -> dict:
    """The keys that record ``kind``'s format and this vidpolicy (``_``-prefixed where a config reader, like
    diffusers', takes unknown public keys for arguments)."""
    p = "_" if private else ""
    return {p + FORMAT_KEY: FORMATS[kind], p + VERSION_KEY: __version__}


def stamp_json(path: str | Path, kind: str, private: bool = False) -> None:
    """Add the stamp to a JSON object already written at ``path``."""
    path = Path(path)
    write_json(path, {**json.loads(path.read_text()), **stamp(kind, private)})


def check(found: dict, kind: str, where: str | Path, remedy: str, private: bool = False) -> None:
    """`VidpolicyError` naming both versions and ``remedy`` unless ``found`` was written in ``kind``'s format."""
    p = "_" if private else ""
    fmt, version = found.get(p + FORMAT_KEY), found.get(p + VERSION_KEY, "0.1 or earlier")
    if fmt != FORMATS[kind]:
        raise VidpolicyError(f"{where}: written by vidpolicy {version} ({kind} format {fmt or 1}); vidpolicy "
                             f"{__version__} reads {kind} format {FORMATS[kind]}: {remedy}")


def stamp_model(config_json: str | Path) -> None:
    """Stamp a saved diffusers model or scheduler config (``_``-prefixed keys: diffusers ignores them on load)."""
    stamp_json(config_json, "model", private=True)


def check_model(config: dict, where: str | Path) -> None:
    """`check` for a saved model or scheduler config."""
    check(config, "model", where, "train it again with this version, or use it with the version that wrote it",
          private=True)
