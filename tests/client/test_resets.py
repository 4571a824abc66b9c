"""Resets issued by our relay's operator API, honoured by the Python peer end to end: the local
copy of the scope cleared, queued writes in scope dropped, each epoch applied once (also across a
client restart), the acknowledgement visible to the operator, and forged records ignored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from client_support import (
    eventually,
    new_key,
    now_ms,
    record,
    record_graph,
)
from interop_support import RawPeer, Relay, operator, rid, wait_published

from gunrelay.core.reset import reset_soul
from gunrelay.core.reset import ResetRecord

NODE_HAS_NO_RESETS = "the reference Node relay has no resets, identity or operator API"


@pytest.fixture(params=["ours", pytest.param("node", marks=pytest.mark.skip(reason=NODE_HAS_NO_RESETS))])
def reset_relay(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    r = Relay(tmp_path / "data", tmp_path / "logs", target=request.param)
    r.start()
    try:
        yield r
    finally:
        r.stop()


async def issue(relay: Relay, scope: str, **extra: Any) -> dict[str, Any]:
    """Issue a reset through the operator API and wait until it is purged and published."""
    created = await asyncio.to_thread(operator, relay, "POST", "/-/api/resets", {"scope": scope, **extra})
    await asyncio.to_thread(wait_published, relay, created["record"]["reset_id"])
    return created["record"]  # type: ignore[no-any-return]


async def acknowledged_by(relay: Relay, reset_id: str) -> list[str | None]:
    status = await asyncio.to_thread(operator, relay, "GET", f"/-/api/resets/{reset_id}")
    return [ack["pid"] for ack in status["acknowledged"]]


async def test_a_reset_issued_while_offline_clears_the_scope_and_drops_queued_writes(reset_relay: Relay, peers: Any) -> None:
    relay = reset_relay
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(relay.peer)
    assert peer.relay_pub  # read from /-/identity
    room, other = f"room-{rid()}", f"other-{rid()}"
    assert (await peer.put(room, {"topic": "old", "messages": {"m1": "hi"}})).ok
    assert (await peer.put(other, {"x": 1})).ok

    await peer.disconnect()
    assert (await peer.put(room, {"offline": "stale"})).queued
    assert (await peer.put(other, {"offline": "fine"})).queued
    rec = await issue(relay, room, reason="spam", message="room cleared")

    assert await peer.connect(relay.peer)
    assert await eventually(lambda: applied)
    assert applied[0].reset_id == rec["reset_id"] and applied[0].scope == room and applied[0].message == "room cleared"
    assert await peer.local(room) is None and await peer.local(f"{room}/messages") is None
    assert await peer.wait_flushed(5)  # only the write outside the scope was left to send
    assert peer.pid in await eventually(lambda: acknowledged_by(relay, rec["reset_id"]))
    assert rec["reset_id"] in peer.acknowledged

    fresh = peers()
    assert await fresh.connect(relay.peer)
    assert await fresh.get(room) is None
    assert await fresh.get(other) == {"x": 1, "offline": "fine"}
    assert [r.reset_id for r in applied] == [rec["reset_id"]]


async def test_an_online_peer_follows_a_live_reset_and_writes_again_after_it(our_relay: Relay, peers: Any) -> None:
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(our_relay.peer)
    room = f"live-{rid()}"
    seen: list[Any] = []
    peer.on(room, lambda node, _soul: seen.append(node))
    assert (await peer.put(room, {"msg": "before"})).ok
    rec = await issue(our_relay, room)
    assert await eventually(lambda: applied)  # pushed to us: we subscribe to the record
    assert await peer.local(room) is None
    assert peer.pid in await eventually(lambda: acknowledged_by(our_relay, rec["reset_id"]))
    assert (await peer.put(room, {"msg": "after"})).ok
    assert await eventually(lambda: seen and seen[-1] == {"msg": "after"})

    # a writer whose clock lags behind W (and who ignores resets) is refused by the relay, with an error
    lagging = peers(watch_resets=False, wall_ms=lambda: rec["W"] - 5000)
    assert await lagging.connect(our_relay.peer)
    refused = await lagging.put(room, {"msg": "stale"})
    assert refused.err and not refused.ok, refused
    assert await peer.get(room) == {"msg": "after"}


async def test_each_epoch_is_applied_once_across_client_restarts(our_relay: Relay, peers: Any, tmp_path: Path) -> None:
    path = tmp_path / "peer.sqlite"
    room = f"durable-{rid()}"
    first: list[ResetRecord] = []
    peer = peers.durable(path, on_reset=first.append)
    assert await peer.connect(our_relay.peer)
    assert (await peer.put(room, {"a": 1})).ok
    rec1 = await issue(our_relay, room)
    assert await eventually(lambda: first)
    assert (await peer.put(room, {"b": 2})).ok  # written after the reset: must survive
    await peer.close()

    again: list[ResetRecord] = []
    peer2 = peers.durable(path, on_reset=again.append)
    await peer2.open()
    assert peer2.resets.applied == {room: 1} and peer2.resets.fence  # remembered in the local store
    assert await peer2.connect(our_relay.peer)
    assert peer2.pid in await eventually(lambda: acknowledged_by(our_relay, rec1["reset_id"]))  # acked on every connection
    assert again == []
    assert await peer2.local(room) == {"b": 2}

    rec2 = await issue(our_relay, room)
    assert await eventually(lambda: again)
    assert again[0].reset_id == rec2["reset_id"] and again[0].epoch == 2
    assert await peer2.local(room) is None


async def test_forged_records_change_nothing(our_relay: Relay, peers: Any) -> None:
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(our_relay.peer)
    room = f"forge-{rid()}"
    assert (await peer.put(room, {"keep": "me"})).ok
    pub = peer.relay_pub
    assert pub
    attacker, attacker_pub = new_key()
    # the peer even listens to the attacker's space: a validly signed record there is not the relay's
    peer.on(reset_soul(attacker_pub), lambda *_: None)
    await asyncio.sleep(0.2)
    state = now_ms()
    fake = record(f"forged-{rid()}", "*", 99, state - 1)
    answers = await asyncio.to_thread(_raw_puts, our_relay, [
        record_graph(attacker, reset_soul(attacker_pub), fake, state),  # accepted: it is the attacker's own space
        record_graph(None, reset_soul(pub), fake, state),  # unsigned into the relay's space
        record_graph(attacker, reset_soul(pub), fake, state),  # signed by the wrong key
        record_graph(attacker, reset_soul(pub), fake, state, star=attacker_pub),  # GunJS's '*' hole
        {"_whisperz_system/reset": {"_": {"#": "_whisperz_system/reset", ">": {"reason": state}}, "reason": "wipe!"}},
    ])
    assert answers[0].get("ok") is True, answers
    assert all("err" in a for a in answers[1:]), answers
    assert await eventually(lambda: peer.local(reset_soul(attacker_pub)))  # it arrived, and...
    await asyncio.sleep(0.3)
    assert applied == [] and not peer.resets.fence  # ...did nothing
    assert await peer.get(room) == {"keep": "me"}


def _raw_puts(relay: Relay, graphs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    with RawPeer(relay.ws_url) as raw:
        for graph in graphs:
            msg = {"#": rid("f") + "x", "put": graph}
            out.append(raw.request(msg) or {})
    return out


async def test_a_rotation_names_the_replacement_and_closes_the_old_scope(our_relay: Relay, peers: Any) -> None:
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(our_relay.peer)
    old, new = f"chat-{rid()}/v1", f"chat-{rid()}/v2"
    assert (await peer.put(old, {"msg": "hello"})).ok
    await asyncio.to_thread(operator, our_relay, "POST", "/-/api/rotations", {"scope": old, "to": new, "grace": "1h"})
    assert await eventually(lambda: applied)
    assert applied[0].kind == "rotation" and applied[0].replacement == new
    refused = await peer.put(old, {"msg": "late"})
    assert refused.err and not refused.queued
    assert (await peer.put(new, {"msg": "fresh start"})).ok


async def test_a_reset_of_everything_keeps_only_the_relays_own_records(our_relay: Relay, peers: Any) -> None:
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(our_relay.peer)
    souls = [f"all-{rid()}" for _ in range(3)]
    for soul in souls:
        assert (await peer.put(soul, {"v": soul, "child": {"x": 1}})).ok
    rec = await issue(our_relay, "*", reason="fresh start")
    assert await eventually(lambda: applied)
    assert applied[0].scope == "*" and applied[0].reset_id == rec["reset_id"]
    for soul in souls:
        assert await peer.local(soul) is None and await peer.local(f"{soul}/child") is None
    assert peer.relay_pub
    assert (await peer.local(reset_soul(peer.relay_pub)))  # the record itself is never purged
    assert (await peer.put(souls[0], {"v": "new"})).ok
    await peer.disconnect()
    assert await peer.connect(our_relay.peer)
    await asyncio.sleep(0.2)
    assert len(applied) == 1 and await peer.get(souls[0]) == {"v": "new"}


async def test_a_peer_away_during_resets_of_several_scopes_honours_each(our_relay: Relay, peers: Any) -> None:
    applied: list[ResetRecord] = []
    peer = peers(on_reset=applied.append)
    assert await peer.connect(our_relay.peer)
    a, b, c = (f"multi-{rid()}" for _ in range(3))
    for soul in (a, b, c):
        assert (await peer.put(soul, {"v": 1})).ok
    await peer.disconnect()
    first = await issue(our_relay, a)
    second = await issue(our_relay, b)  # the latest record now names b only
    again = await issue(our_relay, a)  # epoch 2 of a subsumes epoch 1
    assert await peer.connect(our_relay.peer)
    assert await eventually(lambda: len(applied) == 2)
    assert [r.reset_id for r in applied] == [second["reset_id"], again["reset_id"]]
    assert await peer.local(a) is None and await peer.local(b) is None and await peer.local(c) == {"v": 1}
    assert first["reset_id"] not in peer.resets.records and peer.resets.applied == {a: 2, b: 1}
    await asyncio.sleep(0.2)
    assert len(applied) == 2
