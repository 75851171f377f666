"""Give the memory of a big image back to the operating system once it is served.

glibc's ``malloc`` keeps freed memory for reuse. For a big image that is hundreds of megabytes: it
raises its mmap threshold after the first big buffer is freed (up to 32 MB), so the 16 MB blocks
Pillow allocates for the next big image come from per-thread heaps, and stay there when freed.
``malloc_trim(0)`` returns the free pages of every heap. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# Images from this size on are worth a trim (a few ms); smaller ones leave little behind, and the
# next request reuses it.
BIG_IMAGE_PIXELS = 1_000_000


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the free pages of every heap to the OS (blocking; glibc only)."""
    if _TRIM is not None:
        _TRIM(0)
