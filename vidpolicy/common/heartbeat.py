"""A multi-process job ends within about a minute when one of its processes stops answering.

A process killed outright is seen by torchrun, which ends the others. A process that hangs (stopped, swapped out,
stuck in a driver) is not: the others wait in their next collective for the backend's timeout (30 minutes and
more). So each process of a job beats in ``<out>/.heartbeat/rank-<r>`` (a counter, written every few seconds by a
thread) and watches the others' counters; one that has not moved for ``stale`` seconds (by this process's own
clock, so skewed clocks across nodes do not matter) is named in one line, and this process exits with code 3,
which makes torchrun end the job. Rerunning the same command resumes from the last complete checkpoint.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

STALE_S = float(os.environ.get("VIDPOLICY_HEARTBEAT_STALE_S", "45"))
EXIT_CODE = 3


class Heartbeat:
    """``job``: the same for every process of this job and new for each launch (files of an earlier launch that
    still lie there are not mistaken for a silent process of this one)."""

    def __init__(self, out: Path, rank: int, world: int, job: str, every: float | None = None,
                 stale: float = STALE_S):
        self.dir, self.rank, self.world, self.job = Path(out) / ".heartbeat", rank, world, job
        self.every, self.stale = every or max(0.2, stale / 9), stale
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidpolicy-heartbeat", daemon=True)
        self._beats = 0

    def _path(self, rank: int) -> Path:
        return self.dir / f"rank-{rank}"

    def _write(self, text: str) -> None:
        tmp = self._path(self.rank).with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self._path(self.rank))

    def _read(self, rank: int) -> str | None:
        try:
            return self._path(rank).read_text()
        except OSError:
            return None

    def start(self) -> "Heartbeat":
        if self.world > 1:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write(f"{self.job} 0")
            self._thread.start()
        return self

    def stop(self) -> None:
        """This process is done: the others stop watching it (its last phase may end long before theirs)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._write(f"{self.job} done")

    def _run(self) -> None:
        seen: dict[int, tuple[str, float]] = {}  # rank -> (last counter read, when it last changed)
        while not self._stop.wait(self.every):
            self._beats += 1
            self._write(f"{self.job} {self._beats}")
            now = time.monotonic()
            for r in range(self.world):
                value = self._read(r)
                if r == self.rank or value is None or not value.startswith(f"{self.job} ") or value.endswith("done"):
                    continue  # not started yet in this launch, or finished
                if seen.get(r, (None,))[0] != value:
                    seen[r] = (value, now)
                elif now - seen[r][1] > self.stale:
                    print(f"vidpolicy: rank {r} has not answered for {self.stale:.0f} s (stopped or hung); stopping "
                          f"rank {self.rank}. Rerun the same command to resume from the last checkpoint.",
                          file=sys.stderr, flush=True)
                    os._exit(EXIT_CODE)
