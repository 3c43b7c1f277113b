"""Helpers for benchmarks: JSON output under benchmarks/out/, matmul peak, timing, resumable cells."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "out"


def quiet() -> None:
    """A benchmark's output as a command's: third-party logs off (`vidpolicy.cli.quiet_libraries`, unless
    VIDPOLICY_VERBOSE=1) and, written to a log file, progress bars updated once a minute instead of every step."""
    if os.environ.get("VIDPOLICY_VERBOSE") != "1":
        from vidpolicy.cli import quiet_libraries

        quiet_libraries()
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", "60")


def first_sentence(doc: str) -> str:
    """A module docstring's first sentence, on one line: a benchmark's --help description."""
    text = " ".join(doc.split())
    end = re.search(r"[.?](?=\s)", text)
    return text[: end.end()] if end else text


def commit() -> str:
    """The checkout's short commit; VIDPOLICY_COMMIT names it for a tree exported without .git (git archive)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                               cwd=OUT.parent).stdout.strip()
    except OSError:
        found = ""
    return found or os.environ.get("VIDPOLICY_COMMIT", "unknown")


def oldest_first(commits: list[str]) -> list[str]:
    """Short commit hashes (git's, 7+ digits) in the order they were made; others and those this checkout's history
    lacks last, by name."""
    try:
        history = subprocess.run(["git", "rev-list", "--reverse", "HEAD"], capture_output=True, text=True,
                                 cwd=OUT.parent).stdout.split()
    except OSError:
        history = []

    def made(c: str) -> int:
        return next((i for i, h in enumerate(history) if len(c) >= 7 and h.startswith(c)), len(history))
    return sorted(commits, key=lambda c: (made(c), c))


def cpu_model() -> str:
    """The processor's name (machines of one kind differ: bf16 matmul peaks of 407 and 874 GFLOP/s were measured)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def previous(name: str) -> dict | None:
    """The last result of benchmark ``name``: benchmarks/out/<name>.json, else its entry in the committed
    benchmarks/results.json (a fresh checkout has no out/)."""
    path = OUT / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    committed = OUT.parent / "results.json"
    return json.loads(committed.read_text()).get(name) if committed.exists() else None


def save(name: str, result: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "commit": commit(), "machine": f"{platform.machine()} {torch.get_num_threads()} "
              f"threads, cuda={torch.cuda.is_available()}", "cpu": cpu_model(), "torch": torch.__version__, **result}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


def timed(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls after ``warmup`` calls, in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """Achieved GFLOP/s of a square matmul (the machine's practical peak for this dtype)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    t = timed(lambda: a @ b, repeat=5, warmup=2)
    return 2 * n**3 / t / 1e9


def sharing() -> dict:
    """How a cell's wall time was made: this process's threads, the machine's cores, and the 15-minute load average
    at its end (about how many busy processes shared those cores)."""
    return {"threads": torch.get_num_threads(), "cores": os.cpu_count(), "load_15m": round(os.getloadavg()[2], 2)}


# A long benchmark is a list of cells, each its own directory under a root, complete when it holds done.json
# (written last, atomically). A cell without it restarts empty, unless it resumes from checkpoints of its own.
def cell_done(root: Path, name: str) -> bool:
    return (root / name / "done.json").exists()


def claim_cell(root: Path, name: str, keep: bool = False) -> Path:
    """The cell's directory: emptied first unless ``keep`` (its stage resumes from what a killed run left)."""
    where = root / name
    if where.exists() and not keep:
        shutil.rmtree(where)
    where.mkdir(parents=True, exist_ok=True)
    return where


def finish_cell(root: Path, name: str, result: dict) -> None:
    tmp = root / name / ".done.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(root / name / "done.json")


def cell_result(root: Path, name: str) -> dict:
    return json.loads((root / name / "done.json").read_text())


def lock_cell(root: Path, name: str) -> int | None:
    """Hold cell ``name`` for this process: an open descriptor of ``<cell>.lock`` (beside the cell, which
    `claim_cell` may empty), or None when another live process holds it. The kernel drops the lock when its holder
    dies, so a killed worker never leaves a cell stuck."""
    path = root / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def pending(root: Path, names: list[str], targets: list[str], needs: Callable[[str], list[str]]) -> list[str]:
    """The cells of ``names`` (in their order) still to run for ``targets``: each target not done, and every cell one
    reads that is not done, transitively (a restored leaf's inputs are not recomputed)."""
    want, todo = set(), [n for n in targets if not cell_done(root, n)]
    while todo:
        n = todo.pop()
        if n not in want:
            want.add(n)
            todo += [d for d in needs(n) if not cell_done(root, d)]
    return [n for n in names if n in want]


def run_cells(root: Path, names: list[str], needs: Callable[[str], list[str]], run: Callable[[str], dict],
              poll_s: float = 30.0) -> None:
    """Run every cell not yet done, the first ready one first (all of its ``needs`` done), until all are done.
    Several processes can share one grid (one per core): each runs the cells it locks and leaves the others' cells
    to them, waiting when every ready cell is taken. ``names`` lists each cell after the cells it needs."""
    while True:
        todo = [n for n in names if not cell_done(root, n)]
        if not todo:
            return
        for name in (n for n in todo if all(cell_done(root, d) for d in needs(n))):
            fd = lock_cell(root, name)
            if fd is None:
                continue
            try:
                if not cell_done(root, name):  # another process may have finished it since the scan
                    print(f"== {name}", flush=True)
                    resumed = (root / name).is_dir() and any((root / name).iterdir())  # a killed run's leftovers
                    t0, code = time.time(), commit()  # the code that ran it: the checkout may move meanwhile
                    result = run(name)
                    finish_cell(root, name, {**result, "wall_s": round(time.time() - t0, 1), "commit": code,
                                             "cpu": cpu_model(), "resumed": resumed, **sharing()})
            finally:
                os.close(fd)
            break
        else:
            time.sleep(poll_s)  # every ready cell is another process's


# A machine that is replaced loses benchmarks/out/. The small results of a grid's leaf cells (rollouts, scores) are
# also kept in a committed ledger, and a fresh checkout restores them: their cells count as done, and what only
# they read (a checkpoint, a corpus) is not recomputed.
def record_cells(root: Path, ledger: Path, names: list[str]) -> int:
    """Copy the done.json of each finished cell in ``names`` into ``ledger`` (``<cell>.json``); how many were new."""
    new = 0
    for name in (n for n in names if cell_done(root, n)):
        path = ledger / f"{name}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name / "done.json", path)
            new += 1
    return new


def share_cells(root: Path, source: Path, names: list[str]) -> int:
    """Link each cell in ``names`` that the grid at ``source`` finished and ``root`` has not begun to its directory
    there, so that ``root`` reads it instead of computing it again; how many were linked."""
    linked = 0
    for name in (n for n in names if cell_done(source, n) and not os.path.lexists(root / n)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        try:
            (root / name).symlink_to((source / name).resolve(), target_is_directory=True)
            linked += 1
        except FileExistsError:  # another worker of the grid linked it first
            pass
    return linked


def record_ledger(root: Path, ledger: Path, settings: dict, names: list[str]) -> int:
    """Record the finished cells of ``names`` in ``ledger`` (its cells/) beside the settings that made them."""
    ledger.mkdir(parents=True, exist_ok=True)
    (ledger / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return record_cells(root, ledger / "cells", names)


def ledger_mismatch(ledger: Path, mine: dict) -> str:
    """How the grid that wrote ``ledger`` differs from ``mine`` ("" when it does not, or wrote nothing yet)."""
    path = ledger / "settings.json"
    theirs = json.loads(path.read_text()) if path.exists() else mine
    return ", ".join(f"{k} {theirs.get(k)} (here {v})" for k, v in mine.items() if theirs.get(k) != v)


def open_ledger(root: Path, ledger: Path | None, mine: dict, strict: bool = False) -> Path | None:
    """``ledger``, its cells restored under ``root``, when the grid that wrote it had the settings ``mine``; else None
    (``strict``: a one-line SystemExit instead, for a ledger the user named)."""
    if ledger and (diff := ledger_mismatch(ledger, mine)):
        if strict:
            raise SystemExit(f"{ledger / 'settings.json'}: recorded by a grid with other settings: {diff}")
        print(f"not using {ledger}: recorded by a grid with other settings ({diff})")
        return None
    if ledger and (n := restore_cells(root, ledger / "cells")):
        print(f"restored {n} finished cells from {ledger}")
    return ledger


def restore_cells(root: Path, ledger: Path) -> int:
    """Mark every cell the ledger holds done under ``root`` (its done.json, nothing else); how many were restored."""
    restored = 0
    for path in sorted(ledger.rglob("*.json")) if ledger.is_dir() else []:
        name = path.relative_to(ledger).with_suffix("").as_posix()
        if not cell_done(root, name):
            (root / name).mkdir(parents=True, exist_ok=True)
            finish_cell(root, name, json.loads(path.read_text()))
            restored += 1
    return restored
