"""The console's side of the admin API on a live relay: login, sessions, CSRF, lockout, allowlist,
audit log, live figures, peers, logs, privacy mode, /metrics and /version."""

import asyncio
import json
import time

import httpx
import pytest
import websockets
from fakes import TOKEN
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route

from gunrelay.admin.auth import STATE_CHANGING
from gunrelay.app import build_app
from gunrelay.config import load_config
from gunrelay.storage.sqlite import SQLiteStore

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def login(http: httpx.AsyncClient, password: str = TOKEN, user: str = "admin") -> httpx.Response:
    return await http.post("/-/api/login", json={"user": user, "password": password})


async def logged_in(http: httpx.AsyncClient) -> dict:
    r = await login(http)
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


async def hello(ws) -> None:
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["dam"] == "?"


def state_changing_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.app.routes:
        if isinstance(route, Route) and route.path.startswith("/-/api/") and route.path != "/-/api/login":
            for method in route.methods & STATE_CHANGING:
                path = route.path.replace("{reset_id}", "r1").replace("{address}", "127.0.0.1")
                found.append((method, path.replace("{peer_id}", "p1").replace("{name}", "snap")))
    return found


async def test_every_state_changing_endpoint_needs_a_session_and_its_csrf_token(live_relay):
    routes = state_changing_routes(live_relay.app)
    assert len(routes) == 15 and ("POST", "/-/api/import") in routes and ("POST", "/-/api/resets") in routes and ("POST", "/-/api/privacy") in routes
    body = {"scope": "*", "address": "127.0.0.1", "duration": "1h", "connected": True, "prefix": "x", "ttl": "1d",
            "to": "y", "enabled": True, "label": "x"}
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        for method, path in routes:
            r = await http.request(method, path, json=body)
            assert r.status_code == 401, (method, path)
        csrf = await logged_in(http)
        for method, path in routes:
            for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
                r = await http.request(method, path, json=body, headers=headers)
                assert r.status_code == 403 and "CSRF" in r.json()["error"], (method, path, headers)
        assert (await http.get("/-/api/resets")).status_code == 200  # reads need the session only
        assert (await http.post("/-/api/privacy", json={"enabled": False}, headers=csrf)).status_code == 200
    state = live_relay.app.state
    assert state.control.history() == [] and state.access.active() == [] and not state.relay.fence
    entries = (await state.store.audit_page(0, 100))[0]
    assert [e.action for e in entries] == ["privacy.set", "login"]  # the refused requests did nothing


async def test_login_sets_a_strict_cookie_and_logout_ends_the_session(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        assert (await http.get("/-/api/session")).status_code == 401
        r = await login(http)
        cookie = r.headers["set-cookie"]
        assert "gunrelay_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
        assert r.json()["user"] == "admin" and len(r.json()["csrf"]) > 30 and r.json()["expires"] > time.time() * 1000
        session = (await http.get("/-/api/session")).json()
        assert session["csrf"] == r.json()["csrf"] and session["privacy"] is False
        assert (await http.post("/-/api/logout")).status_code == 403  # logout changes state: CSRF too
        out = await http.post("/-/api/logout", headers={"X-CSRF-Token": session["csrf"]})
        assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
        http.cookies.set("gunrelay_session", r.cookies["gunrelay_session"])  # replaying the old cookie
        assert (await http.get("/-/api/session")).status_code == 401
    assert (await httpx.AsyncClient(base_url=live_relay.http).post("/-/api/login", json={"password": TOKEN},
                                                                   headers={"Origin": "http://evil.example"})).status_code == 403


async def test_login_locks_out_after_repeated_failures(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        for _ in range(4):
            r = await login(http, "guess")
            assert r.status_code == 401 and "wrong user or password" in r.json()["error"]
        r = await login(http, "guess")
        assert r.status_code == 401 and "locked" in r.json()["error"]
        r = await login(http)  # the right password no longer helps
        assert r.status_code == 429 and r.json()["retry_after_s"] > 800
        assert (await login(http, TOKEN, user="nobody")).status_code == 429  # the address is locked too
        assert (await http.get("/-/api/resets", headers=AUTH)).status_code == 200  # the operator token still works
    entries = (await live_relay.app.state.store.audit_page(0, 100))[0]
    assert [e.outcome for e in entries] == ["refused"] * 5 and all(e.action == "login" for e in entries)
    metrics = await scrape(live_relay)
    assert metrics["gunrelay_admin_logins_total"][("locked_out",)] == 2 and metrics["gunrelay_admin_logins_total"][("failed",)] == 5


async def test_the_allowlist_refuses_other_addresses(tmp_path):
    config = load_config({"data": str(tmp_path), "admin_token": TOKEN, "admin_allow": "10.0.0.0/8, 192.0.2.1"}, env={})
    app = build_app(config)
    for address, status in (("10.1.2.3", 401), ("192.0.2.1", 401), ("127.0.0.1", 403), ("192.0.2.2", 403)):
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            assert (await http.get("/-/api/resets")).status_code == status, address
            assert (await http.post("/-/api/login", json={"password": "x"})).status_code == status


async def test_actions_are_audited_with_who_where_and_outcome_and_paged(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        csrf = await logged_in(http)
        assert (await http.post("/-/api/bans", json={"address": "203.0.113.9", "duration": "1h", "reason": "spam"}, headers=csrf)).status_code == 201
        assert (await http.post("/-/api/bans", json={"address": "203.0.113.9"}, headers=csrf)).status_code == 400
        assert (await http.post("/-/api/ttl", json={"prefix": "tmp", "ttl": "1d"}, headers=AUTH)).status_code == 201
        page = (await http.get("/-/api/audit?per_page=2")).json()
        assert page["total"] == 4 and page["pages"] == 2 and len(page["entries"]) == 2
        ttl, refused = page["entries"]
        assert (ttl["who"], ttl["action"], ttl["outcome"], ttl["status"]) == ("token", "ttl.set", "ok", 201)
        assert (refused["who"], refused["action"], refused["outcome"], refused["address"]) == ("admin", "ban.create", "refused", "127.0.0.1")
        older = (await http.get("/-/api/audit?page=2&per_page=2")).json()["entries"]
        assert [e["action"] for e in older] == ["ban.create", "login"] and "203.0.113.9" in older[0]["detail"]
        assert (await http.get("/-/api/audit?per_page=0")).status_code == 400
    data = live_relay.app.state.store  # the entries are in the SQLite file, not only in memory
    reopened = SQLiteStore(data.path)
    await reopened.open()
    try:
        assert (await reopened.audit_page(0, 10))[1] == 4
    finally:
        await reopened.close()


async def scrape(live_relay) -> dict:
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found: dict = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return found


async def test_live_figures_peers_kick_and_ban(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http, websockets.connect(live_relay.ws) as ws:
        await hello(ws)
        csrf = await logged_in(http)
        before = (await http.get("/-/api/stats")).json()
        for i in range(20):
            await ws.send(json.dumps({"#": f"p{i}", "put": {"room": {"_": {"#": "room", ">": {f"k{i}": 1}}, f"k{i}": "hi"}}}))
            assert json.loads(await ws.recv())["ok"] is True
        await ws.send(json.dumps({"#": "g", "get": {"#": "room"}}))
        await ws.recv()
        async def counted() -> dict:  # the sampler (2 s) and the store count (at most every 5 s) catch up
            for _ in range(150):
                stats = (await http.get("/-/api/stats")).json()
                if stats["store"]["fields"] == 20 and any(p["puts"] > 0 for p in stats["history"]):
                    return stats
                await asyncio.sleep(0.1)
            raise AssertionError(f"the figures did not follow the writes: {stats}")

        stats = await counted()
        assert stats["connections"] == 1 and stats["peak_connections"] >= 1
        assert stats["totals"]["puts"] - before["totals"]["puts"] == 20 and stats["totals"]["acks"] == 20
        assert stats["totals"]["bytes_in"] > before["totals"]["bytes_in"] and stats["store"]["souls"] == 1
        [peer] = (await http.get("/-/api/peers")).json()["peers"]
        assert peer["address"] == "127.0.0.1" and peer["messages_in"] == 21 and peer["subscriptions"] == 1 and peer["last_ack"] is None
        assert (await http.post("/-/api/peers/nope/kick", headers=csrf)).status_code == 404
        assert (await http.post(f"/-/api/peers/{peer['id']}/kick", headers=csrf)).json() == {"kicked": peer["id"]}
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(10):
                await asyncio.wait_for(ws.recv(), 5)
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        async with websockets.connect(live_relay.ws) as again:  # a kicked peer may come back
            await hello(again)
            [peer] = (await http.get("/-/api/peers")).json()["peers"]
            r = await http.post(f"/-/api/peers/{peer['id']}/ban", json={"duration": "10m"})
            assert r.status_code == 201 and r.json()["banned"][0]["address"] == "127.0.0.1"
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(10):
                    await asyncio.wait_for(again.recv(), 5)
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(live_relay.ws):
                pass
    metrics = await scrape(live_relay)
    assert metrics["gunrelay_refused_total"][("banned",)] == 1 and metrics["gunrelay_bans_active"][()] == 1
    assert metrics["gunrelay_puts_total"][()] == 20 and metrics["gunrelay_acks_total"][()] == 20
    assert metrics["gunrelay_connections_accepted_total"][()] == 2 and metrics["gunrelay_store_fields"][()] == 20


async def test_privacy_mode_anonymises_addresses_in_answers_and_logs(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http, websockets.connect(live_relay.ws) as ws:
        await hello(ws)
        await http.post("/-/api/bans", json={"address": "198.51.100.7", "duration": "1h"})
        logs = (await http.get("/-/api/logs?level=warning")).json()["records"]
        assert any("198.51.100.7" in r["message"] for r in logs) and all(r["level"] in ("warning", "error") for r in logs)
        assert (await http.post("/-/api/privacy", json={"enabled": "yes"})).status_code == 400
        assert (await http.post("/-/api/privacy", json={"enabled": True})).json() == {"privacy": True}
        [peer] = (await http.get("/-/api/peers")).json()["peers"]
        [ban] = (await http.get("/-/api/bans")).json()["bans"]
        assert peer["address"].startswith("127.0.0.x~") and ban["address"].startswith("198.51.100.x~")
        logs = (await http.get("/-/api/logs?level=debug")).json()["records"]
        assert logs and not any("198.51.100.7" in r["message"] or "127.0.0.1" in r["message"] for r in logs)
        audit = (await http.get("/-/api/audit")).json()["entries"]
        assert all("198.51.100.7" not in e["detail"] and e["address"] != "127.0.0.1" for e in audit)
        assert (await http.delete("/-/api/bans/" + ban["address"])).status_code == 200  # the label is accepted back
        assert (await http.get("/-/api/bans")).json()["bans"] == []
        assert (await http.get("/-/api/logs?level=loud")).status_code == 400


async def test_health_version_metrics_and_the_console_files(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        version = (await http.get("/version")).json()
        assert version["gun"] == "0.2020.1241" and version["version"] and version["python"].startswith("3.")
        assert (await http.get("/health")).json()["status"] == "ok"
        page = await http.get("/-/console")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and "/-/console/console.js" in page.text
        for name in ("console.js", "console.css"):
            assert (await http.get(f"/-/console/{name}")).status_code == 200
        assert (await http.get("/-/console/..%2Fapi.py")).status_code == 404
        assert (await http.get("/-/console/index.htm")).status_code == 404
    metrics = await scrape(live_relay)
    for name in ("gunrelay_connections", "gunrelay_messages_received_total", "gunrelay_sent_bytes_total", "gunrelay_gets_total",
                 "gunrelay_fenced_writes_total", "gunrelay_purges_pending", "gunrelay_store_souls", "gunrelay_uptime_seconds"):
        assert name in metrics, name


async def test_an_action_that_fails_inside_is_audited_as_an_error(live_relay, monkeypatch):
    async def broken(**kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(live_relay.app.state.control, "issue", broken)
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        r = await http.post("/-/api/resets", json={"scope": "room", "dry_run": True})
        assert r.status_code == 500
    [entry] = (await live_relay.app.state.store.audit_page(0, 10))[0]
    assert (entry.action, entry.outcome, entry.status, entry.who) == ("reset.create", "error", 500, "token")
