"""Behind a trusted proxy the relay sees the client, not the proxy: a live relay (uvicorn with the
relay's own protocols, as ``gunrelay serve``) reached from 127.0.0.1, which is trusted by default,
with forwarding headers naming clients; and from 127.0.0.2, which is not, whose headers change
nothing. Each consumer of the address is checked: the per-address connection limit (the count
moves from the proxy to the client), bans, the peer list, the audit log, login lockouts,
``--admin-allow`` and the login cookie's Secure flag."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from fakes import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def relay_settings() -> dict:
    return {"max_connections_per_address": 2, "login_max_failures": 3}


def forwarded_for(address: str, **more: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **more}


async def hello(ws) -> None:
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["dam"] == "?"


async def peer_addresses(live_relay) -> list[str]:
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        return sorted(p["address"] for p in (await http.get("/-/api/peers")).json()["peers"])


async def refused(live_relay, reason: str) -> int:
    return live_relay.app.state.relay.stats.refused.get(reason, 0)


async def test_the_per_address_limit_counts_the_client_behind_the_proxy_not_the_proxy(live_relay):
    url = live_relay.ws
    guard = live_relay.app.state.connection_guard
    async with websockets.connect(url, additional_headers=forwarded_for("198.51.100.7")) as a1, \
            websockets.connect(url, additional_headers=forwarded_for("198.51.100.7")) as a2:
        await hello(a1)
        await hello(a2)
        before = await refused(live_relay, "max_connections_per_address")
        with pytest.raises(websockets.InvalidStatus) as third:  # the client's third: over its limit of 2
            async with websockets.connect(url, additional_headers=forwarded_for("198.51.100.7")):
                pass
        assert third.value.response.status_code == 503
        assert await refused(live_relay, "max_connections_per_address") == before + 1
        # the proxy (127.0.0.1) already carries three connections, over the limit of 2 were they its own
        async with websockets.connect(url, additional_headers=forwarded_for("198.51.100.8")) as b:
            await hello(b)
            assert guard.limits.by_address == {"198.51.100.7": 2, "198.51.100.8": 1}
            assert await peer_addresses(live_relay) == ["198.51.100.7", "198.51.100.7", "198.51.100.8"]
    for _ in range(100):  # the closes reach the relay
        if not guard.limits.by_address:
            break
        await asyncio.sleep(0.02)
    assert guard.limits.by_address == {} and guard.limits.open == 0


async def test_a_ban_of_the_client_refuses_it_through_the_proxy_and_not_the_others(live_relay):
    url = live_relay.ws
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        async with websockets.connect(url, additional_headers=forwarded_for("198.51.100.7")) as banned, \
                websockets.connect(url, additional_headers=forwarded_for("198.51.100.8")) as other:
            await hello(banned)
            await hello(other)
            assert (await http.post("/-/api/bans", json={"address": "198.51.100.7", "duration": "1h"})).status_code == 201
            with pytest.raises(websockets.ConnectionClosed):  # its open socket is closed
                await asyncio.wait_for(banned.recv(), 5)
            with pytest.raises(websockets.InvalidStatus) as again:
                async with websockets.connect(url, additional_headers=forwarded_for("198.51.100.7")):
                    pass
            assert again.value.response.status_code == 403
            await other.send(json.dumps({"#": "still-here", "get": {"#": "nothing"}}))
            assert json.loads(await asyncio.wait_for(other.recv(), 5))["@"] == "still-here"
            async with websockets.connect(url) as proxy_itself:  # the proxy's own address is not banned
                await hello(proxy_itself)
            assert await peer_addresses(live_relay) == ["198.51.100.8"]


async def test_headers_from_a_peer_that_is_not_a_trusted_proxy_change_nothing(live_relay):
    # 127.0.0.2 is loopback too, but only 127.0.0.1 and ::1 are trusted by default
    async with websockets.connect(live_relay.ws, local_addr=("127.0.0.2", 0),
                                  additional_headers=forwarded_for("203.0.113.9", Forwarded="for=203.0.113.10")) as ws:
        await hello(ws)
        assert await peer_addresses(live_relay) == ["127.0.0.2"]
        assert live_relay.app.state.connection_guard.limits.by_address == {"127.0.0.2": 1}
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=live_relay.http, transport=transport,
                                 headers={**AUTH, **forwarded_for("203.0.113.9")}) as http:
        assert (await http.post("/-/api/bans", json={"address": "192.0.2.1", "duration": "1m"})).status_code == 201
        [entry] = (await http.get("/-/api/audit")).json()["entries"]
        assert entry["address"] == "127.0.0.2"
        login = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN}, headers={"X-Forwarded-Proto": "https"})
        assert login.status_code == 200 and "Secure" not in login.headers["set-cookie"]  # a stranger's word is not taken


async def test_rfc7239_forwarded_names_the_client_when_there_is_no_x_forwarded_for(live_relay):
    async with websockets.connect(live_relay.ws, additional_headers={"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'}) as ws:
        await hello(ws)
        assert await peer_addresses(live_relay) == ["2001:db8:cafe::17"]


async def test_a_malformed_header_from_the_proxy_keeps_the_proxys_address(live_relay):
    async with websockets.connect(live_relay.ws, additional_headers=forwarded_for("not-an-address")) as ws:
        await hello(ws)
        assert await peer_addresses(live_relay) == ["127.0.0.1"]


async def test_the_audit_log_login_lockouts_and_the_secure_cookie_see_the_client(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        for _ in range(3):  # the address behind the proxy is locked out, with a user of its own
            r = await http.post("/-/api/login", json={"user": "guesser", "password": "guess"}, headers=forwarded_for("198.51.100.7"))
        assert r.status_code == 401 and "locked" in r.json()["error"]
        r = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN}, headers=forwarded_for("198.51.100.7"))
        assert r.status_code == 429  # the address is locked: the right password does not help
        r = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN},
                            headers=forwarded_for("198.51.100.8", **{"X-Forwarded-Proto": "https"}))
        assert r.status_code == 200, "another client behind the same proxy is not locked out"
        assert "; Secure" in r.headers["set-cookie"]  # the client spoke https to the proxy
        r = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN}, headers=forwarded_for("198.51.100.9"))
        assert r.status_code == 200 and "Secure" not in r.headers["set-cookie"]
        entries = (await http.get("/-/api/audit", headers=AUTH)).json()["entries"]
        assert sorted({e["address"] for e in entries}) == ["198.51.100.7", "198.51.100.8", "198.51.100.9"]


class TestAllowlist:
    @pytest.fixture
    def relay_settings(self) -> dict:
        return {"admin_allow": "198.51.100.0/24"}

    async def test_the_admin_allowlist_judges_the_client_behind_the_proxy(self, live_relay):
        async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
            assert (await http.get("/-/api/peers", headers=forwarded_for("198.51.100.7"))).status_code == 200
            assert (await http.get("/-/api/peers", headers=forwarded_for("203.0.113.9"))).status_code == 403
            assert (await http.get("/-/api/peers")).status_code == 403  # the proxy itself is not on the list
            assert (await http.get("/metrics", headers=forwarded_for("198.51.100.7"))).status_code == 200


class TestTrustNone:
    @pytest.fixture
    def relay_settings(self) -> dict:
        return {"trusted_proxies": ""}

    async def test_an_empty_list_trusts_nobody_not_even_loopback(self, live_relay):
        async with websockets.connect(live_relay.ws, additional_headers=forwarded_for("198.51.100.7")) as ws:
            await hello(ws)
            assert await peer_addresses(live_relay) == ["127.0.0.1"]
