"""Opening input files: regular files only, and failures told without the path.

An archive holds directories named like files, FIFOs (opening one blocks forever), device
files, symlink loops and names too long for the file system. Readers open every input
through :func:`open_regular`, which refuses anything but a regular file from its ``stat``
before reading a byte, and turns operating-system errors into reasons built from the
error's kind (never its text, which quotes the path).
"""

from __future__ import annotations

import errno
import os
import stat

from echo2ecg.data.errors import InputRejected

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_OS_REASONS = {
    errno.ENOENT: "file not found",
    errno.ENOTDIR: "file not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "symbolic link loop",
    errno.ENAMETOOLONG: "file name too long",
    errno.EISDIR: "not a regular file: a directory",
    errno.EIO: "input/output error",
}


def os_error_reason(error: OSError) -> str:
    """A ledger reason for an operating-system error, from its errno alone."""
    known = _OS_REASONS.get(error.errno)
    if known:
        return known
    name = errno.errorcode.get(error.errno or 0)
    return (
        f"cannot read the file (operating-system error {name})"
        if name
        else f"cannot read the file ({type(error).__name__})"
    )


def _kind(mode: int) -> str | None:
    """None for a regular file, else what the file is."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_KINDS if test(mode)), "a special file")


def open_regular(path, what: str = "file"):
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    Opened non-blocking, so a FIFO cannot hang the open, and checked with ``fstat`` on the
    opened descriptor, so the file checked is the file read. Raises InputRejected with a
    reason that names ``what`` (e.g. "signal file") and the kind of file, never the path.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise InputRejected(_with_what(os_error_reason(error), what)) from None
    except (UnicodeError, ValueError):  # a name the file system cannot encode, or a NUL
        raise InputRejected(_with_what("file name cannot be encoded", what)) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputRejected(_with_what(f"not a regular file: {kind}", what))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _with_what(reason: str, what: str) -> str:
    return reason if what == "file" else f"{what}: {reason}"
