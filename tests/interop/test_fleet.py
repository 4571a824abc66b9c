"""One relay, several processes: two `gunrelay serve` processes on one PostgreSQL database (the
throwaway server of tests/postgres_server.py) and one data folder (so one identity and one operator
token), on two ports, with real GunJS clients in Node on each. A write through one is read through
the other; a live `on()` on one sees writes made through the other (pushed from the store's change
stream, once); concurrent conflicting writes through the two converge to HAM's winner on both."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresServer

from interop_support import GunProcess, RawPeer, Relay, now_ms, put_msg, rid, run_gun

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Relay, Relay]]:
    base = tmp_path_factory.mktemp("fleet")
    server = PostgresServer()
    server.start()
    try:
        url = server.new_database()
        args = ["--storage", "postgres", "--postgres-url", url]
        # one data folder: the first process creates the identity and token, the second finds them
        first = Relay(base / "data", base / "logs", args=args).start()
        try:
            second = Relay(base / "data", base / "logs", args=args).start()
            try:
                yield first, second
            finally:
                second.stop()
        finally:
            first.stop()
    finally:
        server.stop()


def _identity(relay: Relay) -> str:
    import json
    import urllib.request

    with urllib.request.urlopen(relay.http_url + "/-/identity", timeout=10) as response:
        return json.loads(response.read())["pub"]  # type: ignore[no-any-return]


def _subscriber(relay: Relay, soul: str, key: str, label: str, tmp_path: Path) -> GunProcess:
    sub = GunProcess(relay, [
        {"op": "wait_connected"},
        {"op": "subscribe", "path": [soul, key], "name": "s", "stream": True},
        {"op": "emit", "event": "subscribed"},
        {"op": "wait_sub", "name": "s", "until": {"equals": "never"}, "timeout": 25000},
    ], deadline_ms=30000, tmpdir=tmp_path, label=label)
    sub.wait_event(lambda e: e.get("event") == "subscribed", timeout=15)
    return sub


def _seen(sub: GunProcess) -> list[object]:
    return [e.get("value") for e in sub.events if e.get("event") == "on"]


def _put(relay: Relay, soul: str, key: str, value: str, tmp_path: Path) -> None:
    done = run_gun(relay, [{"op": "wait_connected"}, {"op": "put", "path": [soul, key], "value": value}], tmpdir=tmp_path)
    ack = done.results[-1].get("ack")
    assert ack is not None and "err" not in str(ack), done.results


def _once(relay: Relay, soul: str, key: str, tmp_path: Path) -> dict:
    done = run_gun(relay, [{"op": "wait_connected"}, {"op": "once", "path": [soul, key], "wait": 400, "timeout": 8000}], tmpdir=tmp_path)
    return done.results[-1]


def test_both_processes_are_one_relay(fleet):
    first, second = fleet
    assert first.port != second.port
    assert _identity(first) == _identity(second)


def test_a_write_through_one_process_is_read_through_the_other(fleet, tmp_path):
    first, second = fleet
    soul = rid("fleet-read-")
    _put(first, soul, "say", "written through the first", tmp_path)
    assert _once(second, soul, "say", tmp_path) == {"op": "once", "defined": True, "value": "written through the first"}
    _put(second, soul, "say", "and through the second", tmp_path)
    assert _once(first, soul, "say", tmp_path)["value"] == "and through the second"


def test_a_live_on_sees_writes_made_through_the_other_process_once(fleet, tmp_path):
    first, second = fleet
    soul = rid("fleet-on-")
    on_second = _subscriber(second, soul, "say", "sub-second", tmp_path)
    on_first = _subscriber(first, soul, "say", "sub-first", tmp_path)
    try:
        _put(first, soul, "say", "one", tmp_path)
        on_second.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "one", timeout=10)
        _put(second, soul, "say", "two", tmp_path)
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
    on_first = _subscriber(first, soul, "tie", "sub-first", tmp_path)
    on_second = _subscriber(second, soul, "tie", "sub-second", tmp_path)
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
            assert _once(relay, soul, "tie", tmp_path)["value"] == "pear"
            assert _once(relay, soul, "up", tmp_path)["value"] == "aaa"
    finally:
        on_first.kill()
        on_second.kill()
