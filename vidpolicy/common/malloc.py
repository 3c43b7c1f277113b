"""Keep freed tensor memory inside the process (glibc malloc), so that training steps stop paying page faults.

glibc serves every allocation above a sliding threshold (128 KiB at first) with a fresh ``mmap`` and unmaps it on
free; it also hands the top of the heap back to the kernel once more than 128 KiB is free. A CPU training step
allocates and frees the same multi-megabyte activations every step, so each step re-faults all of them page by
page. Raising the mmap threshold to its maximum (32 MiB on 64-bit) and never trimming keeps those blocks on the heap
for reuse (docs/experiments.md has the step times). Memory the process has used once stays reserved for it (the
peak of one step, which it would need again on the next).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit: 4 MiB * sizeof(long)
_TOP_PAD = 64 << 20
_TRIM_THRESHOLD = (1 << 31) - 1  # an int: never trim in practice


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc malloc for allocate-free-reallocate loops (once per process; forked DataLoader workers inherit it).
    Returns whether it applied: False off Linux/glibc, where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX),
                                               (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))
