"""Where a store lives: local paths, file://, memory:// and any fsspec URL (s3://, gs://, ...);
atomic publication (write beside the target, rename onto it; on object storage, copy with the
root metadata last) and the clean-up of killed writers' temporaries."""

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
from fsspec.registry import known_implementations
from zarr.abc.store import Store

from sigdiff._faults import kill_point
from sigdiff._lock import LockError, folder_lock, pid_alive
from sigdiff.data.store._format import PathLike, StoreError

#: What to install for a URL protocol whose fsspec filesystem is missing (others: the package
#: fsspec names for it).
_INSTALL = {"s3": "'sigdiff[s3]'", "s3a": "'sigdiff[s3]'", "gs": "gcsfs", "gcs": "gcsfs"}
_ROOT_META = "zarr.json"  # a zarr v3 group's root metadata (holding the consolidated metadata)


@dataclass(frozen=True)
class _Location:
    fs: fsspec.AbstractFileSystem
    path: str  # filesystem path, no protocol
    display: str  # what error messages show

    @classmethod
    def parse(cls, target: PathLike, storage_options: Mapping[str, Any] | None) -> _Location:
        text = os.fspath(target)
        fs, path = _url_to_fs(text, storage_options)
        loc = cls(fs=fs, path=path.rstrip("/"), display=text)
        if not loc.is_local:  # listings cached by fsspec miss what other instances wrote
            fs.invalidate_cache()
        return loc

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


def _url_to_fs(text: str, storage_options: Mapping[str, Any] | None
               ) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec's (filesystem, path) of a path or URL; a protocol whose package is missing or
    unknown is a `StoreError` that says what to install."""
    protocol = text.split("://", 1)[0] if "://" in text else "file"
    try:
        return url_to_fs(text, **dict(storage_options or {}))
    except ImportError as err:  # fsspec: "Install s3fs to access S3"
        fs_class = str(known_implementations.get(protocol, {}).get("class", ""))
        package = _INSTALL.get(protocol) or fs_class.split(".")[0] or "the package named there"
        raise StoreError(f"{text}: {protocol}:// URLs need a package that is not installed "
                         f"({err}); pip install {package}") from None
    except ValueError as err:
        if "Protocol not known" not in str(err):
            raise
        raise StoreError(f"{text}: unknown URL protocol {protocol!r}; give a local path or an "
                         "fsspec URL (file://, memory://, s3://, gs://, ...)") from None


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _fs_options(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    return dict(getattr(fs, "storage_options", {}) or {})


def _publish(loc: _Location, tmp: str, *, overwrite: bool) -> None:
    """Move the finished temporary store onto the target name (rename on local disks; copy with
    the root metadata last elsewhere, see `_publish_by_copy`)."""
    if not loc.is_local:
        _publish_by_copy(loc, tmp, overwrite=overwrite)
        return
    trash = None
    if loc.fs.exists(loc.path):
        if not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
        trash = loc.sibling("old")
        _move(loc, loc.path, trash)
    _move(loc, tmp, loc.path)
    if trash is not None:
        loc.fs.rm(trash, recursive=True)


def _publish_by_copy(loc: _Location, tmp: str, *, overwrite: bool) -> None:
    """Publish on a filesystem without an atomic rename of folders (object storage: s3://,
    gs://, ...; memory://), where a "move" is a copy of every object.

    A reader opens a store by its root ``zarr.json``, which holds the consolidated metadata of
    every array, so that object is removed first and written last: the target is either the old
    complete store, no store at all, or the new complete store, never a mixture. A writer that
    dies before publication leaves the old store untouched (and its temporary, which nothing
    cleans up remotely); one that dies during it leaves no store at the target (objects without
    a root ``zarr.json``, not readable as a store, replaced by the next ``overwrite``). Remote
    targets take no writer lock: two concurrent writers of one URL race and the last one wins.
    """
    loc.fs.invalidate_cache()  # zarr wrote through another filesystem instance
    if loc.fs.exists(loc.path):
        if not overwrite:
            raise StoreError(f"{loc.display}: already exists; pass overwrite=True (--overwrite)")
        root = f"{loc.path}/{_ROOT_META}"
        if loc.fs.exists(root):
            loc.fs.rm(root)  # the old store stops being a store before any object changes
        loc.fs.rm(loc.path, recursive=True)
    sources = sorted(loc.fs.find(tmp))
    tmp_root = f"{tmp}/{_ROOT_META}"
    if tmp_root not in sources:
        raise StoreError(f"{loc.display}: the finished temporary store {tmp} has no root "
                         f"{_ROOT_META}; nothing was published")
    data = [p for p in sources if p != tmp_root]
    loc.fs.copy(data, [loc.path + p[len(tmp):] for p in data])  # concurrent on async filesystems
    kill_point("store.publishing")  # fault tests: every object copied but the root metadata
    loc.fs.copy(tmp_root, f"{loc.path}/{_ROOT_META}")
    loc.fs.invalidate_cache()


def _move(loc: _Location, src: str, dst: str) -> None:
    os.replace(src, dst)  # local disks only: remote stores publish by `_publish_by_copy`


def _discard(loc: _Location, tmp: str) -> None:
    if not loc.is_local:
        loc.fs.invalidate_cache()  # zarr wrote `tmp` through another filesystem instance
    if loc.fs.exists(tmp):
        loc.fs.rm(tmp, recursive=True)


def _discard_stale(loc: _Location, tags: Sequence[str]) -> None:
    """Remove what killed writers of this target left behind (call under the target's lock).

    Temporaries ("tmp") go before a write; an old copy set aside by a killed overwrite ("old")
    goes only once a new store is in place, since it may be the only copy left."""
    for path in loc.stale_siblings(tags):
        _discard(loc, path)
