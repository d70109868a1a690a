"""folder_lock: one writer per output, clear refusal, stale locks of killed writers taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from sigdiff._lock import LockError, folder_lock, lock_path, pid_alive


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def _write_lock(path: str, *, pid: int, host: str | None = None) -> str:
    lock = lock_path(path)
    with open(lock, "w") as f:
        json.dump({"pid": pid, "host": host or socket.gethostname(), "token": "x"}, f)
    return lock


def test_lock_file_holds_pid_and_host_and_is_removed(tmp_path):
    target = tmp_path / "out.zarr"
    with folder_lock(target, what="store") as lock:
        assert lock == str(target) + ".lock"
        body = json.loads(open(lock).read())
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname()
        assert not target.exists()  # the lock never creates the folder itself
    assert os.listdir(tmp_path) == []


def test_lock_is_removed_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path / "out", what="store"):
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_lock_is_reentrant_in_one_thread(tmp_path):
    target = tmp_path / "out"
    with folder_lock(target, what="store"), folder_lock(str(target) + "/", what="store"):
        assert os.path.exists(lock_path(target))
    assert not os.path.exists(lock_path(target))


def test_live_holder_is_refused_with_its_pid(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(str(tmp_path / "out"), pid=sleeper.pid)
        with pytest.raises(LockError) as err, folder_lock(tmp_path / "out", what="store"):
            pass
        msg = str(err.value)
        assert f"store {tmp_path / 'out'} is being written by process {sleeper.pid}" in msg
        assert "wait for it or choose another output" in msg
        assert os.path.exists(lock_path(tmp_path / "out"))  # the holder's lock is untouched
    finally:
        sleeper.kill()
        sleeper.wait()


def test_another_thread_of_the_same_process_is_refused(tmp_path):
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with folder_lock(tmp_path / "out", what="run folder"):
                pass
        except LockError as err:
            errors.append(err)

    with folder_lock(tmp_path / "out", what="run folder"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "(this process)" in str(errors[0])


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    _write_lock(str(tmp_path / "out"), pid=_dead_pid())
    with folder_lock(tmp_path / "out", what="store") as lock:
        assert json.loads(open(lock).read())["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []


def test_lock_from_another_host_is_not_taken_over(tmp_path):
    _write_lock(str(tmp_path / "out"), pid=_dead_pid(), host="elsewhere.invalid")
    with pytest.raises(LockError, match=r"on host elsewhere\.invalid"):
        with folder_lock(tmp_path / "out", what="store"):
            pass


def test_garbled_lock_is_respected_while_fresh_and_taken_over_when_old(tmp_path):
    lock = lock_path(tmp_path / "out")
    open(lock, "w").close()  # a writer between create and write, or killed there
    with pytest.raises(LockError, match="another process"):
        with folder_lock(tmp_path / "out", what="store"):
            pass
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with folder_lock(tmp_path / "out", what="store"):
        pass
    assert os.listdir(tmp_path) == []


def test_release_leaves_a_lock_it_does_not_own(tmp_path):
    target = tmp_path / "out"
    with folder_lock(target, what="store") as lock:
        os.unlink(lock)
        _write_lock(str(target), pid=os.getppid())  # someone else's, e.g. after a manual delete
    assert os.path.exists(lock_path(target))


_HOLDER = """
import sys, time
from sigdiff._lock import folder_lock
with folder_lock(sys.argv[1], what="store"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_two_processes_then_kill_9_frees_the_lock(tmp_path):
    target = str(tmp_path / "out")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, target], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=f"process {holder.pid}"):
            with folder_lock(target, what="store"):
                pass
    finally:
        holder.kill()  # SIGKILL: the holder cannot clean up
        holder.wait()
    assert os.path.exists(lock_path(target))
    with folder_lock(target, what="store"):
        pass
    assert not os.path.exists(lock_path(target))


def test_parents_it_created_are_removed_when_left_empty(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with folder_lock(target, what="store"):
        assert target.parent.is_dir()
    assert os.listdir(tmp_path) == []
    with folder_lock(target, what="store"):
        target.mkdir()  # the writer's output keeps its folders
    assert target.is_dir() and os.listdir(target.parent) == ["out"]


def test_lock_with_our_pid_that_no_thread_holds_is_stale(tmp_path):
    _write_lock(str(tmp_path / "out"), pid=os.getpid())  # a past process that had our PID
    with folder_lock(tmp_path / "out", what="store"):
        pass
    assert os.listdir(tmp_path) == []
