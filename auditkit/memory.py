"""Memory hygiene for long runs over large data sets.

Arrow's default allocator (mimalloc) and the C library's keep freed pages for reuse. Over a
load, a long replay and the final tables those cached pages pile up into the peak resident set,
which then grows with the data set although the live data does not. Inside
:func:`system_allocator`, Arrow allocates from the C library, whose free pages
:func:`release_memory` hands back to the system (``malloc_trim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Callable, Iterator

import pyarrow as pa


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6"
        ).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to trim
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand the freed pages of Arrow's allocator and of the C library back to the system."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


@contextlib.contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow allocates from the C library's allocator inside (arrays made inside keep it)."""
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)
