"""The columnar clip index (datasets/token_index.py): it opens without per-clip Python objects, rows and string
tables round-trip, and (history, future) pairs match a brute-force search."""

from __future__ import annotations

import tracemalloc

import numpy as np

from vidpolicy.datasets.token_index import ClipIndex, ClipRows, write_clip_index, write_columns


def test_rows_round_trip_and_pairs_match_brute_force(tmp_path):
    # starts from -3: the padded first clips of `tokenize --every-step` (clips.ClipSpec.pad_start)
    rows = [[{"source": f"v{v}é.mp4", "clip": c, "start": 4 * c - 3, "start_frame": 4 * c + 1, "fps": 10.0,
              "instruction": "push" if v % 2 else "", "offset": 3 * (v % 2) + c} for v in range(2 * k, 2 * k + 2)
             for c in range(3)] for k in range(3)]  # 3 shards of 2 videos of 3 clips
    records = [{"npy_bytes": 100 + k, "npy_sha256": f"{k:064d}"} for k in range(3)]
    write_clip_index(tmp_path, zip(records, rows))
    index = ClipIndex(tmp_path)
    flat = [r for shard in rows for r in shard]
    got = ClipRows(index)
    assert len(got) == 18 and got[7] == {**flat[7], "shard": "shard-00001"}
    assert [r["source"] for r in got[:2]] == ["v0é.mp4", "v0é.mp4"] and index.shard_record(2)["npy_bytes"] == 102
    brute = [(i, j) for i, a in enumerate(flat) for j, b in enumerate(flat)
             if a["source"] == b["source"] and b["start"] - a["start"] == 8]
    assert [tuple(p) for p in index.pairs(8)] == brute and len(brute) == 6
    assert len(index.pairs(100)) == 0


def test_a_large_index_opens_in_constant_memory(tmp_path):
    n, videos = 400_000, 20_000
    rng = np.random.default_rng(0)
    per = n // videos
    columns = {"shard": np.repeat(np.arange(n // 1000), 1000), "offset": np.tile(np.arange(1000), n // 1000),
               "source": np.repeat(np.arange(videos), per), "clip": np.tile(np.arange(per), videos),
               "start": np.tile(np.arange(per) * 4, videos), "start_frame": np.tile(np.arange(per) * 4, videos),
               "fps": np.full(n, 30.0), "instruction": rng.integers(0, 50, n),
               "shard_bytes": np.full(n // 1000, 10), "shard_sha256": np.full(n // 1000, "0" * 64)}
    write_columns(tmp_path, columns, {"source": [f"video{v}.mp4" for v in range(videos)],
                                      "instruction": [f"task {k}" for k in range(50)]})
    tracemalloc.start()
    index = ClipIndex(tmp_path)
    row = index.row(n - 1)
    opened = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert row["source"] == f"video{videos - 1}.mp4" and row["clip"] == per - 1 and len(index) == n
    assert opened < 1 << 20, opened  # under 1 MiB of Python objects for 400k clips (a JSON list: ~200 MB)
    pairs = index.pairs(8)
    assert len(pairs) == videos * (per - 2) and np.all(index.column("start")[pairs[:, 1]] - 8
                                                          == index.column("start")[pairs[:, 0]])
