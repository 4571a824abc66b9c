"""The Python peer against real relays -- ours and the reference Node relay -- and real GunJS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from client_support import eventually
from interop_support import Relay, free_port, run_gun


async def gun(relay: Relay, steps: list[dict[str, Any]]) -> Any:
    """A real GunJS client (gun/gun, no local persistence) run to completion off the event loop."""
    result = await asyncio.to_thread(run_gun, relay, steps)
    assert result.error is None, result
    return result


async def test_put_is_acknowledged_and_a_fresh_peer_reads_it(relay: Relay, peers: Any, soul: str) -> None:
    writer = peers()
    assert await writer.connect(relay.peer)
    result = await writer.put(soul, {"text": "hello", "n": 42, "flag": False, "gone": None})
    assert result.ok and result.err is None, result
    assert result.ack is not None and "@" in result.ack
    assert len(writer.outbox) == 0

    reader = peers()
    assert await reader.connect(relay.ws_url)
    assert await reader.get(soul) == {"text": "hello", "n": 42, "flag": False, "gone": None}
    assert await reader.get(soul, "n") == 42
    assert await reader.get(soul, "absent") is None
    assert await reader.get(soul + "-missing") is None


async def test_fractional_states_and_later_writes_win(relay: Relay, peers: Any, soul: str) -> None:
    writer = peers()
    assert await writer.connect(relay.peer)
    results = await asyncio.gather(*(writer.put(soul, {"v": i}) for i in range(5)))
    states = [r.state for r in results]
    assert states == sorted(states) and len(set(states)) == 5  # the clock never repeats itself
    assert all(r.ok for r in results), results
    reader = peers()
    assert await reader.connect(relay.peer)
    assert await reader.get(soul, "v") == 4


async def test_on_receives_another_peers_updates(relay: Relay, peers: Any, soul: str) -> None:
    watcher, writer = peers(), peers()
    assert await watcher.connect(relay.peer) and await writer.connect(relay.peer)
    nodes: list[Any] = []
    values: list[Any] = []
    watcher.on(soul, lambda node, _soul: nodes.append(node))
    watcher.on(soul, lambda value, _key: values.append(value), key="status")
    await asyncio.sleep(0.3)  # the subscription (a get) reaches the relay first
    assert (await writer.put(soul, {"status": "busy", "other": 1})).ok
    assert await eventually(lambda: "busy" in values)
    assert await eventually(lambda: any(n.get("other") == 1 for n in nodes))
    assert (await writer.put(soul, {"status": "free"})).ok
    assert await eventually(lambda: values[-1:] == ["free"])


async def test_on_sees_a_gunjs_write_and_gunjs_sees_ours(relay: Relay, peers: Any, soul: str) -> None:
    watcher = peers()
    assert await watcher.connect(relay.peer)
    seen: list[Any] = []
    watcher.on(soul, lambda value, _key: seen.append(value), key="from")
    await asyncio.sleep(0.3)
    await gun(relay, [{"op": "put", "path": [soul, "from"], "value": "gunjs"}])
    assert await eventually(lambda: "gunjs" in seen)


async def test_nested_put_is_readable_by_gunjs(relay: Relay, peers: Any, soul: str) -> None:
    writer = peers()
    assert await writer.connect(relay.peer)
    result = await writer.put(soul, {"name": "ada", "profile": {"city": "London", "address": {"zip": "N1"}}})
    assert result.ok, result
    assert await writer.get(soul, "profile") == {"#": f"{soul}/profile"}  # GunJS's child soul convention
    r = await gun(relay, [
        {"op": "once", "path": [soul, "name"]},
        {"op": "once", "path": [soul, "profile", "city"]},
        {"op": "once", "path": [soul, "profile", "address", "zip"]},
    ])
    assert [step["value"] for step in r.results] == ["ada", "London", "N1"], r


async def test_gunjs_nested_put_is_readable_by_python(relay: Relay, peers: Any, soul: str) -> None:
    await gun(relay, [{"op": "put", "path": [soul, "profile"], "value": {"city": "Paris", "geo": {"lat": 48.85}}}])
    reader = peers()
    assert await reader.connect(relay.peer)
    assert await reader.once(soul, "profile", "city") == "Paris"
    assert await reader.once(soul, "profile", "geo") == {"lat": 48.85}
    assert await reader.load(soul) == {"profile": {"city": "Paris", "geo": {"lat": 48.85}}}


async def test_a_second_nested_put_updates_the_same_child(relay: Relay, peers: Any, soul: str) -> None:
    writer = peers()
    assert await writer.connect(relay.peer)
    assert (await writer.put(soul, {"settings": {"theme": "dark"}})).ok
    assert (await writer.put(soul, {"settings": {"lang": "fr"}})).ok
    assert await writer.load(soul) == {"settings": {"theme": "dark", "lang": "fr"}}


async def test_set_adds_items_gunjs_can_map(relay: Relay, peers: Any, soul: str) -> None:
    writer = peers()
    assert await writer.connect(relay.peer)
    for text in ("one", "two"):
        _, result = await writer.set(soul, {"text": text})
        assert result.ok, result
    r = await gun(relay, [{"op": "map_once", "path": [soul], "expect": 2}])
    assert sorted(item["text"] for item in r.results[0]["items"].values()) == ["one", "two"]


async def test_offline_puts_are_read_locally_and_reach_the_restarted_relay(fresh_relay: Relay, peers: Any, soul: str) -> None:
    fresh_relay.start()
    peer = peers(reconnect_max=0.5)
    assert await peer.connect(fresh_relay.peer)
    assert (await peer.put(soul, {"before": 1})).ok
    await asyncio.to_thread(fresh_relay.stop)
    assert await eventually(lambda: not peer.connected)
    queued = await peer.put(soul, {"during": "offline", "nested": {"x": 1}})
    assert queued.queued and not queued.ok, queued
    assert await peer.get(soul, "during") == "offline"  # answered from the local copy
    assert await peer.once(soul, "nested", "x") == 1
    assert len(peer.outbox) == 1

    await asyncio.to_thread(fresh_relay.start)
    assert await peer.wait_connected(10)
    assert await peer.wait_flushed(10), peer.outbox.entries()
    reader = peers()
    assert await reader.connect(fresh_relay.peer)
    assert await reader.load(soul) == {"before": 1, "during": "offline", "nested": {"x": 1}}
    assert (await reader.get(soul, "during")) == "offline"


async def test_a_peer_started_before_its_relay_catches_up(fresh_relay: Relay, peers: Any, soul: str) -> None:
    peer = peers(reconnect_max=0.3)
    assert not await peer.connect(fresh_relay.peer, timeout=0.3)  # nothing listens yet
    assert (await peer.put(soul, {"early": "bird"})).queued
    assert await peer.get(soul) == {"early": "bird"}
    await asyncio.to_thread(fresh_relay.start)
    assert await peer.wait_connected(10)
    assert await peer.wait_flushed(10)
    r = await gun(fresh_relay, [{"op": "once", "path": [soul, "early"]}])
    assert r.results[0]["value"] == "bird", r


async def test_a_durable_outbox_survives_a_client_restart(relay: Relay, peers: Any, soul: str, tmp_path: Path) -> None:
    path = tmp_path / "client.sqlite"
    offline = peers.durable(path, reconnect_max=0.2)
    assert not await offline.connect(f"http://127.0.0.1:{free_port()}/gun", timeout=0.2)
    assert (await offline.put(soul, {"kept": "on disk"})).queued
    await offline.close()

    again = peers.durable(path)
    assert await again.get(soul, "kept") == "on disk"  # read offline from the local copy
    assert len(again.outbox) == 1
    assert await again.connect(relay.peer)
    assert await again.wait_flushed(10)
    reader = peers()
    assert await reader.connect(relay.peer)
    assert await reader.get(soul, "kept") == "on disk"


async def test_bad_values_are_refused_before_anything_is_sent(relay: Relay, peers: Any, soul: str) -> None:
    peer = peers()
    assert await peer.connect(relay.peer)
    for bad in ({"list": [1, 2]}, {"nan": float("nan")}, {"_": 1}):
        with pytest.raises(ValueError):
            await peer.put(soul, bad)
    assert await peer.get(soul) is None
    assert len(peer.outbox) == 0


async def test_subscriptions_are_renewed_after_the_relay_restarts(fresh_relay: Relay, peers: Any, soul: str) -> None:
    fresh_relay.start()
    watcher = peers(reconnect_max=0.3)
    assert await watcher.connect(fresh_relay.peer)
    seen: list[Any] = []
    watcher.on(soul, lambda value, _key: seen.append(value), key="k")
    await asyncio.sleep(0.2)
    await asyncio.to_thread(fresh_relay.restart)  # the relay forgets every subscription
    assert await watcher.wait_connected(10)
    writer = peers()
    assert await writer.connect(fresh_relay.peer)
    assert (await writer.put(soul, {"k": "after restart"})).ok
    assert await eventually(lambda: "after restart" in seen)
