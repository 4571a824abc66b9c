"""Limits on a live relay, over real sockets: refused at the upgrade or answered with an error, and counted."""

import asyncio
import json

import httpx
import pytest
import websockets


@pytest.fixture
def relay_settings() -> dict:
    return {"max_connections": 3, "max_connections_per_address": 2, "max_messages_per_s": 5, "message_burst": 5,
            "max_subscriptions": 3}


async def refused_count(live_relay, reason: str) -> int:
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        text = (await http.get("/metrics")).text
    line = next((l for l in text.splitlines() if l.startswith(f'gunrelay_refused_total{{reason="{reason}"}}')), None)
    return int(float(line.split()[-1])) if line else 0


async def test_connections_over_the_per_address_limit_are_refused_and_counted(live_relay):
    async with websockets.connect(live_relay.ws) as one, websockets.connect(live_relay.ws) as two:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(live_relay.ws):
                pass
        assert refused.value.response.status_code == 503
        assert b"max_connections_per_address" in refused.value.response.body
        del one, two
    assert await refused_count(live_relay, "max_connections_per_address") == 1
    async with websockets.connect(live_relay.ws):  # a slot is free again once one closes
        pass


async def test_a_flood_is_answered_with_errors_and_counted(live_relay):
    async with websockets.connect(live_relay.ws) as ws:
        await asyncio.wait_for(ws.recv(), 5)  # the hello
        frame = [{"#": f"p{i}", "put": {"s": {"_": {"#": "s", ">": {"k": 1}}, "k": i}}} for i in range(8)]
        await ws.send(json.dumps(frame))
        replies = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert len(replies) == 8 and all("Too many messages" in r["err"] for r in replies)
        assert await refused_count(live_relay, "message_rate") == 8
        await ws.send(json.dumps({"#": "g", "get": {"#": "s"}}))  # a second later the budget is back
        await asyncio.sleep(1.1)
        await ws.send(json.dumps({"#": "g2", "get": {"#": "s"}}))
        answers = []
        for _ in range(2):
            data = json.loads(await asyncio.wait_for(ws.recv(), 5))
            answers += data if isinstance(data, list) else [data]
        assert any(a.get("@") == "g2" and "err" not in a for a in answers)


async def test_frames_over_the_size_limit_are_refused_and_counted(live_relay):
    async with websockets.connect(live_relay.ws, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send("[" + " " * (70 * 1024) + "]")
        assert "too big" in json.loads(await asyncio.wait_for(ws.recv(), 5))["err"]
    assert await refused_count(live_relay, "frame_size") == 1


async def test_a_subscription_flood_is_refused_past_the_limit_and_counted(live_relay):
    async with websockets.connect(live_relay.ws) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        answers = []
        for i in range(5):  # one a second apart would be slow; the message budget is 5 at once
            await ws.send(json.dumps({"#": f"g{i}", "get": {"#": f"soul{i % 4}"}}))
            data = json.loads(await asyncio.wait_for(ws.recv(), 5))
            answers += data if isinstance(data, list) else [data]
        by_id = {a["@"]: a for a in answers if "@" in a}
        assert all("err" not in by_id[f"g{i}"] for i in (0, 1, 2)) and "err" not in by_id["g4"]  # soul0 again: followed
        assert "Too many subscriptions" in by_id["g3"]["err"]
        await asyncio.sleep(1.1)  # the message budget is back
        await ws.send(json.dumps({"#": "long", "get": {"#": "soul0", ".": "k" * 5000}}))
        long = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert "Too long to follow" in long["err"]
    assert await refused_count(live_relay, "subscriptions") == 2
