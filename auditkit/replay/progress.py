"""Replay progress on standard error: a live line on a terminal, plain periodic lines otherwise.

Standard output is left alone (scripts parse it). On a terminal the line is redrawn at most
every ``tty_interval_s`` with a bar, the rate and the ETA; when standard error is a file or a
pipe, one plain line is written every ``plain_interval_s`` (so short runs print nothing).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressReporter:
    """Callable ``(done, total)``: pass it as the replay's ``progress``; call :meth:`close`."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        plain_interval_s: float = 10.0,
        tty_interval_s: float = 0.2,
        label: str = "replay",
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = tty_interval_s if self.tty else plain_interval_s
        self.label = label
        self._first: tuple[float, int] | None = None
        self._last_shown = 0.0
        self._drawn = False
        self._state = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)  # a resumed run starts with done > 0
            self._last_shown = now
        self._state = (done, total)
        if now - self._last_shown >= self.interval or (self.tty and done >= total):
            self._last_shown = now
            self._show(now)

    def _line(self, now: float) -> str:
        done, total = self._state
        assert self._first is not None
        started, first_done = self._first
        elapsed = now - started
        rate = (done - first_done) / elapsed if elapsed > 0 else 0.0
        share = done / total if total else 1.0
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        if self.tty:
            width = 24
            filled = int(width * share)
            bar = "#" * filled + "-" * (width - filled)
            return (
                f"{self.label} [{bar}] {done:,}/{total:,} {100 * share:3.0f}% "
                f"{rate:,.0f} images/s ETA {eta}"
            )
        return (
            f"{self.label}: {done:,}/{total:,} images ({100 * share:.0f}%), "
            f"{rate:,.0f} images/s, ETA {eta}"
        )

    def _show(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self._line(now))
            self._drawn = True
        else:
            self.stream.write(self._line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (terminal only), so later messages start on a new line."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
