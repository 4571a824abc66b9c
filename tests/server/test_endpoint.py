"""The HTTP and websocket surface of a running relay (ours only; interop/ covers GunJS clients)."""

import asyncio
import logging
import json

import httpx
import pytest
import websockets

from gunrelay.storage.sqlite import SQLiteStore


async def hello(ws) -> dict:
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["dam"] == "?" and first["pid"]
    return first


async def next_message(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_health_and_gun_bundles_with_cors(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        for path in ("/gun.js", "/gun/sea.js", "/sea.js", "/gun/lib/radix.js"):
            r = await http.get(path)
            assert r.status_code == 200, path
            assert r.headers["access-control-allow-origin"] == "*"
            assert r.headers["content-type"].startswith("text/javascript")
        assert (await http.get("/gun/../../pyproject.toml")).status_code == 404
        assert (await http.get("/gun/%2e%2e/%2e%2e/pyproject.toml")).status_code == 404


async def test_query_string_tolerated_and_other_paths_refused(live_relay):
    async with websockets.connect(live_relay.ws + "?x=1") as ws:
        await hello(ws)
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(live_relay.ws.replace("/gun", "/other")):
            pass


async def test_bad_frames_get_errors_and_the_connection_carries_on(live_relay):
    async with websockets.connect(live_relay.ws, max_size=None) as ws:
        await hello(ws)
        await ws.send("{oops")
        assert "parse error" in (await next_message(ws))["err"]
        await ws.send("x" * (64 * 1024 + 10))  # over max_frame_bytes, under the socket limit
        assert "too big" in (await next_message(ws))["err"]
        await ws.send(b"\x00\x01binary")
        assert "Binary" in (await next_message(ws))["err"]
        await ws.send(json.dumps({"#": "get-after-errors", "get": {"#": "nothing-here"}}))
        reply = await next_message(ws)
        assert reply["@"] == "get-after-errors" and "put" not in reply


async def test_frames_past_twice_the_limit_close_only_that_socket(live_relay):
    async with websockets.connect(live_relay.ws, max_size=None) as other:
        await hello(other)
        async with websockets.connect(live_relay.ws, max_size=None) as ws:
            await hello(ws)
            await ws.send("x" * (3 * 64 * 1024 * 1024 // 64))  # 3 MiB > 2 x 64 KiB... and > 1 MiB floor
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1009
        await other.send(json.dumps({"#": "still-alive", "get": {"#": "x"}}))
        assert (await next_message(other))["@"] == "still-alive"


async def test_shutdown_commits_every_write_it_received(live_relay, tmp_path):
    count = 3000
    async with websockets.connect(live_relay.ws, max_size=None) as ws:
        await hello(ws)
        batch = [
            {"#": f"drain-{i}", "put": {f"drain/{i}": {"_": {"#": f"drain/{i}", ">": {"v": 1}}, "v": i}}}
            for i in range(count)
        ]
        for start in range(0, count, 500):  # frames under the fixture's 64 KiB limit
            await ws.send(json.dumps(batch[start : start + 500]))
        await ws.send(json.dumps({"#": "marker", "get": {"#": "none"}}))
        while True:  # until the marker's reply: every frame was read, every put submitted
            frame = await next_message(ws)
            if any(m.get("@") == "marker" for m in (frame if isinstance(frame, list) else [frame])):
                break
        live_relay.server.should_exit = True
        await asyncio.wait_for(live_relay.task, 15)
    store = SQLiteStore(tmp_path / "data" / "gunrelay.sqlite3")
    await store.open()
    assert (await store.stats()).fields == count
    await store.close()


async def test_invalid_utf8_closes_that_socket_with_one_info_line_and_is_counted(live_relay, caplog):
    import base64
    import os
    import socket
    import struct

    def send_invalid() -> bytes:
        with socket.create_connection(("127.0.0.1", live_relay.port), timeout=5) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET /gun HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            s.recv(4096)
            payload, mask = b'{"a":"\xff\xfe"}', os.urandom(4)
            s.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            received = b""
            for _ in range(100):  # bounded: until the relay closes the connection
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
            return received

    received = await asyncio.to_thread(send_invalid)
    assert b"\x88\x02\x03\xef" in received  # after the hello, a close frame with code 1007
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        for _ in range(50):
            if 'gunrelay_errors_total{kind="invalid_utf8"} 1.0' in (await http.get("/metrics")).text:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the invalid frame was not counted")
    lines = [r for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in lines] == [("INFO", None)]  # no traceback to fill the log with
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
