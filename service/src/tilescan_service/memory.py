"""How the service's memory goes back to the operating system, and when it should not.

glibc's ``malloc`` serves blocks above its mmap threshold (adjusted at run time, 32 MB at most) with
fresh ``mmap`` pages and returns them on ``free``. onnxruntime (its arena is off, see
``tilescan_shared.predictor``) allocates one block of tens of megabytes per tile for its planned
tensors, so every inference faulted its pages in again, at a cost of milliseconds of system CPU time
a tile on the inference thread (docs/benchmarks.md, "Serving"). :func:`keep_inference_buffers`
fixes the mmap threshold at 64 MB and raises the trim threshold, so those blocks come from the heaps
and stay there for the next tile. A big image is the opposite case: from the heaps, its buffers
fragment them and raise its peak, so while one runs
(:func:`big_image_allocation`) every large buffer is mapped on its own again, and afterwards
``malloc_trim(0)`` returns what it left in the heaps (:func:`release_free_memory`). Elsewhere (musl,
macOS) all of this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Images from this size on are worth a trim (a few ms) and their own mappings; smaller ones leave
# little behind, and the next request reuses it.
BIG_IMAGE_PIXELS = 1_000_000

# mallopt parameters (malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024  # above a typical tile's planned block
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024  # above a typical tile's whole working set
BIG_IMAGE_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()
_lock = threading.Lock()
_kept = False  # keep_inference_buffers() took effect
_big_running = 0


def keep_inference_buffers() -> bool:
    """Let freed inference buffers stay in the heaps (process-wide; call once at start-up).

    True when the allocator took the settings (glibc).
    """
    global _kept
    if _LIBC is None:
        return False
    with _lock:
        _kept = bool(
            _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
            and _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    return _kept


@contextmanager
def big_image_allocation(pixels: int) -> Iterator[None]:
    """While an image of ``pixels`` runs: if it is big, large buffers get their own mappings."""
    global _big_running
    if not _kept or pixels < BIG_IMAGE_PIXELS:
        yield
        return
    with _lock:
        _big_running += 1
        if _big_running == 1:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, BIG_IMAGE_MMAP_THRESHOLD_BYTES)
    try:
        yield
    finally:
        with _lock:
            _big_running -= 1
            if _big_running == 0:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_free_memory() -> None:
    """Return the free pages of every heap to the OS (blocking; glibc only)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
