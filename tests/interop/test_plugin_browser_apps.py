"""The reset plugin in real apps, in Debian's headless Chromium with stock GunJS from the relay.

- A new visitor is never treated to old resets: on a relay where the operator made one ``*`` reset
  and then more prefix resets than the plugin's catch-up window before anyone visited, a fresh
  profile reloaded several times (and the same on a CPU slowed down 4x) keeps its localStorage,
  sessionStorage and IndexedDB, sees no notice and never reloads by itself; a reset issued after
  that first visit still clears on the next load.
- An app with its own ``onReset`` sees its live ``.on()`` views report the cleared fields (null),
  without a reload, and nothing goes back to the relay.
- ``holdReads``: a returning browser's stale local copy never reaches the app while the relay is
  reachable; without a relay the app still starts, once the bounded wait is over.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from demo_pages import GUN_DBS, AppPage, Profile, apps, fenced_lines, profiles  # noqa: F401 -- fixtures
from interop_support import TARGET, Relay, free_port, operator, reset, rid, run_gun, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no resets"),
]

CATCH_UP = 20  # the plugin's default catch-up window (opts.catchUp)
OLD_PREFIX_RESETS = CATCH_UP + 1


@pytest.fixture(scope="module")
def old_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Relay, list[dict[str, Any]]]]:
    """A relay on which, before anyone visits, the operator made one '*' reset and then more prefix
    resets than the catch-up window; with the records, oldest first."""
    base = tmp_path_factory.mktemp("old-resets")
    relay = Relay(base / "data", base / "logs")
    relay.start()
    try:
        records = [reset(relay, "*", message="OLD full reset")]
        records += [reset(relay, f"demo/rooms/old-{i}", message=f"OLD room reset {i}") for i in range(OLD_PREFIX_RESETS)]
        yield relay, records
    finally:
        relay.stop()


def settle(p: Profile, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Wait until this page's plugin has judged the latest record; its state."""
    latest = records[-1]
    return wait_for("the plugin to settle on the latest record", lambda: (
        lambda s: s if (s["applied"] or {}).get(latest["scope"], {}).get("id") == latest["reset_id"] else None)(p.state()), 20)


KEEP_JS = """() => {
  localStorage.setItem('app-value', 'must survive old resets');
  sessionStorage.setItem('session-value', 'must survive too');
}"""


def assert_untouched(p: Profile, s: dict[str, Any]) -> None:
    assert s["notice"] is None, (s["notice"], p.console[-20:])
    assert s["ls"].get("app-value") == "must survive old resets", s["ls"]
    assert "session-value" in s["ss"], s["ss"]
    assert set(GUN_DBS) <= set(s["dbs"]), s["dbs"]  # an old reset would have deleted GUN's databases


def reload_and_check(p: Profile, records: list[dict[str, Any]], times: int) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for _ in range(times):
        p.reload()
        p.mark()
        s = settle(p, records)
        time.sleep(2.0)  # past the demo's 1.5 s reload delay: a notice and a reload would show by now
        s = p.state()
        assert s["marked"], "the page reloaded itself"
        assert_untouched(p, s)
    return s


def first_visit_then_reloads(p: Profile, records: list[dict[str, Any]]) -> dict[str, Any]:
    s = settle(p, records)
    assert s["mark"] and s["mark"] >= records[-1]["issued_at"], s["mark"]  # by the relay's clock
    p.page.evaluate(KEEP_JS)
    p.seed(GUN_DBS)
    s = reload_and_check(p, records, 3)
    # the old '*' reset (outside the first load's catch-up window) was judged on a reload, and found old
    newest = {r["scope"]: r["reset_id"] for r in records}
    assert {scope: a["id"] for scope, a in s["applied"].items()} == newest, s["applied"]
    return s


def test_a_new_visitor_after_many_old_resets_is_never_cleared_then_a_new_reset_clears(old_relay, profiles) -> None:
    relay, records = old_relay
    p = profiles(relay, f"fresh-{rid()}", "newcomer")
    s = first_visit_then_reloads(p, records)
    acks = operator(relay, "GET", f"/-/api/resets/{records[0]['reset_id']}")["acknowledged"]
    assert s["pid"] in [a["pid"] for a in acks], acks  # old or not, it tells the relay it follows the reset

    # a reset after that first visit, while the visitor is away: the next load clears and says so
    p.leave()
    record = reset(relay, "*", message="A NEW full reset")
    records.append(record)  # history for whoever visits next
    p.open()

    def cleared() -> dict[str, Any] | None:
        now = p.state()
        return now if now["notice"] and now["notice"]["id"] == record["reset_id"] else None

    s = wait_for("the new reset to clear the page", cleared, 20)
    wait_for("the cleared page to settle", lambda: "app-value" not in p.state()["ls"], 10)
    s = p.state()
    assert "A NEW full reset" in s["notice"]["text"], s["notice"]
    assert s["ls"].get("demo-name") == "newcomer" and "app-value" not in s["ls"], s["ls"]  # the demo keeps demo-name
    assert not set(GUN_DBS) & set(s["dbs"]), s["dbs"]
    # the notice counts who acknowledged: this one browser, once, though it acknowledged on two loads
    count = wait_for("the acknowledgement count in the notice", lambda: p.page.evaluate(
        "document.getElementById('reset-acks').dataset.count"), 10)
    assert count == "1", count
    acks = operator(relay, "GET", f"/-/api/resets/{record['reset_id']}")["acknowledged"]
    assert {a["pid"] for a in acks} == {s["pid"]}, acks
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(f"{relay.http_url}/-/resets/no-such-reset/acknowledged", timeout=5)
    assert unknown.value.code == 404


def test_a_new_visitor_on_a_slow_device_is_never_cleared_either(old_relay, profiles) -> None:
    relay, records = old_relay
    p = profiles(relay, f"slow-{rid()}", "slowpoke", cpu_slowdown=4, ready_timeout=30000)
    first_visit_then_reloads(p, records)


def test_an_app_with_its_own_on_reset_sees_its_live_views_report_the_cleared_fields(relay_for_apps: Relay,
                                                                                   apps, tmp_path: Path) -> None:
    relay = relay_for_apps
    room = f"live-{rid()}"
    app: AppPage = apps(relay)
    app.open(room)
    app.page.wait_for_function("() => window.app.started === true")
    acked = app.evaluate("""(room) => new Promise((resolve) => {
      const node = window.app.gun.get(room), acks = [];
      const done = (ack) => { acks.push(ack.err || 'ok'); if (acks.length === 3) { resolve(acks); } };
      node.get('topic').put('old topic', done);
      node.get('messages').set({text: 'old one'}, done);
      node.get('messages').set({text: 'old two'}, done);
    })""", room)
    assert acked == ["ok", "ok", "ok"], acked
    wait_for("the app's views to show the data", lambda: {"old one", "old two"} <= {
        e["value"] for e in app.seen() if e["what"] == "item"})
    app.evaluate("window.__mark = 1")
    before_fenced, before_seen = fenced_lines(relay), len(app.seen())

    record = reset(relay, room, message="room cleared")
    wait_for("the app's onReset", lambda: app.evaluate("window.app.resets.length") == 1, 15)
    time.sleep(0.5)
    after = app.seen()[before_seen:]
    items = {e["key"]: e["value"] for e in app.seen() if e["what"] == "item"}
    assert app.evaluate("window.__mark") == 1, "the app was reloaded"
    told = app.evaluate("window.app.resets[0]")
    assert told["record"]["reset_id"] == record["reset_id"] and told["info"]["fields"] >= 5, told
    assert {"what": "topic", "key": "topic", "value": None, "holding": False} in after, after
    assert len(items) == 2 and set(items.values()) == {None}, items  # every item's view heard it go
    assert any(e["what"] == "node" and e["value"] is None for e in after), after
    # only in memory: nothing was written back (the relay would have logged refusing stale fields)
    time.sleep(0.5)
    assert fenced_lines(relay) == before_fenced, relay.log_text()[-2000:]
    r = run_gun(relay, [{"op": "once", "path": [room, "topic"], "timeout": 1500}], tmpdir=tmp_path)
    assert r.error is None and r[0].get("value") is None, r

    # the views go on working: new data shows up in them
    app.evaluate("(room) => window.app.gun.get(room).get('topic').put('new topic')", room)
    wait_for("the new topic in the view", lambda: app.seen()[-1:] and any(
        e["what"] == "topic" and e["value"] == "new topic" for e in app.seen()))


@pytest.fixture(scope="module")
def relay_for_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp("apps")
    relay = Relay(base / "data", base / "logs")
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


STALE_WRITE_JS = """(room) => new Promise((resolve) => {
  window.app.gun.get(room).get('topic').put('STALE topic', () => resolve(true));
})"""


def returning_visitor(relay: Relay, apps, room: str) -> AppPage:
    """A profile that wrote the room's topic and left; then the operator reset the room."""
    app: AppPage = apps(relay)
    app.open(room)
    app.page.wait_for_function("() => window.app.started === true")
    assert app.evaluate(STALE_WRITE_JS, room)
    wait_for("GUN's localStorage copy to hold the topic", lambda: "STALE topic" in app.stored())
    app.leave()
    reset(relay, room, message="room reset while away")
    return app


def topics(app: AppPage) -> list[Any]:
    return [e["value"] for e in app.seen() if e["what"] == "topic"]


def test_hold_reads_keeps_a_stale_local_copy_from_the_app_while_the_relay_answers(relay_for_apps: Relay, apps) -> None:
    relay = relay_for_apps
    # without the option: the stale copy flashes to the app before the plugin learns of the reset
    room = f"flash-{rid()}"
    plain = returning_visitor(relay, apps, room)
    plain.open(room)
    wait_for("the reset to be applied", lambda: plain.evaluate("window.app.resets.length") == 1, 15)
    assert "STALE topic" in topics(plain), plain.seen()

    room = f"held-{rid()}"
    held = returning_visitor(relay, apps, room)
    held.open(room, hold=4000)
    wait_for("the reset to be applied", lambda: held.evaluate("window.app.resets.length") == 1, 15)
    wait_for("the hold to end", lambda: held.evaluate("window.app.ctl.holding") is False, 10)
    time.sleep(1.0)
    assert "STALE topic" not in topics(held), held.seen()
    assert "STALE topic" not in held.stored()  # GUN's local copy lost it too
    held.evaluate("(room) => window.app.gun.get(room).get('topic').put('fresh topic')", room)
    wait_for("a fresh write to reach the view", lambda: "fresh topic" in topics(held))


def test_hold_reads_lets_an_offline_app_start_after_the_bounded_wait(relay_for_apps: Relay, apps) -> None:
    relay = relay_for_apps
    dead = f"http://127.0.0.1:{free_port()}/gun"  # nothing listens there: the relay is unreachable
    room = f"offline-{rid()}"
    app: AppPage = apps(relay)
    app.open(room, peer=dead)
    app.evaluate("(room) => window.app.gun.get(room).get('topic').put('written offline')", room)
    wait_for("GUN's localStorage copy to hold the topic", lambda: "written offline" in app.stored())

    app.open(room, hold=1500, peer=dead)
    assert app.evaluate("window.app.ctl.holding") is True  # the app's first read is held...
    wait_for("the local value to reach the app", lambda: "written offline" in topics(app), 10)
    first = next(e for e in app.seen() if e["what"] == "topic" and e["value"] == "written offline")
    assert first["holding"] is False, app.seen()  # ...and released by the bound, not by a relay
    assert app.evaluate("window.app.ctl.mark") is None  # no relay ever answered: nothing was judged


FIT_JS = """() => {
  const out = [];
  for (const id of ['room', 'join', 'name', 'message', 'send', 'reset-dismiss']) {
    const el = document.getElementById(id), r = el.getBoundingClientRect();
    if (el.offsetParent !== null && (r.left < 0 || r.right > window.innerWidth)) { out.push(id); }
  }
  return {overflow: document.documentElement.scrollWidth - window.innerWidth, outside: out};
}"""


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 375, "height": 667}], ids=["desktop", "phone"])
def test_the_demo_fits_a_phone_and_a_desktop_before_and_after_a_reset(relay_for_apps: Relay, profiles,
                                                                      viewport: dict[str, int], tmp_path: Path) -> None:
    """Screenshots go to $GUNRELAY_SCREENSHOTS (docs/screenshots holds the ones checked by eye) or the
    test's tmp folder."""
    relay = relay_for_apps
    size = "phone" if viewport["width"] < 600 else "desktop"
    shots = Path(os.environ.get("GUNRELAY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    room = f"lobby-{size}-{rid()}"
    p = profiles(relay, room, "alice", viewport=viewport)
    for text in ("Hello, everyone", "A second message, long enough to wrap on a narrow screen"):
        p.send(text)
    fit = p.page.evaluate(FIT_JS)
    assert fit["overflow"] <= 0 and not fit["outside"], fit
    p.page.screenshot(path=str(shots / f"demo-{size}-before-reset.png"), full_page=True)

    record = reset(relay, f"demo/rooms/{room}", message="The operator cleared this room: spam")
    p.page.wait_for_selector(f"#reset-notice[data-reset-id='{record['reset_id']}']", timeout=15000)
    wait_for("the acknowledgement count", lambda: p.page.evaluate(
        "document.getElementById('reset-acks').dataset.count || ''") not in ("", "0"), 15)
    time.sleep(2.0)  # the demo reloads after clearing its room; the notice comes back
    p.page.wait_for_selector(f"#reset-notice[data-reset-id='{record['reset_id']}']", timeout=15000)
    wait_for("the count after the reload", lambda: p.page.evaluate(
        "document.getElementById('reset-acks').dataset.count || ''") == "1", 15)
    s = p.state()
    assert s["texts"] == [] and "spam" in s["notice"]["text"], s
    fit = p.page.evaluate(FIT_JS)
    assert fit["overflow"] <= 0 and not fit["outside"], fit
    p.page.screenshot(path=str(shots / f"demo-{size}-after-reset.png"), full_page=True)
