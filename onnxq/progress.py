"""A small progress indicator: a bar on stderr when it is a terminal, log lines otherwise.

On a TTY the bar is redrawn in place at most ten times a second::

    calibrating [##########..........]  16/32 samples  41.3 samples/s

Elsewhere (CI logs, files) a line is logged at INFO level at each further ~10% of the total, or
every 10 seconds when the total is unknown, plus one at the end. No third-party dependency.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TextIO

logger = logging.getLogger(__name__)

_REDRAW_S = 0.1
_LOG_EVERY_S = 10.0
_WIDTH = 20


class Progress:
    """Count work items towards an optional ``total``; use as a context manager."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "samples",
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total if total and total > 0 else None
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.count = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = enabled and bool(getattr(self._stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last_draw = -1.0
        self._last_log_time = self._start
        self._last_log_decile = 0
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Record ``n`` more items done."""
        self.count += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            if now - self._last_draw >= _REDRAW_S:
                self._draw(now)
        else:
            self._maybe_log(now)

    def close(self) -> None:
        """Draw the final state (newline on a TTY, a last log line otherwise)."""
        if self._closed or not self.enabled:
            self._closed = True
            return
        self._closed = True
        now = time.monotonic()
        if self._tty:
            self._draw(now)
            self._stream.write("\n")
            self._stream.flush()
        else:
            logger.info("%s: done, %s", self.desc, self._status(now))

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _status(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        return f"{done} {self.unit}  {self.count / elapsed:.1f} {self.unit}/s"

    def render(self, now: float | None = None) -> str:
        """The bar as text (what a TTY shows)."""
        now = time.monotonic() if now is None else now
        if self.total:
            filled = min(_WIDTH, _WIDTH * self.count // self.total)
            bar = "[" + "#" * filled + "." * (_WIDTH - filled) + "] "
        else:
            bar = ""
        return f"{self.desc} {bar} {self._status(now)}"

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self._stream.write("\r" + self.render(now) + "\x1b[K")
        self._stream.flush()

    def _maybe_log(self, now: float) -> None:
        if self.total:
            decile = min(10, 10 * self.count // self.total)
            if decile > self._last_log_decile and decile < 10:
                self._last_log_decile = decile
                logger.info("%s: %d%%, %s", self.desc, 10 * decile, self._status(now))
        elif now - self._last_log_time >= _LOG_EVERY_S:
            self._last_log_time = now
            logger.info("%s: %s", self.desc, self._status(now))
