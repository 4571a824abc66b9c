"""Attacks on a live relay, one test each: refused, changing nothing, and counted in /metrics.

(The same attacks by real GunJS peers are in tests/interop: forged records and legacy writes in
test_reset.py, forged SEA writes in test_gunjs_clients.py; resumed purges after SIGKILL in
test_crash.py. Here each refusal is also checked in the metrics an operator watches.)
"""

import asyncio
import base64
import hashlib
import json
import time

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fakes import TOKEN

from gunrelay.core import jsjson, sea

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def relay_settings() -> dict:
    return {"login_max_failures": 3, "max_messages_per_s": 50, "message_burst": 50}


async def metric(live_relay, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        text = (await http.get("/metrics")).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def signed(key: ec.EllipticCurvePrivateKey, soul: str, field: str, value, state: float) -> str:
    """A value signed as SEA signs user-space writes (with whatever key the attacker holds)."""
    message = jsjson.stringify({"#": soul, ".": field, ":": value, ">": state})
    r, s = decode_dss_signature(key.sign(hashlib.sha256(message.encode()).digest(), ec.ECDSA(hashes.SHA256())))
    return jsjson.stringify({":": value, "~": base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()})


async def exchange(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    for _ in range(50):
        data = json.loads(await asyncio.wait_for(ws.recv(), 5))
        for reply in data if isinstance(data, list) else [data]:
            if reply.get("@") == message["#"]:
                return reply
    raise AssertionError(f"no reply to {message['#']}")


def put(msg_id: str, soul: str, key: str, value, state: float) -> dict:
    return {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}}


async def identity(live_relay) -> str:
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        return (await http.get("/-/identity")).json()["pub"]


async def test_forged_sea_writes_are_refused_and_counted(live_relay):
    owner, attacker = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    space = "~" + sea.pub_of(owner)
    now = time.time() * 1000
    async with websockets.connect(live_relay.ws) as ws:
        forged = await exchange(ws, put("f1", space, "name", signed(attacker, space, "name", "mallory", now), now))
        unsigned = await exchange(ws, put("f2", space, "name", "mallory", now))
        honest = await exchange(ws, put("f3", space, "name", signed(owner, space, "name", "alice", now + 1), now + 1))
        read = await exchange(ws, {"#": "r", "get": {"#": space, ".": "name"}})
    assert "err" in forged and "err" in unsigned and honest.get("ok") is True
    assert json.loads(read["put"][space]["name"])[":"] == "alice"
    assert await metric(live_relay, "gunrelay_errors_total", kind="sea") == 2


async def test_forged_and_replayed_reset_records_and_legacy_writes_are_refused_and_counted(live_relay):
    pub = await identity(live_relay)
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        record = (await http.post("/-/api/resets", json={"scope": "nothing-here"})).json()["record"]
    space = f"~{pub}/reset"
    async with websockets.connect(live_relay.ws) as ws:
        for _ in range(50):  # bounded: until the record is published in the relay's space
            published = await exchange(ws, {"#": f"g{time.monotonic_ns()}", "get": {"#": space}})
            if (published.get("put") or {}).get(space, {}).get("reset_id"):
                break
            await asyncio.sleep(0.1)
        node = published["put"][space]
        states = node["_"][">"]
        attacker = ec.generate_private_key(ec.SECP256R1())
        later = time.time() * 1000 + 1
        replies = [
            # the relay's own signed record, replayed verbatim with its own states
            await exchange(ws, {"#": "replay", "put": {space: node}}),
            # a record signed with another key, newer than the real one
            await exchange(ws, put("forge", space, "reset_id", signed(attacker, space, "reset_id", "forged", later), later)),
            # the unsigned legacy node older apps read
            await exchange(ws, put("legacy", "_whisperz_system/reset", "message", "wipe everything", later)),
        ]
        after = await exchange(ws, {"#": "after", "get": {"#": space, ".": "reset_id"}})
    assert all("relay's system space" in r.get("err", "") for r in replies), replies
    assert json.loads(after["put"][space]["reset_id"])[":"] == record["reset_id"]
    assert after["put"][space]["_"][">"]["reset_id"] == states["reset_id"]  # untouched
    assert await metric(live_relay, "gunrelay_errors_total", kind="system_space") >= 3


async def test_resets_and_admin_actions_without_credentials_are_refused_and_counted(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        no_token = await http.post("/-/api/resets", json={"scope": "*"})
        wrong_token = await http.post("/-/api/resets", json={"scope": "*"}, headers={"Authorization": "Bearer guess"})
        session = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN})
        assert session.status_code == 200
        no_csrf = await http.post("/-/api/bans", json={"address": "10.9.9.9", "duration": "1h"})
        listed = await http.get("/-/api/resets", headers=AUTH)
    assert (no_token.status_code, wrong_token.status_code, no_csrf.status_code) == (401, 401, 403)
    assert listed.json()["resets"] == []  # nothing was issued
    refused = sum([await metric(live_relay, "gunrelay_admin_refused_total", reason=r) for r in ("session", "token", "csrf")])
    assert refused == 3


async def test_brute_force_login_is_locked_out_and_counted(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        codes = [(await http.post("/-/api/login", json={"user": "admin", "password": f"guess{i}"})).status_code for i in range(5)]
        right_but_locked = await http.post("/-/api/login", json={"user": "admin", "password": TOKEN})
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429] and right_but_locked.status_code == 429
    assert await metric(live_relay, "gunrelay_admin_logins_total", outcome="failed") == 3
    assert await metric(live_relay, "gunrelay_admin_logins_total", outcome="locked_out") == 3
    assert await metric(live_relay, "gunrelay_admin_refused_total", reason="lockout") == 3


async def test_path_traversal_in_snapshot_names_and_oversized_bodies_are_refused_and_counted(live_relay, tmp_path):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        slashed = [  # a name holding '/' matches no route at all: 404 before any handler runs
            await http.delete("/-/api/snapshots/..%2F..%2Fgunrelay.sqlite3"),
            await http.post("/-/api/snapshots/..%2Fgunrelay/restore", json={}),
        ]
        named = [  # the others reach the handlers, which check the name against one pattern
            await http.delete("/-/api/snapshots/..%5C..%5Cgunrelay.sqlite3"),
            await http.post("/-/api/snapshots/20260101T000000Z%0A/restore", json={}),
            await http.post("/-/api/snapshots", json={"label": "../../etc/passwd"}),
        ]
        huge = await http.post("/-/api/bans", content=b'{"address": "' + b"1" * 200_000 + b'"}',
                               headers={"Content-Type": "application/json"})
        bans = (await http.get("/-/api/bans")).json()
        snapshots = (await http.get("/-/api/snapshots")).json()
    assert [r.status_code for r in slashed] == [404, 404]
    assert [r.status_code for r in named] == [400, 400, 400], [r.text for r in named]
    assert (tmp_path / "data" / "gunrelay.sqlite3").exists() and snapshots["snapshots"] == []
    assert huge.status_code == 400 and "over 65536 bytes" in huge.json()["error"] and bans["bans"] == []
    assert await metric(live_relay, "gunrelay_admin_refused_total", reason="bad_request") == 3
    assert await metric(live_relay, "gunrelay_admin_refused_total", reason="body_too_large") == 1


async def test_get_and_subscription_floods_are_refused_and_counted(live_relay):
    async with websockets.connect(live_relay.ws) as ws:
        await asyncio.wait_for(ws.recv(), 5)  # the hello
        await ws.send(json.dumps([{"#": f"g{i}", "get": {"#": f"s{i}"}} for i in range(200)]))
        replies = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert len(replies) == 200 and all("Too many messages" in r["err"] for r in replies)
    assert await metric(live_relay, "gunrelay_refused_total", reason="message_rate") == 200
    # subscriptions past --max-subscriptions: tests/server/test_live_limits.py
