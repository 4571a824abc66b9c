"""Export to JSON lines and import into another relay (server/interchange.py, docs/interchange.md)."""

import asyncio
import io
import json
import sqlite3
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gunrelay.core import sea
from gunrelay.core.graph import Field
from gunrelay.server.control import ResetControl
from gunrelay.server.expiry import Expiry
from gunrelay.server.identity import Identity
from gunrelay.server.interchange import Interchange, InterchangeError
from gunrelay.server.relay import Relay, wall_clock_ms
from gunrelay.storage.sqlite import SQLiteStore

STORE = "gunrelay.sqlite3"


def make_identity() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(pub=sea.pub_of(key), epub=sea.pub_of(key), private_key=key)


class Side:
    """One relay's store, reset control, TTL rules and interchange, without sockets."""

    def __init__(self, folder):
        self.folder = folder
        self.store = SQLiteStore(folder / STORE)
        self.identity = make_identity()
        self.control = ResetControl(self.store, self.identity)
        self.relay = Relay(self.store, fence=self.control.fence, acknowledge=self.control.acknowledge)
        self.control.connect_relay(self.relay)
        self.expiry = Expiry(self.control, self.store)
        self.interchange = Interchange(self.store, self.control, self.expiry, self.identity.pub, max_skew_ms=120_000, clock_ms=wall_clock_ms)

    async def start(self):
        await self.store.open()
        await self.control.start()
        await self.expiry.start()
        return self

    async def settle(self):
        for _ in range(500):
            if not self.control._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("background purge/publish did not finish")

    async def stop(self):
        await self.expiry.stop()
        await self.control.stop()
        await self.relay.drain()
        await self.store.close()

    async def export_text(self) -> str:
        out = io.StringIO()
        await self.interchange.export(out.write)
        return out.getvalue()

    async def load(self, text: str, **kw):
        return await self.interchange.import_lines(io.StringIO(text), **kw)


def rows(folder):
    db = sqlite3.connect(folder / STORE)
    try:
        return db.execute("SELECT soul, key, value, state FROM fields ORDER BY soul, key").fetchall()
    finally:
        db.close()


USER = ec.generate_private_key(ec.SECP256R1())
USER_PUB = sea.pub_of(USER)


async def fill(side: Side) -> float:
    """A varied store, one prefix reset (purged and published) and one TTL rule; the reset's W."""
    old = time.time() * 1000 - 60_000
    fields = [
        Field("chat", "title", "general", old),
        Field("chat", "messages", {"#": "msgs-7f3a"}, old),  # a set(): a random soul, fenced with the prefix
        Field("msgs-7f3a", "m1", "hello", old),
        Field("chat/1", "text", "before the reset", old),
        Field("people/alice", "name", "Alice", old),
        Field("people/alice", "friend", {"#": "people/bob"}, old),
        Field("people/bob", "name", "Bob", old),
        Field("people/bob", "address", {"#": "people/bob/address"}, old),
        Field("people/bob/address", "city", "Lyon", old + 1.5),
        Field("big", "blob", "x" * 65536, old),
        Field("deleted", "gone", None, old),
        Field("ünïcødé/ключ", "clé 🔑", "値 ✓", old),
        Field("surrogates", "lone", "a\ud800b\udfffc", old),
        Field("numbers", "pi", 3.14159, old), Field("numbers", "big", 2**53, old), Field("numbers", "no", False, old),
        *(Field("wide", f"k{i:03d}", i, old + i) for i in range(500)),
    ]
    profile = f"~{USER_PUB}"
    fields.append(Field(profile, "alias", sea.sign_field(USER, profile, "alias", "alice", old), old))
    fields.append(Field(profile, "name", sea.sign_field(USER, profile, "name", "Alice A.", old), old))
    await side.store.merge(fields)
    issued = await side.control.issue("chat", reason="spam", message="chat was cleared")
    await side.settle()
    watermark = issued["record"]["W"]
    now = time.time() * 1000
    await side.store.merge([Field("chat/2", "text", "after the reset", now), Field("chat", "title", "fresh", now)])
    await side.expiry.set("tmp", 86_400)
    await side.store.merge([Field("tmp/note", "text", "kept a day", now)])
    return watermark


@pytest.fixture
async def source(tmp_path):
    (tmp_path / "src").mkdir()
    side = await Side(tmp_path / "src").start()
    side.watermark = await fill(side)
    yield side
    await side.stop()


@pytest.fixture
async def empty(tmp_path):
    (tmp_path / "dst").mkdir()
    side = await Side(tmp_path / "dst").start()
    yield side
    await side.stop()


async def test_export_then_import_into_an_empty_relay_gives_the_same_store(source, empty):
    text = await source.export_text()
    lines = text.splitlines()
    header = json.loads(lines[0])
    assert (header["format"], header["version"], header["relay"]) == ("gunrelay-jsonl", 1, source.identity.pub)
    assert header["ttl"] == {"tmp": 86_400_000}
    [reset] = header["resets"]
    assert reset["scope"] == "chat" and reset["souls"] == ["msgs-7f3a"] and reset["purge_done"] and reset["published"]
    assert all(set(json.loads(line)) == {"soul", "key", "value", "state"} for line in lines[1:])
    assert text.isascii() or all(ord(c) < 0xD800 or ord(c) > 0xDFFF for c in text)  # lone surrogates stay escaped

    report = await empty.load(text)
    assert report.as_json()["refused"] == 0 and report.malformed == 0 and report.fenced == 0, report.as_json()
    assert report.imported == len(lines) - 1 and report.kept == 0
    await empty.store.close()
    await empty.store.open()  # what is on disk, not in a cache

    source_rows, copied = rows(source.folder), rows(empty.folder)
    assert copied == source_rows
    souls = {soul for soul, *_ in copied}
    assert {"big", "wide", "surrogates", "ünïcødé/ключ", f"~{USER_PUB}", "chat/2"} <= souls
    assert "msgs-7f3a" not in souls and "chat/1" not in souls  # purged by the reset before the export
    assert [r[2] for r in copied if r[:2] == ("deleted", "gone")] == ["null"]  # a delete stays a delete
    assert [r for r in copied if r[:2] == ("surrogates", "lone")][0][2] == '"a\\ud800b\\udfffc"'
    assert await empty.store.load_resets() == await source.store.load_resets()
    assert await empty.store.load_ttls() == await source.store.load_ttls()
    rule = empty.control.fence.rule(reset["reset_id"])
    assert rule is not None and rule.souls == frozenset({"msgs-7f3a"}) and rule.watermark == source.watermark

    again = await empty.load(text)  # importing twice changes nothing
    assert (again.imported, again.kept, again.resets_known) == (0, len(lines) - 1, 1)


async def test_malformed_fenced_and_forged_lines_are_counted_and_not_stored(source, empty):
    text = await source.export_text()
    header = text.splitlines()[0]
    now = time.time() * 1000
    profile = f"~{USER_PUB}"
    forged = sea.sign_field(USER, profile, "name", "Alice", now).replace("Alice", "Mallory")
    lines = [
        header,
        json.dumps({"soul": "ok", "key": "a", "value": 1, "state": now}),
        "{not json",
        json.dumps({"soul": "ok", "key": "b", "value": [1, 2], "state": now}),  # arrays are not GUN values
        json.dumps({"soul": "chat/9", "key": "stale", "value": "old", "state": source.watermark}),  # at the fence
        json.dumps({"soul": "msgs-7f3a", "key": "m2", "value": "old", "state": source.watermark - 5}),  # the closure
        json.dumps({"soul": "chat/9", "key": "new", "value": "new", "state": source.watermark + 1}),
        json.dumps({"soul": profile, "key": "name", "value": forged, "state": now}),
        json.dumps({"soul": "future", "key": "k", "value": 1, "state": now + 3_600_000}),
        "",
        json.dumps({"soul": "ok", "key": "c", "value": "\udc00", "state": now}),
    ]
    dry = await empty.load("\n".join(lines) + "\n", dry_run=True)
    assert rows(empty.folder) == [] and await empty.store.load_resets() == []
    report = await empty.load("\n".join(lines) + "\n")
    for result in (dry.as_json(), report.as_json()):
        assert (result["imported"], result["fenced"], result["malformed"], result["malformed_lines"]) == (3, 2, 2, [3, 4]), result
        assert result["refused_by_reason"] == {"future_state": 1, "sea": 1}
    stored = {(soul, key) for soul, key, *_ in rows(empty.folder)}
    assert stored == {("ok", "a"), ("chat/9", "new"), ("ok", "c")}


async def test_a_file_without_a_header_is_refused(empty):
    with pytest.raises(InterchangeError):
        await empty.load('{"soul": "a", "key": "b", "value": 1, "state": 1}\n')
    with pytest.raises(InterchangeError):
        await empty.load('{"format": "gunrelay-jsonl", "version": 2}\n')
    assert rows(empty.folder) == []


def gunrelay(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], capture_output=True, text=True, timeout=120, **kw)


async def test_the_cli_exports_and_imports_a_stopped_relays_folder(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    side = await Side(src).start()
    await fill(side)
    await side.stop()
    out = tmp_path / "dump.jsonl"
    done = await asyncio.to_thread(gunrelay, "export", "--data", str(src), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stderr and out.is_file() and not (tmp_path / "dump.jsonl.partial").exists()
    piped = await asyncio.to_thread(gunrelay, "export", "--data", str(src))
    assert piped.stdout.splitlines()[1:] == out.read_text().splitlines()[1:]

    loaded = await asyncio.to_thread(gunrelay, "import", "jsonl", str(out), "--data", str(dst))
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout)
    assert report["imported"] == len(out.read_text().splitlines()) - 1 and report["resets_installed"] == 1
    assert rows(dst) == rows(src)


async def test_the_cli_refuses_a_folder_a_running_relay_holds(live_relay, tmp_path):
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"format": "gunrelay-jsonl", "version": 1, "resets": [], "ttl": {}}\n')
    data = str(tmp_path / "data")  # the live relay's
    for args in (("import", "jsonl", str(dump), "--data", data), ("export", "--data", data)):
        done = await asyncio.to_thread(gunrelay, *args)
        assert done.returncode != 0 and "in use by a running relay" in done.stderr, (args, done.stderr)


async def test_a_rotation_in_its_grace_period_carries_its_readable_data_over(tmp_path, empty):
    (tmp_path / "rot").mkdir()
    side = await Side(tmp_path / "rot").start()
    try:
        old = time.time() * 1000 - 60_000
        await side.store.merge([Field("room/v1", "topic", "still readable", old), Field("room/v1/a", "x", 1, old)])
        await side.control.rotate("room/v1", "room/v2", grace_s=86_400)
        for _ in range(200):  # the record is published at once; the purge waits for the grace period
            if side.control.published:
                break
            await asyncio.sleep(0.01)
        text = await side.export_text()
        [rotation] = json.loads(text.splitlines()[0])["resets"]
        assert (rotation["kind"], rotation["W"], rotation["purge_done"], rotation["published"]) == ("rotation", "Infinity", False, True)
        report = await empty.load(text + json.dumps({"soul": "room/v1", "key": "late", "value": 1, "state": time.time() * 1000}) + "\n")
        assert report.fenced == 1  # a write into the read-only scope
        assert rows(empty.folder) == rows(side.folder)
        assert empty.control.fence.blocks("room/v1", old, time.time() * 1000, serving=True) is None
        assert empty.control.fence.blocks("room/v1", old, time.time() * 1000) is not None
        assert empty.control.instance == "room/v2"
    finally:
        await side.stop()


async def test_a_restore_and_the_resets_it_undid_come_over_as_they_were(tmp_path, empty):
    (tmp_path / "res").mkdir()
    side = await Side(tmp_path / "res").start()
    try:
        before = time.time() * 1000 - 1
        old = before - 60_000
        await side.store.merge([Field("notes", "a", "kept", old)])
        undone = await side.control.issue("gone", reason="mistake")
        await side.settle()

        async def nothing():
            return None

        record, _, ids = await side.control.restore(before, nothing, reason="undo")
        await side.settle()
        assert ids == [undone["record"]["reset_id"]]
        await side.store.merge([Field("gone/x", "v", "old again", old)])  # the undone reset fences it no more
        text = await side.export_text()
        report = await empty.load(text)
        assert (report.resets_installed, report.fenced, report.as_json()["refused"]) == (2, 0, 0)
        assert rows(empty.folder) == rows(side.folder)
        assert await empty.store.load_resets() == await side.store.load_resets()
        assert empty.control.fence.rule(undone["record"]["reset_id"]) is None
        assert empty.control.fence.rule(record.reset_id) is not None
    finally:
        await side.stop()
