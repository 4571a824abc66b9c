"""The peer's pure parts: the state clock, nested data to graphs, the outbox, the local hard reset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gunrelay.client.connection import ws_url
from gunrelay.client.nodes import graph_of, random_soul
from gunrelay.client.outbox import MemoryOutbox, SQLiteOutbox, drop_fenced
from gunrelay.client.peer import GunPeer
from gunrelay.client.state_clock import StateClock
from gunrelay.core.fence import FenceRule, Protected
from gunrelay.core.graph import fields_of_put


def test_the_clock_adds_thousandths_within_one_millisecond_like_gunjs() -> None:
    wall = [1_700_000_000_000.4]
    clock = StateClock(lambda: wall[0])
    assert [clock(), clock(), clock()] == [1_700_000_000_000, 1_700_000_000_000 + 1 / 999, 1_700_000_000_000 + 2 / 999]
    wall[0] += 1
    assert clock() == 1_700_000_000_001
    wall[0] -= 5  # the wall clock stepped back: states still increase
    assert clock() > 1_700_000_000_001


async def _no_links(soul: str, key: str) -> Any:
    return None


async def test_nested_data_becomes_child_nodes_with_one_state() -> None:
    graph = await graph_of("a", {"x": 1, "in": {"y": None, "deep": {"z": True}}, "ref": {"#": "b"}}, 5, _no_links)
    assert graph == {
        "a": {"_": {"#": "a", ">": {"x": 5, "in": 5, "ref": 5}}, "x": 1, "in": {"#": "a/in"}, "ref": {"#": "b"}},
        "a/in": {"_": {"#": "a/in", ">": {"y": 5, "deep": 5}}, "y": None, "deep": {"#": "a/in/deep"}},
        "a/in/deep": {"_": {"#": "a/in/deep", ">": {"z": 5}}, "z": True},
    }
    assert len(fields_of_put(graph)) == 6


async def test_an_existing_link_is_followed() -> None:
    async def links(soul: str, key: str) -> Any:
        return {"#": "elsewhere"} if (soul, key) == ("a", "in") else None

    graph = await graph_of("a", {"in": {"y": 1}}, 5, links)
    assert set(graph) == {"a", "elsewhere"} and graph["a"]["in"] == {"#": "elsewhere"}


@pytest.mark.parametrize("bad", [{"l": [1]}, {"n": math.inf}, {"_": 1}, {1: 2}, {"o": object()}])
async def test_values_gun_cannot_hold_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        await graph_of("a", bad, 5, _no_links)


def test_set_souls_look_like_gunjs_ones() -> None:
    soul = random_soul(1_700_000_000_000.5)
    assert soul.startswith("loyw3v28") and len(soul) == 8 + 12


def test_relay_urls() -> None:
    assert ws_url("http://127.0.0.1:8765/gun") == "ws://127.0.0.1:8765/gun"
    assert ws_url("https://relay.example") == "wss://relay.example/gun"
    assert ws_url("ws://h:1/gun?x=1") == "ws://h:1/gun?x=1"
    with pytest.raises(ValueError):
        ws_url("ftp://h/gun")


def test_drop_fenced_keeps_what_is_outside_the_scope_or_newer() -> None:
    graph = {
        "room": {"_": {"#": "room", ">": {"old": 1, "new": 9}}, "old": "a", "new": "b"},
        "room/sub": {"_": {"#": "room/sub", ">": {"x": 2}}, "x": 1},
        "roomy": {"_": {"#": "roomy", ">": {"x": 2}}, "x": 1},
    }
    kept, removed = drop_fenced(graph, FenceRule("r", "room", 5), Protected(), 0)
    assert removed == 2
    assert kept == {"room": {"_": {"#": "room", ">": {"new": 9}}, "new": "b"}, "roomy": graph["roomy"]}


async def test_the_sqlite_outbox_keeps_its_queue_in_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = SQLiteOutbox(path)
    await box.open()
    graphs = [{f"s{i}": {"_": {"#": f"s{i}", ">": {"k": i}}, "k": i}} for i in range(3)]
    entries = [await box.add(g) for g in graphs]
    await box.remove(entries[1].entry_id)
    assert await box.drop(FenceRule("r", "s2", 10), Protected(), 0) == 1
    await box.close()
    again = SQLiteOutbox(path)
    await again.open()
    assert [e.graph for e in again.entries()] == [graphs[0]]
    later = await again.add(graphs[1])
    assert [e.graph for e in again.entries()] == [graphs[0], graphs[1]] and later.entry_id > entries[0].entry_id
    await again.close()


async def test_hard_reset_clears_the_local_copy_and_the_queue() -> None:
    async with GunPeer(relay_pub="A" * 43 + "." + "B" * 43) as peer:
        assert (await peer.put("room", {"a": 1})).queued
        assert (await peer.put("other", {"b": 2})).queued
        assert await peer.hard_reset("room") == 1
        assert await peer.local("room") is None and await peer.local("other") == {"b": 2}
        assert [set(e.graph) for e in peer.outbox.entries()] == [{"other"}]
        await peer.hard_reset()
        assert await peer.local("other") is None and len(peer.outbox) == 0


async def test_the_memory_outbox_counts() -> None:
    box = MemoryOutbox()
    entry = await box.add({"s": {"_": {"#": "s", ">": {"k": 1}}, "k": 1}})
    assert len(box) == 1 and entry.entry_id in box
    await box.remove(entry.entry_id)
    assert len(box) == 0
