"""The relay's message handling, with in-memory storage, fake sockets and an injected clock."""

import asyncio
import json
from pathlib import Path

import pytest
from fakes import Socket, put, settle

from gunrelay.core.graph import Field
from gunrelay.core.lex import Lex
from gunrelay.core.engine import Limits
from gunrelay.server.connection import Connection
from gunrelay.server.relay import Relay
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.memory import MemoryStore

NOW = 1_700_000_000_000.0


@pytest.fixture
async def relay():
    clock = {"now": NOW}
    store = MemoryStore()
    await store.open()
    r = Relay(store, limits=Limits(max_skew_ms=1000), clock_ms=lambda: clock["now"])
    r.clock = clock  # type: ignore[attr-defined]
    yield r


async def test_ack_get_and_not_found(relay):
    a, b = Socket(relay), Socket(relay)
    a.send(put("p1", "s", hello="world"))
    await settle()
    [ack] = a.messages()
    assert ack["@"] == "p1" and ack["ok"] is True
    b.send({"#": "g1", "get": {"#": "s"}}, {"#": "g2", "get": {"#": "s", ".": "hello"}}, {"#": "g3", "get": {"#": "none"}})
    await settle()
    replies = {m["@"]: m for m in b.messages()}
    assert replies["g1"]["put"] == {"s": {"_": {"#": "s", ">": {"hello": NOW}}, "hello": "world"}}
    assert replies["g2"]["put"]["s"]["hello"] == "world"
    assert "put" not in replies["g3"]
    assert a.messages() == []  # replies go only to the socket that asked


async def test_a_get_subscribes_and_writes_are_pushed_but_not_echoed(relay):
    writer, whole, one_key, idle = Socket(relay), Socket(relay), Socket(relay), Socket(relay)
    whole.send({"#": "g1", "get": {"#": "room"}})
    one_key.send({"#": "g2", "get": {"#": "room", ".": "k"}})
    await settle()
    whole.messages(), one_key.messages()
    writer.send(put("p1", "room", j="J", k="K"))
    await settle()
    assert [m["@"] for m in writer.messages()] == ["p1"]  # only the ack: the writer did not subscribe
    [push] = whole.messages()
    assert "@" not in push and push["put"]["room"]["j"] == "J" and push["put"]["room"]["k"] == "K"
    [push_k] = one_key.messages()
    assert push_k["put"]["room"] == {"_": {"#": "room", ">": {"k": NOW}}, "k": "K"}
    assert idle.messages() == []


async def test_losing_writes_are_acked_too_and_not_pushed(relay):
    writer, watcher = Socket(relay), Socket(relay)
    watcher.send({"#": "g", "get": {"#": "s"}})
    writer.send(put("p1", "s", k="b"))
    await settle()
    watcher.messages(), writer.messages()
    writer.send(put("p2", "s", state=NOW - 5, k="older"), put("p3", "s", k="a"))
    await settle()
    assert sorted(m["@"] for m in writer.messages() if m.get("ok")) == ["p2", "p3"]
    assert watcher.messages() == []


async def test_duplicate_ids_are_dropped(relay):
    a = Socket(relay)
    a.send(put("same", "s", k=1))
    a.send(put("same", "s", state=NOW + 0.5, k=2))
    await settle()
    assert len(a.messages()) == 1


async def test_invalid_input_gets_an_error_and_changes_nothing(relay):
    a = Socket(relay)
    relay.receive(a.peer, "{not json")
    relay.receive(a.peer, "x" * (relay.engine.limits.max_frame_bytes + 1))
    a.send({"#": "bad", "put": {"s": {"_": {"#": "s", ">": {}}, "k": 1}}})
    a.send([1, 2])
    await settle()
    msgs = a.messages()
    assert [m.get("dam") for m in msgs[:2]] == ["!", "!"] and "too big" in msgs[1]["err"]
    assert msgs[2]["@"] == "bad" and "no state" in msgs[2]["err"]
    assert all("err" in m for m in msgs)
    assert await relay.store.read(ReadQuery(soul="s")) == {}


async def test_future_states_wait_then_apply_and_too_far_is_refused(relay):
    a = Socket(relay)
    a.send(put("near", "s", state=NOW + 50, k="soon"))
    a.send(put("far", "s", state=NOW + 5000, j="never"))
    await settle()
    [refused] = a.messages()
    assert refused["@"] == "far" and "ahead of the relay's clock" in refused["err"]
    await asyncio.sleep(0.1)
    await settle()
    [ok] = a.messages()
    assert ok["@"] == "near" and ok["ok"] is True


async def test_dam_handshake(relay):
    a = Socket(relay)
    await settle()
    [hello] = [json.loads(f) for f in a.frames]
    assert hello["dam"] == "?" and hello["pid"] == relay.pid
    a.frames.clear()
    a.send({"#": "h1", "dam": "?", "pid": "client-pid"})
    await settle()
    [answer] = [json.loads(f) for f in a.frames]
    assert answer["@"] == "h1" and answer["pid"] == relay.pid and a.peer.pid == "client-pid"


async def test_disconnected_peers_are_forgotten(relay):
    a, b = Socket(relay), Socket(relay)
    a.send({"#": "g", "get": {"#": "s"}})
    await settle()
    relay.disconnect(a.peer)
    b.send(put("p", "s", k=1))
    await settle()
    assert a.peer.id not in relay.peers and len(relay.engine.subscriptions) == 0


SEA_VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "sea.json").read_text())
WRITE_BLOCK_CASES = [v for v in SEA_VECTORS if "graph" in v and "write block" in v["name"]]


@pytest.mark.parametrize("case", WRITE_BLOCK_CASES, ids=[v["name"] for v in WRITE_BLOCK_CASES])
async def test_certificate_write_block_lists_are_read_from_storage(case):
    store = MemoryStore()
    relay = Relay(store, clock_ms=lambda: case["now"])
    await store.merge(
        [Field(soul, key, value, case["graph_states"][soul][key]) for soul, node in case["graph"].items() for key, value in node.items()]
    )
    writer = Socket(relay)
    writer.send(put("cert-write", case["soul"], state=case["state"], **{case["key"]: case["value"]}))
    for _ in range(20):
        await settle()
        replies = writer.messages()
        if replies:
            break
    [reply] = replies
    if case["expect"] is None:
        assert reply.get("ok") is True, reply
    else:
        assert reply["err"] == case["expect"]
    stored = await store.read(ReadQuery(soul=case["soul"], key=Lex(exact=case["key"])))
    assert bool(stored) is (case["expect"] is None)


async def test_a_peer_that_stops_reading_is_closed_and_others_carry_on(relay):
    stuck = asyncio.Event()  # never set: this socket's sends never complete
    closed: list[tuple[int, str]] = []

    async def never(message: dict) -> None:  # the ASGI send of a socket whose peer stopped reading
        if message["type"] == "websocket.close":
            closed.append((message["code"], message["reason"]))
        else:
            await stuck.wait()

    slow = Connection(never, "10.0.0.9", max_queue_bytes=50_000)
    relay.connect(slow)
    relay.receive(slow, json.dumps({"#": "sub", "get": {"#": "feed"}}))
    fast = Socket(relay)
    fast.send({"#": "sub2", "get": {"#": "feed"}})
    for i in range(40):  # about 2 KB pushed to each subscriber per write
        fast.send(put(f"w{i}", "feed", state=NOW + i / 1000, text="x" * 2000))
        await settle()
    acks = 0
    for _ in range(50):  # bounded: until every ack to the fast peer has been flushed
        await settle()
        acks += sum(1 for m in fast.messages() if m.get("@", "").startswith("w"))
        if acks == 40:
            break
    assert slow.closed and closed == [(1008, "too slow: send queue full")]
    assert acks == 40  # the fast peer got every ack
    stuck.set()


async def test_a_reply_too_deep_to_forward_is_dropped_and_counted_without_a_traceback(relay, caplog):
    asker, replier = Socket(relay), Socket(relay)
    asker.send({"#": "ask-1", "get": {"#": "nothing"}})
    await settle()
    deep = "[" * 990 + "1" + "]" * 990  # parses; too deep for orjson to write, and for the fallback
    relay.receive(replier.peer, '{"#":"r1","@":"ask-1","ok":' + deep + "}")  # names the asker's get
    await settle()
    assert relay.stats.errors.get("unforwardable_reply") == 1 and "internal" not in relay.stats.errors
    assert not [r for r in caplog.records if r.exc_info]
    assert [m for m in asker.messages() if m.get("@") == "ask-1" and "ok" in m] == []
