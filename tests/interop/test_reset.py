"""Resets that stick, with real GunJS 0.2020.1241 clients on the other side (ours only: the reference
relay has no resets)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from typing import Any

import pytest
from interop_support import TARGET, Relay, identity, operator, reset, rid

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no resets"),
]








def read(clients, relay: Relay, *paths: list[str]) -> list[Any]:
    r = clients.run(relay, [{"op": "once", "path": p, "timeout": 5000} for p in paths])
    assert r.error is None, r
    out = []
    for step in r.results:
        assert not step.get("timeout"), step
        out.append(step["value"] if step["defined"] else None)
    return out


def test_fresh_client_sees_the_scope_empty_and_other_rooms_stay(fresh_relay: Relay, clients) -> None:
    room, other = f"room-{rid()}", f"room-{rid()}"
    w = clients.run(fresh_relay, [
        {"op": "put", "path": [room, "topic"], "value": "old topic"},
        {"op": "set", "path": [room, "messages"], "items": [{"text": f"m{i}"} for i in range(5)]},
        {"op": "put", "path": [other, "topic"], "value": "keeps"},
        {"op": "put", "path": ["index", room], "ref": room},
    ])
    assert w.error is None, w
    reset(fresh_relay, room, reason="spam")
    r = clients.run(fresh_relay, [
        {"op": "once", "path": [room, "topic"]},
        {"op": "map_once", "path": [room, "messages"], "expect": 1, "timeout": 1500},
        {"op": "once", "path": [other, "topic"]},
    ])
    assert r.results[0]["defined"] is False, r
    assert r.results[1]["count"] == 0, r
    assert r.results[2]["value"] == "keeps"
    # the link into the reset room lives outside the scope and stays
    assert read(clients, fresh_relay, ["index"])[0] is not None


def test_a_stock_client_replaying_its_stale_copy_is_refused_every_time(fresh_relay: Relay, clients) -> None:
    soul = f"chat-{rid()}"
    clients.run(fresh_relay, [{"op": "put", "path": [soul, "msg"], "value": "stale secret"}])
    watcher = clients.spawn(fresh_relay, [
        {"op": "subscribe", "path": [soul, "msg"], "name": "w", "stream": True},
        {"op": "sleep", "ms": 500},
        {"op": "emit", "event": "watching"},
        {"op": "wait_line", "timeout": 20000},  # the stale replays happen while it watches
        {"op": "sleep", "ms": 500},
        {"op": "emit", "event": "after"},
    ], deadline_ms=30000)
    stale = clients.spawn(fresh_relay, [
        {"op": "once", "path": [soul, "msg"]},  # its copy, with the original state, now in memory
        {"op": "emit", "event": "holding"},
        {"op": "wait_line", "timeout": 20000},
        *[{"op": "replay", "soul": soul, "timeout": 4000} for _ in range(3)],
    ], deadline_ms=30000)
    watcher.wait_event(lambda e: e.get("event") == "watching", 10)
    stale.wait_event(lambda e: e.get("event") == "holding", 10)
    record = reset(fresh_relay)
    stale.send({"go": True})
    replays = stale.result(25).results[3:]
    for replay in replays:
        assert not replay.get("timeout"), replays
        assert record["reset_id"] in replay["ack"]["err"], replays
        assert replay["sent"][soul]["msg"] == "stale secret"
    watcher.send({"done": True})
    events = watcher.result(25).events
    start = next(i for i, e in enumerate(events) if e.get("event") == "watching")
    pushed = [e for e in events[start:] if e.get("event") == "on"]
    assert pushed == [], f"the watcher was sent something after the reset: {pushed}"
    assert read(clients, fresh_relay, [soul, "msg"]) == [None]


def test_after_a_restart_the_stale_replay_is_still_refused(fresh_relay: Relay, clients) -> None:
    soul = f"chat-{rid()}"
    clients.run(fresh_relay, [{"op": "put", "path": [soul, "msg"], "value": "old"}])
    stale = clients.spawn(fresh_relay, [
        {"op": "once", "path": [soul, "msg"]},
        {"op": "emit", "event": "holding"},
        {"op": "wait_line", "timeout": 25000},
        {"op": "wait_connected", "new": True, "timeout": 10000},
        {"op": "replay", "soul": soul, "timeout": 5000},
    ], deadline_ms=40000)
    stale.wait_event(lambda e: e.get("event") == "holding", 10)
    record = reset(fresh_relay)
    fresh_relay.restart()  # a cold relay: nothing in memory, only what storage and the fence hold
    stale.send({"go": True})
    result = stale.result(35)
    assert result.results[3].get("connected"), result
    assert record["reset_id"] in result.results[4]["ack"]["err"], result
    assert read(clients, fresh_relay, [soul, "msg"]) == [None]


def test_the_watermark_decides_and_ties_lose(fresh_relay: Relay, clients) -> None:
    record = reset(fresh_relay)
    watermark = record["W"]
    soul = f"w-{rid()}"

    def node(key: str, value: Any, state: float) -> dict[str, Any]:
        return {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}

    r = clients.run(fresh_relay, [
        {"op": "replay", "graph": node("below", "x", watermark - 1)},
        {"op": "replay", "graph": node("tie_true", True, watermark)},
        {"op": "replay", "graph": node("tie_link", {"#": "elsewhere"}, watermark)},
        {"op": "replay", "graph": node("tie_text", "zzz", watermark)},
        {"op": "replay", "graph": node("above", "fresh", watermark + 1)},
    ])
    acks = [step["ack"] for step in r.results]
    assert all(record["reset_id"] in a.get("err", "") for a in acks[:4]), acks
    assert acks[4].get("ok") is True, acks
    assert read(clients, fresh_relay, [soul, "below"], [soul, "tie_true"], [soul, "tie_link"], [soul, "tie_text"],
                [soul, "above"]) == [None, None, None, None, "fresh"]


def test_offline_client_reads_the_signed_record_and_legacy_node_when_it_returns(fresh_relay: Relay, clients) -> None:
    record = reset(fresh_relay, reason="cleanup", message="All chats were cleared")
    pub = identity(fresh_relay)
    r = clients.run(fresh_relay, [
        {"op": "user_once", "pub": pub, "path": ["reset", "reset_id"]},
        {"op": "user_once", "pub": pub, "path": ["reset", "epoch"]},
        {"op": "user_once", "pub": pub, "path": ["reset", "message"]},
        {"op": "once", "path": ["_whisperz_system", "reset", "message"]},
        {"op": "once", "path": ["_whisperz_system", "config", "reset"]},
    ], sea=True)
    values = [step.get("value") for step in r.results]
    assert values == [record["reset_id"], record["epoch"], "All chats were cleared", "All chats were cleared",
                      record["reset_id"]], r


def test_forged_records_and_legacy_writes_change_nothing(fresh_relay: Relay, clients) -> None:
    record = reset(fresh_relay, message="real")
    pub = identity(fresh_relay)
    space = "~" + pub
    r = clients.run(fresh_relay, [
        {"op": "put", "path": ["_whisperz_system", "reset", "message"], "value": "forged: wipe everything"},
        {"op": "sea_forge", "soul": space + "/reset", "key": "reset_id", "value": "forged", "state": time.time() * 1000},
    ], sea=True)
    assert "err" in r.results[0]["ack"], r
    forged = r.results[1]["wire"]
    r2 = clients.run(fresh_relay, [
        {"op": "replay", "graph": {space + "/reset": {"_": {"#": space + "/reset", ">": {"reset_id": time.time() * 1000}},
                                                         "reset_id": forged}}},
    ], sea=True)
    assert "err" in r2.results[0]["ack"], r2
    r3 = clients.run(fresh_relay, [
        {"op": "once", "path": ["_whisperz_system", "reset", "message"]},
        {"op": "user_once", "pub": pub, "path": ["reset", "reset_id"]},
    ], sea=True)
    assert [s.get("value") for s in r3.results] == ["real", record["reset_id"]], r3


def _fill_bulk(relay: Relay, count: int, state: float) -> None:
    """``count`` fields under bulk/, written into the stopped relay's store directly (SQLite, or
    the PostgreSQL database tests/postgres_everywhere.py gave it)."""
    url = getattr(relay, "store_url", None)
    if url is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO fields (soul, key, value, state, seq) SELECT convert_to('bulk/' || (i / 50), 'UTF8'), "
                "convert_to('k' || (i %% 50), 'UTF8'), to_json('v' || i)::text, %s, nextval('stream_seq') FROM generate_series(0, %s) AS i",
                (state, count - 1),
            )
        return
    db = sqlite3.connect(relay.data_dir / "gunrelay.sqlite3")
    with db:
        db.executemany(
            "INSERT INTO fields (soul, key, value, state) VALUES (?, ?, ?, ?)",
            ((f"bulk/{i // 50}", f"k{i % 50}", json.dumps(f"v{i}"), state) for i in range(count)),
        )
    db.close()


def _bulk_left(relay: Relay) -> int:
    url = getattr(relay, "store_url", None)
    if url is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM fields WHERE soul >= 'bulk/'::bytea AND soul < 'bulk0'::bytea").fetchone()
        return int(row[0]) if row else 0
    db = sqlite3.connect(relay.data_dir / "gunrelay.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM fields WHERE soul LIKE 'bulk/%'").fetchone()[0])
    finally:
        db.close()


def test_kill_9_between_fence_and_purge_end(fresh_relay: Relay, clients) -> None:
    fresh_relay.stop()
    old_state = time.time() * 1000 - 60_000
    _fill_bulk(fresh_relay, 400_000, old_state)  # a large store, so the purge is still running when the relay dies
    fresh_relay.start()
    record = operator(fresh_relay, "POST", "/-/api/resets", {"scope": "*"})["record"]
    os.kill(fresh_relay.proc.pid, signal.SIGKILL)
    fresh_relay.proc.wait(10)
    left = _bulk_left(fresh_relay)
    fresh_relay.start()
    r = clients.run(fresh_relay, [
        {"op": "replay", "graph": {"bulk/7": {"_": {"#": "bulk/7", ">": {"k1": old_state}}, "k1": "v351"}}},
        {"op": "once", "path": ["bulk/3", "k3"]},
    ])
    assert record["reset_id"] in r.results[0]["ack"]["err"], r
    assert r.results[1]["defined"] is False, r
    deadline = time.monotonic() + 60
    while not operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")["purge"]["done"]:
        assert time.monotonic() < deadline, "the purge did not resume"
        time.sleep(0.1)
    assert _bulk_left(fresh_relay) == 0
    print(f"fields left when killed: {left} of 400000")


def test_rotation_makes_the_old_scope_read_only(fresh_relay: Relay, clients) -> None:
    old, new = f"ns-{rid()}", f"ns-{rid()}"
    clients.run(fresh_relay, [{"op": "put", "path": [old, "topic"], "value": "before"}])
    result = operator(fresh_relay, "POST", "/-/api/rotations", {"scope": old, "to": new, "grace": "1h"})
    assert result["record"]["replacement"] == new
    time.sleep(0.3)
    pub = identity(fresh_relay)
    r = clients.run(fresh_relay, [
        {"op": "put", "path": [old, "topic"], "value": "after"},
        {"op": "put", "path": [new, "topic"], "value": "fresh"},
        {"op": "user_once", "pub": pub, "path": ["reset", "replacement"]},
        {"op": "once", "path": ["_whisperz_system", "config", "instance"]},
    ], sea=True)
    assert "read-only" in r.results[0]["ack"]["err"], r
    assert r.results[1]["ack"].get("ok") is True, r
    assert [r.results[2]["value"], r.results[3]["value"]] == [new, new], r
    assert read(clients, fresh_relay, [old, "topic"], [new, "topic"]) == ["before", "fresh"]  # readable in the grace


def test_ttl_expires_old_fields(fresh_relay: Relay, clients) -> None:
    prefix = f"ephemeral-{rid()}"
    operator(fresh_relay, "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "2s"})
    w = clients.run(fresh_relay, [{"op": "put", "path": [prefix, "msg"], "value": "vanishing"}])
    assert w.results[0]["ack"].get("ok") is True, w
    assert read(clients, fresh_relay, [prefix, "msg"]) == ["vanishing"]
    time.sleep(2.2)
    state = w.results[0]["state"]
    r = clients.run(fresh_relay, [
        {"op": "once", "path": [prefix, "msg"]},
        {"op": "replay", "graph": {prefix: {"_": {"#": prefix, ">": {"msg": state}}, "msg": "vanishing"}}},
    ])
    assert r.results[0]["defined"] is False, r
    assert "Expired" in r.results[1]["ack"]["err"], r
    assert operator(fresh_relay, "GET", "/-/api/ttl")["ttl"] == [{"prefix": prefix, "ttl_s": 2.0}]


def test_a_snapshot_restores(fresh_relay: Relay, clients) -> None:
    soul = f"journal-{rid()}"
    clients.run(fresh_relay, [{"op": "put", "path": [soul, "entry"], "value": "worth keeping"}])
    snap = operator(fresh_relay, "POST", "/-/api/snapshots", {"label": "before"})
    clients.run(fresh_relay, [{"op": "put", "path": [soul, "entry"], "value": "vandalised"}])
    reset(fresh_relay)
    assert read(clients, fresh_relay, [soul, "entry"]) == [None]
    restored = operator(fresh_relay, "POST", f"/-/api/snapshots/{snap['name']}/restore", {"message": "restored"})
    assert restored["record"]["kind"] == "restore"
    time.sleep(0.2)
    pub = identity(fresh_relay)
    r = clients.run(fresh_relay, [
        {"op": "once", "path": [soul, "entry"]},
        {"op": "user_once", "pub": pub, "path": ["reset", "kind"]},
    ], sea=True)
    assert [s.get("value") for s in r.results] == ["worth keeping", "restore"], r


def test_a_live_client_sees_the_next_record_with_on(fresh_relay: Relay, clients) -> None:
    first = reset(fresh_relay)
    pub = identity(fresh_relay)
    listener = clients.spawn(fresh_relay, [
        {"op": "subscribe", "path": ["~" + pub, "reset", "reset_id"], "name": "r", "stream": True},
        {"op": "wait_sub", "name": "r", "until": {"equals": first["reset_id"]}, "timeout": 8000},
        {"op": "emit", "event": "listening"},
        {"op": "wait_sub", "name": "r", "until": {"count": 2}, "timeout": 15000},
    ], sea=True, deadline_ms=30000)
    listener.wait_event(lambda e: e.get("event") == "listening", 15)
    second = reset(fresh_relay, "some/room")
    result = listener.result(25)
    values = [e["value"] for e in result.events if e.get("event") == "on"]
    assert values[0] == first["reset_id"] and second["reset_id"] in values, values


def test_a_replayed_older_record_changes_nothing(fresh_relay: Relay, clients) -> None:
    from interop_support import RawPeer

    first = reset(fresh_relay, message="first")
    space = "~" + identity(fresh_relay)
    with RawPeer(fresh_relay.ws_url) as peer:
        old = peer.request({"#": rid("g"), "get": {"#": space + "/reset"}})["put"][space + "/reset"]
    second = reset(fresh_relay, message="second")
    stale = clients.run(fresh_relay, [{"op": "replay", "graph": {space + "/reset": old}}], sea=True)
    assert "system space" in stale.results[0]["ack"]["err"], stale  # genuinely signed, but old: refused
    r = clients.run(fresh_relay, [{"op": "user_once", "pub": space[1:], "path": ["reset", "reset_id"]}], sea=True)
    assert r.results[0]["value"] == second["reset_id"] != first["reset_id"], r


def test_a_local_cli_finds_the_generated_token_from_the_url_alone(fresh_relay: Relay, tmp_path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GUNRELAY_ADMIN_TOKEN", "GUNRELAY_DATA")}
    done = subprocess.run(
        [sys.executable, "-m", "gunrelay", "reset", "--url", fresh_relay.http_url, "--scope", "x", "--dry-run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True
