"""Browser pages for the reset plugin's tests: the demo chat (/demo) and small app pages, all in
Debian's headless Chromium with stock GunJS, SEA and the plugin loaded from the relay.

``Profile`` is one browser context (its own localStorage and IndexedDB) with one page on /demo.
``AppPage`` is one browser context on a small app of the tests' own (``APP_HTML``), written into a
page of the relay's origin (``/version``, then ``set_content``), so it loads /gun.js, /gun/sea.js and
/gunrelay.js from the relay like any app would, keeps its storage under the relay's origin, and may
open its websocket to 127.0.0.1 (Chromium's local network checks refuse that to a page Playwright
made up itself). Every wait here
is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_support import Relay, run_gun, wait_for

GUN_DBS = ["gun", "radata", "radata-mobile", "demo-cache"]  # GUN's own + the demo's idbNames


def relay_texts(relay: Relay, room: str, tmp: Path, expect: int = 1, timeout_ms: int = 1500) -> list[str]:
    """The message texts the relay serves for a demo room, read by a fresh Node GunJS client."""
    r = run_gun(relay, [{"op": "map_once", "path": [f"demo/rooms/{room}", "messages"], "expect": expect,
                         "timeout": timeout_ms}], tmpdir=tmp)
    assert r.error is None, r
    return sorted(v["text"] for v in r[0]["items"].values() if isinstance(v, dict) and "text" in v)


def fenced_lines(relay: Relay) -> int:
    """How many times the relay logged refusing stale fields from a peer."""
    return relay.log_text(limit=10**7).count("stale field(s) from peer")


# ---- the demo ------------------------------------------------------------------------------------

STATE_JS = """async () => {
  const ls = {};
  for (let i = 0; i < localStorage.length; i++) { const k = localStorage.key(i); ls[k] = localStorage.getItem(k); }
  const ss = [];
  for (let i = 0; i < sessionStorage.length; i++) { ss.push(sessionStorage.key(i)); }
  const box = document.getElementById('reset-notice');
  return {
    ls, ss,
    dbs: (await indexedDB.databases()).map((d) => d.name).sort(),
    texts: [...document.querySelectorAll('#messages li')].map((li) => li.dataset.text),
    notice: box.hidden ? null : {id: box.dataset.resetId, scope: box.dataset.scope, text: box.textContent},
    applied: window.demo.controller ? window.demo.controller.applied() : null,
    fenced: window.demo.controller ? window.demo.controller.fenced : null,
    mark: window.demo.controller ? window.demo.controller.mark : null,
    pid: window.demo.gun._.opt.pid,
    marked: window.__mark === 1,
  };
}"""

SEED_JS = """async (names) => {
  localStorage.setItem('junk', 'app state that a full reset removes');
  sessionStorage.setItem('junk', 'session state');
  for (const name of names) {
    await new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('s');
      req.onsuccess = () => { req.result.close(); resolve(); };
      req.onerror = () => reject(req.error);
    });
  }
}"""


def throttle(context: Any, page: Any, rate: float) -> None:
    """Slow the page's CPU down `rate` times (DevTools protocol), as on a slow phone."""
    cdp = context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})


class Profile:
    """One browser context (its own localStorage/IndexedDB) with one page on /demo."""

    def __init__(self, browser: Any, relay: Relay, room: str, name: str, *, cpu_slowdown: float = 1,
                 viewport: dict[str, int] | None = None, ready_timeout: float = 15000):
        self.relay = relay
        self.room = room
        self.ready_timeout = ready_timeout
        self.context = browser.new_context(viewport=viewport) if viewport else browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(ready_timeout)
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"[:300]))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"[:300]))
        if cpu_slowdown != 1:
            throttle(self.context, self.page, cpu_slowdown)
        self.open()
        self.page.fill("#name", name)
        self.page.dispatch_event("#name", "change")

    def open(self) -> None:
        self.page.goto(f"{self.relay.http_url}/demo?room={self.room}", wait_until="load")
        self.wait_ready()

    def leave(self) -> None:
        """Close the demo (the profile keeps its storage), as a visitor closing the tab."""
        self.page.goto("about:blank")

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-ready='1']", timeout=self.ready_timeout)
        self.page.wait_for_selector("#status[data-state='connected']", timeout=self.ready_timeout)

    def reload(self) -> None:
        """The visitor reloads: a new document, GunJS and plugin start again."""
        self.page.reload(wait_until="load")
        self.wait_ready()

    def send(self, text: str) -> None:
        self.page.fill("#message", text)
        self.page.click("#send")
        self.see(text)

    def see(self, text: str, timeout: float = 10000) -> None:
        self.page.wait_for_selector(f"#messages li[data-text='{text}']", timeout=timeout)

    def state(self) -> dict[str, Any]:
        return self.page.evaluate(STATE_JS)

    def seed(self, dbs: list[str]) -> None:
        self.page.evaluate(SEED_JS, dbs)

    def mark(self) -> None:
        """Tag the current document; a reload drops the tag."""
        self.page.evaluate("window.__mark = 1")

    def wait_reloaded(self, timeout: float = 15.0) -> None:
        wait_for("the page to reload", lambda: self.page.evaluate(
            "window.__mark === undefined && !!window.demo && window.demo.ready === true"), timeout)
        self.wait_ready()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def profiles(browser: Any) -> Iterator[Callable[..., Profile]]:
    made: list[Profile] = []

    def make(relay: Relay, room: str, name: str, **kw: Any) -> Profile:
        p = Profile(browser, relay, room, name, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ---- a small app of the tests' own ---------------------------------------------------------------

# The app records every callback its live views get (window.seen), with whether the plugin was still
# holding local reads at that moment, and the resets it was told of (it passes its own onReset, so no
# notice and no reload). APP_OPTIONS: room, peer (default: the relay's /gun), hold (opts.holdReads ms).
APP_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>app under test</title>
<script>window.APP_OPTIONS = %s;</script>
<script src="/gun.js"></script><script src="/gun/sea.js"></script><script src="/gunrelay.js"></script></head>
<body><script>
(function () {
  var q = window.APP_OPTIONS;
  var peer = q.peer || location.origin + '/gun', room = q.room, hold = q.hold || 0;
  var gun = Gun({peers: [peer]});
  var app = window.app = {gun: gun, ctl: null, seen: [], resets: [], started: false};
  function saw(what, key, value) {
    app.seen.push({what: what, key: key, value: value === undefined ? '(undefined)' : value,
                   holding: app.ctl ? app.ctl.holding : null});
  }
  fetch('/-/identity').then(function (r) { return r.json(); }).then(function (id) {
    app.ctl = gunrelay.install(gun, {relayPub: id.pub, holdReads: hold,
      onReset: function (record, info) { app.resets.push({record: record, info: info}); }});
    var node = gun.get(room);
    node.get('topic').on(function (v, k) { saw('topic', k, v); });
    node.on(function (v) {
      var copy = v && typeof v === 'object' ? {} : v;
      if (copy) { Object.keys(v).forEach(function (k) { if (k !== '_') { copy[k] = v[k] && typeof v[k] === 'object' ? 'link' : v[k]; } }); }
      saw('node', room, copy);
    });
    node.get('messages').map().on(function (v, k) { saw('item', k, v && typeof v === 'object' ? (v.text === undefined ? '(no text)' : v.text) : v); });
    app.ctl.ready.then(function () { app.started = true; });
  });
}());
</script></body></html>"""


class AppPage:
    """One browser context with the app above, at the relay's origin."""

    def __init__(self, browser: Any, relay: Relay, *, cpu_slowdown: float = 1):
        self.relay = relay
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"[:300]))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"[:300]))
        if cpu_slowdown != 1:
            throttle(self.context, self.page, cpu_slowdown)

    def open(self, room: str, *, hold: int = 0, peer: str | None = None) -> None:
        self.page.goto(f"{self.relay.http_url}/version", wait_until="load")  # a document of the relay's origin
        options = {"room": room, "hold": hold, "peer": peer}
        self.page.set_content(APP_HTML % json.dumps(options).replace("</", "<\\/"), wait_until="load")
        self.page.wait_for_function("() => !!(window.app && window.app.ctl)", timeout=15000)

    def leave(self) -> None:
        self.page.goto("about:blank")

    def seen(self) -> list[dict[str, Any]]:
        return self.page.evaluate("window.app.seen")

    def evaluate(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def stored(self) -> str:
        """GUN's localStorage copy (its 'gun/' key), as text."""
        return self.page.evaluate("localStorage.getItem('gun/') || ''")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def apps(browser: Any) -> Iterator[Callable[..., AppPage]]:
    made: list[AppPage] = []

    def make(relay: Relay, **kw: Any) -> AppPage:
        a = AppPage(browser, relay, **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()




