"""Reset records, verified and applied by the peer, checked against a scripted relay whose key the
test holds: what a valid record does (once), and that forged, unsigned, incomplete and replayed
records do nothing. (test_resets.py does the same end to end with our real relay.)"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from client_support import eventually, new_key, now_ms, record, record_graph
from fake_relay import FakeRelay

from gunrelay.client.outbox import MemoryOutbox
from gunrelay.client.resets import ResetKeeper
from gunrelay.core.reset import record_of, reset_soul
from gunrelay.core.graph import Field
from gunrelay.core.reset import ResetRecord, fence_rule
from gunrelay.client.ledger import MemoryResetLedger
from gunrelay.storage.memory import MemoryGraph


@pytest.fixture
async def fake() -> AsyncIterator[FakeRelay]:
    relay = FakeRelay()
    try:
        yield relay
    finally:
        await relay.stop()


def field(msg_id: str, soul: str, key: str, value: Any, state: float) -> dict[str, Any]:
    return {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}}


async def test_a_valid_record_clears_the_scope_drops_queued_writes_fences_and_acks(fake: FakeRelay, peers: Any) -> None:
    key, pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append, reconnect_max=0.2)
    old = now_ms() - 60_000
    # the local copy, as an earlier session left it (older than the reset), plus writes queued offline
    await peer.open()
    await peer.store.merge([Field("room", "topic", "old", old), Field("room/sub", "x", 1, old), Field("other", "y", 2, old)])
    assert (await peer.put("room", {"queued": "stale"})).queued
    assert (await peer.put("other", {"queued": "fine"})).queued
    assert (await peer.put("mixed", {"in": {"#": "room/sub"}})).queued

    watermark = now_ms()
    rec = record("r1", "room", 1, watermark, reason="spam", message="cleared", keep=("theme",))
    soul = reset_soul(pub)
    fake.graph.update(record_graph(key, soul, rec, watermark + 1))
    await fake.start()
    assert await peer.connect(fake.url)

    assert await eventually(lambda: applied)
    assert [r.reset_id for r in applied] == ["r1"] and applied[0].keep == ("theme",) and applied[0].message == "cleared"
    assert await peer.local("room") is None and await peer.local("room/sub") is None
    assert await peer.local("other") == {"y": 2, "queued": "fine"}
    acks = await eventually(lambda: fake.messages("reset-ack"))
    assert acks[0]["reset"] == "r1"
    assert await eventually(lambda: "r1" in peer.acknowledged)
    assert await peer.wait_flushed(5)
    sent_souls = {s for m in fake.messages("put") for s in m["put"]}
    assert sent_souls == {"other", "mixed"}  # the queued write into the reset scope never left

    # the client fence: at or below W refused, above W accepted, other scopes untouched
    await fake.push(field("st1x", "room", "topic", "stale", watermark))
    await fake.push(field("st2x", "room/sub", "x", "stale", watermark - 5))
    await fake.push(field("nw1x", "room", "fresh", "new", watermark + 10))
    await fake.push(field("ot1x", "elsewhere", "z", "old is fine", old))
    assert await eventually(lambda: peer.local("elsewhere"))
    assert await peer.local("room") == {"fresh": "new"}
    assert await peer.local("room/sub") is None
    # a writer whose clock lags behind W learns of the reset and is refused locally, not silently
    behind = peers(relay_pub=pub, wall_ms=lambda: watermark - 1000)
    assert await behind.connect(fake.url)
    assert await eventually(lambda: behind.resets.fence)
    refused = await behind.put("room", {"x": 1})
    assert refused.err and "r1" in refused.err and not refused.queued
    assert (await behind.put("other", {"x": 1})).ok


async def test_each_epoch_is_applied_once_and_older_ones_never(fake: FakeRelay, peers: Any) -> None:
    key, pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append)
    await fake.start()
    assert await peer.connect(fake.url)
    soul = reset_soul(pub)
    w1 = now_ms()
    await fake.push({"#": "rec1x", "put": record_graph(key, soul, record("r1", "room", 2, w1), w1 + 1)})
    assert await eventually(lambda: applied)
    assert (await peer.put("room", {"after": "reset"})).ok
    # the same record again (a reconnect, another relay): nothing happens
    await fake.push({"#": "rec2x", "put": record_graph(key, soul, record("r1", "room", 2, w1), w1 + 2)})
    # an older epoch of the same scope, validly signed: nothing happens
    await fake.push({"#": "rec3x", "put": record_graph(key, soul, record("r0", "room", 1, w1 + 5), w1 + 3)})
    await asyncio.sleep(0.3)
    assert [r.reset_id for r in applied] == ["r1"]
    assert await peer.local("room") == {"after": "reset"}
    # the next epoch is applied
    w2 = now_ms() + 1
    await fake.push({"#": "rec4x", "put": record_graph(key, soul, record("r2", "room", 3, w2), w2 + 1)})
    assert await eventually(lambda: len(applied) == 2)
    assert await peer.local("room") is None


@pytest.mark.parametrize(
    "forgery",
    ["unsigned", "wrong key", "star without certificate", "attacker's own space", "incomplete", "tampered"],
)
async def test_forged_records_do_nothing(fake: FakeRelay, peers: Any, forgery: str) -> None:
    key, pub = new_key()
    attacker, attacker_pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append)
    await fake.start()
    assert await peer.connect(fake.url)
    assert (await peer.put("room", {"keep": "me"})).ok
    soul = reset_soul(pub)
    watermark = now_ms() + 1
    rec = record("forged", "*", 7, watermark)
    state = watermark + 1
    graph = {
        "unsigned": lambda: record_graph(None, soul, rec, state),
        "wrong key": lambda: record_graph(attacker, soul, rec, state),
        "star without certificate": lambda: record_graph(attacker, soul, rec, state, star=attacker_pub),
        "attacker's own space": lambda: record_graph(attacker, reset_soul(attacker_pub), rec, state),
        "incomplete": lambda: record_graph(key, soul, rec, state, drop=("W",)),
        "tampered": lambda: _tampered(record_graph(key, soul, rec, state), soul),
    }[forgery]()
    await fake.push({"#": "forgex", "put": graph})
    await asyncio.sleep(0.3)
    assert applied == []
    assert await peer.local("room") == {"keep": "me"}
    assert not fake.messages("reset-ack")
    assert not peer.resets.fence


def _tampered(graph: dict[str, Any], soul: str) -> dict[str, Any]:
    node = graph[soul]
    node["scope"] = node["scope"].replace('":"*"', '":"room"')  # the signature was over "*"
    return graph


async def test_a_rotation_makes_the_old_scope_read_only_and_names_its_replacement(fake: FakeRelay, peers: Any) -> None:
    key, pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append)
    await fake.start()
    assert await peer.connect(fake.url)
    assert (await peer.put("chat/v1", {"msg": "old"})).ok
    state = now_ms()
    rec = record("rot1", "chat/v1", 1, math.inf, replacement="chat/v2", kind="rotation")
    await fake.push({"#": "rotx", "put": record_graph(key, reset_soul(pub), rec, state)})
    assert await eventually(lambda: applied)
    assert applied[0].kind == "rotation" and applied[0].replacement == "chat/v2" and math.isinf(applied[0].watermark)
    assert await peer.local("chat/v1") is None
    assert (await peer.put("chat/v1", {"msg": "new"})).err
    assert (await peer.put("chat/v2", {"msg": "new"})).ok


async def test_a_restore_lifts_earlier_fences(fake: FakeRelay, peers: Any) -> None:
    key, pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append)
    await fake.start()
    assert await peer.connect(fake.url)
    soul = reset_soul(pub)
    w1 = now_ms()
    await fake.push({"#": "r1x", "put": record_graph(key, soul, record("r1", "room", 1, w1), w1 + 1)})
    assert await eventually(lambda: applied)
    w2 = now_ms() + 2
    await fake.push({"#": "r2x", "put": record_graph(key, soul, record("back", "*", 1, w2, kind="restore"), w2 + 1)})
    assert await eventually(lambda: len(applied) == 2)
    assert not peer.resets.fence  # the restored (older) data must be readable again
    await fake.push(field("oldx", "room", "restored", "from the snapshot", w1 - 1000))
    assert await eventually(lambda: peer.local("room"))


def test_record_of_needs_one_publication() -> None:
    key, pub = new_key()
    soul = reset_soul(pub)
    w = now_ms()
    first = record_graph(key, soul, record("a", "room", 1, w), w + 1)[soul]
    second = record_graph(key, soul, record("b", "room", 2, w + 5), w + 6)[soul]
    rows = [(k, first[k], first["_"][">"][k]) for k in first if k != "_"]
    assert record_of(soul, rows, pub, now_ms()) is not None
    half = [(k, (second if k == "reset_id" else first)[k], (second if k == "reset_id" else first)["_"][">"][k]) for k in first if k != "_"]
    assert record_of(soul, half, pub, now_ms()) is None  # the rest of the newer record is still on its way
    assert record_of(soul + "x", rows, pub, now_ms()) is None


async def test_a_deferred_field_that_a_reset_fences_meanwhile_never_lands(fake: FakeRelay, peers: Any) -> None:
    key, pub = new_key()
    applied: list[ResetRecord] = []
    peer = peers(relay_pub=pub, on_reset=applied.append)
    await fake.start()
    assert await peer.connect(fake.url)
    soon = now_ms() + 1000
    await fake.push(field("late1x", "room", "stale", "old", soon))  # waits for its state...
    await fake.push(field("late2x", "room", "fresh", "new", soon + 1000))
    rec = record("r1", "room", 1, soon + 500)  # ...and a reset fences it meanwhile
    await fake.push({"#": "recx", "put": record_graph(key, reset_soul(pub), rec, now_ms() - 1)})
    assert await eventually(lambda: applied)
    assert await eventually(lambda: peer.local("room", "fresh")) == "new"
    assert await peer.local("room") == {"fresh": "new"}


async def test_the_client_fence_holds_the_relays_rule_for_each_record() -> None:
    store, ledger, outbox = MemoryGraph(), MemoryResetLedger(), MemoryOutbox()
    await store.open()
    keeper = ResetKeeper(store, ledger, outbox)
    rotation = record("rot", "chat/v1", 1, math.inf, kind="rotation", replacement="chat/v2")
    reset = record("r", "room", 1, now_ms())
    for rec in (rotation, reset):
        assert await keeper.apply(rec, now_ms())
    # a peer purges a rotated scope at once: its rule no longer serves (the relay's once purged)
    assert keeper.fence.rule("rot") == fence_rule(rotation, frozenset(), purge_done=True)
    assert keeper.fence.rule("r") == fence_rule(reset, frozenset(), purge_done=True)
    again = ResetKeeper(store, ledger, MemoryOutbox())
    await again.load()
    assert {r.rule_id: r for r in again.fence.rules} == {r.rule_id: r for r in keeper.fence.rules}
    restore = record("back", "*", 1, now_ms(), kind="restore")
    assert await keeper.apply(restore, now_ms())
    assert not keeper.fence  # a restore lifts the fences before it and puts up none on a peer
