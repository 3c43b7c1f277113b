"""Faults, part two: no process outlives a killed run, damaged token shards are refused, one command per run dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.runlock import lock_path, lock_run_dir, releases_run_locks
from vidpolicy.datasets.tokens import TokenDataset
from _util import ROOT, moving_square, run_cli

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="flock / process tree as on Linux")


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidpolicy", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """Videos long enough that one decoded piece (40 clips, ~490 KB) overfills a pipe: a worker whose parent dies
    is left blocked writing it."""
    from vidpolicy.common.media import write_mp4

    d = tmp_path_factory.mktemp("long")
    for k in range(12):
        write_mp4(d / f"v{k:02d}.mp4", moving_square(160, 40, 40, seed=k), fps=10)
    return d


@linux_only
def test_sigkill_of_tokenize_leaves_no_worker_alive(tiny_tokenizer, long_videos, tmp_path):
    out = tmp_path / "t"
    proc = _start("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(long_videos), "--out", str(out),
                  "--files-per-shard", "1", "--num-workers", "2", "--batch-size", "4")
    parent = psutil.Process(proc.pid)
    t0 = time.time()
    while len(parent.children(recursive=True)) < 2 or not (out / "shards" / "shard-00000.json").exists():
        assert proc.poll() is None, proc.stderr.read()[-1500:]
        assert time.time() - t0 < 120, "workers never started"
        time.sleep(0.05)
    tree = parent.children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as an OOM killer does
    proc.wait()
    t0 = time.time()
    while _alive(tree) and time.time() - t0 < 10:
        time.sleep(0.1)
    left = _alive(tree)
    for p in left:
        p.kill()
    assert not left, f"{len(left)} of {len(tree)} worker(s) alive 10 s after their parent was killed"


@pytest.fixture
def tokens(tiny_tokenizer, video_dir, tmp_path) -> Path:
    out = tmp_path / "tokens"
    r = run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out", str(out),
                "--files-per-shard", "2", "--num-workers", "0")
    assert r.returncode == 0, r.stderr[-1500:]
    return out


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_shard_is_refused_by_name_and_verify_repairs_it(tiny_tokenizer, video_dir, tokens):
    before = [TokenDataset(tokens).tokens(i) for i in range(len(TokenDataset(tokens)))]
    shard = tokens / "shards" / "shard-00001.npy"
    _flip_byte(shard, shard.stat().st_size - 3)  # a token, not the header: np.load alone would not notice
    ds = TokenDataset(tokens)
    row = next(i for i, r in enumerate(ds.rows) if r["shard"] == "shard-00001")
    with pytest.raises(VidpolicyError, match=r"shard-00001\.npy: checksum mismatch.*--verify"):
        ds.tokens(row)
    assert np.array_equal(ds.tokens(0), before[0])  # the intact shard still reads
    r = run_cli("pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--out",
                str(tokens.parent / "pre"), "--max-steps", "1", "--width", "32", "--depth", "1", "--heads", "2",
                "--encoder-depth", "1", "--gap", "4")
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode == 2 and len(errors) == 1 and "shard-00001.npy" in errors[0], r.stderr[-1500:]

    r = run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out", str(tokens),
                "--files-per-shard", "2", "--num-workers", "0", "--verify")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "shard-00001.npy: checksum mismatch" in r.stderr and "shard-00000" not in r.stderr
    ds = TokenDataset(tokens)
    assert all(np.array_equal(ds.tokens(i), t) for i, t in enumerate(before))


def test_a_truncated_shard_and_an_edited_index_are_refused(tokens):
    shard = tokens / "shards" / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(VidpolicyError, match=r"shard-00000\.npy: \d+ bytes, written as \d+"):
        TokenDataset(tokens).tokens(0)
    index = tokens / "index.json"
    text = index.read_text()
    index.write_text(text.replace('"num_shards": 2', '"num_shards": 3', 1))
    with pytest.raises(VidpolicyError, match=r"index\.json: checksum mismatch"):
        TokenDataset(tokens)
    index.write_text(text)
    _flip_byte(tokens / "index" / "offset.npy", (tokens / "index" / "offset.npy").stat().st_size - 2)
    with pytest.raises(VidpolicyError, match=r"index: offset\.npy damaged"):
        TokenDataset(tokens)


def test_a_damaged_shard_json_makes_the_shard_count_as_unwritten(tokens):
    from vidpolicy.datasets.tokens import TokenShardWriter

    w = TokenShardWriter(tokens, 0)
    assert w.complete() and w.problem() is None
    w.json.write_text(w.json.read_text().replace('"clip": 0', '"clip": 7', 1))
    assert not w.complete()  # so a rerun of tokenize writes it again


@linux_only
def test_a_second_command_on_a_locked_directory_exits_2_naming_the_holder(tiny_tokenizer, video_dir, tmp_path):
    out = tmp_path / "busy"

    @releases_run_locks
    def hold_and_run():
        lock_run_dir(out)
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
        return run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out",
                       str(out), "--num-workers", "0")

    r = hold_and_run()
    assert r.returncode == 2 and f"in use by pid {os.getpid()}" in r.stderr, r.stderr[-1500:]
    assert not (out / "config.json").exists()  # refused before writing anything
    assert lock_path(out).read_text() == ""  # released, emptied
    assert run_cli("tokenize", "--tokenizer", str(tiny_tokenizer), "--videos", str(video_dir), "--out", str(out),
                   "--num-workers", "0").returncode == 0


@linux_only
def test_a_killed_pretrain_holds_its_directory_until_it_dies_then_is_taken_over(tokens, tiny_tokenizer, tmp_path):
    out = tmp_path / "pre"
    args = ["pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--out", str(out), "--width",
            "32", "--depth", "1", "--heads", "2", "--encoder-depth", "1", "--gap", "4", "--batch-size", "4",
            "--mixed-precision", "no"]
    first = _start(*args, "--max-steps", "100000")
    t0 = time.time()
    while not (out / "config.json").exists():
        assert first.poll() is None, first.stderr.read()[-1500:]
        assert time.time() - t0 < 120
        time.sleep(0.05)
    r = run_cli(*args, "--max-steps", "100000")
    assert r.returncode == 2 and f"in use by pid {first.pid}" in r.stderr, r.stderr[-1500:]
    assert json.loads(lock_path(out).read_text())["pid"] == first.pid
    first.kill()
    first.wait()
    r = run_cli(*args, "--max-steps", "2", "--overwrite")
    assert r.returncode == 0, r.stderr[-1500:]
    assert f"taking over the lock of pid {first.pid}" in r.stderr
    assert (out / "model").exists() and lock_path(out).read_text() == ""


def test_a_token_directory_of_another_format_is_refused_naming_both(tokens):
    from vidpolicy.datasets.tokens import write_index

    index = json.loads((tokens / "index.json").read_text())
    write_index(tokens / "index.json", {**index, "format_version": 1})
    with pytest.raises(VidpolicyError, match=r"index\.json: written by vidpolicy .* \(tokens format 1\); .* reads "
                                             r"tokens format 3: tokenize again"):
        TokenDataset(tokens)


@linux_only
def test_collect_locks_beside_the_dataset_it_lets_lerobot_create(tmp_path):
    out = tmp_path / "demos"

    @releases_run_locks
    def held():
        lock_run_dir(out, beside=True)
        return run_cli("collect", "--tasks", "reach", "--episodes", "1", "--out", str(out))

    r = held()
    assert r.returncode == 2 and f"in use by pid {os.getpid()}" in r.stderr and not out.exists(), r.stderr[-1500:]
    assert lock_path(out, beside=True) == tmp_path / ".demos.lock"


@linux_only
def test_kill_9_during_collect_leaves_a_dataset_the_rerun_completes_as_if_never_stopped(tmp_path):
    """Episodes go into a copy swapped in whole after each pass (1 s here): a kill -9 mid-pass keeps the last pass's
    dataset readable, and the rerun records the same episodes an uninterrupted run does."""
    from vidpolicy.datasets.robot import RobotEpisodes

    args = ["collect", "--tasks", "reach,push", "--episodes", "3", "--size", "32"]
    env = {**os.environ, "VIDPOLICY_COLLECT_PASS_S": "1"}
    assert run_cli(*args, "--out", str(tmp_path / "whole"), env=env).returncode == 0
    cut, side = tmp_path / "cut", tmp_path / "cut" / "meta" / "vidpolicy_collect.json"
    proc = subprocess.Popen([sys.executable, "-m", "vidpolicy", *args, "--out", str(cut)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not side.exists():  # the first pass is in place
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.05)
    time.sleep(0.5)  # into the next pass
    proc.kill()
    proc.wait()
    kept = len(json.loads(side.read_text())["episodes"])
    assert 0 < kept < 6 and len(RobotEpisodes(cut, size=32)) == kept  # the last pass, readable as it stands
    assert run_cli(*args, "--out", str(cut), env=env).returncode == 0
    a, b = RobotEpisodes(tmp_path / "whole", size=32), RobotEpisodes(cut, size=32)
    assert [e.task for e in a.episodes] == [e.task for e in b.episodes] and len(a) == 6
    for i in range(len(a)):
        assert np.array_equal(a.actions(i), b.actions(i))
    assert not list(tmp_path.glob(".cut.*.tmp"))  # the killed pass's copy is gone
