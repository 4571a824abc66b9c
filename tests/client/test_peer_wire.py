"""The peer's wire manners, checked against a scripted relay: handshake, ids, dedup, batches,
answering a relay's forwarded get, and keeping puts until they are acknowledged."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from client_support import eventually
from fake_relay import FakeRelay

from gunrelay.client.protocol import new_id


@pytest.fixture
async def fake() -> AsyncIterator[FakeRelay]:
    relay = await FakeRelay().start()
    try:
        yield relay
    finally:
        await relay.stop()


def put_frame(msg_id: str, soul: str, key: str, value: Any, state: float) -> dict[str, Any]:
    return {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}}


def test_message_ids_are_random_and_end_with_a_letter() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9A-Za-z]{8}[A-Za-z]", i) for i in ids)


async def test_handshake_hi_and_our_pid(fake: FakeRelay, peers: Any) -> None:
    peer = peers(watch_resets=False)
    assert await peer.connect(fake.url)
    answer = await eventually(lambda: [m for m in fake.messages("?") if m.get("@") == fake.hello_id])
    assert answer and answer[0]["pid"] == peer.pid and answer[0]["#"] != fake.hello_id
    assert fake.messages("hi")
    assert peer.relay_pid == "fakerelay"
    await peer.put("s1", {"k": "v"})
    for msg in fake.received:
        assert re.fullmatch(r"[0-9A-Za-z]{8}[A-Za-z]", msg["#"]), msg
    # the relay's own '?' answered only once, even if it is repeated under the same id
    await fake.push({"#": fake.hello_id, "dam": "?", "pid": "fakerelay"})
    await asyncio.sleep(0.1)
    assert len([m for m in fake.messages("?") if m.get("@") == fake.hello_id]) == 1


async def test_duplicates_are_dropped_and_batches_handled(fake: FakeRelay, peers: Any) -> None:
    peer = peers(watch_resets=False)
    assert await peer.connect(fake.url)
    await fake.push(put_frame("same1x", "d", "k", "first", 1000))
    await fake.push(put_frame("same1x", "d", "k", "second", 2000))  # same '#': dropped
    await fake.push([put_frame("b1x", "d", "a", 1, 1000), put_frame("b2x", "d", "b", 2, 1000), {"dam": "unknown"}])
    await fake.push("[]")  # keepalive
    assert await eventually(lambda: peer.local("d", "b"))
    assert await peer.local("d") == {"k": "first", "a": 1, "b": 2}


async def test_invalid_unsigned_and_far_future_pushes_are_ignored(fake: FakeRelay, peers: Any) -> None:
    peer = peers(watch_resets=False)
    assert await peer.connect(fake.url)
    pub = "A" * 43 + "." + "B" * 43
    await fake.push({"#": "bad1x", "put": {"n": {"_": {"#": "n"}, "k": 1}}})  # no states: invalid graph
    await fake.push(put_frame("bad2x", f"~{pub}", "name", "unsigned", 1000))  # user space, unsigned
    await fake.push(put_frame("bad3x", "n", "future", 1, 10**15))  # far future
    await fake.push(put_frame("good1x", "n", "fine", True, 1000))
    assert await eventually(lambda: peer.local("n", "fine"))
    assert await peer.local("n") == {"fine": True}
    assert await peer.local(f"~{pub}") is None


async def test_a_forwarded_get_is_answered_from_the_local_copy(fake: FakeRelay, peers: Any) -> None:
    peer = peers(watch_resets=False)
    assert await peer.connect(fake.url)
    await peer.put("held", {"a": 1, "b": 2})
    await fake.push({"#": "fwd1x", "get": {"#": "held", ".": "b"}})
    await fake.push({"#": "fwd2x", "get": {"#": "nothing-here"}})
    replies = await eventually(lambda: [m for m in fake.received if m.get("@") == "fwd1x"])
    assert replies and replies[0]["put"]["held"]["b"] == 2 and "a" not in replies[0]["put"]["held"]
    await asyncio.sleep(0.1)
    assert not [m for m in fake.received if m.get("@") == "fwd2x"]  # nothing held: no answer


async def test_unacknowledged_puts_are_sent_again_after_a_reconnect(peers: Any) -> None:
    silent = await FakeRelay(ack_puts=False).start()
    try:
        peer = peers(watch_resets=False, ack_timeout=5.0, reconnect_max=0.2)
        assert await peer.connect(silent.url)
        pending = asyncio.ensure_future(peer.put("r", {"k": "v"}))
        await eventually(lambda: silent.messages("put"))
        first = silent.messages("put")[0]
        await silent.stop()  # the connection drops before any ack
        result = await pending
        assert result.queued and not result.ok
        silent.ack_puts = True
        await silent.start()
        assert await peer.wait_connected(5)
        assert await peer.wait_flushed(5)
        again = silent.messages("put")[-1]
        assert again["put"] == first["put"] and again["#"] != first["#"]  # same states, fresh id
    finally:
        await silent.stop()


async def test_a_put_the_relay_never_answers_times_out_and_leaves_the_outbox(peers: Any) -> None:
    silent = await FakeRelay(ack_puts=False).start()
    try:
        peer = peers(watch_resets=False, ack_timeout=0.3)
        assert await peer.connect(silent.url)
        result = await peer.put("r", {"k": "v"})
        assert result.timed_out and not result.queued and not result.ok
        assert len(peer.outbox) == 0  # the relay has it; it chose not to answer (as Node does for HAM losers)
    finally:
        await silent.stop()


async def test_the_local_copy_answers_when_the_relay_does_not(peers: Any) -> None:
    silent = await FakeRelay().start()
    try:
        peer = peers(watch_resets=False, get_timeout=0.2)
        assert await peer.connect(silent.url)
        await peer.put("loc", {"x": 1})
        assert await peer.get("loc") == {"x": 1}
        assert await peer.get("missing", "x") is None
    finally:
        await silent.stop()


async def test_a_state_a_little_ahead_waits_until_it_is_reached(fake: FakeRelay, peers: Any) -> None:
    peer = peers(watch_resets=False)
    assert await peer.connect(fake.url)
    seen: list[Any] = []
    peer.on("soon", lambda value, _key: seen.append(value), key="k")
    ahead = time.time() * 1000 + 4000  # far enough that a busy machine still looks before it is reached
    await fake.push(put_frame("soon1x", "soon", "k", "later", ahead))
    await fake.push(put_frame("soon2x", "soon", "n", "now", 1000))
    assert await eventually(lambda: peer.local("soon", "n"))
    assert await peer.local("soon", "k") is None  # as GunJS defers it: not before its state
    assert await eventually(lambda: peer.local("soon", "k"), timeout=15) == "later"
    assert time.time() * 1000 >= ahead
    assert await eventually(lambda: seen == ["later"])  # the callback runs from the peer's callback task, after the store
