"""Hand memory that the process has freed back to the operating system.

glibc serves allocations below its (adaptive, up to 32 MB) mmap threshold from heap arenas and
keeps freed chunks there. Building a multi-GB network leaves such holes behind: float32 layers
cast to 16 bits one by one, a float32 CLIP cast as a whole, memory-mapped tensors converted on
assignment. They stay resident until reused, so the next component's weights land on top of them
and the peak RSS grows by the size of the holes. ``malloc_trim(0)`` returns every free page of
every arena (via ``madvise``), which is what :func:`release_freed_memory` calls between the big
builds. Elsewhere (musl, macOS, Windows) it does nothing.
"""
import ctypes
import ctypes.util
import functools

__all__ = ["release_freed_memory"]


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS; True if the C library could be asked (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
