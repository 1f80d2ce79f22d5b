"""GPU leases: distinct devices for concurrent jobs, waiting, release, and the easy cases."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from echo2ecg.embed.devices import LOCK_DIR_ENV, choose_device, lock_path

# A job in its own process: lease a GPU of 4 fake ones, print the index, hold until stdin closes.
HOLDER = textwrap.dedent("""
    import sys
    from echo2ecg.embed.devices import choose_device
    with choose_device(lock_dir=sys.argv[1], visible="", device_count=4, timeout_s=10,
                       poll_s=0.05) as lease:
        print(lease.index, flush=True)
        sys.stdin.read()
""")


def start_holder(lock_dir) -> tuple[subprocess.Popen, int]:
    """A child process holding a lease → (process, leased index)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()
    assert line, "holder exited before leasing"
    return child, int(line)


def stop(child: subprocess.Popen) -> None:
    child.stdin.close()
    child.wait(timeout=10)


def lease(lock_dir, **kwargs):
    options = dict(lock_dir=lock_dir, visible="", device_count=4, poll_s=0.05)
    return choose_device(**{**options, **kwargs})


def test_four_processes_get_four_gpus_and_a_fifth_waits(tmp_path):
    holders = [start_holder(tmp_path) for _ in range(4)]
    try:
        assert sorted(index for _, index in holders) == [0, 1, 2, 3]
        with pytest.raises(TimeoutError):
            lease(tmp_path, timeout_s=0.3)
        child, freed = holders.pop(1)
        stop(child)
        with lease(tmp_path, timeout_s=5) as fifth:
            assert (fifth.index, fifth.device) == (freed, f"cuda:{freed}")
    finally:
        for child, _ in holders:
            stop(child)


def test_leases_in_one_process_are_exclusive_too(tmp_path):
    # flock belongs to an open file description: each lease opens its own, so they conflict.
    leases = [lease(tmp_path, timeout_s=0) for _ in range(4)]
    try:
        assert [held.index for held in leases] == [0, 1, 2, 3]
        assert all(held.held for held in leases)
        with pytest.raises(TimeoutError):
            lease(tmp_path, timeout_s=0)
    finally:
        for held in leases:
            held.release()


def test_waiting_lease_takes_the_gpu_released_meanwhile(tmp_path):
    leases = [lease(tmp_path, timeout_s=0) for _ in range(4)]
    threading.Timer(0.3, leases[2].release).start()
    started = time.monotonic()
    with lease(tmp_path, timeout_s=10) as fifth:
        assert fifth.index == 2
        assert time.monotonic() - started >= 0.25
    for held in leases:
        held.release()


def test_lease_is_released_when_the_context_exits(tmp_path):
    with lease(tmp_path, device_count=1, timeout_s=0) as first:
        assert first.device == "cuda:0" and first.held
    assert not first.held
    with lease(tmp_path, device_count=1, timeout_s=0) as again:
        assert again.index == 0
    first.release()  # a second release is harmless


def test_lease_is_released_when_its_process_is_killed(tmp_path):
    child, index = start_holder(tmp_path)
    with pytest.raises(TimeoutError):
        lease(tmp_path, device_count=1, timeout_s=0)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    with lease(tmp_path, device_count=1, timeout_s=0) as after:
        assert after.index == index == 0


def test_cuda_visible_devices_is_honoured_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with choose_device(lock_dir=tmp_path, device_count=1) as chosen:
        assert (chosen.device, chosen.index, chosen.held) == ("cuda:0", 0, False)
    with choose_device(lock_dir=tmp_path, visible="1,2", device_count=2) as chosen:
        assert chosen.device == "cuda:0"
    assert list(tmp_path.iterdir()) == []


def test_no_cuda_or_no_wish_for_it_means_cpu(tmp_path):
    with choose_device(lock_dir=tmp_path, visible="", device_count=0) as chosen:
        assert (chosen.device, chosen.index, chosen.held) == ("cpu", None, False)
    assert choose_device(prefer_gpu=False, lock_dir=tmp_path, device_count=4).device == "cpu"
    assert list(tmp_path.iterdir()) == []


def test_a_slurm_job_logs_its_placement_and_a_gpu_it_cannot_use(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    caplog.set_level("INFO", logger="echo2ecg.embed.devices")
    with choose_device(lock_dir=tmp_path, visible="2", device_count=0) as chosen:
        assert chosen.device == "cpu"
    assert "SLURM job 812, CUDA_VISIBLE_DEVICES=2" in caplog.text
    assert "torch sees no CUDA device" in caplog.text
    caplog.clear()
    with choose_device(lock_dir=tmp_path, visible="", device_count=0):
        pass
    assert "torch sees no CUDA device" not in caplog.text


def test_lock_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    with choose_device(visible="", device_count=2, timeout_s=0) as chosen:
        assert chosen.lock_path == lock_path(tmp_path / "locks", 0)
        assert chosen.lock_path.exists()
