"""Logging set-up shared by the command line and the workflow scripts."""

from __future__ import annotations

import contextlib
import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | None = None, level: int = logging.INFO):
    """Send the package's log (and, for a file, Python's stderr) to ``path`` or stderr.

    Workflow scripts run inside Snakemake's process-less script wrapper; redirecting
    stderr too keeps warnings and tracebacks in the rule's log file.
    """
    stream = open(path, "a", encoding="utf-8") if path else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("echo2ecg")
    logger.addHandler(handler)
    logger.setLevel(level)
    redirect = contextlib.redirect_stderr(stream) if path else contextlib.nullcontext()
    try:
        with redirect:
            try:
                yield logger
            except Exception:
                logger.exception("failed")
                raise
    finally:
        logger.removeHandler(handler)
        if path:
            stream.close()
