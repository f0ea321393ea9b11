"""FileStore specifics: crash safety, cross-process check-then-act, corrupt files, its layout."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from gateway.errors import Conflict, StoreError
from gateway.stores import FileStore, ObjectCorrupt, ObjectLocked, PreconditionFailed
from gateway.stores.files import MAX_HEADER

KEY = "subjects/aoife/records/mail-1"


@pytest.fixture
async def store(tmp_path: Path) -> FileStore:
    store = FileStore("eu-west-1", tmp_path / "store")
    await store.open()
    return store


async def test_an_object_is_one_file_under_objects_at_its_key_path(store: FileStore) -> None:
    etag = await store.put(KEY, b"hello", {"residency-region": "eu-west-1"})
    raw = (store.root / "objects" / KEY).read_bytes()
    version = etag.strip('"').encode()
    assert raw == b'GWOBJ1\n{"metadata":{"residency-region":"eu-west-1"},"version":"' + version + b'"}\nhello'


async def test_an_object_written_without_a_version_can_still_be_replaced_on_its_etag(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    (store.root / "objects" / KEY).write_bytes(b'GWOBJ1\n{"metadata":{}}\nold')
    etag = (await store.head(KEY)).etag
    assert (await store.get(KEY)).etag == etag
    await store.put(KEY, b"new", {}, if_match=etag)
    assert (await store.get(KEY)).body == b"new"


async def test_a_put_refused_on_its_etag_leaves_no_temp_file(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    with pytest.raises(PreconditionFailed):
        await store.put(KEY, b"y", {}, if_match='"stale"')
    assert list((store.root / "tmp").iterdir()) == []


async def test_a_legal_hold_is_a_marker_under_holds(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    await store.set_legal_hold(KEY, True)
    assert (store.root / "holds" / KEY).is_file()
    await store.set_legal_hold(KEY, False)
    assert not (store.root / "holds" / "subjects").exists()


def fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record the path of everything ``os.fsync`` is called on (it still syncs for real)."""
    real = os.fsync
    paths: list[Path] = []

    def recording(fd: int) -> None:
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return paths


async def test_a_put_that_creates_folders_makes_each_new_folders_name_durable(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = fsynced_paths(monkeypatch)
    await store.put(KEY, b"x", {})
    objects = store.root.resolve() / "objects"
    # each new folder's name lives in its parent: objects/, subjects/, aoife/; the object's own in records/
    assert {objects, objects / "subjects", objects / "subjects" / "aoife", objects / "subjects" / "aoife" / "records"} <= set(synced)


async def test_a_hold_that_creates_folders_makes_each_new_folders_name_durable(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put(KEY, b"x", {})
    synced = fsynced_paths(monkeypatch)
    await store.set_legal_hold(KEY, True)
    holds = store.root.resolve() / "holds"
    assert {holds, holds / "subjects", holds / "subjects" / "aoife", holds / "subjects" / "aoife" / "records"} <= set(synced)


async def test_a_folder_another_writer_makes_meanwhile_is_still_made_durable(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = fsynced_paths(monkeypatch)
    aoife = store.root.resolve() / "objects" / "subjects" / "aoife"
    real_mkdir = Path.mkdir

    def beaten(self: Path, *args: object, **kwargs: object) -> None:
        if self.resolve() == aoife:
            real_mkdir(self)  # the other writer's mkdir wins the race...
            raise FileExistsError(17, "File exists")  # ...and it has not fsynced the parent yet
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", beaten)
    await store.put(KEY, b"x", {})
    assert aoife.parent in synced


async def test_opening_a_store_makes_the_names_of_its_existing_folders_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    for name in ("objects", "holds", "tmp"):  # as another process left them, perhaps before its fsync
        (root / name).mkdir(parents=True)
    synced = fsynced_paths(monkeypatch)
    await FileStore("eu-west-1", root).open()
    assert root.resolve() in synced


async def test_a_put_onto_a_held_key_is_refused_before_it_writes_a_temp_file(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put(KEY, b"x", {})
    await store.set_legal_hold(KEY, True)
    synced = fsynced_paths(monkeypatch)
    with pytest.raises(ObjectLocked):
        await store.put(KEY, b"y" * 1_000_000, {})
    assert synced == []


async def test_a_failed_rename_leaves_the_old_object_and_no_temp_file(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put(KEY, b"old", {"v": "1"})

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreError):
        await store.put(KEY, b"new", {"v": "2"})
    monkeypatch.undo()
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (b"old", {"v": "1"})
    assert list((store.root / "tmp").iterdir()) == []


async def test_a_write_that_dies_before_the_rename_leaves_no_visible_object(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(StoreError):
        await store.put(KEY, b"partial", {})
    monkeypatch.undo()
    assert await store.list("") == []


async def test_temp_files_left_by_a_crash_are_removed_on_open_and_never_listed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = FileStore("eu-west-1", root)
    await first.put(KEY, b"old", {})
    leftover = root / "tmp" / ".tmp-crashed"
    leftover.write_bytes(b"GWOBJ1\n{}\nhalf a bo")
    assert await first.list("") == [KEY]
    again = FileStore("eu-west-1", root)
    await again.open()
    assert not leftover.exists()
    assert (await again.get(KEY)).body == b"old"


# A writer that locks its temp file, writes half an object and dies without cleaning up.
WRITER_DIES = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"GWOBJ1\\n{}\\nhalf a bo")
os._exit(0)
"""


async def test_a_temp_file_whose_writer_process_died_is_removed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    await FileStore("eu-west-1", root).open()
    leftover = root / "tmp" / ".tmp-dead-writer"
    subprocess.run([sys.executable, "-c", WRITER_DIES, str(leftover)], check=True, timeout=30)
    assert leftover.exists()
    await FileStore("eu-west-1", root).open()
    assert not leftover.exists()


async def test_a_temp_file_whose_writer_still_holds_it_is_kept_on_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    await FileStore("eu-west-1", root).open()
    in_flight = root / "tmp" / ".tmp-in-flight"
    fd = os.open(in_flight, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a live writer in another process holds its temp file
        await FileStore("eu-west-1", root).open()
        assert in_flight.exists()
    finally:
        os.close(fd)


async def test_a_put_in_flight_completes_while_another_store_opens_the_same_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    writer = FileStore("eu-west-1", root)
    await writer.open()
    temp_written, resume = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def pausing_fsync(fd: int) -> None:
        real_fsync(fd)
        if not temp_written.is_set():  # the first fsync of the put is its temp file's
            temp_written.set()
            resume.wait(30)

    monkeypatch.setattr(os, "fsync", pausing_fsync)
    put = asyncio.create_task(writer.put(KEY, b"in flight", {"v": "1"}))
    assert await asyncio.to_thread(temp_written.wait, 30)
    assert len(list((root / "tmp").iterdir())) == 1
    await FileStore("eu-west-1", root).open()
    resume.set()
    await put
    obj = await writer.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (b"in flight", {"v": "1"})


async def test_concurrent_puts_of_different_keys_all_land_and_read_back(store: FileStore) -> None:
    keys = [f"notices/pending/n-{i:03d}" for i in range(200)]
    await asyncio.gather(*(store.put(key, key.encode(), {"n": key[-3:]}, if_absent=i % 2 == 0) for i, key in enumerate(keys)))
    assert await store.list("notices/pending/") == keys
    for key in keys:
        obj = await store.get(key)
        assert (obj.body, dict(obj.metadata)) == (key.encode(), {"n": key[-3:]})
    assert list((store.root / "tmp").iterdir()) == []


async def test_exactly_one_of_many_concurrent_if_absent_puts_of_one_key_succeeds(store: FileStore) -> None:
    async def attempt(i: int) -> int | None:
        try:
            await store.put(KEY, f"writer-{i}".encode(), {"writer": str(i)}, if_absent=True)
        except PreconditionFailed:
            return None
        return i

    outcomes = await asyncio.gather(*(attempt(i) for i in range(32)))
    winners = [i for i in outcomes if i is not None]
    assert len(winners) == 1
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (f"writer-{winners[0]}".encode(), {"writer": str(winners[0])})
    assert list((store.root / "tmp").iterdir()) == []


async def test_concurrent_puts_onto_a_held_key_are_all_refused_and_leave_no_temp_file(store: FileStore) -> None:
    await store.put(KEY, b"evidence", {"v": "1"})
    await store.set_legal_hold(KEY, True)
    outcomes = await asyncio.gather(
        *(store.put(KEY, b"tampered", {}, if_absent=i % 2 == 0) for i in range(16)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, ObjectLocked) for outcome in outcomes)
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata), obj.legal_hold) == (b"evidence", {"v": "1"}, True)
    assert list((store.root / "tmp").iterdir()) == []


async def test_an_if_absent_put_whose_key_is_deleted_just_before_it_locks_writes_after_all(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put(KEY, b"old", {})
    real_locked = store._locked

    @contextlib.contextmanager
    def deleted_first() -> Iterator[None]:
        monkeypatch.setattr(store, "_locked", real_locked)
        (store.root / "objects" / KEY).unlink()  # as another process's delete would, before our lock
        with real_locked():
            yield

    monkeypatch.setattr(store, "_locked", deleted_first)
    await store.put(KEY, b"new", {"v": "2"}, if_absent=True)
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (b"new", {"v": "2"})


def _race_if_absent(root: str, name: str, keys: list[str], barrier: Barrier, results: Queue[tuple[str, list[str]]]) -> None:
    """In a child process: try every key with ``if_absent``; report the keys it won."""
    store = FileStore("eu-west-1", Path(root))

    async def run() -> list[str]:
        won = []
        barrier.wait()
        for key in keys:
            try:
                await store.put(key, name.encode(), {"writer": name}, if_absent=True)
            except PreconditionFailed:
                continue
            won.append(key)
        return won

    results.put((name, asyncio.run(run())))


def test_two_processes_racing_if_absent_puts_have_exactly_one_winner_per_key(tmp_path: Path) -> None:
    root = tmp_path / "store"
    keys = [f"race/k{i}" for i in range(20)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results: Queue[tuple[str, list[str]]] = context.Queue()
    workers = [context.Process(target=_race_if_absent, args=(str(root), name, keys, barrier, results)) for name in ("p1", "p2")]
    for worker in workers:
        worker.start()
    won = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    assert set(won["p1"]).isdisjoint(won["p2"])
    assert set(won["p1"]) | set(won["p2"]) == set(keys)

    async def read_back() -> None:
        store = FileStore("eu-west-1", root)
        for key in keys:
            obj = await store.get(key)
            writer = obj.body.decode()
            assert key in won[writer] and obj.metadata == {"writer": writer}

    asyncio.run(read_back())


@pytest.mark.parametrize(
    "content",
    [b"", b"not an object", b"GWOBJ1\n", b"GWOBJ1\n{not json}\nbody", b'GWOBJ1\n{"metadata":[1]}\nbody', b"GWOBJ1\n" + b"x" * 20000],
    ids=["empty", "no-magic", "no-header", "bad-json", "wrong-shape", "unterminated"],
)
async def test_a_corrupt_object_file_is_a_store_error_not_a_crash(store: FileStore, content: bytes) -> None:
    path = store.root / "objects" / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    for read in (store.get, store.head):
        with pytest.raises(StoreError) as caught:
            await read(KEY)
        assert caught.value.code == "object-corrupt"


@pytest.mark.parametrize(
    "content",
    [b"", b"not an object", b"GWOBJ1\n", b"GWOBJ1\n" + b"x" * 20000],
    ids=["empty", "no-magic", "no-header", "unterminated"],
)
async def test_a_bulk_read_of_an_object_file_without_its_header_is_a_store_error(store: FileStore, content: bytes) -> None:
    path = store.root / "objects" / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StoreError) as caught:
        await store.get_bodies([KEY])
    assert caught.value.code == "object-corrupt"


@pytest.mark.parametrize(
    "content",
    [b"", b"not an object", b"GWOBJ1\n", b"GWOBJ1\n{not json}\nbody", b'GWOBJ1\n{"metadata":[1]}\nbody', b"GWOBJ1\n" + b"x" * 20000],
    ids=["empty", "no-magic", "no-header", "bad-json", "wrong-shape", "unterminated"],
)
async def test_a_bulk_header_read_answers_object_corrupt_for_a_corrupt_file_and_reads_the_others(store: FileStore, content: bytes) -> None:
    await store.put("r/1", b"before", {})
    await store.put("r/3", b"after", {})
    path = store.root / "objects" / "r" / "2"
    path.write_bytes(content)
    first, corrupt, last = await store.heads(["r/1", "r/2", "r/3"])
    assert (first and first.size, isinstance(corrupt, ObjectCorrupt) and corrupt.code, last and last.size) == (6, "object-corrupt", 5)


@pytest.mark.parametrize("inline_read_bytes", [0, 64 * 1024])
async def test_a_bulk_header_read_of_more_keys_than_a_slice_answers_every_key_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline_read_bytes: int
) -> None:
    monkeypatch.setattr("gateway.stores.files.INLINE_SLICE_FILES", 2)
    store = FileStore("eu-west-1", tmp_path / "store", inline_read_bytes=inline_read_bytes)
    await store.open()
    keys = [f"r/{n}" for n in range(5)]
    for n, key in enumerate(keys):
        await store.put(key, b"x" * n, {})
    assert [info and info.size for info in await store.heads(keys)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("inline_read_bytes", [0, 100, 64 * 1024])
async def test_a_bulk_read_mixing_small_and_large_files_returns_every_body_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline_read_bytes: int
) -> None:
    monkeypatch.setattr("gateway.stores.files.INLINE_SLICE_BYTES", 1)  # a pause for other work after every file
    monkeypatch.setattr("gateway.stores.files.SMALL_BODY_BYTES", 1000)  # the larger bodies read apart from their headers
    store = FileStore("eu-west-1", tmp_path / "store", inline_read_bytes=inline_read_bytes)
    await store.open()
    bodies = {f"r/{n}": bytes([n]) * size for n, size in enumerate([10, 50_000, 0, 200, 70_000, 3])}
    for key, body in bodies.items():
        await store.put(key, body, {"n": key})
    assert await store.get_bodies(list(bodies)) == list(bodies.values())


async def test_a_bulk_read_reads_on_after_a_short_read(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    body = bytes(range(256)) * 20  # 5,120 bytes: more than one short read
    await store.put(KEY, body, {})
    real_read = os.read
    monkeypatch.setattr("gateway.stores.files.os.read", lambda fd, n: real_read(fd, min(n, 4096)))  # as a network file system may
    assert await store.get_bodies([KEY]) == [body]


async def test_check_fails_when_the_root_disappears(store: FileStore) -> None:
    shutil.rmtree(store.root)
    with pytest.raises(StoreError, match="does not exist"):
        await store.check()


async def test_check_fails_when_the_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a folder")
    with pytest.raises(StoreError):
        await FileStore("eu-west-1", tmp_path / "store").check()


async def test_check_does_not_create_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await FileStore("eu-west-1", tmp_path / "unmounted").check()
    assert not (tmp_path / "unmounted").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
async def test_check_fails_on_a_read_only_root(store: FileStore) -> None:
    for folder in (store.root, store.root / "tmp"):
        folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="not writable"):
            await store.check()
    finally:
        for folder in (store.root, store.root / "tmp"):
            folder.chmod(0o755)


async def test_check_fails_when_no_file_can_be_created_in_the_store(store: FileStore) -> None:
    shutil.rmtree(store.root / "tmp")
    (store.root / "tmp").write_text("in the way")
    with pytest.raises(StoreError, match="not writable"):
        await store.check()


async def test_a_failing_filesystem_is_a_store_error_naming_region_and_operation(store: FileStore) -> None:
    shutil.rmtree(store.root)
    (store.root.parent / "store").write_text("")  # the root is now a file
    with pytest.raises(StoreError) as caught:
        await store.put(KEY, b"x", {})
    assert "`eu-west-1`" in caught.value.message and "put" in caught.value.message


async def test_a_key_cannot_also_be_a_folder_of_keys(store: FileStore) -> None:
    await store.put("a", b"x", {})
    await store.put("b/c", b"x", {})
    with pytest.raises(Conflict) as caught:
        await store.put("a/b", b"y", {})
    assert caught.value.code == "key-conflict"
    with pytest.raises(Conflict):
        await store.put("b", b"y", {})
    assert await store.list("") == ["a", "b/c"]


async def test_deleting_the_last_object_of_a_folder_removes_the_empty_folders(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    await store.delete(KEY)
    assert list((store.root / "objects").iterdir()) == []


async def test_puts_and_deletes_do_not_run_on_the_event_loop(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real_open = os.open

    def spying_open(*args: object, **kwargs: object) -> int:
        seen.append(threading.get_ident())
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spying_open)
    await store.put(KEY, b"x", {})
    await store.delete(KEY)
    assert seen and loop_thread not in seen


async def test_an_object_larger_than_the_inline_read_limit_reads_back_whole(tmp_path: Path) -> None:
    store = FileStore("eu-west-1", tmp_path / "store", inline_read_bytes=1024)
    await store.open()
    body = os.urandom(MAX_HEADER + 4096)
    await store.put(KEY, body, {"v": "1"})
    obj = await store.get(KEY)
    assert (obj.body, dict(obj.metadata)) == (body, {"v": "1"})


async def test_a_store_with_inline_reads_turned_off_reads_objects_back(tmp_path: Path) -> None:
    store = FileStore("eu-west-1", tmp_path / "store", inline_read_bytes=0)
    await store.open()
    await store.put(KEY, b"hello", {"v": "1"})
    assert (await store.get(KEY)).body == b"hello"


async def test_a_folder_of_more_files_than_the_inline_listing_takes_is_listed_whole(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.stores.files as files

    monkeypatch.setattr(files, "INLINE_LIST_ENTRIES", 2)
    keys = [f"subjects/aoife/records/r{i}" for i in range(5)]
    for key in keys:
        await store.put(key, b"x", {})
    assert await store.list("subjects/aoife/records/") == keys


async def test_a_folder_holding_folders_is_listed_to_its_deepest_keys(store: FileStore) -> None:
    await store.put("subjects/aoife/records/r1", b"x", {})
    await store.put("subjects/aoife/profile", b"x", {})
    assert await store.list("subjects/aoife/") == ["subjects/aoife/profile", "subjects/aoife/records/r1"]


async def test_a_listing_leaves_out_a_file_whose_name_is_not_a_key(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    (store.root / "objects" / "subjects" / "aoife" / "records" / "not a key").write_bytes(b"x")
    assert await store.list("subjects/aoife/records/") == [KEY]


async def test_a_listing_of_a_missing_or_file_prefix_is_empty(store: FileStore) -> None:
    await store.put(KEY, b"x", {})
    assert (await store.list("subjects/nobody/"), await store.list(f"{KEY}/")) == ([], [])


async def test_a_store_with_inline_reads_turned_off_lists_in_a_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore("eu-west-1", tmp_path / "store", inline_read_bytes=0)
    await store.open()
    await store.put(KEY, b"x", {})
    loop_thread = threading.get_ident()
    real_scandir = os.scandir

    def scandir_off_the_loop(path: str) -> Iterator[os.DirEntry[str]]:
        assert threading.get_ident() != loop_thread, "listed on the event loop"
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_off_the_loop)
    assert await store.list("subjects/aoife/records/") == [KEY]
