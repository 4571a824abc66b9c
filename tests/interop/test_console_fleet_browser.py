"""The console's fleet view (Dashboard, "Processes"), in real headless Chromium, against a
two-process fleet (the ``fleet`` fixture: two `gunrelay serve` on one throwaway PostgreSQL store)
with a real GunJS client connected to the second: the console served by either process shows both
processes (pid, host, port, start, heartbeat age, control version, connections, messages) and the
fleet-wide totals, the same figures ``/-/api/stats`` serves. A relay on SQLite says "single
process" and shows no fleet figures. Screenshots go to $GUNRELAY_SCREENSHOTS or the test's tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from interop_support import TARGET, Relay, gun_put, gun_subscriber, operator, rid, wait_for
from test_console_browser import Console, console  # noqa: F401  (the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no console"),
]


def _open_dashboard(console: Any, relay: Relay, viewport: dict[str, int] | None = None) -> Console:
    c = console(relay, viewport=viewport)
    c.login()
    c.logged_in()
    c.open("dashboard")
    c.page.wait_for_selector("#fleet-view", state="visible")
    return c


def _row(c: Console, pid: int) -> dict[str, Any]:
    """One process's row as the page shows it: its cells' text, and whether it is marked as this process."""
    found: dict[str, Any] = c.page.evaluate(
        """(pid) => {
            const tr = document.querySelector('#fleet-table tr[data-pid="' + pid + '"]');
            if (!tr) return null;
            const badge = tr.querySelector('.this-process');
            return {cells: Array.from(tr.cells, (td) => td.querySelector('.pid') ? td.querySelector('.pid').textContent : td.textContent),
                    marked: !!badge && !badge.hidden && badge.offsetParent !== null};
        }""",
        pid,
    )
    return found


def test_the_console_of_either_process_shows_both_and_the_fleet_totals(fleet, console, tmp_path: Path) -> None:
    first, second = fleet
    soul = rid("console-fleet-")
    gun_put(second, soul, "k", "through the second", tmp_path)  # messages through the second
    sub = gun_subscriber(second, soul, "k", "sub-second", tmp_path)  # and a connection that stays on the second
    try:
        def both_with_the_connection() -> dict[str, Any] | None:
            report = operator(first, "GET", "/-/api/stats")["fleet"]
            ports = {p["port"]: p for p in report["processes"]}
            ok = set(ports) == {first.port, second.port} and ports[second.port]["connections"] >= 1
            return report if ok else None

        report = wait_for("both processes, the second with its GunJS client", both_with_the_connection, timeout=10)
        by_port = {p["port"]: p for p in report["processes"]}
        for relay, other in ((first, second), (second, first)):
            c = _open_dashboard(console, relay)
            assert c.page.is_hidden("#fleet-single")
            wait_for("two processes in the console", lambda: c.value("fleet-total-processes") == 2, timeout=10)
            wait_for("the second's connection in the fleet totals", lambda: c.value("fleet-total-connections") >= 1, timeout=10)
            assert c.value("fleet-total-messages-in") >= by_port[second.port]["messages_in"] > 0
            for port in (first.port, second.port):
                shown = wait_for(f"the row of the process on port {port}", lambda: _row(c, by_port[port]["pid"]), timeout=10)
                pid, host, shown_port, started, heartbeat, version, connections, messages = shown["cells"]
                assert pid == str(by_port[port]["pid"]) and host == by_port[port]["host"] and shown_port == str(port)
                assert started.strip() not in ("", "—")
                assert heartbeat.endswith(" s ago"), heartbeat
                assert float(heartbeat.split()[0]) < 5  # a live process: younger than the fleet's live_s
                assert int(version.replace(",", "")) >= 0
                assert messages.count("/") == 1
                assert shown["marked"] == (port == relay.port), shown  # "this process" marks the one serving the console
            second_row = _row(c, by_port[second.port]["pid"])["cells"]
            assert int(second_row[6]) >= 1  # the GunJS client's connection, on the second
            assert _row(c, by_port[other.port]["pid"])["marked"] is False
            shots = Path(os.environ.get("GUNRELAY_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            c.page.screenshot(path=str(shots / f"console-fleet-{relay.port}.png"), full_page=True)
    finally:
        sub.kill()


def test_the_fleet_view_follows_the_processes_control_version(fleet, console) -> None:
    first, second = fleet
    c = _open_dashboard(console, second)
    before = operator(first, "GET", "/-/api/stats")["fleet"]["processes"]
    prefix = rid("console-fleet-ttl-")
    assert operator(first, "POST", "/-/api/ttl", {"prefix": prefix, "ttl": "1h"})["fleet_not_confirmed"] == []
    try:
        after = max(p["control_version"] for p in operator(first, "GET", "/-/api/stats")["fleet"]["processes"])
        assert after > max(p["control_version"] for p in before)

        def both_at(version: int) -> bool:
            rows = [_row(c, p["pid"]) for p in before]
            return all(r is not None and int(r["cells"][5].replace(",", "")) == version for r in rows)

        wait_for("both rows at the new control version", lambda: both_at(after), timeout=10)
    finally:
        operator(first, "DELETE", f"/-/api/ttl?prefix={prefix}")


def test_the_fleet_view_fits_a_phone(fleet, console, tmp_path: Path) -> None:
    first, _ = fleet
    c = _open_dashboard(console, first, {"width": 390, "height": 760})
    wait_for("two processes in the console", lambda: c.value("fleet-total-processes") == 2, timeout=10)
    overflow = c.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the dashboard is {overflow}px wider than the phone's viewport"
    shots = Path(os.environ.get("GUNRELAY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    c.page.screenshot(path=str(shots / "console-fleet-phone.png"), full_page=True)


def test_a_relay_alone_says_single_process_and_shows_no_fleet(fresh_relay: Relay, console) -> None:
    c = console(fresh_relay)
    c.login()
    c.logged_in()
    c.open("dashboard")
    c.page.wait_for_selector("#fleet-single", state="visible")
    assert "Single process" in c.page.inner_text("#fleet-single")
    assert c.page.is_hidden("#fleet-view")
    assert c.page.is_hidden("#fleet-table")
    assert "fleet" not in operator(fresh_relay, "GET", "/-/api/stats")
