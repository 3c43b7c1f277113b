"""Token shards: layout, random access, resume after an interruption, two processes, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vidpolicy.tokenizer.tokenize as tokenize_module
from vidpolicy.datasets.manifest import read_manifest
from vidpolicy.datasets.tokens import TokenDataset
from vidpolicy.datasets.video import VideoError, VideoSource
from vidpolicy.tokenizer.config import TokenizeConfig
from vidpolicy.tokenizer.tokenize import tokenize
from _util import ROOT, free_port, run_cli, torchrun


def _index(path):
    return [(c["source"], c["clip"], c["start"]) for c in TokenDataset(path).rows]


def test_tokenize_writes_every_clip_once(tiny_tokenizer, video_dir, tmp_path):
    out = tmp_path / "tokens"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(out), videos=str(video_dir), files_per_shard=2,
                            num_workers=0))
    ds = TokenDataset(out)
    assert len(ds) == 16 and ds.codebook_size == 64 and ds.latent_shape == (1, 8, 8)
    keys = _index(out)
    assert len(set(keys)) == len(keys) == 16
    assert len(list((out / "shards").glob("*.npy"))) == 2
    t = ds.tokens(5)
    assert t.shape == (1, 8, 8) and t.dtype == np.int64 and t.max() < 64
    # one memory map open at a time: shards are reopened as needed, the tokens unchanged
    few = TokenDataset(out)
    few.MAX_OPEN_SHARDS = 1
    assert all(np.array_equal(few.tokens(i), ds.tokens(i)) for i in (0, 15, 1, 14, 0)) and len(few._arrays) == 1
    # pairs 8 frames apart exist only within a video
    for i, j in ds.pairs(8):
        assert ds.rows[i]["source"] == ds.rows[j]["source"] and ds.rows[j]["start"] - ds.rows[i]["start"] == 8
    # a rerun clears what a killed writer left half-written and keeps the index
    stale = out / "shards" / ".shard-00001.json.abc123.tmp.json"
    stale.write_text("{")
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(out), videos=str(video_dir), files_per_shard=2,
                            num_workers=0))
    assert not stale.exists() and _index(out) == keys


def test_decode_workers_give_the_inline_index_and_tokens(tiny_tokenizer, video_dir, tmp_path, monkeypatch):
    # two workers take alternate files and send 2-clip chunks interleaved, across the shard boundary; the shards
    # still hold the clips in input order, as decoding inline does
    monkeypatch.setattr(tokenize_module, "MAX_CLIPS_PER_ITEM", 2)
    cfg = dict(tokenizer=str(tiny_tokenizer), videos=str(video_dir), files_per_shard=3)  # shards of 3 files and 1
    tokenize(TokenizeConfig(out=str(tmp_path / "inline"), num_workers=0, **cfg))
    tokenize(TokenizeConfig(out=str(tmp_path / "workers"), num_workers=2, **cfg))
    a, b = TokenDataset(tmp_path / "inline"), TokenDataset(tmp_path / "workers")
    assert _index(tmp_path / "workers") == _index(tmp_path / "inline") and len(a) == 16
    assert [r["clip"] for r in a.rows[:3]] == [0, 1, 2] and a.rows[15]["shard"] == "shard-00001"
    assert all(np.array_equal(a.tokens(i), b.tokens(i)) for i in range(len(a)))


def test_a_file_failing_mid_way_is_skipped_whole(tiny_tokenizer, video_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tokenize_module, "MAX_CLIPS_PER_ITEM", 2)
    real_read = VideoSource.read

    def read(self, indices):  # clip_2.mp4's first chunk decodes, its second does not
        if self.path.name == "clip_2.mp4" and min(indices) > 0:
            raise VideoError("decode failed (corrupt packet)")
        return real_read(self, indices)

    monkeypatch.setattr(VideoSource, "read", read)
    out = tmp_path / "t"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(out), videos=str(video_dir), num_workers=0))
    rows = {Path(r.file).name: r for r in read_manifest(out / "manifest.csv")}
    assert rows["clip_2.mp4"].status == "skipped" and "corrupt packet" in rows["clip_2.mp4"].reason
    assert rows["clip_1.mp4"].status == "ok"
    sources = [Path(c[0]).name for c in _index(out)]
    assert "clip_2.mp4" not in sources and len(sources) == 16 - 5


def test_interrupted_run_resumes_to_the_same_index(tiny_tokenizer, video_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    cfg = dict(tokenizer=str(tiny_tokenizer), videos=str(video_dir), files_per_shard=1, num_workers=0)
    tokenize(TokenizeConfig(out=str(full), **cfg))
    tokenize(TokenizeConfig(out=str(part), **cfg))
    # simulate a kill: drop the index, one complete shard, and leave a torn temp file behind
    (part / "index.json").unlink()
    (part / "shards" / "shard-00002.json").unlink()
    (part / "shards" / ".shard-00002.npy.tmp.npy").write_bytes(b"torn")
    before = (part / "shards" / "shard-00000.npy").stat().st_mtime_ns
    tokenize(TokenizeConfig(out=str(part), **cfg))
    assert (part / "shards" / "shard-00000.npy").stat().st_mtime_ns == before  # complete shards are skipped
    assert _index(part) == _index(full)
    a, b = TokenDataset(full), TokenDataset(part)
    assert all(np.array_equal(a.tokens(i), b.tokens(i)) for i in range(len(a)))


def test_two_processes_cover_every_clip_exactly_once(tiny_tokenizer, video_dir, tmp_path):
    out = tmp_path / "ddp"
    r = torchrun("-m", "vidpolicy", "tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir),
                 "--out", str(out), "--files-per-shard", "1", "--num-workers", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    single = tmp_path / "single"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(single), videos=str(video_dir),
                            files_per_shard=1, num_workers=0))
    assert sorted(_index(out)) == sorted(_index(single))
    assert len(set(_index(out))) == 16


def test_two_nodes_of_two_processes_cover_every_clip_exactly_once(tiny_tokenizer, video_dir, tmp_path):
    """Two torchrun launches as two nodes (--nnodes 2, one per --node_rank) of 2 processes each, on this machine."""
    out, port = tmp_path / "nodes", str(free_port())
    exe = Path(sys.executable).with_name("torchrun")
    nodes = [subprocess.Popen([str(exe), "--nnodes", "2", "--nproc_per_node", "2", "--node_rank", str(k),
                               "--master_addr", "127.0.0.1", "--master_port", port, "-m", "vidpolicy", "tokenize",
                               "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out", str(out),
                               "--files-per-shard", "1", "--num-workers", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for k in (0, 1)]
    errs = [p.communicate(timeout=600)[1] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], errs[0][-1500:] + errs[1][-1500:]
    single = tmp_path / "single"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(single), videos=str(video_dir),
                            files_per_shard=1, num_workers=0))
    assert sorted(_index(out)) == sorted(_index(single)) and len(set(_index(out))) == 16


@pytest.mark.parametrize("beside", [False, True], ids=["--manifest", "videos/manifest.csv"])
def test_captions_from_manifest(tiny_tokenizer, video_dir, tmp_path, beside):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in (0, 1):
        shutil.copy(video_dir / f"clip_{k}.mp4", videos)
    csv = videos / "manifest.csv" if beside else tmp_path / "captions.csv"
    csv.write_text("file,caption\nclip_1.mp4,push the red block\n")
    out = tmp_path / "cap"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(out), videos=str(videos),
                            manifest=None if beside else str(csv), num_workers=0))
    rows = TokenDataset(out).rows
    assert {r["instruction"] for r in rows if r["source"].endswith("clip_1.mp4")} == {"push the red block"}
    assert {r["instruction"] for r in rows if r["source"].endswith("clip_0.mp4")} == {""}
    assert json.loads((out / "config.json").read_text())["manifest"] == str(csv)  # what was read is on record


def test_no_readable_video_exits_2(tiny_tokenizer, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"not a video")
    r = run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no readable video" in last and str(tmp_path / "o") in last


def test_different_tokenizer_refused_without_overwrite(tiny_tokenizer, video_dir, tmp_path):
    out = tmp_path / "t"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(out), videos=str(video_dir), num_workers=0))
    r = run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out", str(out),
                "--files-per-shard", "3")
    assert r.returncode == 2 and "files_per_shard" in r.stderr and "--overwrite" in r.stderr
    shutil.rmtree(out)


def test_encoder_threads_leave_the_decoders_their_cores(monkeypatch):
    import torch

    from vidpolicy.common.threads import torch_threads
    from vidpolicy.tokenizer.tokenize import encoder_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert encoder_threads(3) == 5
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes on this machine: 4 cores each
    assert encoder_threads(3) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's setting wins
    assert encoder_threads(3) is None
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):  # the count comes back, also after an error
        with torch_threads(before + 1):
            assert torch.get_num_threads() == before + 1
            raise RuntimeError
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
