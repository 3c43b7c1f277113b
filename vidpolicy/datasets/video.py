"""Find and decode videos: decord first (fast, H.264), torchcodec for what decord cannot open (AV1).

Frames come out as uint8 ``(n, s, s, 3)``: shorter side resized to ``s``, then a centre crop, sampled at a target
fps. Every failure is a `VideoError` with a one-line reason, so a corpus scan can skip the file and say why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidpolicy.common.errors import VidpolicyError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif", ".m4v")


class VideoError(Exception):
    """This one file cannot be used; the message is the reason recorded in the manifest."""


def find_videos(source: str | Path) -> list[Path]:
    """Video files under a directory (recursive, sorted), or the paths listed in a text file (one per line)."""
    source = Path(source)
    if source.is_dir():
        files = [p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
        return sorted(files)
    if source.is_file() and source.suffix.lower() in (".txt", ".lst", ".list"):
        lines = [ln.strip() for ln in source.read_text().splitlines()]
        return [(source.parent / ln) if not Path(ln).is_absolute() else Path(ln)
                for ln in lines if ln and not ln.startswith("#")]
    if source.is_file() and source.suffix.lower() in VIDEO_EXTENSIONS:
        return [source]
    raise VidpolicyError(f"{source}: not a directory of videos, a video file, or a .txt list of video paths")


@dataclass
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int
    backend: str


def resized_shape(h: int, w: int, size: int) -> tuple[int, int]:
    scale = size / min(h, w)
    return max(size, round(h * scale)), max(size, round(w * scale))


def resize(frames: torch.Tensor, size: int) -> np.ndarray:
    """uint8 ``(n, 3, h, w)`` frames with their shorter side resized to ``size`` (antialiased bilinear), as uint8
    ``(n, h', w', 3)``."""
    rh, rw = resized_shape(frames.shape[2], frames.shape[3], size)
    data = F.interpolate(frames.float(), size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
    return data.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def square_frame(image: np.ndarray, size: int) -> np.ndarray:
    """One uint8 ``(h, w, 3)`` frame of any size as the reader gives frames: shorter side ``size``, centre square."""
    if image.shape[:2] == (size, size):
        return image
    return np.ascontiguousarray(crop(resize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None], size),
                                     size)[0])


def crop(frames: np.ndarray, size: int, where: float = 0.5) -> np.ndarray:
    """The ``size`` x ``size`` square of ``(n, h, w, 3)`` frames along their longer side: ``where`` 0 the first
    (left or top), 0.5 the centre, 1 the last."""
    h, w = frames.shape[1:3]
    top, left = int((h - size) * where), int((w - size) * where)  # 0.5: (h - size) // 2, as always
    return frames[:, top : top + size, left : left + size]


class VideoSource:
    """One opened video: ``info`` and ``read(indices)`` of resized, centre-cropped uint8 frames."""

    def __init__(self, path: str | Path, size: int, backend: str = "auto", num_threads: int = 1):
        self.path = Path(path)
        self.size = size
        if not self.path.exists():
            raise VideoError("file does not exist")
        if self.path.stat().st_size == 0:
            raise VideoError("empty file (0 bytes)")
        errors = []
        for name in (("decord", "torchcodec") if backend == "auto" else (backend,)):
            try:
                self._open(name, num_threads)
                break
            except Exception as e:  # each backend has its own exception types
                errors.append(f"{name}: {_short(e)}")
        else:
            raise VideoError("cannot decode (" + "; ".join(errors) + ")")
        if self.info.num_frames < 1:
            raise VideoError("no video frames")

    def _open(self, backend: str, num_threads: int) -> None:
        if backend == "decord":
            import decord

            probe = decord.VideoReader(str(self.path), num_threads=num_threads)
            n = len(probe)
            if n < 1:
                raise VideoError("no video frames")
            h, w = probe[0].shape[:2]
            fps = float(probe.get_avg_fps())
            rh, rw = resized_shape(h, w, self.size)
            del probe
            self._reader = decord.VideoReader(str(self.path), num_threads=num_threads, width=rw, height=rh)
            self.info = VideoInfo(n, fps, h, w, "decord")
        elif backend == "torchcodec":
            from torchcodec.decoders import VideoDecoder

            dec = VideoDecoder(str(self.path), num_ffmpeg_threads=num_threads, seek_mode="approximate")
            md = dec.metadata
            n = md.num_frames if md.num_frames is not None else 0
            self._reader = dec
            self.info = VideoInfo(int(n), float(md.average_fps or 30.0), md.height, md.width, "torchcodec")
        else:
            raise VideoError(f"unknown backend {backend!r}")

    def read(self, indices: list[int] | np.ndarray, square: bool = True) -> np.ndarray:
        """Frames at ``indices`` as uint8 ``(n, size, size, 3)`` (``square=False``: the whole resized frame, shorter
        side ``size``)."""
        indices = [int(i) for i in indices]
        try:
            if self.info.backend == "decord":
                frames = self._reader.get_batch(indices).asnumpy()
            else:
                frames = resize(self._reader.get_frames_at(indices).data, self.size)  # from (n, c, h, w) uint8
        except Exception as e:
            raise VideoError(f"decode failed ({_short(e)})") from None
        return np.ascontiguousarray(crop(frames, self.size) if square else frames)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    text = text[-1] if text else type(e).__name__
    return text[:160]


def resample_indices(num_frames: int, native_fps: float, target_fps: float | None) -> np.ndarray:
    """Native frame indices of the stream resampled to ``target_fps`` (None keeps every frame)."""
    if not target_fps or target_fps >= native_fps or not math.isfinite(native_fps) or native_fps <= 0:
        return np.arange(num_frames)
    step = native_fps / target_fps
    n = int(math.floor((num_frames - 1) / step)) + 1
    return np.minimum(np.round(np.arange(n) * step).astype(np.int64), num_frames - 1)
