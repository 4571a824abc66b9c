"""Resets through the relay: fence, purge, publication, acknowledgements (fake sockets, injected clock)."""

import asyncio
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import Socket, put, settle

from gunrelay.core import sea
from gunrelay.core.fence import FenceRule
from gunrelay.core.graph import Field
from gunrelay.core.reset import ResetRecord
from gunrelay.core.errors import OperatorError
from gunrelay.server.control import ResetControl
from gunrelay.server.identity import Identity
from gunrelay.server.relay import Relay
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.memory import MemoryStore
from gunrelay.storage.sqlite import SQLiteStore

T0 = 1_800_000_000_000.0


def make_identity() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(pub=sea.pub_of(key), epub=sea.pub_of(key), private_key=key)


class World:
    def __init__(self, store, identity=None):
        self.now = T0
        self.store = store
        self.identity = identity or make_identity()
        self.control = ResetControl(store, self.identity, clock_ms=lambda: self.now)
        self.relay = Relay(store, fence=self.control.fence, acknowledge=self.control.acknowledge, clock_ms=lambda: self.now)
        self.control.connect_relay(self.relay)

    async def finish(self) -> None:
        for _ in range(100):
            if not self.control._tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("background purge/publish did not finish")

    async def node(self, soul):
        found = await self.store.read(ReadQuery(soul=soul))
        return {k: (json.loads(v), s) for k, v, s in found.get(soul, [])}


@pytest.fixture
async def world():
    store = MemoryStore()
    w = World(store)
    await w.control.start()
    return w


async def reply_to(sock: Socket, msg_id: str) -> dict:
    seen = sock.__dict__.setdefault("seen", [])  # messages read while waiting for other replies
    for _ in range(50):
        await settle()
        seen.extend(sock.messages())
        for message in seen:
            if message.get("@") == msg_id:
                seen.remove(message)
                return message
        await asyncio.sleep(0.005)
    raise AssertionError(f"no reply to {msg_id}")


async def test_stale_writes_are_refused_served_never_and_new_ones_pass(world):
    writer = Socket(world.relay)
    writer.send(put("p1", "chat/room1", state=T0 - 5000, text="old"))
    assert (await reply_to(writer, "p1"))["ok"] is True
    world.now = T0 + 1000
    result = await world.control.issue("*", reason="spam", message="fresh start")
    reset_id = result["record"]["reset_id"]
    world.now = T0 + 2000
    writer.send(put("p2", "chat/room1", state=T0 - 5000, text="old"))  # the stale copy comes back
    refused = await reply_to(writer, "p2")
    assert reset_id in refused["err"] and "watermark" in refused["err"]
    writer.send(put("p3", "chat/room1", state=T0 + 999, text="just below W"))
    assert "err" in await reply_to(writer, "p3")
    writer.send(put("p4", "chat/room1", state=T0 + 1500, text="after"))
    assert (await reply_to(writer, "p4"))["ok"] is True
    await world.finish()
    assert await world.node("chat/room1") == {"text": ("after", T0 + 1500)}
    assert world.relay.fenced_writes == 2


async def test_fenced_fields_are_not_served_even_before_the_purge(world):
    await world.store.merge([Field("a", "k", "old", T0 - 10), Field("a", "j", "new", T0 + 10)])
    world.control._fence.add(FenceRule("manual", "*", T0))  # as issue() does, before any purge (the control owns the fence)
    reader = Socket(world.relay)
    reader.send({"#": "g1", "get": {"#": "a"}})
    reply = await reply_to(reader, "g1")
    assert reply["put"]["a"] == {"_": {"#": "a", ">": {"j": T0 + 10}}, "j": "new"}
    reader.send({"#": "g2", "get": {"#": "a", ".": "k"}})
    assert "put" not in await reply_to(reader, "g2")


async def test_ties_at_the_watermark_lose(world):
    await world.control.issue("*")
    writer = Socket(world.relay)
    for i, value in enumerate([True, {"#": "somewhere"}, "zzz", None, 0]):
        writer.send(put(f"tie{i}", "t", state=T0, k=value))
        assert "err" in await reply_to(writer, f"tie{i}")


async def test_prefix_reset_keeps_other_data_and_fences_the_closure(world):
    await world.store.merge(
        [
            Field("room/a", "msgs", {"#": "room/a/msgs"}, T0 - 10),
            Field("room/a/msgs", "m1", {"#": "xrandom1"}, T0 - 10),
            Field("xrandom1", "text", "hello", T0 - 10),
            Field("room/b", "text", "stays", T0 - 10),
            Field("index", "a", {"#": "room/a"}, T0 - 10),
        ]
    )
    result = await world.control.issue("room/a")
    assert result["reachable_souls_fenced"] == 1
    await world.finish()
    assert await world.node("room/a") == {} and await world.node("xrandom1") == {}
    assert await world.node("room/b") == {"text": ("stays", T0 - 10)}
    assert await world.node("index") == {"a": ({"#": "room/a"}, T0 - 10)}
    writer = Socket(world.relay)
    writer.send(put("p", "xrandom1", state=T0 - 10, text="hello"))
    assert "err" in await reply_to(writer, "p")


async def test_dry_run_reports_and_changes_nothing(world):
    await world.store.merge([Field("a", "k", "v", T0 - 10), Field("b", "k", "vv", T0 - 10)])
    Socket(world.relay)
    report = await world.control.issue("*", dry_run=True)
    assert report["dry_run"] and report["would_remove"]["fields"] == 2 and report["would_remove"]["souls"] == 2
    assert report["peers_to_notify"] == 1
    assert not world.relay.fence and world.control.history() == []
    assert await world.node("a") == {"k": ("v", T0 - 10)}


async def test_the_record_is_published_signed_and_in_the_legacy_node(world):
    world.now = T0
    result = await world.control.issue("*", reason="r", message="m", keep=("theme",))
    await world.finish()
    space = world.identity.space
    latest = await world.store.read(ReadQuery(soul=space + "/reset"))
    rows = {k: (v, s) for k, v, s in latest[space + "/reset"]}
    for key, (value_json, state) in rows.items():
        assert sea.check_field(space + "/reset", key, json.loads(value_json), state, world.now) is None
        assert state > T0
    assert json.loads(json.loads(rows["reset_id"][0]))[":"] == result["record"]["reset_id"]
    assert json.loads(json.loads(rows["keep"][0]))[":"] == '["theme"]'
    config = await world.node("_whisperz_system/config")
    assert config["reset"][0] == result["record"]["reset_id"] and config["instance"][0] == "default"
    assert (await world.node("_whisperz_system/reset"))["message"][0] == "m"


async def test_peers_cannot_write_the_relay_space_or_the_legacy_node(world):
    await world.control.issue("*")
    await world.finish()
    forger = Socket(world.relay)
    space = world.identity.space
    forged = sea.sign_field(world.identity.private_key, space + "/reset", "epoch", 99, T0 + 5)  # even validly signed
    forger.send(put("f1", space + "/reset", state=T0 + 5, epoch=forged))
    forger.send(put("f2", "_whisperz_system/reset", state=T0 + 5, timestamp=T0 + 5))
    forger.send(put("f3", "_whisperz_system", state=T0 + 5, reset={"#": "evil"}))
    for msg_id in ("f1", "f2", "f3"):
        assert "system space" in (await reply_to(forger, msg_id))["err"]
    assert (await world.node("_whisperz_system"))["reset"][0] == {"#": "_whisperz_system/reset"}


async def test_epochs_count_per_scope_and_acknowledgements_are_kept(world):
    first = (await world.control.issue("*"))["record"]
    world.now += 10
    second = (await world.control.issue("*"))["record"]
    other = (await world.control.issue("room"))["record"]
    assert (first["epoch"], second["epoch"], other["epoch"]) == (1, 2, 1)
    client, laggard = Socket(world.relay), Socket(world.relay)
    client.send({"#": "ack1", "dam": "reset-ack", "reset": second["reset_id"]})
    client.send({"#": "ack2", "dam": "reset-ack", "reset": "nope"})
    assert (await reply_to(client, "ack1"))["ok"] is True
    assert "Unknown" in (await reply_to(client, "ack2"))["err"]
    await world.finish()
    status = world.control.describe(second["reset_id"])
    assert [a["peer_id"] for a in status["acknowledged"]] == [client.peer.id]
    assert [p["peer_id"] for p in status["connected_not_acknowledged"]] == [laggard.peer.id]
    assert [h["acknowledgements"] for h in world.control.history()] == [0, 1, 0]
    assert await world.store.acks(second["reset_id"]) != []


async def test_bad_scopes_are_refused(world):
    for scope in ("", "room/", world.identity.space, "_whisperz_system/config"):
        with pytest.raises(OperatorError):
            await world.control.issue(scope)
    assert world.control.history() == []


async def test_after_a_crash_the_fence_holds_and_the_purge_resumes(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.merge([Field("s", str(i), i, T0 - 10) for i in range(100)] + [Field("s", "new", 1, T0 + 10)])
    # the state a crash leaves between "fence installed" and "purge finished"
    await store.install_reset(ResetRecord("crashed", "*", 1, T0, T0), frozenset())
    await store.close()

    store = SQLiteStore(path)
    await store.open()
    world = World(store)
    await world.control.start()
    assert world.relay.fence.blocks("s", T0 - 10, world.now) is not None
    writer = Socket(world.relay)
    writer.send(put("stale", "s", state=T0 - 10, **{"3": 3}))
    assert "crashed" in (await reply_to(writer, "stale"))["err"]
    await world.finish()
    assert await world.node("s") == {"new": (1, T0 + 10)}
    [held] = await store.load_resets()
    assert held.purge_done and held.purged == 100
    await store.close()


async def test_rotation_makes_the_old_scope_read_only_then_purges_it(world):
    await world.store.merge([Field("room/v1", "topic", "old", T0 - 10), Field("room/v1/msgs", "m", "hi", T0 - 10)])
    result = await world.control.rotate("room/v1", "room/v2", grace_s=0.3, reason="fresh")
    assert result["record"]["replacement"] == "room/v2" and result["record"]["W"] == "Infinity"
    writer = Socket(world.relay)
    writer.send(put("w1", "room/v1", state=T0 + 1000, topic="new"))  # any state: read-only
    assert "read-only" in (await reply_to(writer, "w1"))["err"]
    writer.send(put("w2", "room/v2", state=T0 + 5, topic="new home"))
    assert (await reply_to(writer, "w2"))["ok"] is True
    writer.send({"#": "g1", "get": {"#": "room/v1"}})  # still readable during the grace period
    assert (await reply_to(writer, "g1"))["put"]["room/v1"]["topic"] == "old"
    for _ in range(50):  # published at once: clients follow the replacement
        config = await world.node("_whisperz_system/config")
        if config:
            break
        await asyncio.sleep(0.01)
    assert config["instance"][0] == "room/v2" and world.control.instance == "room/v2"
    await asyncio.sleep(0.35)
    await world.finish()
    assert await world.node("room/v1") == {} and await world.node("room/v1/msgs") == {}
    writer.send({"#": "g2", "get": {"#": "room/v1"}})
    assert "put" not in await reply_to(writer, "g2")
    with pytest.raises(OperatorError):
        await world.control.rotate("room/v2", "room/v2/next", grace_s=1)


async def test_ttl_refuses_and_hides_expired_fields_and_the_sweeper_deletes_them():
    from gunrelay.server.expiry import Expiry

    store = MemoryStore()
    w = World(store)
    w.now = time.time() * 1000
    expiry = Expiry(w.control, store, sweep_s=3600)
    await expiry.start()
    await store.merge([Field("tmp/a", "old", 1, w.now - 120_000), Field("tmp/a", "fresh", 2, w.now - 1000)])
    await expiry.set("tmp", 60)
    writer = Socket(w.relay)
    writer.send(put("late", "tmp/b", state=w.now - 61_000, k="too old"))
    assert "Expired" in (await reply_to(writer, "late"))["err"]
    writer.send({"#": "g", "get": {"#": "tmp/a"}})
    assert set((await reply_to(writer, "g"))["put"]["tmp/a"]) == {"_", "fresh"}
    assert await expiry.sweep() == 1
    assert await w.node("tmp/a") == {"fresh": (2, w.now - 1000)}
    assert await expiry.remove("tmp") == {} and not w.relay.fence  # alone: no fleet to wait for
    await expiry.stop()


async def test_an_acknowledgement_follows_the_gun_peer_across_reconnects(world):
    record = (await world.control.issue("*"))["record"]
    first = Socket(world.relay)
    first.send({"#": "hi1", "dam": "?", "pid": "stable-pid"})
    first.send({"#": "ack", "dam": "reset-ack", "reset": record["reset_id"]})
    assert (await reply_to(first, "ack"))["ok"] is True
    world.relay.disconnect(first.peer)
    again = Socket(world.relay)  # the same GunJS instance, reconnected: a new socket, the same pid
    again.send({"#": "hi2", "dam": "?", "pid": "stable-pid"})
    stranger = Socket(world.relay)
    await settle()
    status = world.control.describe(record["reset_id"])
    assert [p["peer_id"] for p in status["connected_not_acknowledged"]] == [stranger.peer.id]
