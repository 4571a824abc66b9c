"""One relay, two processes (the ``fleet`` fixture: two `gunrelay serve` on one throwaway PostgreSQL
store), TTL rules and reset acknowledgements across them, with real GunJS clients in Node.

A TTL rule set through one process is in force on the other before the command returns: a write
older than the TTL, sent by a GunJS client to the other process right after, is refused there; the
rule shows in the other's list, and removing it through the other lifts it on both before that
command returns. A client with the reset plugin connected to one process acknowledges a reset
issued through the other; the issuing process shows the acknowledgement within a second, once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from interop_support import TARGET, PluginClient, Relay, identity, now_ms, operator, rid, wait_for

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no fleet"),
]

TWO_HOURS_MS = 2 * 3600_000


def _old_write(soul: str, value: str, state: float) -> dict[str, Any]:
    """A GunJS step: the client sends this node with its own (old) state through its mesh, as it
    would when it re-syncs a copy it kept."""
    return {"op": "replay", "graph": {soul: {"_": {"#": soul, ">": {"k": state}}, "k": value}}}


def test_a_ttl_rule_set_through_one_process_refuses_an_old_gunjs_write_to_the_other_at_once(fleet, clients) -> None:
    first, second = fleet
    prefix = rid("fleet-ttl-old-")
    answer = operator(first, "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "1h"})
    try:
        assert answer == {"prefix": prefix, "ttl_s": 3600.0, "fleet_not_confirmed": []}, answer
        # no wait at all: a GunJS client on the other process, right after the command returned
        w = clients.run(second, [
            _old_write(prefix, "two hours old", now_ms() - TWO_HOURS_MS),
            {"op": "put", "path": [f"{prefix}/fresh", "k"], "value": "new"},
        ])
        assert "Expired" in w.results[0]["ack"]["err"], w
        assert w.results[1]["ack"].get("ok") is True, w
        r = clients.run(second, [{"op": "once", "path": [prefix, "k"]}, {"op": "once", "path": [f"{prefix}/fresh", "k"]}])
        assert r.results[0]["defined"] is False and r.results[1]["value"] == "new", r
        # the other process lists the rule it did not set (its rules are its fence's)
        assert {"prefix": prefix, "ttl_s": 3600.0} in operator(second, "GET", "/-/api/ttl")["ttl"]
    finally:
        operator(first, "DELETE", f"/-/api/ttl?prefix={prefix}")


def test_a_ttl_rule_removed_through_the_other_process_is_lifted_on_both_at_once(fleet, clients) -> None:
    first, second = fleet
    prefix = rid("fleet-ttl-lift-")
    assert operator(first, "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "1h"})["fleet_not_confirmed"] == []
    refused = clients.run(first, [_old_write(prefix, "refused", now_ms() - TWO_HOURS_MS)])
    assert "Expired" in refused.results[0]["ack"]["err"], refused
    # removed through the process that did not set it: it knows the rule, and both lift it before the answer
    assert operator(second, "DELETE", f"/-/api/ttl?prefix={prefix}") == {"removed": prefix, "fleet_not_confirmed": []}
    accepted = clients.run(first, [_old_write(prefix, "accepted", now_ms() - TWO_HOURS_MS), {"op": "once", "path": [prefix, "k"]}])
    assert accepted.results[0]["ack"].get("ok") is True, accepted
    assert accepted.results[1]["value"] == "accepted", accepted
    for relay in (first, second):
        assert prefix not in [rule["prefix"] for rule in operator(relay, "GET", "/-/api/ttl")["ttl"]]


def test_the_ttl_command_prints_the_fleets_answer(fleet) -> None:
    first, second = fleet
    prefix = rid("fleet-ttl-cli-")
    token = (first.data_dir / "admin-token").read_text().strip()

    def gunrelay(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "gunrelay", *args, "--url", first.http_url, f"--token={token}"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    assert gunrelay("ttl", "set", prefix, "30m") == {"prefix": prefix, "ttl_s": 1800.0, "fleet_not_confirmed": []}
    assert {"prefix": prefix, "ttl_s": 1800.0} in operator(second, "GET", "/-/api/ttl")["ttl"]
    assert gunrelay("ttl", "rm", prefix) == {"removed": prefix, "fleet_not_confirmed": []}


def test_an_ack_through_one_process_shows_at_once_on_the_other_and_is_recorded_once(fleet, tmp_path: Path) -> None:
    first, second = fleet
    room = rid("fleet-ack-")
    client = PluginClient([second.peer], identity(second), tmp_path / "store.json", label="on-second")
    try:
        assert client.event(lambda e: e.get("event") == "ready", 10), client.events
        assert client.cmd("put", soul=room, key="topic", value="before the reset")["ack"]["ok"]
        issued = operator(first, "POST", "/-/api/resets", {"scope": room, "reason": "fleet acks"})
        reset_id = issued["record"]["reset_id"]
        assert issued["fleet_not_confirmed"] == [], issued
        ev = client.event(lambda e: e.get("event") == "reset" and e["record"]["reset_id"] == reset_id, 20)
        assert ev is not None and ev["info"]["acked"] is True, client.events
        pid = client.cmd("status")["pid"]

        def shown_by_first() -> list[dict[str, Any]]:
            acks = operator(first, "GET", f"/-/api/resets/{reset_id}")["acknowledged"]
            return [a for a in acks if a["pid"] == pid]

        # the ack went to the second process only; the first shows it within a second (issue 13)
        mine = wait_for("the first process shows the ack made through the second", shown_by_first, timeout=1.0)
        assert len(mine) == 1, mine  # recorded once, not once per process
        on_second = [a for a in operator(second, "GET", f"/-/api/resets/{reset_id}")["acknowledged"] if a["pid"] == pid]
        assert on_second == mine
        [listed] = [r for r in operator(first, "GET", "/-/api/resets")["resets"] if r["record"]["reset_id"] == reset_id]
        assert listed["acknowledgements"] == 1
        assert _public(first, f"/-/resets/{reset_id}/acknowledged") == {"reset_id": reset_id, "acknowledged": 1}
    finally:
        client.close()


def _public(relay: Relay, path: str) -> Any:
    """A public GET (no token), answered as JSON."""
    with urllib.request.urlopen(relay.http_url + path, timeout=10) as response:
        return json.loads(response.read())
