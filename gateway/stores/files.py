"""``FileStore``: a region's objects in a local folder (the embedded default).

Layout under ``root``::

    objects/<key path>   one file per object: ``GWOBJ1\\n``, the metadata and the
                         object's version as one line of JSON, then the raw body
    holds/<key path>     an (empty) marker file while a legal hold is placed
    tmp/                 temp files, on the same filesystem as ``objects/``
    .lock                ``flock``-ed by every mutation while it checks and acts

How it keeps the port's rules:
- Atomic put: the object is written to a new file in ``tmp/``, flushed and
  fsynced, then moved into place with ``os.replace`` (or ``os.link`` for
  ``if_absent``, which fails atomically when the target exists), and the
  target's directory is fsynced before ``put`` returns (and, when the put
  creates folders, each new folder's parent as it is made; the same for the
  folders of a hold marker). A crash leaves at most
  a temp file, which a later ``open()`` removes; readers see the old object or
  the new one, never part of one.
- Check-then-act: ``put``, ``delete`` and ``set_legal_hold`` hold an exclusive
  ``flock`` on ``root/.lock`` while they check the hold and the target and act,
  so they are safe across threads and processes sharing the folder. Reads take
  no lock. A ``put`` holds it only for its checks (hold, key conflict,
  ``if_absent``) and the link or rename: it writes and fsyncs the temp file
  before taking the lock, and fsyncs the directory after releasing it (through
  a descriptor opened under the lock), so concurrent puts overlap their
  fsyncs. That later fsync is safe because nothing that takes the lock treats
  an object as durable before it is: ``delete`` fsyncs the directory after its
  unlink, ``set_legal_hold`` fsyncs the object's directory before it writes
  the marker, and an ``if_absent`` put refused because the key exists fsyncs
  the directory before it refuses. (An ``if_absent`` put whose key already
  exists is refused under the lock before it writes any temp file; a put onto
  a held key is refused before it writes one too, and again under the lock.)
- Temp files: each writer holds an exclusive ``flock`` on its temp file from
  its creation (checked: after locking, the writer makes sure the path still
  names its file, else starts over with a new one) until the file has been
  linked or renamed into place and its temp name removed. ``open()`` removes
  only the temp files it can ``flock`` without waiting, and whose path still
  names the file it locked: their writer died (the kernel drops a dead
  process's locks), so another process's live write is never disturbed.
  Processes of a release whose puts wrote temp files under the store lock
  (and whose ``open()`` removed every temp file) must not share the folder
  with this one during an upgrade: either side could remove the other's temp
  file mid-put, which fails that put with a ``StoreError`` (nothing stored is
  lost). Stop the old processes first.
- Writes, deletes, holds, listings and large reads run in
  ``asyncio.to_thread``. These run on the event loop instead: a ``get`` of
  an object file no larger than ``inline_read_bytes`` (64 KiB by default; 0
  turns it off); a ``head`` (one read of at most the header); a
  ``get_bodies`` of such files, in slices of ``INLINE_SLICE_BYTES`` or
  ``INLINE_SLICE_FILES`` with other requests let in between (from the first
  larger file on, the rest of the call runs in a thread); a ``heads`` in
  slices of ``INLINE_SLICE_FILES`` keys, the same way; and a ``list`` of a
  folder holding only files, at most ``INLINE_LIST_ENTRIES`` of them (a
  subject's records). For a small file in the page cache an open and one
  read cost microseconds, less than the hand-off to a worker thread and back
  (about 150 µs here), which would otherwise dominate a small record read.
  Set ``inline_read_bytes`` (in the region's ``store`` in regions.toml) to 0
  where the folder is on a slow or network file system.

Versions (the port's etag): each put writes a new random version token
(128 bits from ``uuid4``) into the new file's header line, and returns it;
``head`` and ``get`` read it back from the header they read anyway. A token
is never reused, unlike a file's inode number (which the file system hands
out again once the replaced file is gone) or its mtime (coarse on some file
systems, so two puts of one size could share all three), so a stale token can
never match a later version. ``put(if_match=...)`` and ``delete(if_match=...)``
read the current file's token under the store's ``flock`` and act, or refuse,
before releasing it: the same lock every writer takes, in this process or
another, so the comparison and the act are one step. An object written by a
release that kept no versions has a token made of its file's inode, mtime_ns
and size; its next put gives it a random one, which no such token equals.

One limit S3 does not have: a key cannot also be the folder of other keys
(``a`` and ``a/b``), because ``objects/a`` cannot be both a file and a
directory; such a put is a ``Conflict`` (``key-conflict``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import fcntl
import functools
import json
import os
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from gateway.errors import Conflict, GatewayError, StoreError
from gateway.model import FILE_INLINE_READ_BYTES, is_identifier
from gateway.stores.base import (
    ObjectCorrupt,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    PreconditionFailed,
    StoredObject,
    validate_conditions,
    validate_key,
    validate_metadata,
    validate_prefix,
)

T = TypeVar("T")

MAGIC = b"GWOBJ1\n"
# The metadata line is at most 2 KiB of names and values plus JSON quoting;
# anything much longer than this is not a header we wrote.
MAX_HEADER = 16 * 1024
TEMP_PREFIX = ".tmp-"
INLINE_SLICE_BYTES = 256 * 1024  # a bulk read on the event loop lets other work in after this many bytes...
INLINE_SLICE_FILES = 64  # ...or files
SMALL_BODY_BYTES = 256 * 1024  # a bulk read reads a file up to this (plus its header) at once and slices the body off
ONE_READ_LIMIT = 128 * 1024  # a read's size limit below which a file is read without an fstat (a buffer this large is cheap)
INLINE_LIST_ENTRIES = 256  # a listing of a folder of at most this many files (and no folders) runs on the event loop


class FileStore:
    """One region's objects under ``root``; see the module docstring for the layout."""

    def __init__(self, region: str, root: Path, *, inline_read_bytes: int = FILE_INLINE_READ_BYTES) -> None:
        self.region = region
        self.root = Path(root)
        self.inline_read_bytes = inline_read_bytes
        self._objects = self.root / "objects"
        self._holds = self.root / "holds"
        self._objects_dir, self._holds_dir = str(self._objects), str(self._holds)
        self._tmp = self.root / "tmp"
        self._lock_path = self.root / ".lock"
        self._opened = False
        self._open_lock = threading.Lock()

    @property
    def _inline_file_bytes(self) -> int:
        """The largest object file read on the event loop."""
        return MAX_HEADER + self.inline_read_bytes

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Create the folders and remove temp files left by a crash; idempotent.

        Called by ``prepare_store`` at start-up, and otherwise before the first
        operation.
        """
        await self._run("open", None, lambda: None)

    async def check(self) -> None:
        """The root exists and a file can be created in it and removed."""
        await asyncio.to_thread(self._check_sync)

    async def close(self) -> None:
        return None

    # --- the port --------------------------------------------------------------

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        validate_key(key)
        clean = validate_metadata(metadata)
        validate_conditions(if_absent, if_match)
        return await self._run("put", key, lambda: self._put_sync(key, bytes(body), clean, if_absent, if_match))

    async def get(self, key: str) -> StoredObject:
        validate_key(key)
        return await self._read("get", key, lambda inline: self._get_sync(key, self._inline_file_bytes if inline else None))

    async def get_bodies(self, keys: Sequence[str]) -> builtins.list[bytes]:
        for key in keys:
            validate_key(key)
        bodies: builtins.list[bytes] = []
        while len(bodies) < len(keys):
            if bodies:
                await asyncio.sleep(0)  # let other requests in between slices read on the loop
            bodies += await self._read("get", None, functools.partial(self._bodies_sync, keys[len(bodies) :]))
        return bodies

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        return await self._read("head", key, lambda inline: self._head_sync(key))

    async def heads(self, keys: Sequence[str]) -> builtins.list[ObjectInfo | ObjectCorrupt | None]:
        for key in keys:
            validate_key(key)
        answers: builtins.list[ObjectInfo | ObjectCorrupt | None] = []
        while len(answers) < len(keys):
            if answers:
                await asyncio.sleep(0)  # let other requests in between slices read on the loop
            answers += await self._read("head", None, functools.partial(self._heads_sync, keys[len(answers) :]))
        return answers

    async def list(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        most = INLINE_LIST_ENTRIES if prefix else 0  # the whole store is listed in a thread
        return await self._read("list", None, lambda inline: self._list_sync(prefix, most if inline else None))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        validate_key(key)
        await self._run("delete", key, lambda: self._delete_sync(key, if_match))

    async def set_legal_hold(self, key: str, on: bool) -> None:
        validate_key(key)
        await self._run("set_legal_hold", key, lambda: self._hold_sync(key, on))

    # --- running blocking work: on the event loop or off it -------------------

    async def _read(self, operation: str, key: str | None, read: Callable[[bool], T | None]) -> T:
        """The one switch: ``read(True)`` on the event loop while inline reads are on, else (or when it
        answers None: too large to read there) ``read(False)`` in a worker thread."""
        if self._opened and self.inline_read_bytes > 0:
            try:
                done = read(True)
            except GatewayError:
                raise
            except OSError as exc:
                raise self._failed(operation, key, exc) from exc
            if done is not None:
                return done
        done = await self._run(operation, key, lambda: read(False))
        assert done is not None  # off the loop a read takes any size
        return done

    async def _run(self, operation: str, key: str | None, work: Callable[[], T]) -> T:
        def call() -> T:
            self._open_sync()
            return work()

        try:
            return await asyncio.to_thread(call)
        except GatewayError:
            raise
        except OSError as exc:
            raise self._failed(operation, key, exc) from exc

    def _failed(self, operation: str, key: str | None, exc: OSError) -> StoreError:
        what = f" `{key}`" if key else ""
        return StoreError(
            f"file store of `{self.region}` failed to {operation}{what}: {exc.strerror or exc}",
            region=self.region,
            operation=operation,
        )

    def _open_sync(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if self._opened:
                return
            for folder in (self._objects, self._holds, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
            # their names are durable before this process writes into them, whoever made them (another
            # process may have died before it fsynced the root); the root's own parent is not ours
            _fsync_dir(self.root)
            self._remove_stale_temps()
            self._opened = True

    def _remove_stale_temps(self) -> None:
        """Remove the temp files whose writer died: those no live writer holds a ``flock`` on.

        A writer holds an exclusive ``flock`` on its temp file from the moment the
        file is its own (see ``_new_temp``) until the file has been linked or
        renamed into place and its name removed; the kernel drops the lock when
        the writer's process dies. So a temp file we can lock without waiting has
        no live writer, and we remove it, once we have checked that its name
        still names the file we locked (another cleaner may have removed it and
        a writer made a new one under the same name meanwhile).
        """
        with os.scandir(self._tmp) as entries:
            names = [entry.path for entry in entries]
        for path in names:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: never hang on a FIFO
            except FileNotFoundError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's: it removes or moves the file itself
                if _names(path, fd):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # --- operations, blocking: put, delete and holds in a worker thread; reads where ``_read`` says --------

    def _put_sync(self, key: str, body: bytes, metadata: dict[str, str], if_absent: bool, if_match: str | None) -> str:
        """Store ``body`` at ``key``; return only once the object is durable.

        The store's lock is held only for the checks and the link or rename, so a
        put's checks, and delete's and set_legal_hold's, see no other mutation
        between their check and their act, while concurrent puts overlap their fsyncs.

        1. Refuse a held key before writing anything (it is refused under the lock anyway).
        2. An ``if_absent`` put of a key that exists (a replay, or another replica was
           first): check under the lock, and if it is still there fsync its folder
           (see 6) and refuse; if it has gone meanwhile, write it after all.
        3. Outside the lock, the slow part: write the header and body to a new temp
           file and fsync it; our ``flock`` on it keeps a cleaner from removing it.
        4. Under the lock: check the hold and the key again (``if_match``: the
           current object's version), make the folders, open the target's folder,
           and link the temp file into place (``if_absent``: fails atomically if the
           key exists) or rename it there.
        5. After the lock, fsync the folder through the descriptor opened under it:
           the folder we linked into even if a delete has pruned it since.
        6. That late fsync is safe: readers take no lock and could always see an
           object before its fsync, and nothing that takes the lock acts on an
           object as durable before it is: delete fsyncs the folder after its
           unlink, set_legal_hold fsyncs the object's folder before it writes the
           marker, and a refused ``if_absent`` put (2, 7) fsyncs the folder before it
           refuses, so a caller that takes the refusal as "someone else wrote it"
           (the notice sweep then deletes its pending notice) can rely on that object;
           a refused ``if_match`` put likewise.
        7. An ``if_absent`` link that found the key, or an ``if_match`` that found
           another version, is refused now, after that fsync.
        8. Remove the temp name if it is still ours, and close the temp file (its ``flock`` goes with it).
        """
        target = self._objects / key
        if self._is_held(key):  # (1)
            raise self._held(key)
        if if_absent and target.is_file():  # (2)
            with self._locked():
                folder = self._checked_folder(key, target)
                present = target.exists()
            if present:
                _fsync_and_close(folder)
                raise self._exists(key)
            os.close(folder)
        version = uuid.uuid4().hex
        header = MAGIC + json.dumps({"metadata": metadata, "version": version}, separators=(",", ":"), sort_keys=True).encode("ascii") + b"\n"
        fd, temp = self._new_temp()  # (3)
        temp_named = True  # ``temp`` still names our file, and we remove it when done
        refused: PreconditionFailed | None = None
        try:
            with open(fd, "wb", closefd=False) as out:
                out.write(header)
                out.write(body)
            os.fsync(fd)
            with self._locked():  # (4)
                folder = self._checked_folder(key, target)
                try:
                    if if_match is not None and self._etag_sync(key) != if_match:
                        refused = self._not_at(key, if_match)
                    elif if_absent:
                        try:
                            os.link(temp, target)
                        except FileExistsError:
                            refused = self._exists(key)
                    else:
                        os.replace(temp, target)
                        temp_named = False
                except BaseException:
                    os.close(folder)
                    raise
            _fsync_and_close(folder)  # (5), safe by (6)
            if refused is not None:  # (7)
                raise refused
            return _etag(version)
        finally:
            try:  # (8)
                if temp_named:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
            finally:
                os.close(fd)

    def _checked_folder(self, key: str, target: Path) -> int:
        """Under the lock: refuse a held key or one that is a folder of keys; else open the target's folder."""
        if self._is_held(key):
            raise self._held(key)
        self._make_parent(key, target)
        if target.is_dir():
            raise self._key_conflict(key)
        return _open_dir(target.parent)

    def _new_temp(self) -> tuple[int, str]:
        """A new temp file in ``tmp/``: its descriptor, holding an exclusive ``flock``, and its path.

        Between ``mkstemp`` and our ``flock`` a cleaner (``_remove_stale_temps``
        in this or another process) can lock and remove the new file. So once
        we hold the lock we check that the path still names our file, and if it
        does not, start over: from then on no cleaner can lock it, so it stays.
        """
        while True:
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self._tmp)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _names(temp, fd):
                    return fd, temp
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed by a cleaner before we locked it; the name is not ours to remove

    def _get_sync(self, key: str, limit: int | None) -> StoredObject | None:
        """The object; None if its file is larger than ``limit`` bytes."""
        read = self._read_file(key, limit)
        if read is None:
            return None
        header, body = read
        metadata, version = self._parse_header(key, header)
        return StoredObject(key, body, metadata, self._is_held(key), _etag(version) if version else self._stat_etag(key))

    def _bodies_sync(self, keys: Sequence[str], inline: bool) -> builtins.list[bytes] | None:
        """The bodies of ``keys`` in order, their headers checked for the magic and an end, not parsed (a
        bulk read's caller checks each body against its SHA-256). ``inline``: only a slice of them
        (``INLINE_SLICE_BYTES`` or ``INLINE_SLICE_FILES``), up to the first file too large to read on
        the loop (None if that is the first)."""
        limit = self._inline_file_bytes if inline else None
        bodies: builtins.list[bytes] = []
        size = 0
        for key in keys:
            try:
                read = self._read_file(key, limit)
            except OSError as exc:  # name the key that failed
                raise self._failed("get", key, exc) from exc
            if read is None:
                break
            bodies.append(read[1])
            size += len(read[1])
            if inline and (size >= INLINE_SLICE_BYTES or len(bodies) >= INLINE_SLICE_FILES):
                break
        return bodies or None

    def _read_file(self, key: str, limit: int | None) -> tuple[bytes, bytes] | None:
        """The object file's header line and body; None if the file is larger than ``limit`` bytes."""
        fd = self._open_file(key)
        try:
            if limit is not None and limit < ONE_READ_LIMIT:
                # reading up to limit + 1 bytes, to the end of the file, says whether it fits without an fstat:
                # bench.fileread's get_bodies, 16.6 against 18.7 µs per 4 KiB object (11%); a short read is read on from
                try:
                    data = os.read(fd, limit + 1)
                    while len(data) <= limit and (more := os.read(fd, limit + 1 - len(data))):
                        data += more
                except IsADirectoryError:  # a folder of other keys, not an object
                    raise self._not_found(key) from None
                return None if len(data) > limit else self._split(key, data)
            size = self._file_size(key, fd)
            if limit is not None and size > limit:
                return None
            if size <= len(MAGIC) + MAX_HEADER + SMALL_BODY_BYTES:  # one read, the body sliced off it
                data = os.read(fd, size + 1)
                if len(data) != size:  # a short read, or a file changed in place since fstat: read on to its end
                    data += _read_to_end(fd)
                return self._split(key, data)
            # a large body is read into a buffer of its own size, so it is never held twice
            head = _pread_exactly(fd, len(MAGIC) + MAX_HEADER, 0)
            start = self._body_start(key, head)
            return head[len(MAGIC) : start], _pread_exactly(fd, size - start, start)
        finally:
            os.close(fd)

    def _head_sync(self, key: str, held: bool | None = None) -> ObjectInfo:
        """The object's size and metadata from one read of at most its header; ``held``: its hold state
        if the caller knows it (else its marker is looked for)."""
        fd = self._open_file(key)
        try:
            st = os.fstat(fd)
            size = self._file_size(key, fd, st)
            data = _pread_exactly(fd, min(size, len(MAGIC) + MAX_HEADER), 0)
        finally:
            os.close(fd)
        start = self._body_start(key, data)
        metadata, version = self._parse_header(key, data[len(MAGIC) : start])
        held = self._is_held(key) if held is None else held
        return ObjectInfo(key, size - start, metadata, held, _etag(version) if version else _stat_etag(st))

    def _heads_sync(self, keys: Sequence[str], inline: bool) -> builtins.list[ObjectInfo | ObjectCorrupt | None]:
        """``_head_sync`` of each of ``keys`` as an answer (see ``RecordStore.heads``); ``inline``: only the first
        ``INLINE_SLICE_FILES`` of them. A key's hold marker is looked for only if the holds folder of its
        folder exists: one ``stat`` for all the unheld records of a subject, not one per record."""
        answers: builtins.list[ObjectInfo | ObjectCorrupt | None] = []
        may_hold: dict[str, bool] = {}  # by folder: whether its holds folder exists
        for key in keys[:INLINE_SLICE_FILES] if inline else keys:
            folder = key.rpartition("/")[0]
            if folder not in may_hold:
                may_hold[folder] = os.path.isdir(f"{self._holds_dir}/{folder}")
            try:
                answers.append(self._head_sync(key, held=None if may_hold[folder] else False))
            except ObjectNotFound:
                answers.append(None)
            except ObjectCorrupt as corrupt:
                answers.append(corrupt)
            except OSError as exc:  # name the key that failed
                raise self._failed("head", key, exc) from exc
        return answers

    def _etag_sync(self, key: str) -> str | None:
        """The current object's etag (None if there is none): under the lock, for ``if_match``."""
        try:
            return self._head_sync(key).etag
        except ObjectNotFound:
            return None

    def _stat_etag(self, key: str) -> str:
        """The etag of an object written without a version (by an earlier release): see the module docstring."""
        try:
            return _stat_etag(os.stat(f"{self._objects_dir}/{key}"))
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(key) from None

    def _list_sync(self, prefix: str, most: int | None) -> builtins.list[str] | None:
        """The keys under ``prefix``, sorted (files whose names are not keys left out). With ``most``: None
        (list in a thread) unless ``prefix``'s folder holds only files, at most ``most`` of them."""
        keys: builtins.list[str] = []
        folders = [prefix]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(f"{self._objects_dir}/{folder}") as entries:
                    for n, entry in enumerate(entries):
                        if most is not None and (n == most or not entry.is_file(follow_symlinks=False)):
                            return None
                        if not is_identifier(entry.name):
                            continue
                        if not entry.is_dir():
                            keys.append(folder + entry.name)
                        elif not entry.is_symlink():
                            folders.append(f"{folder}{entry.name}/")
            except (FileNotFoundError, NotADirectoryError):
                continue  # a missing prefix, or a folder a delete pruned meanwhile
        return sorted(keys)

    def _delete_sync(self, key: str, if_match: str | None) -> None:
        target = self._objects / key
        with self._locked():
            if not target.is_file():
                raise self._not_found(key)
            if self._is_held(key):
                raise self._held(key)
            if if_match is not None and self._etag_sync(key) != if_match:
                raise self._not_at(key, if_match)
            target.unlink()
            _fsync_dir(target.parent)
            _prune(target.parent, self._objects)

    def _hold_sync(self, key: str, on: bool) -> None:
        target = self._objects / key
        marker = self._holds / key
        with self._locked():
            if not target.is_file():
                raise self._not_found(key)
            if on:
                # A put fsyncs the object's folder after it releases the lock, so
                # the object we found may not be durable yet: make it so before
                # the hold is (a hold must never outlive its object in a crash).
                _fsync_dir(target.parent)
                _make_folders(marker.parent, self._holds)
                marker.touch(exist_ok=True)
                _fsync_dir(marker.parent)
            elif marker.is_file():
                marker.unlink()
                _fsync_dir(marker.parent)
                _prune(marker.parent, self._holds)

    def _check_sync(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"file store root `{self.root}` of `{self.region}` does not exist or is not a folder", region=self.region)
        try:
            self._open_sync()
            fd, probe = tempfile.mkstemp(prefix=".check-", dir=self._tmp)
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"file store root `{self.root}` of `{self.region}` is not writable: {exc.strerror or exc}",
                region=self.region,
            ) from exc

    # --- helpers -----------------------------------------------------------------

    def _open_file(self, key: str) -> int:
        try:
            return os.open(f"{self._objects_dir}/{key}", os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None

    def _file_size(self, key: str, fd: int, st: os.stat_result | None = None) -> int:
        st = st or os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a folder of other keys, not an object
            raise self._not_found(key)
        return st.st_size

    def _body_start(self, key: str, head: bytes) -> int:
        """Where the body begins, after the magic and the header line at the start of ``head``."""
        end = head.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
        if not head.startswith(MAGIC) or end < 0:
            raise self._corrupt(key, ValueError("bad magic or unterminated header"))
        return end + 1

    def _split(self, key: str, data: bytes) -> tuple[bytes, bytes]:
        """The header line and the body of an object file's bytes."""
        start = self._body_start(key, data)
        return data[len(MAGIC) : start], data[start:]

    def _parse_header(self, key: str, line: bytes) -> tuple[dict[str, str], str | None]:
        """The metadata and the version (None: written by a release that kept none) in a header line."""
        try:
            header = json.loads(line.decode("ascii"))  # written as ASCII; json.loads of bytes guesses their encoding first
            metadata = header["metadata"]
            if not isinstance(metadata, dict) or not all(type(v) is str for v in metadata.values()):  # JSON's keys are text
                raise ValueError("metadata is not a map of strings")
            version = header.get("version")
            if version is not None and not isinstance(version, str):
                raise ValueError("version is not text")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._corrupt(key, exc) from exc
        return metadata, version

    def _corrupt(self, key: str, cause: Exception) -> ObjectCorrupt:
        error = ObjectCorrupt(
            f"object `{key}` in `{self.region}` is corrupt: its header is unreadable",
            region=self.region,
            key=key,
        )
        error.__cause__ = cause
        return error

    def _is_held(self, key: str) -> bool:
        return os.path.isfile(f"{self._holds_dir}/{key}")

    def _make_parent(self, key: str, target: Path) -> None:
        try:
            _make_folders(target.parent, self._objects)
        except (FileExistsError, NotADirectoryError):
            raise self._key_conflict(key) from None

    def _held(self, key: str) -> ObjectLocked:
        return ObjectLocked(f"object `{key}` in `{self.region}` is under a legal hold")

    def _exists(self, key: str) -> PreconditionFailed:
        return PreconditionFailed(f"object `{key}` already exists in `{self.region}`")

    def _not_at(self, key: str, etag: str) -> PreconditionFailed:
        return PreconditionFailed(f"object `{key}` in `{self.region}` is not at version {etag}")

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"object `{key}` does not exist in `{self.region}`")

    def _key_conflict(self, key: str) -> Conflict:
        return Conflict(
            f"object `{key}` cannot be stored in the file store of `{self.region}`: a key cannot also be a folder of other keys",
            code="key-conflict",
        )


def _etag(version: str) -> str:
    return f'"{version}"'


def _stat_etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _pread_exactly(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes from ``offset`` (fewer only if the file ends first)."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size and (chunk := os.pread(fd, size - got, offset + got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _open_dir(folder: Path) -> int:
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)


def _fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def _fsync_and_close(fd: int) -> None:
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    _fsync_and_close(_open_dir(folder))


def _make_folders(folder: Path, top: Path) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)`` below an existing ``top``, made durable.

    The parent of each folder it creates is fsynced: an fsync of a file or
    folder does not make its own name in its parent durable, so without it a
    crash could lose a new folder, and the object or hold marker fsynced into
    it, after the put or the hold had returned. ``FileExistsError`` if a part
    of the path is a file.
    """
    missing: list[Path] = []
    while folder != top and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    if folder == top:
        top.mkdir(parents=True, exist_ok=True)  # (a store's own folders: the root's parent is not ours to fsync)
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            if not new.is_dir():
                raise
            # made meanwhile by another writer, which may die before it makes the name durable
        _fsync_dir(new.parent)


def _names(path: str, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _prune(folder: Path, top: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``top``."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
