"""Faults: kill -9 in the middle of long commands, a full disk, odd videos. Reruns must finish the job."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _util import ROOT, free_port, moving_square, run_cli


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidpolicy", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-1500:]}"
        assert time.time() - t0 < timeout, "condition never met"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vidpolicy.common.media import write_mp4

    d = tmp_path_factory.mktemp("corpus")
    for k in range(24):
        write_mp4(d / f"v{k:02d}.mp4", moving_square(16, 40, 40, seed=k), fps=10)
    return d


def _index(path: Path):
    from vidpolicy.datasets.tokens import TokenDataset

    return [(c["source"], c["clip"]) for c in TokenDataset(path).rows]


def test_kill_tokenize_then_rerun_covers_every_clip_once(tiny_tokenizer, corpus, tmp_path):
    args = ["tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(corpus), "--files-per-shard", "1",
            "--num-workers", "0"]
    out = tmp_path / "killed"
    proc = _start(*args, "--out", str(out))
    _kill_when(proc, lambda: (out / "shards" / "shard-00003.json").exists())
    assert not (out / "index.json").exists()
    r = run_cli(*args, "--out", str(out))
    assert r.returncode == 0, r.stderr[-1500:]
    r = run_cli(*args, "--out", str(tmp_path / "clean"))
    assert r.returncode == 0
    keys = _index(out)
    assert keys == _index(tmp_path / "clean") and len(set(keys)) == len(keys) == 24 * 4
    assert not list((out / "shards").glob(".*tmp*"))


PRE = ["--width", "64", "--depth", "2", "--encoder-depth", "1", "--heads", "2", "--gap", "4", "--batch-size", "16",
       "--save-every", "5", "--log-every", "5", "--warmup-steps", "2", "--ema-start", "10", "--ema-every", "1",
       "--mixed-precision", "no", "--max-steps", "60"]


def test_kill_pretrain_then_rerun_resumes_to_the_same_weights(tiny_tokenizer, video_dir, tmp_path):
    from vidpolicy.common.pretrained import load_model
    from vidpolicy.pretrain.model import FutureDenoiser

    tokens = tmp_path / "tokens"
    assert run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out",
                   str(tokens), "--num-workers", "0").returncode == 0
    args = ["pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), *PRE]
    out = tmp_path / "killed"
    proc = _start(*args, "--out", str(out))
    _kill_when(proc, lambda: (out / "checkpoints" / "step-0000010").exists())
    assert not (out / "model").exists()
    r = run_cli(*args, "--out", str(out))
    assert r.returncode == 0, r.stderr[-1500:]
    assert "resumed from" in r.stdout + r.stderr
    r = run_cli(*args, "--out", str(tmp_path / "clean"))
    assert r.returncode == 0
    a, b = load_model(FutureDenoiser, out), load_model(FutureDenoiser, tmp_path / "clean")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    assert not list((out / "checkpoints").glob(".*"))


def _rank_pid(rank: int, out: Path) -> int:
    """The pid of the torchrun worker with ``rank`` whose command line names ``out``."""
    for d in Path("/proc").iterdir():
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and str(out).encode() in cmd and b"torchrun" not in cmd:
            return int(d.name)
    raise AssertionError(f"no rank {rank} process for {out}")


def test_a_hung_rank_ends_the_job_within_a_minute_and_the_rerun_resumes(tiny_tokenizer, video_dir, tmp_path):
    tokens = tmp_path / "tokens"
    assert run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out",
                   str(tokens), "--num-workers", "0").returncode == 0
    out = tmp_path / "ddp"
    args = ["pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--out", str(out), *PRE]
    exe = Path(sys.executable).with_name("torchrun")
    proc = subprocess.Popen([str(exe), "--nproc_per_node", "2", "--master_port", str(free_port()),
                             "-m", "vidpolicy", *args, "--max-steps", "100000"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "VIDPOLICY_HEARTBEAT_STALE_S": "4"})
    try:
        t0 = time.time()
        while not (out / "checkpoints" / "step-0000005").exists():
            assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        hung = _rank_pid(1, out)
        os.kill(hung, signal.SIGSTOP)  # alive but silent: the other rank would wait in its next all-reduce
        t0 = time.time()
        _, err = proc.communicate(timeout=120)
        assert time.time() - t0 < 60 and proc.returncode != 0
        assert err.count("rank 1 has not answered") == 1, err[-2000:]
    finally:
        try:  # the stopped rank, if torchrun has not ended it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    r = run_cli(*args, "--max-steps", "10", "--batch-size", "32")  # one process now, the same global batch
    assert r.returncode == 0 and "resumed from" in r.stdout + r.stderr, r.stderr[-1500:]
    assert not list((out / "checkpoints").glob(".*"))


def test_disk_full_while_writing_shards_keeps_earlier_output(tiny_tokenizer, corpus, tmp_path, monkeypatch, capsys):
    import vidpolicy.common.io as io
    from vidpolicy import cli

    real_fsync, calls = io.os.fsync, {"n": 0}

    def failing_fsync(fd):  # the shard's bytes reach the disk at fsync: a full disk fails there
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", failing_fsync)
    out = tmp_path / "full"
    code = cli.main(["tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(corpus), "--out", str(out),
                     "--files-per-shard", "4", "--num-workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 4 and "No space left on device" in err and "shard-00002.npy" in err
    assert (out / "shards" / "shard-00000.json").exists() and (out / "shards" / "shard-00001.json").exists()
    assert np.load(out / "shards" / "shard-00000.npy").shape[0] == 16
    assert not list((out / "shards").glob(".*")) and not (out / "index.json").exists()
    monkeypatch.setattr(io.os, "fsync", real_fsync)
    assert cli.main(["tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(corpus), "--out", str(out),
                     "--files-per-shard", "4", "--num-workers", "0"]) == 0
    assert len(_index(out)) == 96


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from vidpolicy.common.trainer import LoopSettings, Trainer, list_checkpoints, make_accelerator

    acc = make_accelerator("no", 1)
    model = torch.nn.Linear(2, 1)
    tr = Trainer(tmp_path, LoopSettings(max_steps=6, save_every=2, log_every=1), acc)
    tr.prepare(model, torch.optim.SGD(model.parameters(), 0.1))
    real = acc.save_state

    def save_state(path, *a, **k):
        if "step-0000004" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(acc, "save_state", save_state)
    batches = iter(lambda: torch.ones(4, 2), None)
    with pytest.raises(OSError):
        tr.fit(batches, lambda b: (tr.model(b).mean(), {"loss": 0.0}))
    assert [c.name for c in list_checkpoints(tmp_path)] == ["step-0000002"]
    assert not list((tmp_path / "checkpoints").glob(".*"))
    # a save torn by a kill -9 (no exception handler ran) is left behind: the next run removes it, never loads it
    torn = tmp_path / "checkpoints" / ".step-0000004.tmp"
    torn.mkdir()
    (torn / "trainer_state.json").write_text('{"step": 4}')
    tr = Trainer(tmp_path, LoopSettings(max_steps=6, save_every=2, log_every=1), make_accelerator("no", 1))
    tr.prepare(model, torch.optim.SGD(model.parameters(), 0.1))
    assert tr.resume() == 2 and not torn.exists()


def test_variable_frame_rate_video_is_read(tmp_path):
    import av
    from fractions import Fraction

    from vidpolicy.datasets.clips import ClipSpec, VideoClipDataset

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, frame in enumerate(moving_square(20, 48, 48)):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            pts += 33 if i % 2 else 80  # alternating 30 and 12.5 fps
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    ds = VideoClipDataset([path], ClipSpec(4, 32))
    assert ds.rows[0].status == "ok" and len(ds) >= 4
    assert ds[len(ds) - 1].shape == (3, 4, 32, 32)
