"""The fleet's stream tail (server/fleet.py) over two PostgreSQL stores on one database (two processes
of a fleet): it pushes what the other process stored, never its own writes, and loses nothing when
notifications are dropped, when a read fails, or when PostgreSQL restarts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import psycopg
import pytest
from postgres_server import PostgresServer

from gunrelay.core.graph import Field
from gunrelay.server.fleet import StreamTail
from gunrelay.storage.postgres import STREAM_CHANNEL, PostgresStore


class Subscribers:
    """Stands in for ``Relay``: what the tail hands to this process's subscribers."""

    def __init__(self) -> None:
        self.fields: list[Field] = []

    def shared(self, fields: list[Field]) -> None:
        self.fields += fields


@pytest.fixture
async def two(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    url = postgres_url
    first, second = PostgresStore(url), PostgresStore(url)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def _until(what: str, check, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):  # bounded
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_the_tail_pushes_the_other_process_writes_in_order_and_never_its_own(two):
    first, second = two
    await first.merge([Field("before", "k", 1, 1)])  # before the tail started: not pushed
    here = Subscribers()
    tail = StreamTail(here, second, poll_s=5.0)  # type: ignore[arg-type]
    await tail.start()
    second.listen({STREAM_CHANNEL: tail.nudge})
    try:
        await first.merge([Field("s", "a", 1, 1)])
        await second.merge([Field("s", "mine", 1, 1)])
        await first.merge([Field("s", "a", 2, 2), Field("s", "b", 3, 1)])
        await _until("the nudge brought the other process's writes", lambda: len(here.fields) >= 2)
        await asyncio.sleep(0.3)
        # keep-latest: "a" at its current value only if the tail read after the second write; in HAM order either way
        values = [(f.key, f.value) for f in here.fields]
        assert ("s", "mine") not in [(f.soul, f.key) for f in here.fields]
        assert values in ([("a", 1), ("a", 2), ("b", 3)], [("a", 2), ("b", 3)]), values
        assert "before" not in {f.soul for f in here.fields}
    finally:
        await tail.stop()


async def test_without_any_notification_the_poll_brings_everything(two):
    first, second = two
    # nobody listens: every notification is dropped
    here = Subscribers()
    tail = StreamTail(here, second, poll_s=0.2)  # type: ignore[arg-type]
    await tail.start()
    try:
        for n in range(5):
            await first.merge([Field("p", f"k{n}", n, 1)])
        await _until("the poll read the stream", lambda: len(here.fields) == 5)
        assert [f.key for f in here.fields] == [f"k{n}" for n in range(5)]
    finally:
        await tail.stop()


async def test_a_failed_read_keeps_the_cursor_and_nothing_is_lost(two, monkeypatch):
    first, second = two
    here = Subscribers()
    tail = StreamTail(here, second, poll_s=0.2)  # type: ignore[arg-type]
    real = second.others_since
    failing = {"left": 3}

    def flaky(cursor: int, limit: int):
        if failing["left"] > 0:
            failing["left"] -= 1
            future = asyncio.get_running_loop().create_future()
            future.set_exception(OSError("the database went away"))
            return future
        return real(cursor, limit)

    await tail.start()
    try:
        monkeypatch.setattr(second, "others_since", flaky)
        await first.merge([Field("f", "k", "kept", 1)])
        await _until("the write arrived after the failures", lambda: [f.value for f in here.fields] == ["kept"])
        assert tail.failures >= 3
    finally:
        await tail.stop()


async def test_a_postgresql_restart_loses_nothing():
    # a server of its own: restarting it must not disturb the module's other tests
    server = PostgresServer()
    server.start()
    try:
        url = server.new_database()
        first, second = PostgresStore(url), PostgresStore(url)
        await first.open()
        await second.open()
        here = Subscribers()
        tail = StreamTail(here, second, poll_s=0.2)  # type: ignore[arg-type]
        await tail.start()
        try:
            await first.merge([Field("r", "before", 1, 1)])
            await _until("the first write", lambda: len(here.fields) == 1)
            await asyncio.to_thread(_restart, server)
            for _ in range(100):  # bounded: the writer fails the group it had when the server went, then reconnects
                try:
                    await first.merge([Field("r", "after", 2, 1)])
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            await _until("the write after the restart", lambda: [f.key for f in here.fields] == ["before", "after"], timeout=15)
        finally:
            await tail.stop()
            await first.close()
            await second.close()
    finally:
        server.stop()


def _restart(server: PostgresServer) -> None:
    """Stop the server by its PID (fast shutdown) and start it again on the same folder and port."""
    process = server.process
    assert process is not None
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    server.process = subprocess.Popen(
        process.args, stdout=(server.root / "server2.log").open("wb"), stderr=subprocess.STDOUT, cwd=server.root,
        **server._run_as(),  # type: ignore[call-overload]
    )
    for _ in range(300):  # bounded
        try:
            psycopg.connect(server.url("postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("PostgreSQL did not come back")


def test_processes_of_a_fleet_share_the_data_folder_and_an_offline_command_is_still_refused(tmp_path):
    from gunrelay.server.datalock import DataFolderBusy, DataLock

    first, second = DataLock(tmp_path, shared=True), DataLock(tmp_path, shared=True)
    first.acquire()
    second.acquire()
    try:
        with pytest.raises(DataFolderBusy):
            DataLock(tmp_path).acquire()  # the offline CLI's lock
    finally:
        first.release()
        second.release()
    alone = DataLock(tmp_path)
    alone.acquire()
    try:
        with pytest.raises(DataFolderBusy):
            DataLock(tmp_path, shared=True).acquire()  # a relay process while an offline command works
    finally:
        alone.release()
