"""A fleet in a mesh: two `gunrelay serve` processes on one PostgreSQL store, both started with the
same `--peer`s (a gunrelay and a stock GunJS relay in Node), and a third gunrelay that dials in to
one of the two. Every process of the fleet dials the `--peer`s itself (a GunJS relay routes a write
to the peers that asked for its soul, so each process must ask for its own subscribers), and a
relay that dialled in to one process hears from that process what the others stored. So writes
made through either process reach subscribers on every relay at once (well inside the minute
between catch-ups), a peer's writes reach subscribers on both processes, and a killed process
leaves the others linked."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator

import pytest

from interop_support import GunProcess, RawPeer, Relay, gun_put, gun_subscriber, identity, now_ms, operator, put_msg, reset, rid, wait_for

pytestmark = pytest.mark.interop


def _states(relay: Relay) -> list[str]:
    return [link["state"] for link in operator(relay, "GET", "/-/api/mesh")["dialled"]]


def _saw(sub: GunProcess, value: str, timeout: float = 10) -> None:
    # well inside the minute between catch-ups: what is seen came over a live link
    sub.wait_event(lambda e: e.get("event") == "on" and e.get("value") == value, timeout=timeout)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, postgres_server) -> Iterator[dict[str, Relay]]:
    base = tmp_path_factory.mktemp("fleet-mesh")
    started: list[Relay] = []
    try:
        peer = Relay(base / "peer", base / "logs").start()
        started.append(peer)
        node = Relay(base / "node", base / "logs", target="node").start()
        started.append(node)
        args = ["--storage", "postgres", "--postgres-url", postgres_server.new_database(), "--peer", peer.ws_url, "--peer", node.ws_url]
        first = Relay(base / "data", base / "logs", args=args).start()
        started.append(first)
        second = Relay(base / "data", base / "logs", args=args).start()
        started.append(second)
        visitor = Relay(base / "visitor", base / "logs", args=["--peer", first.ws_url]).start()  # dials in to one process
        started.append(visitor)
        relays = {"peer": peer, "node": node, "first": first, "second": second, "visitor": visitor}
        for name in ("first", "second"):
            wait_for(f"{name} dials both peers", lambda: _states(relays[name]) == ["up", "up"], timeout=20)
        wait_for("the visitor is linked", lambda: _states(visitor) == ["up"], timeout=20)
        yield relays
    finally:
        for relay in reversed(started):
            relay.stop()


def test_each_process_of_a_fleet_links_to_the_peers(mesh):
    inbound = operator(mesh["peer"], "GET", "/-/api/mesh")["inbound"]
    assert len(inbound) == 2, inbound  # one link per process: each has its own pid
    assert len({link["pid"] for link in inbound}) == 2


def test_writes_through_either_process_reach_every_relay_at_once(mesh, tmp_path):
    soul = rid("fleet-mesh-")
    subs = {
        name: gun_subscriber(mesh[name], soul, "say", f"sub-{name}", tmp_path)
        for name in ("peer", "node", "visitor", "first", "second")
    }
    try:
        time.sleep(0.5)
        gun_put(mesh["second"], soul, "say", "through the second process", tmp_path)
        for name in ("peer", "node", "visitor", "first"):  # the visitor dialled in to the first: told from the store
            _saw(subs[name], "through the second process")
        gun_put(mesh["first"], soul, "say", "through the first process", tmp_path)
        for name in ("peer", "node", "visitor", "second"):
            _saw(subs[name], "through the first process")
    finally:
        for sub in subs.values():
            sub.kill()


def test_writes_on_a_peer_or_the_visitor_reach_subscribers_on_both_processes(mesh, tmp_path):
    soul = rid("fleet-mesh-back-")
    subs = {name: gun_subscriber(mesh[name], soul, "say", f"sub-back-{name}", tmp_path) for name in ("first", "second")}
    try:
        time.sleep(0.5)
        for source in ("node", "peer", "visitor"):
            gun_put(mesh[source], soul, "say", f"from the {source}", tmp_path)
            for sub in subs.values():
                _saw(sub, f"from the {source}")
    finally:
        for sub in subs.values():
            sub.kill()


def test_a_relay_that_dialled_in_to_one_process_hears_what_the_others_stored(tmp_path, postgres_server):
    # no --peer here: the only way from the second process to the visitor is through the first
    started: list[Relay] = []
    sub = None
    try:
        args = ["--storage", "postgres", "--postgres-url", postgres_server.new_database()]
        first = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
        started.append(first)
        second = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
        started.append(second)
        visitor = Relay(tmp_path / "visitor", tmp_path / "logs", args=["--peer", first.ws_url]).start()
        started.append(visitor)
        wait_for("the visitor is linked", lambda: _states(visitor) == ["up"], timeout=20)
        soul = rid("fleet-visitor-")
        sub = gun_subscriber(visitor, soul, "say", "sub-visitor-only", tmp_path)
        time.sleep(0.5)
        gun_put(second, soul, "say", "stored by the process the visitor is not linked to", tmp_path)
        _saw(sub, "stored by the process the visitor is not linked to")
    finally:
        if sub is not None:
            sub.kill()
        for relay in reversed(started):
            relay.stop()


def test_a_reset_from_a_trusted_relay_fences_every_process_of_the_fleet_and_is_acknowledged_once(tmp_path, postgres_server):
    started: list[Relay] = []
    try:
        issuer = Relay(tmp_path / "issuer", tmp_path / "logs").start()
        started.append(issuer)
        args = ["--storage", "postgres", "--postgres-url", postgres_server.new_database(), "--peer", issuer.ws_url,
                "--trust-relay", identity(issuer)]
        first = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
        started.append(first)
        second = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
        started.append(second)
        for relay in (first, second):
            wait_for("linked to the issuer", lambda relay=relay: _states(relay) == ["up"], timeout=20)
        scope = rid("fleet-mesh-reset-")
        gun_put(issuer, f"{scope}/msgs", "m1", "old message", tmp_path)
        old_state = now_ms() - 1000
        record = reset(issuer, scope=scope, reason="fleet in a mesh")

        def obeyed(relay: Relay) -> dict | None:
            try:
                status = operator(relay, "GET", f"/-/api/resets/{record['reset_id']}")
            except urllib.error.HTTPError:
                return None
            return status if status["purge"]["done"] else None

        for relay in (first, second):  # one process obeyed, the other has it in force from the store
            wait_for("the fleet obeyed the reset", lambda relay=relay: obeyed(relay), timeout=15)
            with RawPeer(relay.ws_url) as peer:
                stale = peer.request(put_msg(f"{scope}/msgs", {"m1": ("stale replay", old_state)}), timeout=10)
            assert stale is not None and "err" in stale, stale

        fleet_pub = identity(first)

        def acknowledged() -> list | None:
            relays = operator(issuer, "GET", f"/-/api/resets/{record['reset_id']}")["relays"]
            return relays if any(r["pub"] == fleet_pub and r["fence_installed"] and r["purge_done"] for r in relays) else None

        relays = wait_for("the issuer lists the fleet's acknowledgement", acknowledged, timeout=15)
        assert [r["pub"] for r in relays] == [fleet_pub]  # one relay, however many processes
        for relay in (first, second):
            assert "Traceback" not in relay.log_text(10**6), relay.log_text()
    finally:
        for relay in reversed(started):
            relay.stop()
