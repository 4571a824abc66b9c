"""One relay, several processes: two `gunrelay serve` processes on one PostgreSQL database (the
session's throwaway server, tests/conftest.py) and one data folder (so one identity and one operator
token), on two ports, with real GunJS clients in Node on each. A write through one is read through
the other; a live `on()` on one sees writes made through the other (pushed from the store's change
stream, once); concurrent conflicting writes through the two converge to HAM's winner on both. A
reset through one fences a stale replay to the other as soon as the command returns; a ban through
one closes the banned address's socket on the other; a TTL rule set through one is in force on the
other. The ``fleet`` fixture (two processes on one throwaway PostgreSQL store) is in conftest.py."""

from __future__ import annotations

import threading
import time

import pytest

from interop_support import GunProcess, RawPeer, Relay, gun_once, gun_put, gun_subscriber, identity, now_ms, operator, put_msg, rid, wait_for

pytestmark = pytest.mark.interop


def _seen(sub: GunProcess) -> list[object]:
    return [e.get("value") for e in sub.events if e.get("event") == "on"]






def test_both_processes_are_one_relay(fleet):
    first, second = fleet
    assert first.port != second.port
    assert identity(first) == identity(second)


def test_a_write_through_one_process_is_read_through_the_other(fleet, tmp_path):
    first, second = fleet
    soul = rid("fleet-read-")
    gun_put(first, soul, "say", "written through the first", tmp_path)
    assert gun_once(second, soul, "say", tmp_path) == {"op": "once", "defined": True, "value": "written through the first"}
    gun_put(second, soul, "say", "and through the second", tmp_path)
    assert gun_once(first, soul, "say", tmp_path)["value"] == "and through the second"


def test_a_live_on_sees_writes_made_through_the_other_process_once(fleet, tmp_path):
    first, second = fleet
    soul = rid("fleet-on-")
    on_second = gun_subscriber(second, soul, "say", "sub-second", tmp_path)
    on_first = gun_subscriber(first, soul, "say", "sub-first", tmp_path)
    try:
        gun_put(first, soul, "say", "one", tmp_path)
        on_second.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "one", timeout=10)
        gun_put(second, soul, "say", "two", tmp_path)
        on_first.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "two", timeout=10)
        on_second.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "two", timeout=10)
        time.sleep(2.5)  # more than two polls of the stream: a write pushed twice would show by now
        assert _seen(on_second) == ["one", "two"]
        assert _seen(on_first)[-1] == "two" and _seen(on_first).count("two") == 1
    finally:
        on_first.kill()
        on_second.kill()


def test_concurrent_conflicting_writes_converge_to_the_ham_winner_on_both(fleet, tmp_path):
    first, second = fleet
    soul = rid("fleet-ham-")
    on_first = gun_subscriber(first, soul, "tie", "sub-first", tmp_path)
    on_second = gun_subscriber(second, soul, "tie", "sub-second", tmp_path)
    state = now_ms() - 1000
    # the same state through both processes at once: the tie goes to the greater JSON text ("pear");
    # and a higher state through the second beats a greater text through the first
    writes = [
        (first, put_msg(soul, {"tie": ("apple", state), "up": ("zzz", state)})),
        (second, put_msg(soul, {"tie": ("pear", state), "up": ("aaa", state + 1)})),
    ]
    acks: list[object] = []

    def send(relay: Relay, message: dict) -> None:
        with RawPeer(relay.ws_url) as peer:
            acks.append(peer.request(message, timeout=10))

    threads = [threading.Thread(target=send, args=pair) for pair in writes]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert len(acks) == 2 and all(ack is not None and "err" not in ack for ack in acks), acks
        for sub in (on_first, on_second):
            sub.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "pear", timeout=10)
        time.sleep(2.5)  # a loser pushed late would show by now
        for sub in (on_first, on_second):
            assert _seen(sub)[-1] == "pear", _seen(sub)
        for relay in (first, second):
            assert gun_once(relay, soul, "tie", tmp_path)["value"] == "pear"
            assert gun_once(relay, soul, "up", tmp_path)["value"] == "aaa"
    finally:
        on_first.kill()
        on_second.kill()


def test_a_reset_through_one_process_fences_a_stale_replay_to_the_other_at_once(fleet):
    first, second = fleet
    soul = rid("fleet-reset-")
    old_state = now_ms() - 5000
    with RawPeer(second.ws_url) as peer:
        stored = peer.request(put_msg(soul, {"k": ("before the reset", old_state)}), timeout=10)
        assert stored is not None and "err" not in stored, stored
        issued = operator(first, "POST", "/-/api/resets", {"scope": soul, "reason": "fleet test"})
        assert issued["fleet_not_confirmed"] == [], issued  # both processes confirmed before it returned
        # no wait at all: the replay of the old copy reaches the other process right after the command
        replay = peer.request(put_msg(soul, {"k": ("before the reset", old_state)}), timeout=10)
        assert replay is not None and "err" in replay, replay
        fresh = peer.request(put_msg(soul, {"k": ("after the reset", now_ms() + 1)}), timeout=10)
        assert fresh is not None and "err" not in fresh, fresh
    shown = operator(second, "GET", f"/-/api/resets/{issued['record']['reset_id']}")
    assert shown["record"]["scope"] == soul  # the other process knows the reset (history, status)


def test_a_ban_through_one_process_closes_the_banned_socket_on_the_other(fleet):
    import websockets
    from websockets.sync.client import connect

    first, second = fleet
    banned_address = "127.0.0.7"  # a loopback address of its own: other tests' clients stay welcome
    with connect(second.ws_url, source_address=(banned_address, 0), open_timeout=5) as banned, \
            connect(second.ws_url, open_timeout=5) as bystander:
        banned.recv(timeout=5)  # the greeting: it is connected
        bystander.recv(timeout=5)
        try:
            made = operator(first, "POST", "/-/api/bans", {"address": banned_address, "duration": "1m", "reason": "fleet test"})
            assert [b["address"] for b in made["banned"]] == [banned_address]
            closed_at = None
            started = time.monotonic()
            for _ in range(100):  # bounded: the command returned once every process applied the ban
                try:
                    banned.recv(timeout=0.05)
                except TimeoutError:
                    pass
                except websockets.ConnectionClosed:
                    closed_at = time.monotonic() - started
                    break
                if time.monotonic() - started > 3:
                    break
            assert closed_at is not None, "the banned socket on the other process stayed open"
            bystander.send('{"#":"still-here","dam":"?"}')
            assert bystander.recv(timeout=5)  # only the banned address went
            with pytest.raises(Exception):  # and it cannot come back through either process
                with connect(second.ws_url, source_address=(banned_address, 0), open_timeout=5):
                    pass
        finally:
            operator(first, "DELETE", f"/-/api/bans/{banned_address}")
    with connect(second.ws_url, source_address=(banned_address, 0), open_timeout=5) as back:  # the unban is in force there too
        assert back.recv(timeout=5)


def test_a_ttl_rule_set_through_one_process_is_in_force_on_the_other(fleet):
    first, second = fleet
    prefix = rid("fleet-ttl-")
    assert operator(first, "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "1h"})["fleet_not_confirmed"] == []
    try:
        with RawPeer(second.ws_url) as peer:
            # no wait: the TTL command returned once every process had the rule in force
            reply = peer.request(put_msg(f"{prefix}/n", {"k": ("two hours old", now_ms() - 2 * 3600_000)}), timeout=5)
            assert reply is not None and "Expired" in reply.get("err", ""), reply
            fresh = peer.request(put_msg(f"{prefix}/n", {"k": ("new", now_ms())}), timeout=5)
            assert fresh is not None and "err" not in fresh, fresh
    finally:
        operator(first, "DELETE", f"/-/api/ttl?prefix={prefix}")


def test_the_stats_of_either_process_show_every_process_and_the_fleet_totals(fleet, tmp_path):
    first, second = fleet
    with RawPeer(second.ws_url) as peer:  # a connection on the second only
        peer.request(put_msg(rid("fleet-stats-"), {"k": ("v", now_ms())}), timeout=10)

        def both_seen() -> dict | None:
            report = operator(first, "GET", "/-/api/stats")["fleet"]
            ports = {p["port"]: p for p in report["processes"]}
            return report if set(ports) == {first.port, second.port} and ports[second.port]["connections"] >= 1 else None

        report = wait_for("both processes in the fleet view, the second with its connection", both_seen, timeout=5)
    assert [p["this"] for p in report["processes"] if p["port"] == first.port] == [True]
    assert len({p["pid"] for p in report["processes"]}) == 2
    assert report["totals"]["processes"] == 2
    assert report["totals"]["connections"] == sum(p["connections"] for p in report["processes"])
    assert report["totals"]["messages_in"] == sum(p["messages_in"] for p in report["processes"]) > 0
    assert len({p["control_version"] for p in report["processes"]}) == 1  # in step
    seen_from_second = operator(second, "GET", "/-/api/stats")["fleet"]
    assert {p["port"] for p in seen_from_second["processes"]} == {first.port, second.port}


def test_metrics_stay_per_process(fleet):
    import urllib.request

    first, second = fleet

    def connections(relay: Relay) -> float:
        with urllib.request.urlopen(relay.http_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        [line] = [line for line in text.splitlines() if line.startswith("gunrelay_connections ")]
        return float(line.split()[1])

    with RawPeer(second.ws_url) as peer:
        peer.request(put_msg(rid("fleet-metrics-"), {"k": ("v", now_ms())}), timeout=10)
        # the second counts its connection; the first (whose earlier test clients are gone) counts none of it
        wait_for("per-process connection gauges", lambda: connections(second) >= 1 and connections(first) == 0, timeout=5)


# -- `gunrelay serve --workers N` -------------------------------------------------------------------


def test_workers_on_postgresql_serve_gunjs_clients_and_all_show_in_the_fleet_view(tmp_path, postgres_server):
    import os

    relay = Relay(tmp_path / "data", tmp_path / "logs",
                  args=["--workers", "2", "--storage", "postgres", "--postgres-url", postgres_server.new_database()])
    try:
        relay.start()  # returns once one worker answers /health on the port

        def both_workers() -> list | None:
            processes = operator(relay, "GET", "/-/api/stats")["fleet"]["processes"]
            return processes if len(processes) == 2 and {p["port"] for p in processes} == {relay.port} else None

        workers = wait_for("both workers in the fleet view", both_workers, timeout=20)
        pids = {p["pid"] for p in workers}
        assert len(pids) == 2 and relay.proc is not None and relay.proc.pid not in pids  # two children, not the parent
        soul = rid("fleet-workers-")
        for n in range(4):  # fresh clients: the kernel hands each connection to either worker
            gun_put(relay, soul, f"k{n}", f"v{n}", tmp_path)
        for n in range(4):
            assert gun_once(relay, soul, f"k{n}", tmp_path)["value"] == f"v{n}"
        assert relay.stop() == 0
        for pid in pids:  # the parent stopped its children before it exited
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        relay.stop()


def test_workers_with_sqlite_or_memory_are_refused_saying_why(tmp_path):
    import subprocess
    import sys

    for storage in ("sqlite", "memory"):
        done = subprocess.run(
            [sys.executable, "-m", "gunrelay", "serve", "--port", "0", "--data", str(tmp_path / storage), "--storage", storage, "--workers", "2"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode != 0
        assert "--workers 2 needs --storage postgres" in done.stderr and "use --storage postgres --postgres-url" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


# -- three processes, and one of them killed -----------------------------------------------------------


def test_three_processes_one_killed_the_others_go_on_and_it_comes_back_in_step(tmp_path, postgres_server):
    args = ["--storage", "postgres", "--postgres-url", postgres_server.new_database()]
    relays = [Relay(tmp_path / "data", tmp_path / "logs", args=args) for _ in range(3)]
    subs: list[GunProcess] = []
    try:
        for relay in relays:
            relay.start()
        a, b, c = relays
        soul = rid("fleet-three-")
        subs = [gun_subscriber(b, soul, "say", "sub-b", tmp_path), gun_subscriber(c, soul, "say", "sub-c", tmp_path)]
        gun_put(a, soul, "say", "to all three", tmp_path)
        for sub in subs:
            sub.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "to all three", timeout=10)

        assert c.proc is not None
        killed_pid = c.proc.pid
        c.proc.kill()  # SIGKILL, by its PID: no clean goodbye, its heartbeat row stays until it is stale
        c.proc.wait(timeout=10)
        # a reset right away: the dead process still looks alive for a few seconds and cannot confirm;
        # the command waits for it (bounded), then names it, unless its heartbeat went stale meanwhile
        # (then it is no longer a live process of the fleet); the live ones have the reset in force
        issued = operator(a, "POST", "/-/api/resets", {"scope": f"{soul}-gone", "reason": "fleet test"})
        assert set(issued["fleet_not_confirmed"]) <= {f"pid {killed_pid} on {_host(a)}:{c.port}"}, issued
        with RawPeer(b.ws_url) as peer:
            stale = peer.request(put_msg(f"{soul}-gone", {"k": ("stale", now_ms() - 60_000)}), timeout=10)
            assert stale is not None and "err" in stale, stale
        gun_put(a, soul, "say", "after the kill", tmp_path)
        subs[0].wait_event(lambda e: e.get("event") == "on" and e.get("value") == "after the kill", timeout=10)
        # once its heartbeat is stale it is out of the fleet view, and out of what a command waits for
        wait_for("the killed process left the fleet view", lambda: {p["pid"] for p in operator(a, "GET", "/-/api/stats")["fleet"]["processes"]}
                 == {_pid_of(a), _pid_of(b)}, timeout=10)
        again = operator(a, "POST", "/-/api/resets", {"scope": f"{soul}-later", "reason": "fleet test"})
        assert again["fleet_not_confirmed"] == []

        c.start()  # it comes back: the resets issued while it was down are in its fence from the start
        with RawPeer(c.ws_url) as peer:
            stale = peer.request(put_msg(f"{soul}-later", {"k": ("stale", now_ms() - 60_000)}), timeout=10)
            assert stale is not None and "err" in stale, stale
        assert gun_once(c, soul, "say", tmp_path)["value"] == "after the kill"
    finally:
        for sub in subs:
            sub.kill()
        for relay in relays:
            relay.stop()


def _host(relay: Relay) -> str:
    return next(p["host"] for p in operator(relay, "GET", "/-/api/stats")["fleet"]["processes"] if p["this"])


def _pid_of(relay: Relay) -> int:
    return next(p["pid"] for p in operator(relay, "GET", "/-/api/stats")["fleet"]["processes"] if p["this"])
