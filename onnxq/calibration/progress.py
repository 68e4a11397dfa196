"""Progress of long work (calibration): a tqdm bar on a terminal, log lines elsewhere.

On a TTY, :mod:`tqdm` draws the bar in place (at most ten times a second)::

    calibrating [##########..........]  16/32 samples  41.3samples/s

Elsewhere (CI logs, files) nothing is drawn; a line is logged at INFO level at each further ~10%
of the total, or every 10 seconds when the total is unknown, plus one at the end, so a log shows
how far a long run got without being flooded by redraws.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

logger = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0
_BAR = "{desc} [{bar:20}]  {n_fmt}/{total_fmt} {unit}  {rate_fmt}"
_COUNT = "{desc}  {n_fmt} {unit}  {rate_fmt}"


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
        stream = stream if stream is not None else sys.stderr
        tty = enabled and bool(getattr(stream, "isatty", lambda: False)())
        self._bar = (
            tqdm(total=self.total, desc=desc, unit=unit, file=stream, ascii=".#", mininterval=0.1,
                 bar_format=_BAR if self.total else _COUNT, dynamic_ncols=False)
            if tty else None
        )  # fmt: skip
        self._start = time.monotonic()
        self._last_log_time = self._start
        self._last_log_decile = 0
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Record ``n`` more items done."""
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._maybe_log(time.monotonic())

    def close(self) -> None:
        """Draw the final state (the bar's last line, or a last log line)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            logger.info("%s: done, %s", self.desc, self._status(time.monotonic()))

    def render(self) -> str:
        """The bar as text (what a TTY shows)."""
        if self._bar is not None:
            return str(self._bar)
        return f"{self.desc}: {self._status(time.monotonic())}"

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

    def _maybe_log(self, now: float) -> None:
        if self.total:
            decile = min(10, 10 * self.count // self.total)
            if decile > self._last_log_decile and decile < 10:
                self._last_log_decile = decile
                logger.info("%s: %d%%, %s", self.desc, 10 * decile, self._status(now))
        elif now - self._last_log_time >= _LOG_EVERY_S:
            self._last_log_time = now
            logger.info("%s: %s", self.desc, self._status(now))


__all__ = ["Progress"]
