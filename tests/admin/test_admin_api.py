"""The admin API and the operator CLI against a live relay: auth, resets, bans, quarantine."""

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
import websockets
from fakes import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def hello(ws) -> None:
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["dam"] == "?"


async def test_identity_is_public_and_everything_else_needs_the_token(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        pub = (await http.get("/-/identity")).json()["pub"]
        assert len(pub) == 87 and "." in pub
        for method, path in [("GET", "/-/api/resets"), ("POST", "/-/api/resets"), ("GET", "/-/api/bans"),
                             ("POST", "/-/api/bans"), ("DELETE", "/-/api/bans/1.2.3.4"), ("POST", "/-/api/resets/x/quarantine")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = await http.request(method, path, headers=headers, json={"scope": "*"})
                assert r.status_code == 401, (method, path, headers)
        assert live_relay.app.state.control.history() == []


async def test_bad_requests_change_nothing(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for body in ({"scope": ""}, {"scope": "a/"}, {"keep": "x"}, {"reason": 5}, {"ban_connected": "soon"}):
            r = await http.post("/-/api/resets", json=body)
            assert r.status_code == 400 and r.json()["error"], body
        r = await http.post("/-/api/resets", content=b"{not json")
        assert r.status_code == 400
        r = await http.post("/-/api/resets", content=b'{"reason": "' + b"x" * 70000 + b'"}')
        assert r.status_code == 400
        assert (await http.get("/-/api/resets/nope")).status_code == 404
        assert (await http.post("/-/api/bans", json={"address": "1.2.3.4"})).status_code == 400
        assert (await http.delete("/-/api/bans/1.2.3.4")).status_code == 404
        assert (await http.get("/-/api/resets")).json() == {"resets": []}
    assert not live_relay.app.state.relay.fence


async def test_a_ban_closes_sockets_refuses_upgrades_and_lifts(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        async with websockets.connect(live_relay.ws) as ws:
            await hello(ws)
            r = await http.post("/-/api/bans", json={"address": "127.0.0.1", "duration": "5m", "reason": "test"})
            assert r.status_code == 201 and r.json()["banned"][0]["address"] == "127.0.0.1"
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), 5)
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(live_relay.ws):
                pass
        assert refused.value.response.status_code == 403
        assert [b["address"] for b in (await http.get("/-/api/bans")).json()["bans"]] == ["127.0.0.1"]
        assert (await http.delete("/-/api/bans/127.0.0.1")).status_code == 200
        async with websockets.connect(live_relay.ws) as ws:
            await hello(ws)


async def test_cli_reset_waits_for_acknowledgements_then_quarantines(live_relay):
    async with websockets.connect(live_relay.ws) as cooperating, websockets.connect(live_relay.ws) as stubborn:
        await hello(cooperating)
        await hello(stubborn)
        cli = asyncio.create_task(asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gunrelay", "reset", "--url", live_relay.http, "--token", TOKEN, "--reason", "cli",
             "--wait-acks", "3", "--quarantine", "10m"],
            capture_output=True, text=True, timeout=60,
        ))
        control = live_relay.app.state.control
        for _ in range(200):
            if control.resets:
                break
            await asyncio.sleep(0.02)
        [reset_id] = control.resets
        await cooperating.send(json.dumps({"#": "ack-1", "dam": "reset-ack", "reset": reset_id}))
        done = await cli
        assert done.returncode == 0, done.stderr
        assert "1 acknowledged, 1 connected peer(s) did not" in done.stderr
        assert "acknowledged" in done.stderr  # the progress bar
        quarantined = json.loads(done.stdout[done.stdout.rindex('{\n  "banned"'):])  # the CLI's last document
        assert [b["address"] for b in quarantined["banned"]] == ["127.0.0.1"]
    status = control.describe(reset_id)
    assert len(status["acknowledged"]) == 1 and status["record"]["reason"] == "cli"
