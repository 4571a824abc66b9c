"""The reset plugin in real headless Chromium: the demo chat (/demo, served by the relay with /gun.js,
/gun/sea.js and /gunrelay.js) in separate browser contexts, an operator resetting through the API.

What the pages hold is checked in the pages (localStorage, sessionStorage, indexedDB.databases(),
the DOM); what the relay holds with a fresh Node GunJS client that keeps no copy of its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from demo_pages import GUN_DBS, profiles, relay_texts  # noqa: F401 -- profiles is a fixture
from interop_support import TARGET, Relay, identity, operator, reset, rid, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no resets"),
]

# ---- tests ---------------------------------------------------------------------------------------


def test_two_browsers_chat_then_a_reset_clears_both_for_good(fresh_relay: Relay, profiles, tmp_path: Path) -> None:
    room = f"lobby-{rid()}"
    alice, bob = profiles(fresh_relay, room, "alice"), profiles(fresh_relay, room, "bob")
    old = [f"old from alice {rid()}", f"old from bob {rid()}"]
    alice.send(old[0])
    bob.send(old[1])
    alice.see(old[1])
    bob.see(old[0])
    for p in (alice, bob):
        p.seed(GUN_DBS + ["app-db"])  # app-db is not GUN's: a reset leaves it alone
    # as GUN's RAD IndexedDB adapter would, alice's page keeps 'radata' open: its delete is blocked
    # until the reload closes that connection
    alice.page.evaluate("""new Promise((resolve) => {
      const req = indexedDB.open('radata', 1);
      req.onsuccess = () => { window.__radata = req.result; resolve(); };
    })""")
    assert relay_texts(fresh_relay, room, tmp_path, expect=2) == sorted(old)
    alice.mark()
    bob.mark()

    record = reset(fresh_relay, "*", reason="spam", message="The operator cleared the chat", keep=["theme"])
    for p in (alice, bob):
        p.wait_reloaded()
    for p in (alice, bob):
        s = p.state()
        assert "junk" not in s["ls"] and s["ss"] == [], s  # localStorage except kept keys, sessionStorage
        assert s["ls"]["demo-name"] in ("alice", "bob"), s  # the demo keeps 'demo-name'
        assert "gunrelay" in s["ls"], s  # the plugin's own memory of what it applied
        assert not set(GUN_DBS) & set(s["dbs"]) and "app-db" in s["dbs"], s
        assert s["notice"] and s["notice"]["id"] == record["reset_id"], s
        assert "The operator cleared the chat" in s["notice"]["text"], s
        assert s["applied"]["*"]["epoch"] == record["epoch"], s

    # the chat works after the reset, and nothing old comes back to either page or to the relay
    new = f"new from alice {rid()}"
    alice.send(new)
    bob.see(new)
    time.sleep(1.0)
    for p in (alice, bob):
        s = p.state()
        assert s["texts"] == [new], s["texts"]
        assert not any(o in json.dumps(s["ls"]) for o in old), s["ls"]
    assert relay_texts(fresh_relay, room, tmp_path, expect=2) == [new]

    # both acknowledged (before their reload), and they acknowledge again on their new connections
    def acked() -> dict[str, Any] | None:
        status = operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")
        ok = len({a["peer_id"] for a in status["acknowledged"]}) >= 4 and not status["connected_not_acknowledged"]
        return status if ok else None

    status = wait_for("acknowledgements from both pages, before and after their reload", acked)
    assert {a["address"] for a in status["acknowledged"]} == {"127.0.0.1"}, status


def test_a_browser_that_was_offline_catches_up_and_pushes_nothing_old(fresh_relay: Relay, profiles,
                                                                      tmp_path: Path) -> None:
    room = f"lobby-{rid()}"
    carol = profiles(fresh_relay, room, "carol")
    old = f"old from carol {rid()}"
    carol.send(old)
    carol.seed(GUN_DBS)
    assert relay_texts(fresh_relay, room, tmp_path) == [old]

    # offline: Chromium's emulation keeps open websockets, so also drop the socket as a lost network would
    carol.context.set_offline(True)
    carol.page.evaluate("demo.gun._.opt.peers[location.origin + '/gun'].wire.close()")
    went = time.monotonic()
    carol.page.wait_for_selector("#status[data-state='disconnected']", timeout=5000)
    offline = f"written offline {rid()}"
    carol.send(offline)  # only in this browser's localStorage
    carol.mark()
    record = reset(fresh_relay, "*", message="Fresh start")
    # stay away longer than GunJS's one reconnect attempt (2 s), after which stock GunJS gives up
    time.sleep(max(0.0, went + 4.5 - time.monotonic()))
    assert carol.state()["notice"] is None  # it cannot know yet

    carol.context.set_offline(False)
    carol.wait_reloaded(timeout=20)
    s = carol.state()
    assert s["notice"] and s["notice"]["id"] == record["reset_id"], s
    assert "junk" not in s["ls"] and s["ss"] == [] and not set(GUN_DBS) & set(s["dbs"]), s
    time.sleep(1.0)
    s = carol.state()
    assert s["texts"] == [] and old not in json.dumps(s["ls"]) and offline not in json.dumps(s["ls"]), s

    assert relay_texts(fresh_relay, room, tmp_path) == []
    log = fresh_relay.log_text(limit=10**7)
    assert "stale field(s) from peer" not in log, log[-3000:]  # nothing old was even offered
    acks = operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")["acknowledged"]
    assert acks, "the returning browser did not acknowledge"


FORGE_JS = """async ({pub, at}) => {
  // a complete reset record in the relay's space, every field signed by a throwaway key and carrying
  // that key as '*' (SEA 0.2020 then verifies it against the throwaway key, certificate or not)
  const space = '~' + pub, id = 'forged-' + at, st = Gun.state();
  const pair = await SEA.pair();
  const sign = async (soul, key, val) => {
    const sig = await SEA.sign({'#': soul, '.': key, ':': val, '>': st}, pair, null, {raw: 1});
    return JSON.stringify({':': val, '~': sig.s, '*': pair.pub});
  };
  const node = async (soul, values) => {
    const n = {_: {'#': soul, '>': {}}};
    for (const k of Object.keys(values)) { n[k] = await sign(soul, k, values[k]); n._['>'][k] = st; }
    return n;
  };
  const rec = {reset_id: id, scope: '*', epoch: 99, W: st, issued_at: at, reason: 'forged', message: 'FORGED',
               keep: '[]', replacement: null, kind: 'reset', purge_after: null};
  const graph = {};
  graph[space] = await node(space, {reset: {'#': space + '/reset'}, resets: {'#': space + '/resets'}});
  graph[space + '/reset'] = await node(space + '/reset', rec);
  graph[space + '/resets'] = await node(space + '/resets', {[id]: {'#': space + '/resets/' + id}});
  graph[space + '/resets/' + id] = await node(space + '/resets/' + id, rec);
  const hear = (gun, graph) => gun._.opt.mesh.hear({'#': String.random(9), put: JSON.parse(JSON.stringify(graph))},
                                                   {id: 'forger', url: 'forger'});
  // control: a stock GunJS + SEA instance without the plugin accepts it
  const stock = Gun({peers: [], localStorage: false});
  stock._.opt.mesh = stock._.opt.mesh || Gun.Mesh(stock._);
  hear(stock, graph);
  const stockSaw = await new Promise((resolve) => {
    setTimeout(() => resolve(null), 3000);
    stock.user(pub).get('reset').get('reset_id').on((v) => { if (v) { resolve(v); } });
  });
  // the demo's instance, which has the plugin, hears the same from a peer
  hear(window.demo.gun, graph);
  return {id, stockSaw};
}"""


def test_forged_records_clear_nothing(fresh_relay: Relay, profiles, clients, tmp_path: Path) -> None:
    room = f"lobby-{rid()}"
    dave = profiles(fresh_relay, room, "dave")
    text = f"keep me {rid()}"
    dave.send(text)
    dave.seed(GUN_DBS)
    dave.mark()
    pub = identity(fresh_relay)
    space = "~" + pub
    now = time.time() * 1000

    # over the relay: the legacy node, a well-signed record in someone else's space, a forgery in the relay's
    fake = {"reset_id": "forged-other", "scope": "*", "epoch": 99, "W": now, "issued_at": now, "kind": "reset",
            "keep": "[]", "message": "FORGED", "reason": "forged"}
    alias = f"mallory-{rid()}"
    r = clients.run(fresh_relay, [
        {"op": "put", "path": ["_whisperz_system", "reset", "message"], "value": "forged: wipe everything"},
        {"op": "put", "path": ["_whisperz_system", "config", "reset"], "value": "forged"},
        {"op": "user_create", "alias": alias, "pass": "correct horse battery"},
        {"op": "user_auth", "alias": alias, "pass": "correct horse battery"},
        {"op": "user_put", "path": ["reset"], "value": fake},
        {"op": "sea_forge", "soul": space + "/reset", "key": "reset_id", "value": "forged", "state": now, "star": True},
    ], sea=True)
    assert r.error is None, r
    assert "err" in r.results[0]["ack"] and "err" in r.results[1]["ack"], r  # the relay's system node
    assert r.results[4]["ack"].get("ok") and r.results[3]["pub"], r  # mallory's own space: accepted
    forged = r.results[5]["wire"]
    r2 = clients.run(fresh_relay, [
        {"op": "replay", "graph": {space + "/reset": {"_": {"#": space + "/reset", ">": {"reset_id": now}},
                                                         "reset_id": forged}}},
    ], sea=True)
    assert "err" in r2.results[0]["ack"], r2  # the relay refuses writes into its own space

    # peer to peer: a complete forged record pushed straight into the page's mesh
    forged_p2p = dave.page.evaluate(FORGE_JS, {"pub": pub, "at": now})
    assert forged_p2p["stockSaw"] == forged_p2p["id"], forged_p2p  # stock SEA would believe it

    time.sleep(2.5)  # longer than the reload delay
    s = dave.state()
    assert s["marked"] and s["notice"] is None and s["applied"] == {}, s
    assert "junk" in s["ls"] and s["ss"] == ["junk"] and set(GUN_DBS) <= set(s["dbs"]), s
    assert s["texts"] == [text] and s["fenced"] >= 1, s


def test_a_scoped_reset_of_one_room_leaves_the_other_room(fresh_relay: Relay, profiles, tmp_path: Path) -> None:
    alpha, beta = f"alpha-{rid()}", f"beta-{rid()}"
    erin, frank = profiles(fresh_relay, alpha, "erin"), profiles(fresh_relay, beta, "frank")
    in_alpha, in_beta = f"alpha says {rid()}", f"beta says {rid()}"
    erin.send(in_alpha)
    frank.send(in_beta)
    erin.page.evaluate("localStorage.setItem('junk', 'x')")
    assert relay_texts(fresh_relay, alpha, tmp_path) == [in_alpha]
    assert relay_texts(fresh_relay, beta, tmp_path) == [in_beta]
    erin.mark()
    frank.mark()

    record = reset(fresh_relay, f"demo/rooms/{alpha}", message="Room alpha was cleared")
    erin.wait_reloaded()
    frank.page.wait_for_selector(f"#reset-notice[data-reset-id='{record['reset_id']}']", timeout=10000)
    time.sleep(2.0)  # past the reload delay: frank's room was not touched, so no reload
    e, f = erin.state(), frank.state()
    assert e["notice"]["scope"] == f"demo/rooms/{alpha}" and e["texts"] == [], e
    assert in_alpha not in json.dumps(e["ls"]) and "junk" in e["ls"], e  # a room reset keeps app keys
    assert f["marked"] and f["texts"] == [in_beta] and in_beta in json.dumps(f["ls"]), f
    assert relay_texts(fresh_relay, alpha, tmp_path) == []
    assert relay_texts(fresh_relay, beta, tmp_path) == [in_beta]
    status = operator(fresh_relay, "GET", f"/-/api/resets/{record['reset_id']}")
    assert len(status["acknowledged"]) >= 2, status


def test_hard_reset_is_the_console_recipe_done_properly(fresh_relay: Relay, profiles) -> None:
    gina = profiles(fresh_relay, f"lobby-{rid()}", "gina")
    gina.send(f"local copy {rid()}")
    gina.seed(GUN_DBS + ["app-db"])
    # the memory check runs in the same turn as the clear: the page's live subscription may
    # legitimately fetch the relay's copy again right after (hardReset is local only)
    done = gina.page.evaluate("""() => {
      const cleared = gunrelay.hardReset({keep: ['demo-name'], idbNames: ['demo-cache'], gun: demo.gun, reload: false});
      const left = Object.keys(demo.gun._.graph).filter((s) => s.startsWith('demo/')).length;
      return cleared.then((d) => Object.assign(d, {left: left}));
    }""")
    s = gina.state()
    assert set(s["ls"]) == {"demo-name", "gunrelay"} and s["ss"] == [], s
    assert s["dbs"] == ["app-db"] and sorted(done["databases"]) == sorted(GUN_DBS), (s, done)
    assert done["left"] == 0, done
