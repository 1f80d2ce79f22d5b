"""A wall-time limit per input file, so that one pathological decode cannot hold a shard."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager


class TimeLimitExceeded(BaseException):
    """Raised by :func:`time_limit`'s alarm. A BaseException (like KeyboardInterrupt) so
    that ``except Exception`` fallbacks let it through: pydicom tries its next decoding
    plugin on any Exception, and readers turn one into a rejection reason."""


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`TimeLimitExceeded` in the body once ``seconds`` of wall time pass.

    A no-op for None, off the main thread (Python runs signal handlers there only) or
    where ``signal.setitimer`` is missing. The handler runs between bytecodes, so a C
    decoder is interrupted only when it returns to Python. The previous SIGALRM handler is
    restored on exit, and a timer that was running is re-armed with the time it had left.
    """
    if (
        seconds is None
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        yield
        return
    if not seconds > 0:
        raise ValueError("a time limit must be positive or None")
    armed = True

    def on_alarm(signum, frame):
        if armed:  # a late alarm, after the body ended, is ignored
            raise TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_left, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            if outer_left:
                signal.setitimer(
                    signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 1e-3)
                )
