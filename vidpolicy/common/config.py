"""Stage configs are dataclasses; each run saves its resolved config as ``config.json`` next to its output.

Loading is strict: an unknown key or a value of the wrong type is a `VidpolicyError` naming it, so a typo in a
config file fails loudly instead of silently training something else. (LeRobot's draccus 0.8 decodes these
dataclasses less strictly: a JSON "16" or true for an int field comes back as the string "16" or "1".)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_json
from vidpolicy.common.runlock import LOCK_NAME, lock_run_dir
from vidpolicy.common.versions import FORMAT_KEY, VERSION_KEY, check, stamp

C = TypeVar("C")
RUN_KEYS = (FORMAT_KEY, VERSION_KEY, "processes")  # what a run directory records beside its settings

# Fields a user may change when resuming a run (train longer, log more often, move the directory) without it
# being "another run".
RESUMABLE_FIELDS = frozenset({"out", "max_steps", "resume", "overwrite", "log_every", "save_every", "num_workers",
                              "cache_gb", "eval_every", "verify", "gradient_checkpointing", "compile", "device"})


def to_dict(cfg: Any) -> dict:
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _check_type(name: str, value: Any, tp: Any, source: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _check_type(name, value, arg, source)
            except VidpolicyError as e:
                errors.append(e)
        raise errors[0]
    if tp is type(None):
        if value is None:
            return None
    elif tp is Any:
        return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (arg, *_) = typing.get_args(tp) or (Any,)
            items = [_check_type(name, v, arg, source) for v in value]
            return tuple(items) if origin is tuple else items
    elif origin is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise VidpolicyError(f"{source}: config key '{name}' must be {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls: type[C], data: dict, source: str = "config") -> C:
    """Build a config dataclass from a dict, refusing unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise VidpolicyError(f"{source}: unknown config key(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {k: _check_type(k, v, hints[k], source) for k, v in data.items()}
    return cls(**kwargs)


def preset_values(cls: type, name: str) -> dict:
    """The field values of ``cls.PRESETS[name]`` (a stage's model sizes), for a config to start from."""
    presets = getattr(cls, "PRESETS", {})
    if name not in presets:
        raise VidpolicyError(f"{cls.__name__}: no preset {name!r} (one of {', '.join(presets) or 'none'})")
    return dict(presets[name])


def load_config(cls: type[C], path: str | Path) -> C:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VidpolicyError(f"{path}: no such config file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VidpolicyError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise VidpolicyError(f"{path}: config must be a JSON object")
    # a run's config.json names the format that wrote it; as a --config file only its settings count
    fields = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in data.items() if k in fields or k not in RUN_KEYS}
    return from_dict(cls, data, source=str(path))


def prepare_run_dir(out: Path, cfg: Any, overwrite: bool = False, name: str = "config.json",
                    processes: int = 1) -> bool:
    """Claim ``out`` for this run; return True when it continues the same run (resume). ``processes``: how many
    share the training (a run may resume on another number with the same global batch, see `_comparable`).

    The directory is locked first (see `lock_run_dir`): a second command on it exits naming the first. A directory
    holding a different run's config (``name``) is refused unless ``overwrite``; then it is wiped.
    """
    out = Path(out)
    lock_run_dir(out)
    cfg_path = out / name
    resuming = False
    new = {**to_dict(cfg), **stamp("run"), "processes": processes}
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if isinstance(old, dict) and not overwrite:
            check(old, "run", out, "pass --overwrite to start this run again, or finish it with the version that "
                  "started it")
        if isinstance(old, dict) and dataclasses.is_dataclass(cfg):  # a setting added since ran as its default
            old = {**_defaults(type(cfg)), **old}
        same = isinstance(old, dict) and _comparable(old) == _comparable(new)
        if same and not overwrite:
            resuming = True
        elif overwrite:
            _empty(out)
        else:
            diff = _first_difference(old, new)
            raise VidpolicyError(
                f"{out}: holds a different run ({diff}); pass --overwrite to replace it or choose another --out"
            )
    elif overwrite:
        _empty(out)
    write_json(cfg_path, new)
    return resuming


def _defaults(cls: type) -> dict:
    """Every field's default as `to_dict` writes it (fields without one are left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
    return out


def _empty(out: Path) -> None:
    """Delete everything in ``out`` but the lock this command holds."""
    for p in out.iterdir():
        if p.name == LOCK_NAME:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _comparable(d: dict) -> dict:
    out = {k: v for k, v in d.items() if k not in RESUMABLE_FIELDS and k not in RUN_KEYS}
    if isinstance(out.get("batch_size"), int):  # what a run trains on is its global batch, however it is split
        out["batch_size"] = out["batch_size"] * out.pop("grad_accum", 1) * d.get("processes", 1)
    return out


def _first_difference(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "an unreadable config"
    old_c, new_c = _comparable(old), _comparable(new)
    for k in sorted(set(old_c) | set(new_c)):
        if old_c.get(k) != new_c.get(k):
            return f"{k}: {old_c.get(k)!r} there, {new_c.get(k)!r} now"
    return "config differs"
