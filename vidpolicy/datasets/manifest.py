"""``manifest.csv``: one row per input file with ``status`` (ok / skipped) and the ``reason``; caption CSVs in."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.io import write_text


@dataclass
class ManifestRow:
    file: str
    status: str  # "ok" or "skipped"
    reason: str = ""
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    clips: int = 0
    backend: str = ""


def write_manifest(path: str | Path, rows: list[ManifestRow]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(ManifestRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    write_text(path, buf.getvalue())


def read_manifest(path: str | Path) -> list[ManifestRow]:
    with open(path, newline="") as f:
        return [
            ManifestRow(r["file"], r["status"], r["reason"], int(r["frames"]), float(r["fps"]), int(r["width"]),
                        int(r["height"]), int(r["clips"]), r["backend"])
            for r in csv.DictReader(f)
        ]


def summarize(rows: list[ManifestRow]) -> str:
    ok = [r for r in rows if r.status == "ok"]
    skipped = [r for r in rows if r.status != "ok"]
    reasons: dict[str, int] = {}
    for r in skipped:
        key = r.reason.split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    text = f"{len(rows)} files: {len(ok)} ok ({sum(r.clips for r in ok)} clips), {len(skipped)} skipped"
    if reasons:
        text += " — " + ", ".join(f"{n}× {k}" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return text


_FILE_COLUMNS = ("file", "path", "video", "filename")
_TEXT_COLUMNS = ("caption", "instruction", "text", "label")


def read_captions(path: str | Path) -> dict[str, str]:
    """Map file name (and relative path) -> instruction from a CSV with a file column and a caption column."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in (reader.fieldnames or [])]
            fcol = next((reader.fieldnames[cols.index(c)] for c in _FILE_COLUMNS if c in cols), None)
            tcol = next((reader.fieldnames[cols.index(c)] for c in _TEXT_COLUMNS if c in cols), None)
            if fcol is None or tcol is None:
                raise VidpolicyError(
                    f"{path}: manifest needs a file column ({'/'.join(_FILE_COLUMNS)}) and a caption column "
                    f"({'/'.join(_TEXT_COLUMNS)}); found {', '.join(reader.fieldnames or []) or 'no header'}"
                )
            return {row[fcol].strip(): (row[tcol] or "").strip() for row in reader if row.get(fcol)}
    except FileNotFoundError:
        raise VidpolicyError(f"{path}: manifest file does not exist") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise VidpolicyError(f"{path}: not a readable CSV ({e})") from None


def caption_for(captions: dict[str, str], file: Path, root: Path | None) -> str:
    if root is not None:
        try:
            rel = str(file.relative_to(root))
            if rel in captions:
                return captions[rel]
        except ValueError:
            pass
    return captions.get(file.name, captions.get(file.stem, ""))
