"""Clips: T consecutive frames of a video resampled to a target fps, as the tokenizer sees them.

A video of ``n`` resampled frames yields clips starting at ``0, stride, 2*stride, ...`` while ``start + T <= n``;
with ``pad_start`` the first clips start before the video (at ``1 - T``, the first frame repeated), so that with
stride 1 clip ``c`` ends at frame ``c``: one clip per step, as a policy sees an episode.
`VideoClipDataset` is map-style. Random access into H.264 is slow (each seek decodes from the last keyframe), so
whole videos are decoded once, at clip resolution, and kept under a byte budget per process; only videos too big for
it are read clip by clip.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vidpolicy.datasets.manifest import ManifestRow
from vidpolicy.datasets.video import VideoError, VideoSource, crop, resample_indices, resized_shape


@dataclass(frozen=True)
class ClipSpec:
    frames: int = 4
    size: int = 96
    fps: float | None = None  # None: every native frame
    stride: int | None = None  # in resampled frames; None: non-overlapping (= frames)
    pad_start: bool = False  # clips also end at each of the first T - 1 frames, the first frame repeated

    @property
    def step(self) -> int:
        return self.stride or self.frames

    def positions(self, start: int) -> np.ndarray:
        """The resampled frames of the clip starting at ``start`` (clamped: a padded clip repeats frame 0)."""
        return np.maximum(start + np.arange(self.frames), 0)


def clip_starts(num_resampled: int, spec: ClipSpec) -> list[int]:
    first = 1 - spec.frames if spec.pad_start else 0
    return list(range(first, num_resampled - spec.frames + 1, spec.step))


def to_unit_range(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(t, h, w, 3)`` -> float ``(3, t, h, w)`` in [-0.5, 0.5], the VQ-VAE's input range (as VideoGPT)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0).sub_(0.5)
    return x.permute(3, 0, 1, 2).contiguous()


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """float ``(3, t, h, w)`` in [-0.5, 0.5] -> uint8 ``(t, h, w, 3)``."""
    x = (video.detach().float().clamp(-0.5, 0.5) + 0.5).mul(255.0).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def probe(path: Path, spec: ClipSpec, backend: str = "auto", name: str | None = None, first_frame: int = 0,
          num_frames: int | None = None) -> tuple[ManifestRow, np.ndarray]:
    """Open a file and lay out its clips (`layout`); a file that cannot be opened is skipped with the reason."""
    try:
        src = VideoSource(path, spec.size, backend=backend)
    except VideoError as e:
        return ManifestRow(name or str(path), "skipped", str(e)), np.zeros(0, dtype=np.int64)
    return layout(src, spec, name, first_frame, num_frames)


def layout(src: VideoSource, spec: ClipSpec, name: str | None = None, first_frame: int = 0,
           num_frames: int | None = None) -> tuple[ManifestRow, np.ndarray]:
    """An opened video's clips: (manifest row, native indices of the sampled frames). A video that cannot give one
    clip is skipped with the reason. ``first_frame``/``num_frames`` select a span (a LeRobot episode)."""
    info = src.info
    n = num_frames if num_frames is not None else info.num_frames
    idx = first_frame + resample_indices(n, info.fps, spec.fps)
    row = ManifestRow(name or str(src.path), "ok", "", n, round(info.fps, 3), info.width, info.height, 0, info.backend)
    if len(idx) < spec.frames:
        row.status = "skipped"
        row.reason = f"too short: {len(idx)} frame(s) at the sampled fps, a clip needs {spec.frames}"
        return row, idx
    row.clips = len(clip_starts(len(idx), spec))
    return row, idx


class VideoClipDataset(Dataset):
    """Every clip of every readable file; ``dataset[i]`` is float ``(3, T, S, S)`` in [-0.5, 0.5], the centre square.
    ``whole_frames=True`` keeps whole resized frames in the cache so that `frames` can cut any square of them."""

    def __init__(self, files: list[Path], spec: ClipSpec, backend: str = "auto", max_open: int = 4,
                 cache_bytes: int = 2 << 30, whole_frames: bool = False):
        self.spec, self.backend, self.max_open, self.cache_bytes = spec, backend, max_open, cache_bytes
        self.whole_frames = whole_frames
        self._videos: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        self.rows: list[ManifestRow] = []
        self.files: list[Path] = []
        self.frame_index: list[np.ndarray] = []
        items = []
        for path in files:
            row, idx = probe(Path(path), spec, backend)
            self.rows.append(row)
            if row.status != "ok":
                continue
            fi = len(self.files)
            self.files.append(Path(path))
            self.frame_index.append(idx)
            items.extend((fi, s) for s in clip_starts(len(idx), spec))
        self.items = np.asarray(items, dtype=np.int64).reshape(-1, 2)
        self._open: OrderedDict[int, VideoSource] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def source(self, fi: int) -> VideoSource:
        if fi in self._open:
            self._open.move_to_end(fi)
            return self._open[fi]
        src = VideoSource(self.files[fi], self.spec.size, backend=self.backend)
        self._open[fi] = src
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return src

    def _whole_video(self, fi: int) -> np.ndarray | None:
        if fi in self._videos:
            self._videos.move_to_end(fi)
            return self._videos[fi]
        src = self.source(fi)
        h, w = (self.spec.size,) * 2
        if self.whole_frames:
            h, w = resized_shape(src.info.height, src.info.width, self.spec.size)
        size = len(self.frame_index[fi]) * h * w * 3
        if size > self.cache_bytes // 4:
            return None
        video = src.read(self.frame_index[fi], square=not self.whole_frames)
        self._videos[fi] = video
        self._cached += video.nbytes
        while self._cached > self.cache_bytes and len(self._videos) > 1:
            _, old = self._videos.popitem(last=False)
            self._cached -= old.nbytes
        return video

    def frames(self, i: int, shift: int = 0, where: float = 0.5) -> np.ndarray:
        """The frames of clip ``i``, its start moved ``shift`` sampled frames later when the video is long enough;
        ``where``: which square along the frame's longer side (`crop`; 0.5, the centre, unless ``whole_frames``)."""
        fi, start = (int(v) for v in self.items[i])
        if start + shift + self.spec.frames <= len(self.frame_index[fi]):
            start += shift
        video = self._whole_video(fi)
        if video is None:
            native = self.frame_index[fi][start : start + self.spec.frames]
            video, start = self.source(fi).read(native, square=not self.whole_frames), 0
        clip = video[start : start + self.spec.frames]
        return crop(clip, self.spec.size, where) if self.whole_frames else clip

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_unit_range(self.frames(i))


class ShiftedClips(Dataset):
    """Training view of some clips of a `VideoClipDataset` with every start shift in ``[0, stride)`` and, over a
    ``whole_frames`` dataset, ``crops`` squares spread along each frame's longer side: index ``j`` is clip
    ``indices[j % n]`` moved ``(j // n) % shifts`` frames later, cut at square ``j // (n * shifts)``, so a sampler over
    ``range(len(self))`` sees each offset and batches stay a function of the index alone (resume reproduces them)."""

    def __init__(self, ds: VideoClipDataset, indices: list[int], shifts: int, crops: int = 1):
        self.ds, self.indices, self.shifts = ds, list(indices), max(1, shifts)
        self.crops = max(1, crops) if ds.whole_frames else 1

    def __len__(self) -> int:
        return len(self.indices) * self.shifts * self.crops

    def __getitem__(self, j: int) -> torch.Tensor:
        n = len(self.indices)
        shift, square = (j // n) % self.shifts, j // (n * self.shifts)
        where = square / (self.crops - 1) if self.crops > 1 else 0.5
        return to_unit_range(self.ds.frames(self.indices[j % n], shift, where))
