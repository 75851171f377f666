"""How the service's memory goes back to the operating system, and when it should not.

glibc's ``malloc`` serves blocks above its mmap threshold (adjusted at run time, 32 MB at most) with
fresh ``mmap`` pages and returns them on ``free``. onnxruntime (its arena is off, see
``tilescan_shared.predictor``) allocates one block of tens of megabytes per tile for its planned
tensors, so every inference faulted its pages in again, at a cost of milliseconds of system CPU time
a tile on the inference thread (docs/benchmarks.md, "Serving"). :func:`keep_inference_buffers`
fixes the mmap threshold at 64 MB and raises the trim threshold, so those blocks come from the heaps
and stay there for the next tile. A big image is the opposite case: from the heaps, its buffers
fragment them and raise its peak, so while one runs
(:func:`big_image_allocation`) every large buffer is mapped on its own again.

What stays in the heaps is only free memory, but tiles come in many sizes (1,048 among the dataset's
1,138 tiles) and the blocks one size frees rarely fit the next, so the heaps grow with every new size:
a service answering 1,000 different tiles held 911 MB in fp32 and 1.6 GB in int8, more than a pod
has. So after every big image, and after every :data:`TRIM_EVERY_PIXELS` of images served (about
40 tiles), ``malloc_trim(0)`` returns the free pages of every heap to the OS (:class:`TrimSchedule`,
:func:`release_free_memory`; docs/benchmarks.md, "Memory"). Elsewhere (musl, macOS) all of this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Images from this size on get their own mappings; smaller ones reuse what the last tiles left.
BIG_IMAGE_PIXELS = 1_000_000
# Pixels served between two trims: a trim costs ~10 ms and the next tiles' page faults (every 1 Mpx,
# fp32 answered 10% fewer tiles a second; every 4 Mpx no fewer, and 300 tiles held 200 MB less in int8).
TRIM_EVERY_PIXELS = 4_000_000

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


class TrimSchedule:
    """When to return free heap memory: after a big image, or once ``every_pixels`` of images have
    been served since the last time (use on the event loop only)."""

    def __init__(self, every_pixels: int = TRIM_EVERY_PIXELS) -> None:
        self.every_pixels = every_pixels
        self.since = 0

    def served(self, pixels: int) -> bool:
        """Count an image served; True when it is time to trim."""
        self.since += pixels
        if pixels < BIG_IMAGE_PIXELS and self.since < self.every_pixels:
            return False
        self.since = 0
        return True


def release_free_memory() -> None:
    """Return the free pages of every heap to the OS (blocking; glibc only)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
