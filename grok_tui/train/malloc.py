"""Process-wide settings of the host's C allocator for a training process (no torch import: the CLI
applies them before anything is allocated).

A training step on the CPU allocates and frees the same few hundred buffers every step, several of
them 0.1-4 MiB. glibc's malloc serves the large ones with mmap, or trims the freed top of its heap back
to the kernel, so the next step touches fresh pages again: a canonical step took about 900 page faults
and 3.5 ms of system time (on 2 cores, 23-29 ms a step). Keeping freed memory in the heap (mmap only
from 32 MiB, no trimming below 1 GiB free) takes that to 10-50 faults and 1 ms, and a step 10-15 %
faster (docs/benchmarks.md). The cost: the process keeps its peak heap resident until it exits.
"""

from __future__ import annotations

import ctypes
import os

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_FROM = 32 << 20  # glibc's largest mmap threshold on 64-bit systems
TRIM_FROM = 1 << 30

# Variables through which a user tunes glibc's malloc; when one is set, the user's choice stands.
USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (module doc). True when applied; False off
    glibc (macOS, musl) or when the user tunes malloc through the environment."""
    if any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded (no ldconfig lookup)
    except (OSError, AttributeError):
        return False
    # Both or neither: a fixed trim threshold alone turns off glibc's dynamic mmap threshold, so every
    # buffer above 128 KiB would be mmapped afresh (17x the faults).
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_FROM))
