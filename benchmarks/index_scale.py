"""The token index at corpus scale (issue #31): a synthetic index of 10 M clips (--quick: 1 M) from 1 M videos,
written by column; the time and memory to open it (checksums verified, as pre-training does), to read rows, and to
find every (history, future) pair.

    python benchmarks/index_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import first_sentence, quiet, save


def rss_mib() -> float:
    """Resident memory now (not the peak: writing the synthetic index costs more than reading it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--quick", action="store_true", help="1 M clips instead of 10 M")
    args = ap.parse_args()
    from vidpolicy.datasets.token_index import ClipIndex, index_problem, write_columns

    n = 1_000_000 if args.quick else 10_000_000
    videos, shard = n // 10, 4096
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        t = time.perf_counter()
        clip = np.tile(np.arange(10), videos)
        files = write_columns(root, {
            "shard": np.arange(n) // shard, "offset": np.arange(n) % shard, "source": np.repeat(np.arange(videos), 10),
            "clip": clip, "start": clip * 4, "start_frame": clip * 4, "fps": np.full(n, 30.0),
            "instruction": np.random.default_rng(0).integers(0, 1000, n),
            "shard_bytes": np.full(-(-n // shard), 1), "shard_sha256": np.full(-(-n // shard), "0" * 64)},
            {"source": [f"corpus/part{v // 1000:04d}/video{v:07d}.mp4" for v in range(videos)],
             "instruction": [f"instruction {k}" for k in range(1000)]})
        write_s = time.perf_counter() - t
        gc.collect()
        before = rss_mib()
        t = time.perf_counter()
        assert index_problem(root, files) is None
        verify_s = time.perf_counter() - t
        t = time.perf_counter()
        index = ClipIndex(root)
        open_s = time.perf_counter() - t
        open_rss = rss_mib() - before
        rng = np.random.default_rng(1)
        t = time.perf_counter()
        for i in rng.integers(0, n, 10_000):
            index.row(int(i))
        row_us = (time.perf_counter() - t) / 10_000 * 1e6
        t = time.perf_counter()
        pairs = index.pairs(8)
        pairs_s = time.perf_counter() - t
        save("index_scale_quick" if args.quick else "index_scale", {
            "clips": n, "videos": videos, "disk_mib": round(sum(f["bytes"] for f in files.values()) / 2**20, 1),
            "write_s": round(write_s, 2), "verify_checksums_s": round(verify_s, 2), "open_s": round(open_s, 4),
            "open_rss_growth_mib": round(open_rss, 1), "row_access_us": round(row_us, 1),
            "pairs": len(pairs), "pairs_s": round(pairs_s, 2),
            "rss_growth_with_pairs_mib": round(rss_mib() - before, 1)})


if __name__ == "__main__":
    main()
