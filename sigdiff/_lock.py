"""One writer per output: an advisory lock file beside a folder, stale locks taken over.

``with folder_lock("out.zarr", what="store"):`` creates ``out.zarr.lock`` atomically
(``O_CREAT | O_EXCL``) holding the writer's PID and hostname, and removes it on exit. A second
process that asks for the same lock gets a `LockError` naming the holder. A lock whose PID is no
longer alive on this host (its writer was killed) is taken over silently. The lock is re-entrant
within one thread, so a function that locks its outputs up front may call writers that lock
them again. Parent folders it had to create are removed again on exit if they are still empty,
so a failed write leaves no trace.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["LockError", "folder_lock", "lock_path", "pid_alive"]

LOCK_SUFFIX = ".lock"
_GUARD_SUFFIX = ".takeover"  # short-lived file serialising the takeover of a stale lock
_UNREADABLE_GRACE_S = 10.0  # an empty/garbled lock younger than this may still be being written
_ATTEMPTS = 3  # create → find stale → take over → create again

_held: dict[tuple[str, int], tuple[str, int]] = {}  # (lock file, thread) -> (token, depth)
_held_guard = threading.Lock()


class LockError(ValueError):
    """Another live process holds the lock; the message names it and what to do."""


@dataclass(frozen=True)
class _Holder:
    pid: int | None
    host: str | None
    token: str | None

    def is_stale(self, lock: str) -> bool:
        if self.pid is None:  # empty or garbled: stale once old enough to be finished
            return _age(lock) > _UNREADABLE_GRACE_S
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():  # ours only if a thread of ours holds it: else a past
            with _held_guard:  # process that had our PID (PIDs are reused, e.g. in containers)
                return not any(path == lock for path, _ in _held)
        return not pid_alive(self.pid)

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        here = self.host == socket.gethostname()
        mine = " (this process)" if here and self.pid == os.getpid() else ""
        return f"process {self.pid}{mine}" + ("" if here else f" on host {self.host}")


def lock_path(path: str | os.PathLike[str]) -> str:
    """The lock file of `path`: its resolved path (one lock for every spelling) plus ``.lock``."""
    return os.path.realpath(os.fspath(path).rstrip(os.sep) or os.sep) + LOCK_SUFFIX


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (`os.kill(pid, 0)`)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@contextmanager
def folder_lock(path: str | os.PathLike[str], *, what: str) -> Iterator[str]:
    """Hold the lock of `path` (a folder that may not exist yet) for the `with` block.

    Yields the lock file's path. Raises `LockError` when a live process holds it. `what` names
    the thing in messages ("store", "run folder", ...).
    """
    lock = lock_path(path)
    key = (lock, threading.get_ident())
    with _held_guard:
        token, depth = _held.get(key, ("", 0))
    created: list[str] = []
    if depth == 0:
        token = uuid.uuid4().hex
        created = _make_parents(os.path.dirname(lock))
        try:
            _acquire(lock, token, what=what, target=os.fspath(path))
        except BaseException:
            _remove_empty(created)
            raise
    with _held_guard:
        _held[key] = (token, depth + 1)
    try:
        yield lock
    finally:
        with _held_guard:
            _held[key] = (token, depth)
            if depth == 0:
                del _held[key]
        if depth == 0:
            _release(lock, token)
            _remove_empty(created)


def _make_parents(folder: str) -> list[str]:
    """Create `folder` and missing ancestors; return those created, deepest first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if missing:
        os.makedirs(missing[0], exist_ok=True)
    return missing


def _remove_empty(folders: list[str]) -> None:
    for folder in folders:  # deepest first; stop at the first that holds something
        try:
            os.rmdir(folder)
        except OSError:
            return


def _acquire(lock: str, token: str, *, what: str, target: str) -> None:
    for _ in range(_ATTEMPTS):
        try:
            _create(lock, token)
            return
        except FileExistsError:
            pass
        holder = _read(lock)
        if holder is None:  # released between our create and read
            continue
        if not holder.is_stale(lock):
            raise LockError(
                f"{what} {target} is being written by {holder.describe()}; wait for it or "
                f"choose another output (if no such writer is running, delete {lock})"
            )
        _take_over(lock, holder, what=what, target=target)
    raise LockError(f"{what} {target}: could not take the lock {lock}; try again")


def _create(lock: str, token: str) -> None:
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        body = {"pid": os.getpid(), "host": socket.gethostname(), "token": token,
                "time": time.time()}
        os.write(fd, json.dumps(body).encode())
    finally:
        os.close(fd)


def _read(lock: str) -> _Holder | None:
    """The lock's holder; None when the file is gone; pid None when it is empty or garbled."""
    try:
        with open(lock, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        body = json.loads(text)
        return _Holder(pid=int(body["pid"]), host=str(body["host"]), token=str(body["token"]))
    except (ValueError, KeyError, TypeError):
        return _Holder(pid=None, host=None, token=None)


def _take_over(lock: str, stale: _Holder, *, what: str, target: str) -> None:
    """Remove `lock` if it still holds `stale`, serialised by a guard file so that two processes
    taking over at once cannot both remove a lock the other has just created."""
    guard = lock + _GUARD_SUFFIX
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        if _age(guard) > _UNREADABLE_GRACE_S:  # its taker died mid-takeover
            _unlink(guard)
            return
        raise LockError(
            f"{what} {target}: another process is taking over a stale lock {lock}; try again"
        ) from None
    try:
        if _read(lock) == stale:
            _unlink(lock)
    finally:
        _unlink(guard)


def _release(lock: str, token: str) -> None:
    holder = _read(lock)
    if holder is not None and holder.token == token:
        _unlink(lock)


def _age(path: str) -> float:
    try:
        return time.time() - os.path.getmtime(path)
    except FileNotFoundError:
        return 0.0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
