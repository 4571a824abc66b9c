"""Interop with the real browser client: headless Chromium loads /gun.js (and /gun/sea.js) from the
relay and syncs through it with fresh Node clients.

The browser's own put callback is satisfied by its localStorage (protocol notes 5.4), so it proves
nothing about the relay; the relay's copy is checked with a fresh Node client instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from interop_support import CHROMIUM_ARGS, Relay, rid, run_gun

pytestmark = pytest.mark.browser


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>gunrelay interop</title>
<script src="/gun.js"></script>
<script src="/gun/sea.js"></script>
</head><body><p>gunrelay browser interop</p></body></html>
"""

# Runs in the page. Every wait is bounded; the result is plain JSON.
SCRIPT = """
async ({peer, soul, value}) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const bounded = (ms, fn) => new Promise((resolve) => {
    const t = setTimeout(() => resolve({timeout: true}), ms);
    fn((v) => { clearTimeout(t); resolve(v); });
  });
  const out = {hasGun: typeof Gun === 'function', hasSEA: typeof SEA !== 'undefined'};
  if (!out.hasGun) { return out; }
  const gun = Gun({peers: [peer]});
  window.gun = gun;
  for (let i = 0; i < 400; i++) {  // up to ~8 s for the websocket to open
    const p = (gun._.opt.peers || {})[peer];
    if (p && p.wire && p.wire.readyState === 1) { out.connected = true; break; }
    await sleep(20);
  }
  out.putAck = await bounded(8000, (done) => {
    gun.get(soul).get('from_browser').put(value, (ack) => done({err: ack.err || null}));
  });
  out.fromNode = await bounded(8000, (done) => {
    gun.get(soul).get('from_node').once((v) => done({defined: v !== undefined, value: v === undefined ? null : v}));
  });
  return out;
}
"""


def test_browser_and_node_clients_sync_through_the_relay(relay: Relay, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    soul = f"browser-{rid()}"
    from_node = "written by node ✓"
    from_browser = f"written by chromium {rid()} ✓"

    w = run_gun(relay, [{"op": "put", "path": [soul, "from_node"], "value": from_node}], tmpdir=tmp_path)
    ack = w[0].get("ack") or {}
    assert not w[0].get("timeout") and not ack.get("err") and "ok" in ack, w

    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                     headless=True, timeout=30000)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(20000)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"[:300]))
            # Open a real document from the relay's origin first (a page fulfilled by Playwright
            # has no address space, and Chromium's local-network-access checks then block its
            # websocket to 127.0.0.1), then replace its content with our page; /gun.js and
            # /gun/sea.js are fetched from the relay for real.
            resp = page.goto(f"{relay.http_url}/gun.js", wait_until="load")
            assert resp is not None and resp.ok, f"/gun.js: HTTP {resp and resp.status}"
            page.set_content(PAGE, wait_until="load")
            result: dict[str, Any] = page.evaluate(SCRIPT, {"peer": relay.peer, "soul": soul,
                                                            "value": from_browser})
        finally:
            browser.close()

    assert result.get("hasGun"), f"/gun.js did not define Gun; console: {console[-10:]}"
    assert result.get("connected"), f"browser websocket never opened: {result}; console: {console[-10:]}"
    assert result["putAck"].get("timeout") is not True and not result["putAck"].get("err"), result
    got = result["fromNode"]
    assert not got.get("timeout"), f"browser once() never fired: {result}; console: {console[-10:]}"
    assert got["defined"] and got["value"] == from_node, f"browser read {got}"

    # a fresh Node client (no local storage) must find the browser's write on the relay
    r = run_gun(relay, [
        {"op": "on", "path": [soul, "from_browser"], "until": {"equals": from_browser}, "timeout": 10000},
        {"op": "once", "path": [soul, "from_browser"]},
    ], tmpdir=tmp_path)
    assert r[0]["matched"], f"relay does not have the browser's write: {r[0]}"
    assert r[1].get("defined") and r[1]["value"] == from_browser, r[1]

    assert result.get("hasSEA"), f"/gun/sea.js did not define SEA; console: {console[-10:]}"
