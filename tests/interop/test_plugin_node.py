"""The reset plugin (src/gunrelay/client/gunrelay.js) in a Node GunJS 0.2020.1241 client.

Each client is ``js/plugin_driver.js``: stock ``gun/gun`` + ``gun/sea`` with the plugin installed,
driven over stdin/stdout. The relay's side is checked through its operator API and its log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from interop_support import TARGET, PluginClient, Relay, identity, operator, reset, rid, wait_for

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no resets"),
]










def fenced_lines(relay: Relay) -> int:
    return relay.log_text(limit=10**7).count("stale field(s) from peer")


@pytest.fixture
def spawn(tmp_path: Path):
    started: list[PluginClient] = []

    def make(relay: Relay, **kw: Any) -> PluginClient:
        peers = kw.pop("peers", None) or [relay.peer]
        store = kw.pop("store", tmp_path / "store.json")
        c = PluginClient(peers, identity(relay), store, **kw)
        started.append(c)
        if kw.get("plugin", True):
            assert c.event(lambda e: e.get("event") == "ready", 10), f"plugin never ready: {c.events}"
        return c

    yield make
    for c in started:
        c.close()


def souls(client: PluginClient, prefix: str = "") -> dict[str, Any]:
    return client.cmd("graph", prefix=prefix)["graph"]


# ---- tests ---------------------------------------------------------------------------------------


def test_a_reset_clears_the_scope_in_memory_acks_and_a_replay_does_nothing(fresh_relay: Relay, spawn,
                                                                            tmp_path: Path) -> None:
    room, other = f"nroom-{rid()}", f"other-{rid()}"
    c = spawn(fresh_relay, label="c1")
    assert c.cmd("put", soul=room, key="topic", value="old topic")["ack"]["ok"]
    for text in ("m1", "m2"):
        assert c.cmd("set", soul=room, key="messages", item={"text": text})["ack"]["ok"]
    assert c.cmd("put", soul=other, key="x", value="untouched")["ack"]["ok"]
    before = souls(c)
    items = [s for s, node in before.items() if node.get("text") in ("m1", "m2")]
    assert len(items) == 2 and room in before and f"{room}/messages" in before, before

    record = reset(fresh_relay, room, message="room cleared")
    ev = c.event(lambda e: e.get("event") == "reset", 10)
    assert ev and ev["record"]["reset_id"] == record["reset_id"], c.events
    assert ev["record"]["message"] == "room cleared" and ev["info"]["acked"] is True, ev
    after = souls(c)
    assert not [s for s in after if s == room or s.startswith(room + "/") or s in items], after  # prefix + set() items
    assert after[other]["x"] == "untouched"

    status = c.cmd("status")
    assert status["applied"][room]["epoch"] == record["epoch"] and status["pending"] == [], status
    acks = operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")["acknowledged"]
    assert status["pid"] in [a["pid"] for a in acks], acks

    # the same record again (a re-check, and a restart that reads it at start): nothing happens
    assert c.cmd("put", soul=room, key="topic", value="new topic")["ack"]["ok"]  # written after the reset
    c.cmd("check")
    assert c.resets() == [ev["record"]]
    c.close()
    c2 = spawn(fresh_relay, label="c2")  # same store: it remembers the applied epoch
    assert c2.cmd("once", soul=room, key="topic")["value"] == "new topic"
    assert c2.event(lambda e: e.get("event") == "reset", 1.5) is None, c2.events

    # the next epoch of the same scope is applied
    second = reset(fresh_relay, room)
    ev2 = c2.event(lambda e: e.get("event") == "reset", 10)
    assert ev2 and ev2["record"]["reset_id"] == second["reset_id"] and second["epoch"] == record["epoch"] + 1
    assert not [s for s in souls(c2) if s.startswith(room)], souls(c2)

    # records it has not seen by id, but whose epoch it has applied (the history it catches up on at
    # start: epochs 1 and 2 of the room) change nothing either
    c2.close()
    store = tmp_path / "store.json"
    saved = json.loads(json.loads(store.read_text())["gunrelay"])
    assert {record["reset_id"], second["reset_id"]} <= set(saved["seen"]), saved
    saved["seen"] = []
    store.write_text(json.dumps({"gunrelay": json.dumps(saved)}))
    c3 = spawn(fresh_relay, label="c3")
    assert c3.event(lambda e: e.get("event") == "reset", 1.5) is None, c3.events
    assert c3.cmd("status")["applied"][room]["epoch"] == second["epoch"]


def test_the_client_fence_drops_stale_fields_from_another_peer(fresh_relay: Relay, spawn, tmp_path: Path,
                                                                clients) -> None:
    other_relay = Relay(tmp_path / "node-data", tmp_path / "node-logs", target="node")
    other_relay.start()
    try:
        soul = f"mesh-{rid()}"
        c = spawn(fresh_relay, peers=[fresh_relay.peer, other_relay.peer], label="meshed")
        c.cmd("subscribe", soul=soul)
        assert c.cmd("put", soul=soul, key="k", value="before")["ack"].get("err") is None
        record = reset(fresh_relay, "*")
        assert c.event(lambda e: e.get("event") == "reset", 10), c.events
        assert soul not in souls(c, soul)
        W = record["W"]
        # a stock client of the other relay (no plugin) pushes a stale field and a fresh one
        r = clients.run(other_relay, [
            {"op": "replay", "graph": {soul: {"_": {"#": soul, ">": {"old": W - 1000}}, "old": "stale"}}},
            {"op": "replay", "graph": {soul: {"_": {"#": soul, ">": {"fresh": time.time() * 1000}}, "fresh": "new"}}},
        ])
        assert r.error is None, r
        got = c.event(lambda e: e.get("event") == "on" and e.get("key") == "fresh", 8)
        assert got and got["value"] == "new", c.events  # the path from the other relay works...
        time.sleep(0.3)
        assert not [e for e in c.events if e.get("event") == "on" and e.get("value") == "stale"], c.events
        node = souls(c, soul)[soul]
        assert node.get("fresh") == "new" and "old" not in node and "k" not in node, node  # ...the stale one dropped
        assert c.cmd("status")["fenced"] >= 1
    finally:
        other_relay.stop()


def test_a_write_queued_offline_is_held_until_the_reset_is_known(fresh_relay: Relay, spawn, tmp_path: Path) -> None:
    soul = f"queued-{rid()}"
    c = spawn(fresh_relay, label="before")
    assert c.cmd("put", soul=soul, key="k", value="old")["ack"]["ok"]
    stale = souls(c, soul)  # the node with its original state, as a stale client would re-send it
    c.close()

    record = reset(fresh_relay, "*")  # the client is away
    time.sleep(0.2)
    before = fenced_lines(fresh_relay)

    # stock GunJS, no plugin: the frame queued while connecting reaches the relay, which fences it
    spawn(fresh_relay, plugin=False, early=[stale], store=None, label="stock")
    wait_for("the relay fencing the stock client's queued write", lambda: fenced_lines(fresh_relay) > before)
    before = fenced_lines(fresh_relay)

    # with the plugin (same store as before: it has not seen this reset) the queued put is held at
    # connect, the record applied, the stale field dropped from the queue: nothing reaches the relay
    back = spawn(fresh_relay, early=[stale], label="back")
    ev = back.event(lambda e: e.get("event") == "reset", 10)
    assert ev and ev["record"]["reset_id"] == record["reset_id"], back.events
    time.sleep(1.0)
    assert fenced_lines(fresh_relay) == before, fresh_relay.log_text()[-2000:]
    assert back.cmd("status")["queue"] == []
    acks = operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")["acknowledged"]
    assert back.cmd("status")["pid"] in [a["pid"] for a in acks], acks


def test_a_rotation_hands_the_replacement_to_the_app_and_the_old_scope_stays_readable(fresh_relay: Relay,
                                                                                        spawn) -> None:
    old, new = f"ns-{rid()}", f"ns-{rid()}"
    c = spawn(fresh_relay, label="rotating")
    assert c.cmd("put", soul=old, key="topic", value="before")["ack"]["ok"]
    result = operator(fresh_relay, "POST", "/-/api/rotations", {"scope": old, "to": new, "grace": "1h"})
    ev = c.event(lambda e: e.get("event") == "reset", 10)
    assert ev and ev["record"]["reset_id"] == result["record"]["reset_id"], c.events
    assert ev["record"]["kind"] == "rotation" and ev["record"]["replacement"] == new, ev
    assert old not in souls(c, old)  # the local copy of the old scope went
    status = c.cmd("status")
    assert status["replacement"] == new and status["applied"][old]["kind"] == "rotation", status
    # read-only, not fenced: during the grace the relay still serves the old scope, and the client takes it
    assert c.cmd("once", soul=old, key="topic")["value"] == "before"
    assert "read-only" in (c.cmd("put", soul=old, key="topic", value="after")["ack"]["err"] or "")


def test_the_plugin_redials_the_relay_after_a_restart_longer_than_gunjs_retries(fresh_relay: Relay, spawn) -> None:
    room = f"keep-{rid()}"
    with_plugin = spawn(fresh_relay, label="plugin")
    stock = spawn(fresh_relay, plugin=False, store=None, label="stock")
    for c in (with_plugin, stock):
        assert c.cmd("put", soul=room, key=c.label, value="before")["ack"].get("ok"), c.label
    fresh_relay.stop()
    time.sleep(5)  # longer than GunJS's one retry, 2 s after the socket closed
    with_plugin.resets()  # takes in the events so far
    hellos = sum(e.get("event") == "hi" for e in with_plugin.events)
    fresh_relay.start()
    wait_for("the plugin to reconnect (its redial)",
             lambda: (with_plugin.resets(), sum(e.get("event") == "hi" for e in with_plugin.events) > hellos)[1], 40)
    assert with_plugin.cmd("put", soul=room, key="plugin", value="after", timeout=15)["ack"].get("ok")
    # stock GunJS has forgotten the relay: its write goes nowhere and is never acknowledged
    assert stock.cmd("put", soul=room, key="stock", value="after", timeout=15).get("timeout") is True


def test_resets_before_the_first_contact_are_history_and_a_later_one_reaches_live_views(fresh_relay: Relay, spawn,
                                                                                        tmp_path: Path) -> None:
    room = f"hist-{rid()}"
    old = [reset(fresh_relay, "*"), reset(fresh_relay, room)]  # before this client ever connected
    c = spawn(fresh_relay, label="newcomer")
    status = wait_for("both old records judged", lambda: (
        lambda s: s if {old[0]["scope"], room} <= set(s["applied"]) else None)(c.cmd("status")), 15)
    assert status["mark"] >= old[-1]["issued_at"], status  # the relay's clock at the first contact
    assert c.event(lambda e: e.get("event") == "reset", 1.0) is None, c.events  # history: no onReset
    acks = operator(fresh_relay, "GET", f"/-/api/resets/{old[0]['reset_id']}")["acknowledged"]
    assert status["pid"] in [a["pid"] for a in acks], acks

    # a restart of the same client (same store): still history, the mark does not move
    c.close()
    c = spawn(fresh_relay, label="again")
    assert c.cmd("status")["mark"] == status["mark"]
    assert c.event(lambda e: e.get("event") == "reset", 1.5) is None, c.events

    # a reset after the first contact: the live views hear the fields go before onReset, as null
    assert c.cmd("put", soul=room, key="topic", value="t")["ack"]["ok"]
    c.cmd("subscribe", soul=room, keys=["topic"])
    assert c.event(lambda e: e.get("event") == "key" and e.get("value") == "t", 5), c.events
    before = len(c.events)
    record = reset(fresh_relay, room)
    ev = c.event(lambda e: e.get("event") == "reset", 10)
    assert ev and ev["record"]["reset_id"] == record["reset_id"], c.events
    after = c.events[before:]
    heard = [i for i, e in enumerate(after) if e.get("event") in ("key", "on")]
    assert {"event": "key", "soul": room, "key": "topic", "value": None} in after, after
    assert {"event": "on", "soul": room, "key": None, "value": None} in after, after
    assert heard and heard[0] < after.index(ev), after  # the views first, then onReset
