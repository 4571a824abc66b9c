"""Limits on peers, with fake sockets and an injected monotonic clock: each refusal is counted."""

import pytest
from fakes import Socket, put, settle

from gunrelay.core.engine import Limits
from gunrelay.server.relay import Relay
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.memory import MemoryStore

NOW = 1_700_000_000_000.0


@pytest.fixture
async def store():
    store = MemoryStore()
    await store.open()
    return store


async def test_a_flooding_peer_gets_errors_and_nothing_it_sent_is_applied(store):
    tick = {"t": 0.0}
    relay = Relay(store, clock_ms=lambda: NOW, monotonic=lambda: tick["t"], limits=Limits(max_messages_per_s=10, message_burst=20))
    flood, other = Socket(relay), Socket(relay)
    flood.send(*[put(f"ok{i}", "ok", n=i) for i in range(20)])  # the burst: all applied
    await settle()
    assert sum(1 for m in flood.messages() if m.get("ok")) == 20
    flood.send(put("over1", "spam", x=1), {"#": "over2", "get": {"#": "ok"}})
    await settle()
    replies = {m["@"]: m for m in flood.messages()}
    assert "Too many messages" in replies["over1"]["err"] and "Too many messages" in replies["over2"]["err"]
    assert (await store.read(ReadQuery(soul="spam"))) == {}
    assert relay.stats.refused == {"message_rate": 2}
    other.send(put("p", "other", y=1))  # another connection has its own budget
    await settle()
    assert other.messages()[0]["ok"] is True
    tick["t"] = 0.5  # five messages' worth later
    flood.send(*[put(f"later{i}", "later", n=i) for i in range(5)])
    await settle()
    assert sum(1 for m in flood.messages() if m.get("ok")) == 5


async def test_traffic_is_counted_in_messages_and_bytes(store):
    relay = Relay(store, clock_ms=lambda: NOW)
    a = Socket(relay)
    a.send(put("p1", "s", text="é" * 10))  # non-ASCII: bytes, not characters
    await settle()
    frames = list(a.frames)
    a.messages()
    assert relay.stats.messages_in == 1 and relay.stats.messages_out == 2  # the hello and the ack
    assert relay.stats.bytes_in > 10 + len('{"#":"p1"}') and relay.stats.bytes_out == sum(len(f.encode()) for f in frames)
    assert relay.subscription_count(a.peer) == 0
    a.send({"#": "g", "get": {"#": "s"}})
    await settle()
    assert relay.subscription_count(a.peer) == 1
