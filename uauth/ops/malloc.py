"""Keep a worker's memory from growing by the block argon2id borrows for one password check.

glibc serves a large allocation with ``mmap`` and unmaps it on free, but after the first such
free it raises its mmap threshold to that block's size (up to 32 MiB): argon2id's 19 MiB block
for every later password check then comes from the heap and stays resident, 19 MB more RSS per
worker from its first login on. Setting the threshold (to glibc's own default, 128 KiB) turns
that adjustment off, so the block is returned after every check.
"""

from __future__ import annotations

import ctypes

#: glibc's ``mallopt`` parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024


def return_large_blocks() -> bool:
    """Fix this process's mmap threshold (inherited by the workers it forks); False where the C
    library is not glibc (musl, macOS), which has nothing to fix."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD))
