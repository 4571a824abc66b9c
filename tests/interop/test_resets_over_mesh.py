"""A reset holds across the mesh, with real processes: gunrelays A <- B <- C in a line (B and C
trust A), a stock Node GUN relay N that C dials, real GunJS clients. A reset issued on A empties
the scope on A, B and C; stale replays to any of them, raw or from a GunJS client holding the old
data on N, are refused; B down during the reset fences as soon as its link is back; A lists, per
relay, the fence installed and the purge done; an untrusted relay's reset and a forged record
change nothing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop_support import (
    GunProcess,
    RawPeer,
    Relay,
    get_msg,
    gun_once,
    gun_put,
    identity,
    operator,
    put_msg,
    reset,
    rid,
    wait_for,
)
from test_mesh import _links_up, _relay


def _has_reset(relay: Relay, reset_id: str, purged: bool = True) -> dict | None:
    try:
        status = operator(relay, "GET", f"/-/api/resets/{reset_id}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not (yet) known there
            return None
        raise
    return status if (status["purge"]["done"] or not purged) else None


def _served(relay: Relay, soul: str, key: str) -> bool:
    with RawPeer(relay.ws_url) as peer:
        reply = peer.request(get_msg(soul, key), timeout=5)
    assert reply is not None, f"no answer from {relay.port}"
    return "put" in reply and soul in reply["put"] and key in reply["put"][soul]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("mesh-resets")
    node = _relay(base, "n", target="node").start()
    a = _relay(base, "a").start()
    pub_a = identity(a)
    b = _relay(base, "b", "--peer", a.ws_url, "--trust-relay", pub_a).start()
    c = _relay(base, "c", "--peer", b.ws_url, "--peer", node.ws_url, "--trust-relay", pub_a).start()
    try:
        _links_up(b, 1)
        _links_up(c, 2)
        yield {"a": a, "b": b, "c": c, "n": node, "pub_a": pub_a, "base": base}
    finally:
        for relay in (c, b, a, node):
            relay.stop()


def _fill(mesh: dict, scope: str, tmp_path: Path) -> str:
    soul = f"{scope}/msgs"
    gun_put(mesh["a"], soul, "m1", "old message", tmp_path)
    for name in ("b", "c"):
        wait_for(f"{name} holds the old message", lambda name=name: _served(mesh[name], soul, "m1"))
    assert wait_for("N holds it", lambda: gun_once(mesh["n"], soul, "m1", tmp_path).get("value") == "old message")
    return soul


def test_a_reset_on_a_empties_the_scope_on_every_gunrelay_and_a_lists_who_obeyed(mesh, tmp_path):
    scope = rid("mesh-reset-")
    soul = _fill(mesh, scope, tmp_path)
    record = reset(mesh["a"], scope=scope, reason="spam")
    for name in ("b", "c"):
        status = wait_for(f"{name} obeyed the reset", lambda name=name: _has_reset(mesh[name], record["reset_id"]), timeout=10)
        assert status["record"]["W"] == record["W"] and status["issuer"] == mesh["pub_a"]
        assert status["purge"]["fields_removed"] >= 1
        assert not _served(mesh[name], soul, "m1")
    assert not _served(mesh["a"], soul, "m1")
    pubs = {name: identity(mesh[name]) for name in ("b", "c")}

    def all_acked() -> list | None:
        relays = operator(mesh["a"], "GET", f"/-/api/resets/{record['reset_id']}")["relays"]
        done = {r["pub"] for r in relays if r["fence_installed"] and r["purge_done"]}
        return relays if done == set(pubs.values()) else None

    wait_for("A lists B and C with their purge done", all_acked, timeout=10)
    assert operator(mesh["a"], "GET", f"/-/api/resets/{record['reset_id']}")["relays_silent"] == []
    stranger = _relay(mesh["base"], "silent" + scope[-6:], "--peer", mesh["a"].ws_url).start()  # linked, trusts nobody
    try:
        _links_up(stranger, 1)
        silent = wait_for(  # once A has read its greeting
            "A lists the stranger as silent", lambda: operator(mesh["a"], "GET", f"/-/api/resets/{record['reset_id']}")["relays_silent"],
        )
        assert [relay["pub"] for relay in silent] == [identity(stranger)]
    finally:
        stranger.stop()


def test_stale_replays_to_any_gunrelay_are_refused_and_a_stale_gunjs_copy_on_n_goes_no_further(mesh, tmp_path):
    scope = rid("mesh-stale-")
    soul = _fill(mesh, scope, tmp_path)
    old_state = None
    with RawPeer(mesh["a"].ws_url) as peer:
        reply = peer.request(get_msg(soul, "m1"), timeout=5)
        old_state = reply["put"][soul]["_"][">"]["m1"]
    # a GunJS client of N that holds the old data in memory, to replay it after the reset
    holder = GunProcess(mesh["n"], [
        {"op": "wait_connected"},
        {"op": "once", "path": [soul, "m1"], "wait": 300},
        {"op": "emit", "event": "loaded"},
        {"op": "wait_line", "timeout": 30000},
        {"op": "replay", "soul": soul},
        {"op": "emit", "event": "replayed"},
        {"op": "sleep", "ms": 1500},
    ], deadline_ms=45000, tmpdir=tmp_path, label="holder")
    try:
        holder.wait_event(lambda e: e.get("event") == "loaded", timeout=20)
        record = reset(mesh["a"], scope=scope)
        for name in ("b", "c"):
            wait_for(f"{name} obeyed", lambda name=name: _has_reset(mesh[name], record["reset_id"]), timeout=10)
        fenced_before = {name: operator(mesh[name], "GET", "/-/api/stats")["totals"]["fenced_writes"] for name in ("a", "b", "c")}
        holder.send({"go": True})
        holder.wait_event(lambda e: e.get("event") == "replayed", timeout=20)
        holder.result()
    finally:
        holder.kill()
    time.sleep(1.0)
    # the Node relay took the replay back (it cannot know better); no gunrelay took it
    for name in ("a", "b", "c"):
        assert not _served(mesh[name], soul, "m1"), name
    assert operator(mesh["c"], "GET", "/-/api/stats")["totals"]["fenced_writes"] > fenced_before["c"]
    # raw stale replays straight to each gunrelay: refused with an error, nothing stored
    for name in ("a", "b", "c"):
        with RawPeer(mesh[name].ws_url) as peer:
            reply = peer.request(put_msg(soul, {"m1": ("old message", old_state)}), timeout=5)
        assert reply is not None and "err" in reply, (name, reply)
        assert not _served(mesh[name], soul, "m1")


def test_a_relay_down_during_the_reset_fences_when_its_link_is_back(mesh, tmp_path):
    scope = rid("mesh-down-")
    soul = _fill(mesh, scope, tmp_path)
    b = mesh["b"]
    b.stop()
    try:
        record = reset(mesh["a"], scope=scope)
    finally:
        b.start()  # returns once /health says 200: B is in step with A before it serves anyone
    assert _has_reset(b, record["reset_id"], purged=False) is not None  # fenced when it first serves
    status = wait_for("B's purge done", lambda: _has_reset(b, record["reset_id"]), timeout=15)  # the purge follows
    assert status["purge"]["fields_removed"] >= 1
    assert "in step with the mesh: serving clients" in b.log_text(limit=10**6)
    assert not _served(b, soul, "m1")
    wait_for("C obeyed through B", lambda: _has_reset(mesh["c"], record["reset_id"]), timeout=15)
    for name in ("a", "c"):  # B's stale copy reached neither
        assert not _served(mesh[name], soul, "m1")


def test_an_untrusted_relays_reset_and_a_forged_record_change_nothing(mesh, tmp_path):
    scope = rid("mesh-untrusted-")
    soul = _fill(mesh, scope, tmp_path)
    stranger = _relay(mesh["base"], "d" + scope[-6:], "--peer", mesh["c"].ws_url).start()
    try:
        _links_up(stranger, 1)
        record = reset(stranger, scope=scope)
        time.sleep(1.5)  # its record travelled to C, B and A as data
        for name in ("a", "b", "c"):
            assert _has_reset(mesh[name], record["reset_id"], purged=False) is None, name
            assert _served(mesh[name], soul, "m1"), name
    finally:
        stranger.stop()
    # a record filed in A's space but not signed by A: SEA's admission refuses it at C
    forged_soul = f"~{mesh['pub_a']}/resets/1-forged"
    values = {"reset_id": "1-forged", "scope": scope, "epoch": 99, "W": time.time() * 1000}
    forged = {key: ('{":":' + json.dumps(value) + ',"~":"AAAA"}', time.time() * 1000) for key, value in values.items()}
    with RawPeer(mesh["c"].ws_url) as peer:
        reply = peer.request(put_msg(forged_soul, forged), timeout=5)
    assert reply is not None and "err" in reply
    time.sleep(0.5)
    for name in ("a", "b", "c"):
        assert _has_reset(mesh[name], "1-forged", purged=False) is None
        assert _served(mesh[name], soul, "m1")


def test_clients_wait_while_the_relay_gets_in_step_and_the_wait_is_bounded(mesh, tmp_path):
    import socket
    import threading

    import websockets.sync.client

    silent = socket.socket()  # a peer that takes the connection and never answers the upgrade
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    late = _relay(tmp_path, "late", "--peer", f"ws://127.0.0.1:{port}/gun", "--trust-relay", mesh["pub_a"], "--mesh-sync-wait-s", "4")
    starting = threading.Thread(target=late.start)
    starting.start()
    try:
        wait_for("it listens", lambda: f"listening on http://127.0.0.1:{late.port}" in late.log_text(limit=10**6), timeout=20)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            websockets.sync.client.connect(late.ws_url, open_timeout=5).close()
        assert refused.value.response.status_code == 403
        try:
            urllib.request.urlopen(late.http_url + "/health", timeout=5)
            raise AssertionError("healthy while syncing")
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            assert exc.code == 503 and body["status"] == "syncing" and "not up yet" in body["reason"]
        starting.join(timeout=30)
        assert not starting.is_alive() and late.alive()
        assert "serving clients without being in step with every peer" in late.log_text(limit=10**6)
        with websockets.sync.client.connect(late.ws_url, open_timeout=5):
            pass  # served now
    finally:
        starting.join(timeout=30)
        late.stop()
        silent.close()


def test_ttl_rules_set_on_a_hold_on_b_and_c_and_are_lifted_with_it(mesh, tmp_path):
    prefix = rid("mesh-ttl-")

    def rules(name: str) -> dict:
        return {r["prefix"]: r["ttl_s"] for r in operator(mesh[name], "GET", "/-/api/ttl")["ttl"]}

    operator(mesh["a"], "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "2h"})
    for name in ("b", "c"):
        wait_for(f"{name} has A's TTL rule", lambda name=name: rules(name).get(prefix) == 7200.0, timeout=10)
    operator(mesh["a"], "DELETE", f"/-/api/ttl?prefix={prefix}")
    for name in ("b", "c"):
        wait_for(f"{name} lifted it", lambda name=name: prefix not in rules(name), timeout=10)
