"""Where a store lives: local paths, file://, memory:// and any fsspec URL; atomic publication
(write beside the target, rename onto it) and the clean-up of killed writers' temporaries."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import zarr
from fsspec.core import url_to_fs
from zarr.abc.store import Store

from sigdiff._lock import LockError, folder_lock, pid_alive
from sigdiff.data.store._format import PathLike, StoreError


@dataclass(frozen=True)
class _Location:
    fs: fsspec.AbstractFileSystem
    path: str  # filesystem path, no protocol
    display: str  # what error messages show

    @classmethod
    def parse(cls, target: PathLike, storage_options: Mapping[str, Any] | None) -> _Location:
        text = os.fspath(target)
        fs, path = url_to_fs(text, **dict(storage_options or {}))
        return cls(fs=fs, path=path.rstrip("/"), display=text)

    @property
    def key(self) -> str:
        """What two spellings of one location share (resolved path for local files)."""
        if self.is_local:
            return os.path.realpath(self.path)
        return str(self.fs.unstrip_protocol(self.path))

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def store(self, path: str | None = None, *, read_only: bool) -> Store:
        path = self.path if path is None else path
        if self.is_local:
            return zarr.storage.LocalStore(path, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.fs.unstrip_protocol(path),
            storage_options=_fs_options(self.fs),
            read_only=read_only,
        )

    def sibling(self, tag: str) -> str:
        """A hidden name beside the target that records the writer's PID: .NAME.TAG-PID-XXXXXXXX"""
        parent, _, name = self.path.rpartition("/")
        return f"{parent}/.{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def hold_lock(self, stack: contextlib.ExitStack) -> None:
        """Take the target's writer lock into `stack` (local paths only; remote stores are not
        locked); a live writer holding it is a `StoreError`."""
        if not self.is_local:
            return
        try:
            stack.enter_context(folder_lock(self.path, what="store"))
        except LockError as err:
            raise StoreError(str(err)) from None

    def stale_siblings(self, tags: Sequence[str]) -> list[str]:
        """Hidden siblings (`tags` among "tmp", "old") of this target whose writer process is
        gone (local paths only). Call it under `hold_lock`: then no other live writer owns one."""
        parent, _, name = self.path.rpartition("/")
        if not self.is_local or not os.path.isdir(parent or "/"):
            return []
        pattern = re.compile(rf"\.{re.escape(name)}\.(?:{'|'.join(tags)})-(\d+)-[0-9a-f]{{8}}")
        stale = []
        for entry in os.listdir(parent or "/"):
            match = pattern.fullmatch(entry)
            if match and int(match[1]) != os.getpid() and not pid_alive(int(match[1])):
                stale.append(f"{parent}/{entry}")
        return stale


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _fs_options(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    return dict(getattr(fs, "storage_options", {}) or {})


def _publish(loc: _Location, tmp: str, *, overwrite: bool) -> None:
    """Move the finished temporary store onto the target name (rename on local disks)."""
    trash = None
    if loc.fs.exists(loc.path):
        if not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
        trash = loc.sibling("old")
        _move(loc, loc.path, trash)
    _move(loc, tmp, loc.path)
    if trash is not None:
        loc.fs.rm(trash, recursive=True)


def _move(loc: _Location, src: str, dst: str) -> None:
    if loc.is_local:
        os.replace(src, dst)
    else:
        loc.fs.mv(src, dst, recursive=True)


def _discard(loc: _Location, tmp: str) -> None:
    if loc.fs.exists(tmp):
        loc.fs.rm(tmp, recursive=True)


def _discard_stale(loc: _Location, tags: Sequence[str]) -> None:
    """Remove what killed writers of this target left behind (call under the target's lock).

    Temporaries ("tmp") go before a write; an old copy set aside by a killed overwrite ("old")
    goes only once a new store is in place, since it may be the only copy left."""
    for path in loc.stale_siblings(tags):
        _discard(loc, path)
