"""The console's Mesh page and a reset's per-relay list, in real headless Chromium, against real
gunrelay processes linked with --peer: B dials A and trusts A's resets. B's Mesh page shows the
link up with A's pub, A's shows B dialled in; after a reset on A (with data written by a real GunJS
client), A's reset details list B with the fence installed and the purge done, and B's show the
reset as A's. A relay whose --peer leads to a port where nothing listens shows the link down with
its last error. Screenshots (desktop and phone width) go to $GUNRELAY_SCREENSHOTS (docs/screenshots
holds the ones checked by eye as console-mesh-*.png) or the test's tmp folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_support import TARGET, Relay, free_port, gun_put, identity, operator, reset, rid, wait_for
from test_console_browser import Console, console  # noqa: F401  (the fixture)
from test_mesh import _links_up, _relay

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no console"),
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 760}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Gunrelays A and B, B dialling A (--peer) and obeying A's resets (--trust-relay)."""
    base = tmp_path_factory.mktemp("console-mesh")
    a = _relay(base, "a").start()
    b: Relay | None = None
    try:
        pub_a = identity(a)
        b = _relay(base, "b", "--peer", a.ws_url, "--trust-relay", pub_a).start()
        _links_up(b, 1)
        yield {"a": a, "b": b, "pub_a": pub_a, "pub_b": identity(b)}
    finally:
        if b is not None:
            b.stop()
        a.stop()


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("GUNRELAY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _shoot(c: Console, path: Path) -> None:
    """A full-page screenshot from the top, once the sign-in toast is out of the way."""
    c.page.evaluate("document.getElementById('toast').classList.remove('show'); window.scrollTo(0, 0)")
    c.page.wait_for_timeout(400)
    c.page.screenshot(path=str(path), full_page=True)


def _fits(c: Console, what: str) -> None:
    overflow = c.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what}: the page is {overflow}px wider than the viewport"


def _open_logged_in(console: Any, relay: Relay, viewport: dict[str, int], page: str) -> Console:
    c = console(relay, viewport=viewport)
    c.login()
    c.logged_in()
    c.open(page)
    return c


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_b_shows_its_link_to_a_up_with_a_pub_and_a_shows_b_dialled_in(pair, console, viewport, tmp_path) -> None:
    a, b = pair["a"], pair["b"]
    size = "phone" if viewport["width"] < 600 else "desktop"
    on_b = _open_logged_in(console, b, viewport, "mesh")
    row = on_b.page.wait_for_selector(f'#mesh-dialled-table tr[data-url="{a.ws_url}"] td[data-state="up"]')
    assert row.inner_text().strip() == "up"
    pub_cell = on_b.page.wait_for_selector(f'#mesh-dialled-table tr[data-url="{a.ws_url}"] td[data-pub="{pair["pub_a"]}"]')
    assert pub_cell.get_attribute("title") == pair["pub_a"]  # the full pub, shown shortened
    short = pub_cell.query_selector(".pub-short").inner_text().strip()
    assert "…" in short and pair["pub_a"].startswith(short.split("…")[0]) and pair["pub_a"].endswith(short.split("…")[1])
    assert pub_cell.query_selector(".sr-only").text_content() == pair["pub_a"]  # read out whole
    dialled = operator(b, "GET", "/-/api/mesh")["dialled"][0]
    cells = on_b.page.locator(f'#mesh-dialled-table tr[data-url="{a.ws_url}"] td')
    assert cells.nth(3).inner_text().strip() == dialled["pid"]  # A's GUN pid
    on_b.page.wait_for_selector(f'#mesh-dialled-table tr[data-url="{a.ws_url}"] td[data-stream="caught-up"]')
    assert on_b.page.inner_text("#mesh-pid") == operator(b, "GET", "/-/api/mesh")["pid"]
    assert on_b.page.get_attribute("#mesh-pub", "data-pub") == pair["pub_b"]
    empty = on_b.page.wait_for_selector("#mesh-inbound-empty:visible")
    assert "No relay has dialled in" in empty.inner_text() and f"--peer ws://127.0.0.1:{b.port}/gun" in empty.inner_text()
    assert on_b.page.is_hidden("#mesh-inbound-table")
    _fits(on_b, f"B's mesh page at {size}")
    _shoot(on_b, _shots(tmp_path) / f"console-mesh-{size}-dialled.png")

    on_a = _open_logged_in(console, a, viewport, "mesh")
    inbound = on_a.page.wait_for_selector(f'#mesh-inbound-table td[data-pub="{pair["pub_b"]}"]')
    assert inbound.get_attribute("title") == pair["pub_b"]
    assert "No --peer configured" in on_a.page.wait_for_selector("#mesh-dialled-empty:visible").inner_text()
    assert on_a.page.is_hidden("#mesh-dialled-table")
    text = on_a.page.inner_text("#mesh-inbound-table")
    assert "127.0.0.1" in text  # the address, privacy mode being off
    _fits(on_a, f"A's mesh page at {size}")
    _shoot(on_a, _shots(tmp_path) / f"console-mesh-{size}-inbound.png")


def test_after_a_reset_on_a_its_details_list_b_fenced_and_purged_and_b_names_a_as_issuer(pair, console, tmp_path) -> None:
    a, b = pair["a"], pair["b"]
    scope = rid("console-mesh-")
    gun_put(a, f"{scope}/msgs", "m1", "old", tmp_path)  # a real GunJS client's write, which reaches B over the link
    record = reset(a, scope=scope, reason="spam")
    reset_id = record["reset_id"]
    on_a = _open_logged_in(console, a, DESKTOP, "resets")
    on_a.page.click(f'#resets-table tr[data-reset-id="{reset_id}"] button.details')
    # B's acknowledgement travels back over the link; the page is re-read until it is there (bounded)
    listed = wait_for("A's reset details to list B fenced and purged", lambda: _relay_row_done(on_a, reset_id, pair["pub_b"]), timeout=30)
    assert listed
    row = f'#reset-relays-table tr[data-pub="{pair["pub_b"]}"]'
    assert on_a.page.get_attribute(f"{row} td:nth-child(2)", "data-value") == "yes"
    assert on_a.page.get_attribute(f"{row} td:nth-child(3)", "data-value") == "yes"
    assert on_a.page.is_hidden("#reset-issuer-line")  # A's own reset: no foreign issuer line
    _shoot(on_a, _shots(tmp_path) / "console-mesh-desktop-reset-relays.png")

    on_b = _open_logged_in(console, b, PHONE, "resets")
    on_b.page.click(f'#resets-table tr[data-reset-id="{reset_id}"] button.details')
    issuer = on_b.page.wait_for_selector("#reset-issuer-line:not([hidden]) #reset-issuer")
    assert issuer.get_attribute("data-pub") == pair["pub_a"] and issuer.get_attribute("title") == pair["pub_a"]
    assert operator(b, "GET", f"/-/api/resets/{reset_id}")["issuer"] == pair["pub_a"]
    if not operator(b, "GET", f"/-/api/resets/{reset_id}")["relays"]:  # B is no issuer: nobody reports to it
        assert "open it there" in on_b.page.wait_for_selector("#reset-relays-empty:visible").inner_text()
    _fits(on_b, "B's reset details at phone width")
    _shoot(on_b, _shots(tmp_path) / "console-mesh-phone-reset-issuer.png")


def _relay_row_done(c: Console, reset_id: str, pub: str) -> bool:
    row = c.page.locator(f'#reset-relays-table tr[data-pub="{pub}"]')
    if row.count() and row.locator("td").nth(2).get_attribute("data-value") == "yes":
        return True
    # not yet: open the details again (the console re-reads the reset's status)
    c.page.click(f'#resets-table tr[data-reset-id="{reset_id}"] button.details')
    c.page.wait_for_timeout(500)
    return False


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_peer_where_nothing_listens_shows_the_link_down_with_its_last_error(console, viewport, tmp_path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/gun"  # a port just freed: nothing listens there
    lonely = _relay(tmp_path, "lonely", "--peer", dead).start()
    try:
        size = "phone" if viewport["width"] < 600 else "desktop"
        c = _open_logged_in(console, lonely, viewport, "mesh")
        row = f'#mesh-dialled-table tr[data-url="{dead}"]'
        c.page.wait_for_selector(f'{row} td[data-state="down"]', timeout=20000)
        error = c.page.wait_for_selector(f"{row} td.error-text", timeout=20000)
        shown = error.inner_text().strip()
        api_error = operator(lonely, "GET", "/-/api/mesh")["dialled"][0]["last_error"]
        assert shown and shown != "—" and api_error, (shown, api_error)
        assert c.page.locator(f"{row} td").nth(6).inner_text().strip() not in ("", "0", "—")  # failures counted
        _fits(c, f"the down link at {size}")
        _shoot(c, _shots(tmp_path) / f"console-mesh-{size}-down.png")
    finally:
        lonely.stop()
