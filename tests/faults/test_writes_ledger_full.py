"""A real gateway whose ledger disk is full: a write it cannot ledger is refused and not stored (the ledger on a small tmpfs)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import GatewayProcess, Workdir, running

TMPFS_BYTES = 1 << 20
WRITES = 64  # more than a ledger page's slack can take


def _request(url: str, headers: dict[str, str], *, data: bytes | None = None, method: str = "GET") -> tuple[int, dict | bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def small_tmpfs(folder: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on ``folder`` (skips the test where this machine does not let us mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def filled(folder: Path) -> Iterator[None]:
    """Fill the file system of ``folder`` to the last byte; free it again afterwards."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        for size in (1 << 16, 1):  # in blocks, then byte by byte to the very end
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


def test_on_a_full_ledger_disk_a_refused_write_is_not_stored_and_an_acknowledged_one_is(tmp_path: Path) -> None:
    """Appends fit in the ledger file's last page for a while after the disk is full, so writes go on until one is refused:
    each answered 2xx is stored and served once the disk has room, each answered 503 is stored nowhere."""
    work = Workdir.make(tmp_path / "w")
    with small_tmpfs(work.ledger_dir) as ledger_folder, running(GatewayProcess(work).wait_ready()) as gw:
        writer = work.service("crm", "eu-west-1", "crm")
        registered, _ = _request(
            f"{gw.url}/v1/subjects/aoife", {**writer, "Content-Type": "application/json"}, data=b'{"home_region": "eu-west-1", "residence": "IE"}', method="PUT"
        )
        assert registered == 201
        records = f"{gw.url}/v1/subjects/aoife/records"
        answers: dict[str, int] = {}
        with filled(ledger_folder):
            for n in range(WRITES):
                status, problem = _request(f"{records}/mail-{n}?category=content", writer, data=b"x" * 512, method="PUT")
                answers[f"mail-{n}"] = status
                if status == 503:
                    assert problem["code"] == "ledger-unavailable"
                    break
        assert 503 in answers.values(), answers
        objects = work.data_dir / "stores" / "eu-west-1" / "objects" / "subjects" / "aoife" / "records"
        for key, status in answers.items():
            if status == 503:
                assert not (objects / key).exists()
                assert _request(f"{records}/{key}", writer)[0] == 404
            else:
                assert status in (200, 201)
                assert _request(f"{records}/{key}", writer) == (200, b"x" * 512)
