"""The operator's console (/-/console) in real headless Chromium, against a relay process, with
real GunJS clients in Node doing the traffic: log in, watch live figures, kick and ban a peer, run a
reset with a dry run and watch the acknowledgements of clients running the reset plugin, rotate a
namespace, take and restore a snapshot, and find every action in the audit log.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_support import TARGET, GunProcess, PluginClient, Relay, identity, operator, rid, run_gun, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no console"),
]

PAGES = ["dashboard", "peers", "mesh", "bans", "resets", "namespaces", "snapshots", "audit", "logs"]


class Console:
    """One browser context logged in to the console (dialogs are accepted, as an operator would)."""

    def __init__(self, browser: Any, relay: Relay, viewport: dict[str, int] | None = None):
        self.relay = relay
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())
        self.page.goto(f"{relay.http_url}/-/console", wait_until="load")

    def login(self, password: str | None = None) -> None:
        token = password or (self.relay.data_dir / "admin-token").read_text().strip()
        self.page.wait_for_selector("#login-form", state="visible")
        self.page.fill("#login-user", "admin")
        self.page.fill("#login-password", token)
        self.page.click("#login-submit")

    def logged_in(self) -> None:
        self.page.wait_for_selector("#app", state="visible")

    def open(self, name: str) -> None:
        self.page.click(f'a[href="#{name}"]')
        self.page.wait_for_selector(f"#page-{name}", state="visible")

    def value(self, element_id: str) -> float:
        raw = self.page.get_attribute(f"#{element_id}", "data-value")
        return float(raw) if raw not in (None, "") else float("nan")

    def wait_value(self, element_id: str, test: Any, timeout: float = 15.0) -> float:
        return wait_for(f"#{element_id} to pass", lambda: (v := self.value(element_id)) == v and test(v) and (v,), timeout)[0]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Any) -> Iterator[Any]:
    made: list[Console] = []

    def make(relay: Relay, **kw: Any) -> Console:
        c = Console(browser, relay, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        assert not c.errors, c.errors  # no script errors in the console, whatever the test did
        c.close()


def metric(relay: Relay, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(relay.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def writer(relay: Relay, soul: str, count: int, tmp: Path) -> GunProcess:
    """A Node GunJS client writing ``count`` fields, one every 100 ms."""
    steps: list[dict[str, Any]] = []
    for i in range(count):
        steps += [{"op": "put", "path": [soul, f"k{i}"], "value": f"v{i}"}, {"op": "sleep", "ms": 100}]
    return GunProcess(relay, steps, tmpdir=tmp, deadline_ms=60000, label="writer")


def test_login_then_live_figures_move_while_gunjs_clients_write(fresh_relay: Relay, console, tmp_path: Path) -> None:
    c = console(fresh_relay)
    c.login("not the secret")
    c.page.wait_for_selector("#login-error:not(:empty)")
    assert c.page.is_hidden("#app")
    c.login()
    c.logged_in()
    cookie = next(k for k in c.context.cookies() if k["name"] == "gunrelay_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert c.page.evaluate("document.cookie").find("gunrelay_session") < 0  # scripts cannot read it
    c.open("dashboard")
    puts_before = c.wait_value("stat-total-puts", lambda v: v >= 0)
    writers = [writer(fresh_relay, f"live-{rid()}", 40, tmp_path) for _ in range(2)]
    try:
        c.wait_value("stat-connections", lambda v: v >= 2)
        c.wait_value("stat-total-puts", lambda v: v >= puts_before + 20)  # the page updates itself: no reload
        c.wait_value("stat-puts", lambda v: v > 0)  # a rate
        c.wait_value("stat-messages-in", lambda v: v > 0)
        assert c.page.locator("#charts svg").count() >= 3
    finally:
        for w in writers:
            w.kill()
    c.wait_value("stat-fields", lambda v: v >= 20)  # the store's size follows
    c.wait_value("stat-peak-connections", lambda v: v >= 2)


def test_kick_then_ban_a_peer_whose_reconnect_is_refused(fresh_relay: Relay, console, tmp_path: Path) -> None:
    client = PluginClient([fresh_relay.peer], identity(fresh_relay), tmp_path / "store.json", label="victim")
    try:
        assert client.event(lambda e: e.get("event") == "ready", 10)
        c = console(fresh_relay)
        c.login()
        c.logged_in()
        c.open("peers")
        first = c.page.wait_for_selector("#peers-table tr[data-peer-id]")
        first_id = first.get_attribute("data-peer-id")
        first.query_selector("button.kick").click()
        # the plugin redials: the same GUN peer comes back on a new connection
        again = wait_for("the kicked peer to reconnect", lambda: [
            p for p in operator(fresh_relay, "GET", "/-/api/peers")["peers"] if p["id"] != first_id], 20)
        assert again
        row = c.page.wait_for_selector(f'#peers-table tr[data-peer-id="{again[0]["id"]}"]')
        assert c.page.locator(f'#peers-table tr[data-peer-id="{first_id}"]').count() == 0
        c.page.fill("#peer-ban-duration", "10m")
        row.query_selector("button.ban").click()
        wait_for("the peer to be gone", lambda: operator(fresh_relay, "GET", "/-/api/peers")["peers"] == [], 10)
        wait_for("its reconnect to be refused", lambda: metric(fresh_relay, "gunrelay_refused_total", '{reason="banned"}') >= 1, 20)
        assert operator(fresh_relay, "GET", "/-/api/peers")["peers"] == []
        c.open("bans")
        c.page.wait_for_selector('#bans-table tr[data-address="127.0.0.1"]')
    finally:
        client.close()


def test_a_guided_reset_previews_then_shows_acknowledgements_arrive(fresh_relay: Relay, console, tmp_path: Path) -> None:
    room = f"chat/room-{rid()}"
    for i in range(3):
        r = run_gun(fresh_relay, [{"op": "put", "path": [room, f"m{i}"], "value": f"old {i}"}], tmpdir=tmp_path)
        assert r.error is None, r
    pub = identity(fresh_relay)
    clients = [PluginClient([fresh_relay.peer], pub, tmp_path / f"store{i}.json", label=f"c{i}") for i in range(2)]
    try:
        for client in clients:
            assert client.event(lambda e: e.get("event") == "ready", 10)
        c = console(fresh_relay)
        c.login()
        c.logged_in()
        c.open("resets")
        assert c.page.is_disabled("#reset-confirm")
        c.page.fill("#reset-scope", room)
        c.page.fill("#reset-reason", "spam")
        c.page.fill("#reset-message", "This room was cleared")
        c.page.fill("#reset-wait-acks", "20")
        c.page.click("#reset-preview")
        preview = c.page.wait_for_selector("#reset-preview-result:not(:empty)")
        assert "3" in preview.inner_text() and operator(fresh_relay, "GET", "/-/api/resets")["resets"] == []
        c.page.click("#reset-confirm")
        c.wait_value("reset-acked", lambda v: v == 2, 30)
        c.wait_value("reset-pending", lambda v: v == 0)
        c.wait_value("reset-purged", lambda v: v == 3)
        [held] = operator(fresh_relay, "GET", "/-/api/resets")["resets"]
        assert held["record"]["scope"] == room and held["record"]["reason"] == "spam" and held["acknowledgements"] == 2
        assert c.page.inner_text("#reset-progress-id") == held["record"]["reset_id"]
        c.page.wait_for_selector(f'#resets-table tr[data-reset-id="{held["record"]["reset_id"]}"]')
        for client in clients:
            assert client.resets()[-1]["reset_id"] == held["record"]["reset_id"]
    finally:
        for client in clients:
            client.close()


def test_rotate_snapshot_restore_and_the_audit_log(fresh_relay: Relay, console, tmp_path: Path) -> None:
    r = run_gun(fresh_relay, [{"op": "put", "path": ["keep/me", "a"], "value": "before"}], tmpdir=tmp_path)
    assert r.error is None, r
    c = console(fresh_relay)
    c.login()
    c.logged_in()
    c.open("namespaces")
    c.page.fill("#rotate-scope", "chat/v1")
    c.page.fill("#rotate-to", "chat/v2")
    c.page.fill("#rotate-grace", "1h")
    c.page.click("#rotate-form [type=submit]")
    c.page.wait_for_selector("#rotations-table td:has-text('chat/v2')")
    c.page.wait_for_selector("#instance:has-text('chat/v2')")
    c.open("snapshots")
    c.page.fill("#snapshot-label", "before-change")
    c.page.click("#snapshot-form [type=submit]")
    row = c.page.wait_for_selector("#snapshots-table tr[data-name*='before-change']")
    name = row.get_attribute("data-name")
    r = run_gun(fresh_relay, [{"op": "put", "path": ["keep/me", "a"], "value": "after"}], tmpdir=tmp_path)
    assert r.error is None, r
    row.query_selector("button.restore").click()
    wait_for("the restore", lambda: any(h["record"]["kind"] == "restore" for h in operator(fresh_relay, "GET", "/-/api/resets")["resets"]), 20)
    r = run_gun(fresh_relay, [{"op": "once", "path": ["keep/me", "a"]}], tmpdir=tmp_path)
    assert r[0]["value"] == "before", r
    c.open("audit")
    table = c.page.wait_for_selector("#audit-table td:has-text('snapshot.restore')")
    assert table
    text = c.page.inner_text("#audit-table")
    for action in ("login", "rotation.create", "snapshot.create", "snapshot.restore"):
        assert action in text, action
    assert name in text and "127.0.0.1" in text and "admin" in text
    entries = operator(fresh_relay, "GET", "/-/api/audit")["entries"]
    assert [e["action"] for e in entries][:4] == ["snapshot.restore", "snapshot.create", "rotation.create", "login"]
    assert all(e["outcome"] == "ok" for e in entries)


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 760}], ids=["desktop", "phone"])
def test_every_page_fits_the_viewport(fresh_relay: Relay, console, viewport: dict[str, int], tmp_path: Path) -> None:
    """Each page at desktop and phone size: nothing wider than the viewport. Screenshots go to
    $GUNRELAY_SCREENSHOTS (docs/screenshots holds the ones checked by eye) or the test's tmp folder."""
    operator(fresh_relay, "POST", "/-/api/bans", {"address": "198.51.100.23", "duration": "1h", "reason": "a long reason " * 4})
    operator(fresh_relay, "POST", "/-/api/resets", {"scope": "chat/lobby", "reason": "demo"})
    operator(fresh_relay, "POST", "/-/api/ttl", {"prefix": "ephemeral", "ttl": "7d"})
    c = console(fresh_relay, viewport=viewport)
    c.login()
    c.logged_in()
    shots = Path(os.environ.get("GUNRELAY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    size = "phone" if viewport["width"] < 600 else "desktop"
    for name in PAGES:
        c.open(name)
        c.page.wait_for_timeout(300)  # let its first fetch fill it
        overflow = c.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name}: the page is {overflow}px wider than a {viewport['width']}px viewport"
        c.page.screenshot(path=str(shots / f"{size}-{name}.png"), full_page=True)
