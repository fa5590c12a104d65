"""How the training process asks its C allocator to reuse memory (glibc on Linux).

A training iteration allocates and frees the same large buffers again and again: a CNN's
activations, gradients and convolution workspaces over a minibatch of frames are tens of
megabytes each. By default glibc's malloc gives each block past a threshold (128 KiB, rising
to at most 32 MiB as such blocks are freed) its own mmap, unmapped when freed, and returns the
free top of its heap to the system once it passes twice that threshold; each time memory comes
back from the system its pages fault in anew, zeroed. On the ppo_atari preset that was about
a fifth of the update's time (1.4 million page faults in four iterations, one torch thread).
Taking every block from the heap and keeping the heap's free top for the next iteration
removes those faults: the process keeps its peak memory instead of giving it back between
iterations. Results do not change, only where the bytes live.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""mallopt's parameter numbers (glibc's malloc.h)"""

TRIM_THRESHOLD_BYTES = 2**31 - 1
"""free memory at the heap's top goes back to the system only past this (mallopt takes an int)"""


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve every block from its heap (no mmap of its own: M_MMAP_MAX 0)
    and keep up to 2 GiB of the heap's free top (M_TRIM_THRESHOLD) for this process (see the
    module docstring); whether it applied: False where the C library is not glibc (macOS,
    musl) or refused a value."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    no_mmap = mallopt(M_MMAP_MAX, 0) == 1
    kept_top = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return no_mmap and kept_top
