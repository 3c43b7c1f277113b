"""What ``vidpolicy tokenize`` reads: one unit per video file, or per episode of a LeRobotDataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.datasets.manifest import caption_for, read_captions
from vidpolicy.datasets.video import find_videos
from vidpolicy.tokenizer.config import TokenizeConfig


@dataclass
class Unit:
    """One input: a video file, or one episode inside a LeRobot video file."""

    source: str
    path: Path
    instruction: str = ""
    first_frame: int = 0
    num_frames: int | None = None  # None: to the end of the file


def default_manifest(cfg: TokenizeConfig) -> None:
    """``--videos DIR`` with a ``DIR/manifest.csv`` and no ``--manifest``: its captions are read."""
    if cfg.videos and not cfg.manifest and (Path(cfg.videos) / "manifest.csv").is_file():
        cfg.manifest = str(Path(cfg.videos) / "manifest.csv")


def list_units(cfg: TokenizeConfig) -> list[Unit]:
    if cfg.dataset:
        from vidpolicy.datasets.robot import RobotEpisodes

        eps = RobotEpisodes(cfg.dataset, camera=cfg.camera)
        return [Unit(eps.source(i), e.video, e.task, e.first_frame, e.length) for i, e in enumerate(eps.episodes)]
    files = find_videos(cfg.videos)
    if not files:
        raise VidpolicyError(f"{cfg.videos}: no video files found (looked for .mp4 .webm .mkv .avi .mov .gif)")
    captions = read_captions(cfg.manifest) if cfg.manifest else {}
    root = Path(cfg.videos) if Path(cfg.videos).is_dir() else None
    return [Unit(str(f), f, caption_for(captions, f, root)) for f in files]
