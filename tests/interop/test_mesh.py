"""Relays in a mesh, with real processes: three gunrelays in a line A <- B <- C (B dials A, C dials
B) and a stock Node GUN relay N (npm gun 0.2020.1241, AXE on, RAD storage) that C dials; real GunJS
clients in Node on each. Writes reach subscribers on every relay, a get is answered by whichever
relay holds the soul, nothing is delivered twice, a stale copy on N does not get past C's fence,
two relays that dial each other keep one link, and a relay that dials itself notices."""

from __future__ import annotations

import time
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
    gun_subscriber,
    now_ms,
    operator,
    put_msg,
    reset,
    rid,
    wait_for,
)

def _relay(base: Path, name: str, *args: str, target: str = "ours", port: int | None = None, env: dict | None = None) -> Relay:
    return Relay(base / name / "data", base / name / "logs", target=target, port=port, args=list(args), env=env)


def _links_up(relay: Relay, count: int) -> dict:
    def up() -> dict | None:
        report = operator(relay, "GET", "/-/api/mesh")
        return report if sum(1 for link in report["dialled"] if link["state"] == "up") >= count else None

    return wait_for(f"{count} link(s) up from {relay.port}", up, timeout=20)


def _mesh_when(relay: Relay, what: str, pred, timeout: float = 20) -> dict:
    """The relay's /-/api/mesh report, once ``pred`` holds for it (bounded)."""
    def check() -> dict | None:
        report = operator(relay, "GET", "/-/api/mesh")
        return report if pred(report) else None

    return wait_for(what, check, timeout=timeout)


def _inbound(relay: Relay, count: int) -> dict:
    return _mesh_when(relay, f"{count} relay(s) linked in to {relay.port}", lambda r: len(r["inbound"]) >= count)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Relay]]:
    base = tmp_path_factory.mktemp("mesh-line")
    node = _relay(base, "n", target="node").start()
    a = _relay(base, "a").start()
    b = _relay(base, "b", "--peer", a.ws_url).start()
    c = _relay(base, "c", "--peer", b.ws_url, "--peer", node.ws_url).start()
    relays = {"a": a, "b": b, "c": c, "n": node}
    try:
        _links_up(b, 1)
        _links_up(c, 2)
        _inbound(a, 1)
        _inbound(b, 1)
        yield relays
    finally:
        for relay in (c, b, a, node):
            relay.stop()




def _saw(sub: GunProcess, value: str, timeout: float = 15) -> None:
    sub.wait_event(lambda e: e.get("event") == "on" and e.get("value") == value, timeout=timeout)






def test_a_write_on_the_node_relay_reaches_subscribers_on_every_gunrelay(line, tmp_path):
    soul = rid("mesh-n2a-")
    on_a = gun_subscriber(line["a"], soul, "say", "sub-a", tmp_path)
    on_c = gun_subscriber(line["c"], soul, "say", "sub-c", tmp_path)
    try:
        time.sleep(0.5)  # the subscriptions travel A -> B -> C -> N
        gun_put(line["n"], soul, "say", "from the node relay", tmp_path)
        _saw(on_c, "from the node relay")
        _saw(on_a, "from the node relay")
    finally:
        on_a.kill()
        on_c.kill()


def test_a_write_on_one_end_reaches_a_subscriber_on_the_other_and_the_node_relay_stores_it(line, tmp_path):
    soul = rid("mesh-a2c-")
    on_c = gun_subscriber(line["c"], soul, "say", "sub-c", tmp_path)
    try:
        gun_put(line["a"], soul, "say", "from A", tmp_path)
        _saw(on_c, "from A")
    finally:
        on_c.kill()
    # N got it from C (C sends every write it accepts to the relays it links to): a fresh client of N reads it
    found = wait_for("N holds A's write", lambda: gun_once(line["n"], soul, "say", tmp_path).get("value") == "from A")
    assert found is True


def test_a_get_on_a_relay_without_the_soul_is_answered_from_the_one_that_holds_it(line, tmp_path):
    soul = rid("mesh-get-")
    # written on N only, before anyone asked for it: no gunrelay has it
    gun_put(line["n"], soul, "title", "held by N", tmp_path)
    answer = gun_once(line["a"], soul, "title", tmp_path)
    assert answer.get("defined") and answer.get("value") == "held by N", answer
    # ... and A stored what came back (a raw get, answered from A's own store now)
    with RawPeer(line["a"].ws_url) as peer:
        reply = peer.request(get_msg(soul, "title"), timeout=5)
    assert reply is not None and reply["put"][soul]["title"] == "held by N"


def test_a_soul_nobody_holds_is_not_found_after_the_mesh_had_its_say(line, tmp_path):
    soul = rid("mesh-none-")
    answer = gun_once(line["a"], soul, "title", tmp_path)
    assert answer.get("defined") is False, answer


def test_each_write_reaches_a_subscriber_once_however_many_paths_lead_there(line, tmp_path):
    soul = rid("mesh-once-")
    with RawPeer(line["c"].ws_url) as watcher:
        watcher.send(get_msg(soul))
        watcher.collect(0.5)
        with RawPeer(line["a"].ws_url) as writer:
            state = now_ms()
            for n in range(5):
                assert writer.request(put_msg(soul, {f"k{n}": (f"v{n}", state + n)}), timeout=5) is not None
        watcher.collect(2.0)
    pushes = [m for m in watcher.inbox if "put" in m and "@" not in m and soul in m["put"]]
    keys = sorted(k for m in pushes for k in m["put"][soul] if k != "_")
    assert keys == [f"k{n}" for n in range(5)], pushes


def test_relays_settle_after_a_write_no_message_goes_round_for_ever(line, tmp_path):
    soul = rid("mesh-quiet-")
    gun_put(line["b"], soul, "k", "v", tmp_path)
    time.sleep(1.0)

    def puts() -> list[int]:
        return [operator(r, "GET", "/-/api/stats")["totals"]["puts"] for r in (line["a"], line["b"], line["c"])]

    first = puts()
    time.sleep(2.0)
    second = puts()
    # a write going round would be a stream of puts; keepalives are none, and the catch-up asks each
    # relay link once a minute (its answer, a page, counts one put at most): A links to B, B to A and C,
    # C to B (and to the Node relay, which keeps no stream)
    grown = [y - x for x, y in zip(first, second)]
    assert all(0 <= more <= most for more, most in zip(grown, [1, 2, 1])), (first, second)


def test_stale_data_a_node_relay_still_holds_does_not_get_past_the_fence(line, tmp_path):
    scope = rid("old-room-")
    soul = scope + "/msgs"
    gun_put(line["n"], soul, "msg", "before the reset", tmp_path)
    assert wait_for("C holds it", lambda: gun_once(line["c"], soul, "msg", tmp_path).get("value") == "before the reset")
    record = reset(line["c"], scope=scope)
    assert operator(line["c"], "GET", f"/-/api/resets/{record['reset_id']}")["purge"]["fields_removed"] >= 1
    # C's store was purged; N (and, until resets travel the mesh, A and B) still hold the stale
    # field and answer C's forwarded get with it: C's fence refuses it, so C's client reads
    # nothing, and C does not store it again
    answer = gun_once(line["c"], soul, "msg", tmp_path)
    assert answer.get("defined") is False, answer
    with RawPeer(line["c"].ws_url) as peer:
        reply = peer.request(get_msg(soul, "msg"), timeout=5)
    assert reply is not None and "put" not in reply, reply
    assert operator(line["c"], "GET", "/-/api/stats")["totals"]["fenced_writes"] >= 1


def test_two_relays_that_dial_each_other_keep_one_link_and_still_share_writes(tmp_path):
    from interop_support import free_port

    port_a, port_b = free_port(), free_port()
    a = _relay(tmp_path, "a", "--peer", f"ws://127.0.0.1:{port_b}/gun", port=port_a)
    b = _relay(tmp_path, "b", "--peer", f"ws://127.0.0.1:{port_a}/gun", port=port_b)
    a.start()
    b.start()
    try:
        def settled() -> tuple | None:
            ra, rb = operator(a, "GET", "/-/api/mesh"), operator(b, "GET", "/-/api/mesh")
            states = sorted([ra["dialled"][0]["state"], rb["dialled"][0]["state"]])
            return (ra, rb) if states == ["covered", "up"] and len(ra["inbound"]) + len(rb["inbound"]) == 1 else None

        ra, rb = wait_for("one link between A and B", settled, timeout=30)
        soul = rid("mesh-pair-")
        on_b = gun_subscriber(b, soul, "k", "sub-b", tmp_path)
        try:
            gun_put(a, soul, "k", "over the one link", tmp_path)
            _saw(on_b, "over the one link")
        finally:
            on_b.kill()
    finally:
        b.stop()
        a.stop()


def test_a_relay_that_dials_itself_notices_and_stops(tmp_path):
    from interop_support import free_port

    port = free_port()
    relay = _relay(tmp_path, "self", "--peer", f"ws://127.0.0.1:{port}/gun", port=port).start()
    try:
        report = _mesh_when(relay, "the link to itself noticed", lambda r: r["dialled"][0]["state"] == "self")
        assert "itself" in report["dialled"][0]["last_error"]
        assert report["inbound"] == []
    finally:
        relay.stop()


def test_an_unreachable_peer_is_shown_down_and_the_relay_serves_its_clients(tmp_path):
    from interop_support import free_port

    dead = free_port()  # nothing listens there
    relay = _relay(tmp_path, "lonely", "--peer", f"ws://127.0.0.1:{dead}/gun").start()
    try:
        report = _mesh_when(relay, "the dead peer shown down", lambda r: r["dialled"][0]["failures"] >= 2)
        link = report["dialled"][0]
        assert link["state"] in ("down", "connecting") and link["last_error"]
        soul = rid("mesh-alone-")
        gun_put(relay, soul, "k", "still served", tmp_path)
        assert gun_once(relay, soul, "k", tmp_path).get("value") == "still served"
    finally:
        relay.stop()


def test_a_bad_peer_url_is_refused_at_start(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "gunrelay", "serve", "--data", str(tmp_path), "--port", "0", "--peer", "http//nowhere"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "--peer='http//nowhere'" in done.stderr and "Traceback" not in done.stderr


def test_the_operator_sees_the_links_in_the_cli_the_api_and_metrics(line, tmp_path):
    import subprocess
    import sys

    c = line["c"]
    token = (c.data_dir / "admin-token").read_text().strip()
    done = subprocess.run(
        [sys.executable, "-m", "gunrelay", "mesh", "--url", c.http_url, f"--token={token}"],  # a token may start with '-'
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    import json

    shown = json.loads(done.stdout)
    assert sorted(link["url"] for link in shown["dialled"]) == sorted([line["b"].ws_url, line["n"].ws_url])
    assert all(link["state"] == "up" and link["pid"] for link in shown["dialled"])
    a_side = operator(line["a"], "GET", "/-/api/mesh")
    assert [link["pid"] for link in a_side["inbound"]] == [operator(line["b"], "GET", "/-/api/mesh")["pid"]]
    assert [peer["relay"] for peer in operator(line["a"], "GET", "/-/api/peers")["peers"]] == [True]
    import urllib.request

    request = urllib.request.Request(c.http_url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        metrics = response.read().decode()
    assert 'gunrelay_mesh_dialled_links{state="up"} 2.0' in metrics
    assert "gunrelay_mesh_inbound_links 0.0" in metrics


def test_a_node_relay_without_axe_shares_writes_and_answers_gets_both_ways(tmp_path):
    node = _relay(tmp_path, "n", target="node", env={"AXE": "false"}).start()
    held = rid("mesh-noaxe-held-")
    gun_put(node, held, "k", "only N had it", tmp_path)  # before gunrelay was linked: only N holds it
    ours = _relay(tmp_path, "g", "--peer", node.ws_url).start()
    try:
        _links_up(ours, 1)
        assert gun_once(ours, held, "k", tmp_path).get("value") == "only N had it"
        soul = rid("mesh-noaxe-")
        on_ours = gun_subscriber(ours, soul, "from_node", "sub-ours", tmp_path)
        on_node = gun_subscriber(node, soul, "from_us", "sub-node", tmp_path)
        try:
            time.sleep(0.5)
            gun_put(node, soul, "from_node", "written on N", tmp_path)
            _saw(on_ours, "written on N")
            gun_put(ours, soul, "from_us", "written on gunrelay", tmp_path)
            _saw(on_node, "written on gunrelay")
        finally:
            on_ours.kill()
            on_node.kill()
    finally:
        ours.stop()
        node.stop()


def test_a_write_on_a_is_read_by_a_fresh_client_on_c(line, tmp_path):
    soul = rid("mesh-fresh-")
    gun_put(line["a"], soul, "k", "written on A", tmp_path)
    assert wait_for("C serves A's write", lambda: gun_once(line["c"], soul, "k", tmp_path).get("value") == "written on A")


def test_a_ring_of_three_delivers_each_update_exactly_once(tmp_path):
    from interop_support import free_port

    ports = [free_port() for _ in range(3)]
    ring = [
        _relay(tmp_path, name, "--peer", f"ws://127.0.0.1:{ports[(i + 1) % 3]}/gun", port=ports[i])
        for i, name in enumerate(("r0", "r1", "r2"))
    ]
    for relay in ring:
        relay.start()
    try:
        for relay in ring:
            _links_up(relay, 1)
        soul = rid("mesh-ring-")
        watchers = [RawPeer(relay.ws_url) for relay in ring]
        try:
            for watcher in watchers:
                watcher.send(get_msg(soul))
            time.sleep(0.5)
            state = now_ms()
            with RawPeer(ring[0].ws_url) as writer:
                for n in range(10):
                    assert writer.request(put_msg(soul, {"v": (f"u{n}", state + n)}), timeout=5) is not None
            for watcher in watchers:
                watcher.collect(1.5)
            for relay, watcher in zip(ring, watchers):
                values = [m["put"][soul]["v"] for m in watcher.inbox if "put" in m and "@" not in m and soul in m["put"]]
                assert values == [f"u{n}" for n in range(10)], (relay.port, values)
        finally:
            for watcher in watchers:
                watcher.close()
    finally:
        for relay in ring:
            relay.stop()


def _node_of(relay: Relay, soul: str) -> dict:
    """Every field of ``soul`` that ``relay`` serves: key -> (value, state)."""
    with RawPeer(relay.ws_url) as peer:
        reply = peer.request(get_msg(soul), timeout=10)
    assert reply is not None
    node = (reply.get("put") or {}).get(soul) or {}
    return {key: (value, node["_"][">"][key]) for key, value in node.items() if key != "_"}


def test_after_a_partition_every_relay_holds_every_field(tmp_path):
    a = _relay(tmp_path, "a").start()
    b = _relay(tmp_path, "b", "--peer", a.ws_url).start()
    c = _relay(tmp_path, "c", "--peer", b.ws_url).start()
    relays = (a, b, c)
    try:
        _links_up(b, 1)
        _links_up(c, 1)
        tag = rid("cut-")
        state = now_ms()
        with RawPeer(a.ws_url) as writer:  # before the cut: everyone has it
            assert writer.request(put_msg(f"{tag}/before", {"k": ("v", state)}), timeout=5) is not None
        wait_for("C has the write from before the cut", lambda: _node_of(c, f"{tag}/before"))
        b.stop()  # the cut: A and C cannot reach each other now
        expected = {}
        for relay, side in ((a, "a"), (c, "c")):
            soul = f"{tag}/{side}"
            entries = {f"k{n}": (f"{side}-{n}", state + n) for n in range(300)}
            with RawPeer(relay.ws_url) as writer:
                for start in range(0, 300, 100):
                    part = dict(list(entries.items())[start:start + 100])
                    reply = writer.request(put_msg(soul, part), timeout=10)
                    assert reply is not None and reply.get("ok") is True, reply
            expected[soul] = entries
        assert _node_of(c, f"{tag}/a") == {} and _node_of(a, f"{tag}/c") == {}  # really cut
        time.sleep(2.0)
        b.start()
        _links_up(b, 1)
        for relay in relays:
            for soul, entries in expected.items():
                held = wait_for(
                    f"{relay.port} holds all of {soul}", lambda relay=relay, soul=soul: (n := _node_of(relay, soul)) == entries and n,
                    timeout=20,
                )
                assert held == entries  # field by field: value and state
        report = operator(b, "GET", "/-/api/mesh")
        [dialled] = report["dialled"]
        assert dialled["relay"] and dialled["stream"]["cursor"] > 0 and dialled["stream"]["caught_up"] is True
        [inbound] = report["inbound"]
        assert inbound["stream"]["cursor"] > 0, report["inbound"]
    finally:
        for relay in reversed(relays):
            relay.stop()


def test_a_peer_that_sends_garbage_and_never_reads_costs_the_relay_nothing_but_its_link(tmp_path):
    import threading

    from websockets.sync.server import serve

    seen = {"connections": 0}

    def bad_peer(socket) -> None:  # greets like a relay, then floods garbage and reads nothing
        seen["connections"] += 1
        try:
            socket.send('{"#":"h","dam":"?","pid":"badpeer"}')
            for n in range(2000):
                socket.send("not json {" if n % 2 else '[{"put": 5}]')
            time.sleep(3)
        except Exception:
            pass

    server = serve(bad_peer, "127.0.0.1", 0, compression=None)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    relay = _relay(tmp_path, "victim", "--peer", f"ws://127.0.0.1:{port}/gun").start()
    try:
        wait_for("the garbage arrived, each frame answered as an error", lambda: _errors(relay) >= 1000, timeout=20)
        soul = rid("mesh-victim-")
        gun_put(relay, soul, "k", "still served", tmp_path)
        assert gun_once(relay, soul, "k", tmp_path).get("value") == "still served"
        wait_for("the link was redialled", lambda: seen["connections"] >= 2, timeout=30)
    finally:
        relay.stop()
        server.shutdown()
        thread.join(timeout=10)


def _errors(relay: Relay) -> int:
    import urllib.request

    token = (relay.data_dir / "admin-token").read_text().strip()
    request = urllib.request.Request(relay.http_url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("gunrelay_errors_total{")))
