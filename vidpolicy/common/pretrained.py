"""Loading saved models safely: safetensors only, and a clear error naming the directory when it is not one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TypeVar

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import atomic_dir
from vidpolicy.common.versions import check_model, stamp_model

M = TypeVar("M")


def model_dir(path: str | Path, subfolder: str) -> Path:
    """A run directory holds its model in ``subfolder``; a bare save_pretrained directory is accepted too."""
    path = Path(path)
    for cand in (path / subfolder, path):
        if (cand / "config.json").exists() and any(cand.glob("*.safetensors")):
            return cand
    if not path.exists():
        raise VidpolicyError(f"{path}: does not exist")
    raise VidpolicyError(f"{path}: no saved model here (expected {subfolder}/config.json and *.safetensors)")


def load_model(cls: type[M], path: str | Path, subfolder: str = "model") -> M:
    where = model_dir(path, subfolder)
    try:
        cfg = json.loads((where / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise VidpolicyError(f"{where / 'config.json'}: not valid JSON ({e})") from None
    if cfg.get("_class_name") != cls.__name__:
        raise VidpolicyError(f"{where}: holds a {cfg.get('_class_name')!r}, expected a {cls.__name__}")
    check_model(cfg, where)
    # use_safetensors=True: a pickle (.bin) placed beside the weights is never deserialised.
    model = cls.from_pretrained(str(where), use_safetensors=True)
    return model.eval()


def save_model(model, path: str | Path) -> Path:
    """``save_pretrained`` into a temporary directory, then rename: no torn model directory after a kill."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        stamp_model(tmp / "config.json")
    return Path(path)


def copy_model(src: str | Path, dst: str | Path) -> Path:
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return Path(dst)
