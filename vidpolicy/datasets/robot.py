"""Robot demonstrations from a LeRobotDataset v3 (a local root, or a hub id when online).

`RobotEpisodes` gives per-episode actions and states (read through `LeRobotDataset`), the task text and frames
(a whole episode decoded at once with decord/torchcodec, resized and centre-cropped: LeRobotDataset decodes frame
by frame); `clip_indices` the frames of a clip ending at step t, clamped into the episode.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.datasets.video import VideoError, VideoSource


@dataclass
class Episode:
    index: int
    length: int
    task: str
    video: Path
    first_frame: int  # index of this episode's first frame inside ``video``


def video_pix_fmt(feature: dict) -> str | None:
    """How a camera feature of a LeRobotDataset's info.json stores pixels in its video (e.g. yuv420p: chroma at half
    resolution); None when unrecorded or not a video."""
    return (feature.get("info") or {}).get("video.pix_fmt")


def _open_meta(dataset: str | Path):
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    path = Path(dataset)
    if path.exists():
        if not (path / "meta" / "info.json").exists():
            raise VidpolicyError(f"{path}: not a LeRobotDataset (no meta/info.json)")
        return LeRobotDatasetMetadata(path.name, root=path)
    return LeRobotDatasetMetadata(str(dataset))  # a hub id; needs the network


class RobotEpisodes:
    def __init__(self, dataset: str | Path, size: int = 96, camera: str | None = None, action_key: str = "action"):
        try:
            self.meta = meta = _open_meta(dataset)
        except VidpolicyError:
            raise
        except Exception as e:
            reason = str(e).splitlines()[0][:160]
            raise VidpolicyError(f"{dataset}: cannot open as a LeRobotDataset ({reason})") from None
        self.root, self.size, self.fps = Path(meta.root), size, float(meta.fps)
        self.dataset, self.name = dataset, Path(str(dataset)).name
        missing = [k for k in (action_key,) if k not in meta.features]
        if not meta.video_keys:
            missing.append("a video camera (observation.images.*)")
        elif camera and camera not in meta.video_keys:
            missing.append(camera)
        if missing:
            raise VidpolicyError(f"{self.root}: dataset lacks required key(s): {', '.join(missing)}")
        self.camera = camera or meta.video_keys[0]
        self.action_key = action_key
        self.action_dim = int(meta.features[action_key]["shape"][0])
        self.state_key = "observation.state" if "observation.state" in meta.features else None
        self.frame_shape = tuple(meta.features[self.camera]["shape"])
        self.pix_fmt = video_pix_fmt(meta.features[self.camera])
        self.episodes: list[Episode] = []
        eps = meta.episodes
        for i in range(len(eps)):
            e = eps[i]
            ep = int(e["episode_index"])
            vfile = self.root / meta.get_video_file_path(ep, self.camera)
            start = int(round(float(e[f"videos/{self.camera}/from_timestamp"]) * self.fps))
            tasks = e.get("tasks") or [""]
            self.episodes.append(Episode(ep, int(e["length"]), str(tasks[0]), vfile, start))
        self._table = None
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def _load_table(self):
        if self._table is None:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset

            ds = LeRobotDataset(self.meta.repo_id, root=self.root, download_videos=False)
            cols = ["episode_index", "frame_index", self.action_key] + ([self.state_key] if self.state_key else [])
            table = ds.hf_dataset.select_columns(cols).with_format("numpy")[:]
            ep, order = table["episode_index"], np.lexsort((table["frame_index"], table["episode_index"]))
            act = table[self.action_key].astype(np.float32)[order]
            st = table[self.state_key].astype(np.float32)[order] if self.state_key else None
            ep = ep[order]
            self._table = {}
            for e in np.unique(ep):
                sel = ep == e
                self._table[int(e)] = (act[sel], st[sel] if st is not None else None)
        return self._table

    def source(self, i: int) -> str:
        """Episode ``i``'s name in a token directory (its source column)."""
        return f"{self.name}/episode-{self.episodes[i].index:06d}"

    def actions(self, i: int) -> np.ndarray:
        return self._load_table()[self.episodes[i].index][0]

    def action_variance(self, eps: float = 1e-8) -> np.ndarray:
        """Per-dimension variance of every episode's actions (+ ``eps``): what normalised action errors divide by."""
        return np.concatenate([self.actions(i) for i in range(len(self))]).var(0) + eps

    def states(self, i: int) -> np.ndarray | None:
        return self._load_table()[self.episodes[i].index][1]

    def frames(self, i: int, cache: int = 8) -> np.ndarray:
        """All frames of episode ``i`` as uint8 ``(length, size, size, 3)`` (a few episodes stay cached)."""
        if i in self._frames:
            self._frames.move_to_end(i)
            return self._frames[i]
        ep = self.episodes[i]
        try:
            src = VideoSource(ep.video, self.size)
            frames = src.read(np.arange(ep.first_frame, ep.first_frame + ep.length))
        except VideoError as e:
            raise VidpolicyError(f"{ep.video}: episode {ep.index}: {e}") from None
        self._frames[i] = frames
        if len(self._frames) > cache:
            self._frames.popitem(last=False)
        return frames

    def __len__(self) -> int:
        return len(self.episodes)


def clip_indices(t: int, frames: int, length: int, frame_stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a clip of ``frames`` frames ending at step ``t`` (clamped into the episode) and a validity mask."""
    raw = t - frame_stride * np.arange(frames - 1, -1, -1)
    return np.clip(raw, 0, length - 1), (raw >= 0) & (raw < length)


def chunk_steps(t: int, horizon: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps of the action chunk starting at ``t`` (clamped into the episode) and which are padding: LeRobot's
    ``delta_timestamps`` convention (the last action repeats, flagged in ``action_is_pad``)."""
    raw = t + np.arange(horizon)
    return np.minimum(raw, length - 1), raw >= length
