"""Which device a job runs on: a GPU it holds alone, or the CPU.

Snakemake counts ``--resources gpu=N`` but does not say which GPU a local job should use, so
every job would otherwise pick ``cuda:0``. :func:`choose_device` settles it:

1. No CUDA device (or ``prefer_gpu=False``) → ``"cpu"``.
2. ``CUDA_VISIBLE_DEVICES`` set (SLURM and other schedulers set it to the GPUs they assigned)
   → ``"cuda:0"``, the first device the job may see, with no lease: the scheduler already
   made the choice. A user who exports the variable by hand on a shared workstation takes
   that choice on themselves too; unset it to let jobs spread over the GPUs.
3. Otherwise the job leases the first free GPU ``i``: an exclusive, non-blocking
   ``fcntl.flock`` on ``LOCK_DIR/echo2ecg-gpu-{i}.lock``. The lock lives as long as the lease
   (the whole job) and goes when the lease is released or the process ends in any way, a
   kill included: the kernel drops flock locks with the last open file description. When
   every GPU is held, the job waits and retries. So N jobs under ``--resources gpu=N`` land
   on N different GPUs.

LOCK_DIR: ``lock_dir``, else the environment variable ``ECHO2ECG_GPU_LOCK_DIR``, else the
system temp dir. It must be shared by every job that should see the others' leases (one
machine: any local folder).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "ECHO2ECG_GPU_LOCK_DIR"


class DeviceLease:
    """A device for one job; for a leased GPU, the held lock that reserves it.

    device: torch device string (``"cpu"``, ``"cuda:0"``, ``"cuda:3"``, …).
    index: the CUDA device index (None on CPU).
    lock_path: the lock file held (None when nothing is locked).

    A context manager: leaving the ``with`` block releases the lock. :meth:`release` does the
    same and may be called more than once.
    """

    def __init__(
        self,
        device: str,
        index: int | None = None,
        lock_file: IO[bytes] | None = None,
        lock_path: Path | None = None,
    ):
        self.device = device
        self.index = index
        self.lock_path = lock_path
        self._lock_file = lock_file

    @property
    def held(self) -> bool:
        """True while this lease holds a GPU lock."""
        return self._lock_file is not None

    def release(self) -> None:
        """Give the GPU back (closing the file drops its flock)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
            log.info("released %s (%s)", self.device, self.lock_path)

    def __enter__(self) -> DeviceLease:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DeviceLease(device={self.device!r}, index={self.index}, held={self.held})"


def choose_device(
    prefer_gpu: bool = True,
    lock_dir: str | Path | None = None,
    visible: str | None = None,
    device_count: int | None = None,
    timeout_s: float | None = None,
    poll_s: float = 2.0,
    log_every_s: float = 60.0,
) -> DeviceLease:
    """The device this job should use, leasing a GPU where one has to be chosen.

    prefer_gpu: False → always the CPU.
    lock_dir: folder of the GPU lock files (default: ``$ECHO2ECG_GPU_LOCK_DIR`` or the temp dir).
    visible: the ``CUDA_VISIBLE_DEVICES`` value to honour; None reads the environment.
    device_count: number of CUDA devices; None asks torch (0 when CUDA is unavailable).
    timeout_s: longest wait for a free GPU, in seconds; None waits for as long as it takes.
        Past it, :class:`TimeoutError`.
    poll_s: seconds between attempts while every GPU is held.
    log_every_s: seconds between "waiting" log lines.
    """
    count = _cuda_device_count() if device_count is None else device_count
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if os.environ.get("SLURM_JOB_ID"):
        log.info("SLURM job %s, CUDA_VISIBLE_DEVICES=%s", os.environ["SLURM_JOB_ID"], visible)
    if not prefer_gpu or count == 0:
        if prefer_gpu and visible and visible.strip():
            log.warning(
                "CUDA_VISIBLE_DEVICES=%s was assigned, but torch sees no CUDA device "
                "(a CPU build of torch?): running on the CPU",
                visible,
            )
        return DeviceLease("cpu")
    if visible and visible.strip():
        log.info("CUDA_VISIBLE_DEVICES=%s: using cuda:0 of the assigned devices", visible)
        return DeviceLease("cuda:0", index=0)
    return _lease_free_gpu(count, _lock_dir(lock_dir), timeout_s, poll_s, log_every_s)


def _cuda_device_count() -> int:
    import torch  # here, so that faking the count never needs torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _lock_dir(lock_dir: str | Path | None) -> Path:
    if lock_dir is None:
        lock_dir = os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir()
    path = Path(lock_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_path(lock_dir: str | Path, index: int) -> Path:
    """The lock file that reserves GPU ``index``."""
    return Path(lock_dir) / f"echo2ecg-gpu-{index}.lock"


def _lease_free_gpu(
    count: int, lock_dir: Path, timeout_s: float | None, poll_s: float, log_every_s: float
) -> DeviceLease:
    """Lock the lowest-numbered free GPU of ``count``; wait while all are held."""
    start = time.monotonic()
    last_log = None
    while True:
        for index in range(count):
            lease = _try_lock(index, lock_path(lock_dir, index))
            if lease is not None:
                log.info("leased %s (%s)", lease.device, lease.lock_path)
                return lease
        waited = time.monotonic() - start
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(
                f"all {count} GPUs stayed leased for {waited:.0f} s (lock files in {lock_dir})"
            )
        if last_log is None or time.monotonic() - last_log >= log_every_s:
            log.info(
                "all %d GPUs are leased by other jobs (lock files in %s); waiting", count, lock_dir
            )
            last_log = time.monotonic()
        time.sleep(poll_s)


def _try_lock(index: int, path: Path) -> DeviceLease | None:
    """Hold an exclusive flock on ``path`` → a lease of GPU ``index``; None if it is taken."""
    lock_file = _open_lock_file(path)
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock_file.close()
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return DeviceLease(f"cuda:{index}", index=index, lock_file=lock_file, lock_path=path)


def _open_lock_file(path: Path) -> IO[bytes]:
    """Open (creating if needed) a lock file read-only: flock needs no write access.

    An existing file is opened without O_CREAT because Linux's ``protected_regular`` refuses
    O_CREAT on another user's file in a sticky folder such as /tmp.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    return os.fdopen(fd, "rb")


def resolve_device(device=None):
    """A torch device: None → CUDA when available (honouring CUDA_VISIBLE_DEVICES), else
    the CPU; a string or device as given."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
