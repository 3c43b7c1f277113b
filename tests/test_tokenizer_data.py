"""What the tokenizer trains on: shifted clips at every start offset, squares along the longer side, random flips
and squares, small crops first."""

from __future__ import annotations

import torch


def test_shifted_clips_cover_every_start_offset(tmp_path):
    import numpy as np

    from vidpolicy.common.media import write_mp4
    from vidpolicy.datasets.clips import ClipSpec, ShiftedClips, VideoClipDataset

    frames = np.zeros((10, 32, 32, 3), np.uint8)
    for k in range(10):
        frames[k, :, :, :] = 20 * k  # frame k has brightness 20k
    write_mp4(tmp_path / "ramp.mp4", frames, fps=10)
    ds = VideoClipDataset([tmp_path / "ramp.mp4"], ClipSpec(4, 32))
    assert len(ds) == 2  # starts 0 and 4
    view = ShiftedClips(ds, [0, 1], shifts=4)
    assert len(view) == 8
    firsts = [round(float((view[j][:, 0].mean() + 0.5) * 255 / 20)) for j in range(8)]
    # clip 0 at shifts 0..3 starts at frames 0..3; clip 1 (start 4) fits shifts 0..2, shift 3 falls back to 4
    assert firsts == [0, 4, 1, 5, 2, 6, 3, 4]


def test_training_squares_spread_along_the_longer_side(tmp_path):
    """``crops`` squares cut from whole resized frames: left, centre and right thirds of a horizontal ramp (and top
    to bottom of a portrait one); the centre square is exactly what evaluation and tokenize see."""
    import numpy as np

    from vidpolicy.common.media import write_mp4
    from vidpolicy.datasets.clips import ClipSpec, ShiftedClips, VideoClipDataset

    wide = np.zeros((8, 64, 192, 3), np.uint8)
    wide[..., 0] = np.arange(192)[None, None, :] * 255 // 191  # red grows left to right
    write_mp4(tmp_path / "wide.mp4", wide, fps=10)
    write_mp4(tmp_path / "tall.mp4", wide.transpose(0, 2, 1, 3).copy(), fps=10)  # red grows top to bottom
    for name in ("wide.mp4", "tall.mp4"):
        square = VideoClipDataset([tmp_path / name], ClipSpec(4, 32))
        whole = VideoClipDataset([tmp_path / name], ClipSpec(4, 32), whole_frames=True)
        assert torch.equal(whole[1], square[1])  # the centre square, bit for bit
        view = ShiftedClips(whole, [0, 1], shifts=2, crops=3)
        assert len(view) == 2 * 2 * 3
        red = [float(view[j][0].mean()) + 0.5 for j in (0, 4, 8)]  # clip 0, shift 0, squares 0, 1, 2
        assert red[0] < 0.25 and abs(red[1] - 0.5) < 0.05 and red[2] > 0.75
        assert torch.equal(view[4], square[0])
    # over centre squares (no whole frames) crops has nothing to choose from
    assert len(ShiftedClips(square, [0, 1], shifts=2, crops=3)) == 4


def test_random_flips_rearrange_each_clip_and_pick_half_per_symmetry():
    import pytest

    from vidpolicy.datasets.augment import check_flips, random_flips

    x = torch.rand(400, 3, 4, 6, 6)
    y = random_flips(x, "ht", torch.Generator().manual_seed(0))
    variants = {"none": lambda v: v, "h": lambda v: v.flip(-1), "t": lambda v: v.flip(-3),
                "ht": lambda v: v.flip(-1).flip(-3)}
    seen = [next(k for k, f in variants.items() if torch.equal(y[i], f(x[i]))) for i in range(len(x))]
    mirrored, reversed_ = sum("h" in s for s in seen) / len(x), sum("t" in s for s in seen) / len(x)
    assert 0.42 < mirrored < 0.58 and 0.42 < reversed_ < 0.58
    # the left-right draws of a seed do not depend on the other symmetries named (runs stay comparable)
    only_h = random_flips(x, "h", torch.Generator().manual_seed(0))
    assert all(torch.equal(only_h[i], x[i].flip(-1) if "h" in s else x[i]) for i, s in enumerate(seen))
    d = random_flips(x, "d", torch.Generator().manual_seed(1))
    swapped = sum(torch.equal(d[i], x[i].transpose(-1, -2)) and not torch.equal(d[i], x[i]) for i in range(len(x)))
    assert 0.42 < swapped / len(x) < 0.58
    assert torch.equal(random_flips(x, "", torch.Generator()), x)
    for bad in ("hx", "hh"):
        with pytest.raises(ValueError, match="distinct letters of htvd"):
            check_flips(bad)
    with pytest.raises(ValueError, match="square"):
        random_flips(torch.rand(2, 3, 4, 6, 8), "d", torch.Generator())


def test_random_squares_cover_every_place_and_follow_the_generator():
    import pytest

    from vidpolicy.datasets.augment import random_square

    x = torch.arange(2 * 3 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 3, 4, 6, 8)
    places = set()
    for seed in range(300):
        y = random_square(x, 4, torch.Generator().manual_seed(seed))
        assert y.shape == (2, 3, 4, 4, 4) and y.is_contiguous()
        top, left = divmod(int(y[0, 0, 0, 0, 0]), 8)  # each pixel's value names its place
        assert torch.equal(y, x[..., top : top + 4, left : left + 4])
        places.add((top, left))
        assert torch.equal(random_square(x, 4, torch.Generator().manual_seed(seed)), y)
    assert places == {(t, w) for t in range(3) for w in range(5)}
    with pytest.raises(ValueError, match="1..6"):
        random_square(x, 7, torch.Generator())


def test_small_crops_train_the_first_steps_on_squares_then_whole_clips(video_dir, tmp_path, monkeypatch):
    import pytest

    from vidpolicy.common.errors import VidpolicyError
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.model import VideoTokenizer
    from vidpolicy.tokenizer.train import train_tokenizer

    seen, forward = [], VideoTokenizer.forward
    monkeypatch.setattr(VideoTokenizer, "forward", lambda self, v: seen.append(tuple(v.shape[-2:])) or forward(self, v))
    cfg = TokenizerTrainConfig(videos=str(video_dir), out=str(tmp_path / "run"), size=32, codebook_size=64,
                               hidden_channels=32, res_layers=1, max_steps=6, batch_size=2, save_every=100,
                               eval_every=0, num_workers=0, mixed_precision="no", small_crops=0.5, small_crop_size=16)
    train_tokenizer(cfg)
    assert seen == [(16, 16)] * 3 + [(32, 32)] * 3
    for bad, match in (({"small_crops": 1.5}, "--small-crops"), ({"small_crop_size": 18}, "multiple")):
        with pytest.raises(VidpolicyError, match=match):
            train_tokenizer(TokenizerTrainConfig(**{**cfg.__dict__, **bad, "out": str(tmp_path / "bad")}))
    assert not (tmp_path / "bad").exists()
