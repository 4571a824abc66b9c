"""Faults under a live relay: the disk fills, the data folder turns read-only, a client vanishes
mid-frame, a client never reads. In each the relay says what is wrong (an error to the writer,
``/health`` degraded), never acknowledges a write it could not make durable, keeps serving reads
and other peers, and recovers by itself when the fault ends.

The disk is a real tmpfs of a few MiB that the test mounts; the read-only folder is a pass-through
FUSE file system (``faultfs.py``) whose writes fail with EROFS while the test says so. Both need
root and /dev/fuse, which the CI machine has (``make test`` installs fuse3).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from raw_websocket import read_until_closed, upgrade
import websockets

FAULTFS = Path(__file__).resolve().parent / "faultfs.py"


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)


def unmount(path: Path) -> None:
    for _ in range(50):  # bounded: a moment for the last file handles to close
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "6m")
    try:
        yield disk
    finally:
        unmount(disk)


class FaultFolder:
    def __init__(self, root: Path):
        self.backing = root / "backing"
        self.mount = root / "mount"
        self.control = root / "fault"
        self.backing.mkdir()
        self.mount.mkdir()
        self.control.write_text("")
        self.proc = subprocess.Popen([sys.executable, str(FAULTFS), str(self.backing), str(self.mount), str(self.control)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            if os.path.ismount(self.mount):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultfs did not start: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        raise RuntimeError("faultfs did not mount within 5 s")

    def set(self, fault: str) -> None:
        self.control.write_text(fault)

    def close(self) -> None:
        self.set("")
        unmount(self.mount)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def fault_folder(tmp_path: Path):
    folder = FaultFolder(tmp_path)
    try:
        yield folder
    finally:
        folder.close()


@pytest.fixture
def relay_settings(request: pytest.FixtureRequest) -> dict:
    """The relay's data folder on the fault a test asks for."""
    if "small_disk" in request.fixturenames:
        return {"data": str(request.getfixturevalue("small_disk") / "data")}
    if "fault_folder" in request.fixturenames:
        return {"data": str(request.getfixturevalue("fault_folder").mount / "data")}
    return {"max_send_queue_bytes": 256 * 1024}


class Writer:
    """One websocket peer that puts fields and remembers which were acknowledged."""

    def __init__(self, ws):
        self.ws = ws
        self.acked: dict[str, str] = {}  # soul -> value
        self.errors: list[str] = []
        self.n = 0

    async def put(self, value: str, prefix: str = "w", soul: str | None = None) -> dict:
        self.n += 1
        soul, msg_id = soul or f"{prefix}/{self.n}", f"put-{prefix}-{self.n}"
        state = time.time() * 1000
        await self.ws.send(json.dumps({"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {"v": state}}, "v": value}}}))
        reply = await answer(self.ws, msg_id)
        if reply.get("ok"):
            self.acked[soul] = value
        else:
            self.errors.append(reply["err"])
        return reply


async def answer(ws, msg_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no answer to {msg_id}"
        data = json.loads(await asyncio.wait_for(ws.recv(), left))
        for message in data if isinstance(data, list) else [data]:
            if message.get("@") == msg_id:
                return message


async def read_back(ws, acked: dict[str, str]) -> list[str]:
    """Souls whose acknowledged value the relay does not serve."""
    wrong = []
    for soul, value in acked.items():
        msg_id = f"get-{os.urandom(6).hex()}"  # never reuse an id: the relay drops repeats silently
        await ws.send(json.dumps({"#": msg_id, "get": {"#": soul, ".": "v"}}))
        reply = await answer(ws, msg_id)
        if (reply.get("put") or {}).get(soul, {}).get("v") != value:
            wrong.append(soul)
    return wrong


async def health(live_relay) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        return await http.get("/health")


async def wait_healthy(live_relay, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await health(live_relay)
        if r.status_code == 200:
            return r.json()
        await asyncio.sleep(0.2)
    raise AssertionError(f"the relay did not report healthy storage within {timeout} s: {r.json()}")


async def test_a_full_disk_refuses_writes_with_an_error_and_recovers(live_relay, small_disk):
    filler = small_disk / "filler"
    async with websockets.connect(live_relay.ws, max_size=None) as ws:
        writer = Writer(ws)
        assert (await writer.put("before"))["ok"]
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with open(filler, "wb") as f:  # leave about 128 KiB
            f.write(b"\0" * max(free - 128 * 1024, 0))
        for _ in range(400):  # bounded: 400 puts of 4 KiB cannot all fit in 128 KiB
            await writer.put("x" * 4096)
            if writer.errors:
                break
        assert writer.errors and "disk is full" in writer.errors[0], writer.errors[:1]
        degraded = await health(live_relay)
        assert degraded.status_code == 503 and degraded.json()["status"] == "degraded"
        assert "disk is full" in degraded.json()["storage_health"]["error"]
        assert await read_back(ws, writer.acked) == []  # reads go on, and every ack was true
        filler.unlink()  # the operator frees space
        await wait_healthy(live_relay)  # noticed without any write (the monitor probes)
        assert (await writer.put("after"))["ok"]
        assert await read_back(ws, writer.acked) == []
    print(f"\n{len(writer.acked)} puts acked, {len(writer.errors)} refused while the disk was full")


async def test_a_read_only_data_folder_refuses_writes_and_recovers(live_relay, fault_folder):
    async with websockets.connect(live_relay.ws, max_size=None) as ws:
        writer = Writer(ws)
        assert (await writer.put("before"))["ok"]
        fault_folder.set("EROFS")
        refused = [await writer.put(f"while-read-only-{i}") for i in range(3)]
        assert all("read-only or failing" in r.get("err", "") for r in refused), refused
        degraded = (await health(live_relay)).json()
        assert degraded["status"] == "degraded" and degraded["storage_health"]["failed_commits"] >= 3
        assert await read_back(ws, writer.acked) == []  # reads are still served
        fault_folder.set("")
        await wait_healthy(live_relay)
        assert (await writer.put("after"))["ok"]
        assert await read_back(ws, writer.acked) == []
        assert list(writer.acked.values()) == ["before", "after"]
    db = sqlite3.connect(fault_folder.backing / "data" / "gunrelay.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        values = [v for (v,) in db.execute("SELECT value FROM fields WHERE key = 'v'")]
    finally:
        db.close()
    assert sorted(values) == ['"after"', '"before"']  # nothing refused was written after all




async def test_a_client_vanishing_mid_frame_changes_nothing(live_relay):
    payload = json.dumps({"#": "half", "put": {"vanish": {"_": {"#": "vanish", ">": {"v": time.time() * 1000}}, "v": "x" * 2000}}})
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload.encode()))
    header = struct.pack("!BBH", 0x81, 0x80 | 126, len(body)) + mask
    for how in ("close", "reset"):
        sock = await asyncio.to_thread(upgrade, live_relay.port)
        await asyncio.to_thread(sock.sendall, header + body[: len(body) // 2])  # half a frame, then gone
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    deadline = time.monotonic() + 10
    while (await health(live_relay)).json()["peers"] != 0:
        assert time.monotonic() < deadline, "the vanished peers were not dropped"
        await asyncio.sleep(0.1)
    async with websockets.connect(live_relay.ws) as ws:
        await ws.send(json.dumps({"#": "check", "get": {"#": "vanish"}}))
        assert "put" not in await answer(ws, "check")  # half a put applied nothing


async def test_a_client_that_never_reads_is_dropped_and_others_are_served(live_relay):
    # the queue limit is 256 KiB here; the kernel's socket buffers take some megabytes first
    stalled = await asyncio.to_thread(upgrade, live_relay.port)
    subscribe = json.dumps({"#": "sub", "get": {"#": "busy"}}).encode()
    mask = os.urandom(4)
    stalled.sendall(struct.pack("!BB", 0x81, 0x80 | len(subscribe)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(subscribe)))
    pushed: list[str] = []

    async def drain(ws) -> None:  # a subscriber that does read: it must get every update
        async for frame in ws:
            data = json.loads(frame)
            for message in data if isinstance(data, list) else [data]:
                value = (message.get("put") or {}).get("busy", {}).get("v")
                if value is not None and "@" not in message:
                    pushed.append(value)

    async with websockets.connect(live_relay.ws, max_size=None) as reader, websockets.connect(live_relay.ws, max_size=None) as writer:
        await reader.send(json.dumps({"#": "sub2", "get": {"#": "busy"}}))
        draining = asyncio.create_task(drain(reader))
        w = Writer(writer)
        dropped_after = None
        for i in range(800):  # up to ~25 MB pushed to each subscriber; bounded
            assert (await w.put(f"{i}:" + "y" * 32 * 1024, soul="busy"))["ok"]
            if i % 20 == 19 and (await health(live_relay)).json()["peers"] == 2:
                dropped_after = i + 1
                break
        assert dropped_after is not None, "the stalled peer was never dropped"
        for _ in range(100):  # bounded: the reader catches up with the last update
            if len(pushed) >= dropped_after:
                break
            await asyncio.sleep(0.05)
        draining.cancel()
    stalled.close()
    assert [p.split(":")[0] for p in pushed] == [str(i) for i in range(dropped_after)]
    print(f"\nthe stalled peer was dropped after {dropped_after} pushes of 32 KiB; the reading peer got all of them")
