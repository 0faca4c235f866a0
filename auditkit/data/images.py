"""Opening image files the one way ``data check`` and the replay share: regular files only, every
decoder failure a one-line reason, and pixel depth read exactly.

Imports Pillow and NumPy only: decode worker processes (``--decode-processes``) use it.

* :func:`open_regular` refuses a FIFO, a device or a folder *before* reading (opening a FIFO for
  reading would wait for a writer forever; a device could be read without end). The file is
  opened non-blocking and checked with ``fstat`` on the open descriptor, so nothing can swap it
  between the check and the read.
* :func:`unreadable_reason` turns whatever Pillow raises for a damaged, truncated, unsupported
  or oversized file (its types vary: ``OSError``, ``SyntaxError``, ``EOFError``,
  ``struct.error``, ``DecompressionBombError``, ...) into the reason an ``unreadable`` row shows,
  without the Python repr of the file object Pillow puts in some messages.
* :func:`strict_decoding`: a truncated file fails to decode, whatever an imported library set
  process-wide (WeasyPrint sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` on import).
* :func:`exact_depth`: a 16-bit greyscale image becomes 32-bit float pixels on the 8-bit scale,
  ``v * 255 / 65535``, instead of Pillow's conversion to ``L``, which clips every value above
  255 (nearly the whole image) to white. Pixels whose range cannot be known from the file
  (32-bit integers, floats) are refused with :class:`UnsupportedPixels`.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from auditkit.errors import first_line

#: Pillow modes of 16-bit greyscale pixels (PNG and TIFF open as ``I;16``)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
#: the largest 16-bit value: 16-bit pixels are divided by it (times 255, the card's scale)
SIXTEEN_BIT_MAX = 65535.0

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISSOCK, "a socket"),
)


@contextlib.contextmanager
def strict_decoding() -> Iterator[None]:
    """Truncated images fail to decode inside the block, whatever an imported library set
    process-wide (WeasyPrint sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` on import, which
    would fill the missing pixels with grey: the replay would score them and ``data check``
    pass them). The previous setting is restored on leaving."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


class NotRegularFile(OSError):
    """A path that is not a regular file (FIFO, device, folder, socket)."""


class UnsupportedPixels(ValueError):
    """Pixels whose value range cannot be known from the file (32-bit integers, floats)."""


def open_regular(path: str | Path, buffering: int = -1) -> io.BufferedReader | io.FileIO:
    """``open(path, "rb", buffering)`` for a regular file; :class:`NotRegularFile` for anything
    else, decided on the opened descriptor (``O_NONBLOCK``: opening a FIFO does not wait)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise NotRegularFile(f"not a regular file: {kind}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        if buffering == 0:
            return io.FileIO(fd, "rb", closefd=True)
        return io.BufferedReader(io.FileIO(fd, "rb", closefd=True))
    except BaseException:
        os.close(fd)
        raise


def unreadable_reason(exc: BaseException) -> str:
    """The reason an image that could not be opened or decoded is ``unreadable`` (one line)."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, NotRegularFile):
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "cannot decode image: not an image format Pillow can identify"
    if isinstance(exc, Image.DecompressionBombError):
        return f"cannot decode image: too large: {_first_line(exc)}"
    if isinstance(exc, UnsupportedPixels):
        return f"unsupported pixels: {exc}"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return f"cannot read file: {exc.strerror}"  # the system's error, not the decoder's
    return f"cannot decode image: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    return first_line(exc, 300)


def exact_depth(image: Image.Image) -> Image.Image:
    """``image`` with pixels on the 8-bit scale the card's ``x / 255`` expects: 16-bit greyscale
    as mode ``F`` holding ``v * 255 / 65535`` (not clipped at 255); 8-bit and palette modes as
    they are; :class:`UnsupportedPixels` for 32-bit integer or float pixels (mode ``I`` or
    ``F``), whose range the file does not say. A 16-bit greyscale PNG that Pillow opens as mode
    ``I`` is read as 16-bit (PNG has no 32-bit greyscale)."""
    if is_sixteen_bit(image):
        pixels = np.asarray(image, dtype=np.float64) * (255.0 / SIXTEEN_BIT_MAX)
        return Image.fromarray(pixels.astype(np.float32))
    refuse_unknown_range(image)
    return image


def is_sixteen_bit(image: Image.Image) -> bool:
    """Whether ``image`` holds 16-bit greyscale pixels (see :func:`exact_depth`)."""
    return image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG")


def refuse_unknown_range(image: Image.Image) -> None:
    """:class:`UnsupportedPixels` for 32-bit integer or float pixels (not 16-bit ones)."""
    if image.mode in ("I", "F") and not is_sixteen_bit(image):
        bits = "32-bit integer" if image.mode == "I" else "floating-point"
        raise UnsupportedPixels(
            f"{bits} pixels (Pillow mode {image.mode}) have no known range; "
            "save the image with 8 or 16 bits per channel"
        )
