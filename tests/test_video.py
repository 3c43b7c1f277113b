"""Video reading: clip shapes, resampling, bad files skipped with reasons, AV1 through the fallback."""

from __future__ import annotations


import numpy as np
import pytest

from vidpolicy.datasets.clips import ClipSpec, VideoClipDataset, to_uint8, to_unit_range
from vidpolicy.datasets.manifest import summarize
from vidpolicy.datasets.video import VideoSource, find_videos, resample_indices
from _util import moving_square


def test_find_videos_recursive_and_sorted(video_dir):
    files = find_videos(video_dir)
    assert [f.name for f in files] == ["clip_0.mp4", "clip_1.mp4", "clip_2.mp4", "nested clip é.mp4"]


def test_clip_shapes_dtypes_and_range(video_dir):
    ds = VideoClipDataset(find_videos(video_dir), ClipSpec(frames=4, size=32))
    # 12, 16, 20 and 16 frames -> 3 + 4 + 5 + 4 non-overlapping clips
    assert len(ds) == 16
    x = ds[0]
    assert x.shape == (3, 4, 32, 32) and x.dtype.is_floating_point
    assert -0.5 <= float(x.min()) and float(x.max()) <= 0.5
    assert np.array_equal(to_uint8(to_unit_range(ds.frames(0))), ds.frames(0))


def test_decoded_frames_match_source(tmp_path):
    from vidpolicy.common.media import psnr, write_mp4

    frames = moving_square(8, 32, 32)
    write_mp4(tmp_path / "a.mp4", frames, fps=10)
    got = VideoSource(tmp_path / "a.mp4", 32).read(range(8))
    assert got.shape == (8, 32, 32, 3) and got.dtype == np.uint8
    assert psnr(got, frames) > 30  # H.264 at crf 18


def test_resample_indices():
    assert resample_indices(10, 30.0, None).tolist() == list(range(10))
    assert resample_indices(31, 30.0, 10.0).tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert resample_indices(5, 10.0, 30.0).tolist() == [0, 1, 2, 3, 4]  # never upsample


def _bad_files(tmp_path, good_bytes: bytes) -> dict[str, str]:
    from vidpolicy.common.media import write_mp4
    import PIL.Image

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "truncated.mp4").write_bytes(good_bytes[: len(good_bytes) // 3])
    PIL.Image.fromarray(moving_square(1)[0]).save(tmp_path / "image.png")
    (tmp_path / "image.png").rename(tmp_path / "image.mp4")
    write_mp4(tmp_path / "one_frame.mp4", moving_square(1), fps=10)
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    return {"empty.mp4": "empty file", "corrupt.mp4": "cannot decode", "image.mp4": "", "one_frame.mp4": "too short",
            "notes.mp4": "cannot decode"}


def test_bad_files_are_skipped_with_reasons(tmp_path, video_dir):
    good = (video_dir / "clip_0.mp4").read_bytes()
    expected = _bad_files(tmp_path, good)
    ds = VideoClipDataset(find_videos(tmp_path), ClipSpec(frames=4, size=32))
    rows = {r.file.split("/")[-1]: r for r in ds.rows}
    assert len(rows) == 6
    for name, reason in expected.items():
        assert rows[name].status == "skipped", name
        assert reason in rows[name].reason
    # a truncated file is either read (what is left of it) or skipped, never a crash
    assert rows["truncated.mp4"].status in ("ok", "skipped")
    n_ok = sum(r.status == "ok" for r in ds.rows)
    assert summarize(ds.rows).startswith(f"6 files: {n_ok} ok")
    for i in range(len(ds)):
        assert ds[i].shape == (3, 4, 32, 32)


def test_av1_goes_through_the_fallback(tmp_path):
    import av

    if not any(c in av.codecs_available for c in ("libsvtav1", "libaom-av1")):
        pytest.skip("no AV1 encoder in this PyAV build")
    codec = "libsvtav1" if "libsvtav1" in av.codecs_available else "libaom-av1"
    frames = moving_square(8, 64, 64)
    path = tmp_path / "av1.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    src = VideoSource(path, 32)
    assert src.info.backend in ("decord", "torchcodec")
    assert src.read([0, 1, 2, 3]).shape == (4, 32, 32, 3)


def test_portrait_and_odd_sizes(tmp_path):
    from vidpolicy.common.media import write_mp4

    write_mp4(tmp_path / "portrait.mp4", moving_square(8, 70, 34), fps=10)
    src = VideoSource(tmp_path / "portrait.mp4", 32)
    assert src.read([0, 7]).shape == (2, 32, 32, 3)


def test_audio_only_file_is_skipped(tmp_path):
    import av

    path = tmp_path / "speech.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        t = np.arange(1024) / 16000
        for k in range(20):
            frame = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * (t + k * 1024 / 16000)))
                                               .astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    ds = VideoClipDataset([path], ClipSpec(frames=4, size=32))
    assert len(ds) == 0 and ds.rows[0].status == "skipped" and ds.rows[0].reason


def test_ssim_equals_the_2d_gaussian_window_and_falls_with_noise():
    """The separable shifted-sum SSIM equals SSIM written out with the 11x11 Gaussian window as one 2D convolution."""
    import torch
    import torch.nn.functional as F

    from vidpolicy.common.media import ssim

    def windowed(a, b):
        x, y = (torch.from_numpy(v).double().permute(0, 3, 1, 2).reshape(-1, 1, *v.shape[1:3]) for v in (a, b))
        g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / 4.5)
        w = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
        mx, my = F.conv2d(x, w), F.conv2d(y, w)
        sxx, syy, sxy = (F.conv2d(u * v, w) - m * n for u, v, m, n in ((x, x, mx, mx), (y, y, my, my), (x, y, mx, my)))
        c1, c2 = 6.5025, 58.5225
        return float((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())

    rng = np.random.default_rng(0)
    a = (np.add.outer(np.arange(20), np.arange(27))[None, :, :, None] * 4 + rng.integers(0, 60, (2, 20, 27, 3)))
    a = a.clip(0, 255).astype(np.uint8)
    scores = []
    for sigma in (0, 5, 20, 60):
        b = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        scores.append(ssim(a, b))
        assert scores[-1] == pytest.approx(windowed(a, b), abs=1e-12)
    assert scores[0] == 1.0 and all(s > t for s, t in zip(scores, scores[1:]))
