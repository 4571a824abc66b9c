"""The lean websocket protocol: what an open connection keeps, and that keeping less changes
nothing a peer can see (messages in order, keepalive pings and their timeout, proxy headers)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

import pytest
from raw_websocket import read_until_closed, upgrade
import websockets
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from gunrelay.server.wsprotocol import Gate, Inbox, Ping, PingClock, shed_upgrade_request


def ws_protocols(live_relay) -> list:
    return [p for p in live_relay.server.server_state.connections if hasattr(p, "conn")]


async def open_protocol(live_relay, before: set) -> object:
    for _ in range(200):
        fresh = [p for p in ws_protocols(live_relay) if p not in before and p.handshake_complete]
        if fresh:
            return fresh[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no websocket protocol appeared")


async def test_an_open_connection_keeps_no_handshake_and_no_dict(live_relay):
    before = set(ws_protocols(live_relay))
    async with websockets.connect(live_relay.ws) as ws:
        await ws.recv()  # the relay's hello: the upgrade is done
        protocol = await open_protocol(live_relay, before)
        assert vars(protocol) == {}  # every attribute in a slot
        assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Gate)
        assert protocol.request is None and protocol.response is None
        assert protocol.conn.parser.gi_code is Protocol.parse.__code__  # the upgrade request let go
        assert isinstance(protocol.ping_timer, Ping) and protocol.ping_timer.protocol is protocol
        big = json.dumps({"#": "big", "get": {"#": "x" * 5000}})
        await ws.send(big)
        await ws.recv()
        # the parser keeps its last frame until the next one: not its payload
        assert protocol.conn.parser.gi_frame.f_locals["frame"].data == b""
        # and messages still arrive whole and in order
        for i in range(50):
            await ws.send(json.dumps({"#": f"m{i}", "get": {"#": f"soul{i}"}}))
        seen = []
        while len(seen) < 50:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            for message in reply if isinstance(reply, list) else [reply]:
                if str(message.get("@", "")).startswith("m"):
                    seen.append(message["@"])
        assert seen == [f"m{i}" for i in range(50)]


async def test_keepalive_pings_are_sent_and_answered(live_relay):
    live_relay.server.config.ws_ping_interval = 0.2
    before = set(ws_protocols(live_relay))
    async with websockets.connect(live_relay.ws, ping_interval=None) as ws:  # it answers pings, sends none
        protocol = await open_protocol(live_relay, before)
        sent = set()
        deadline = time.monotonic() + 5
        while len(sent) < 3:
            assert time.monotonic() < deadline, f"pings sent at {sorted(sent)}"
            if protocol.ping_sent_at:
                sent.add(protocol.ping_sent_at)
            await asyncio.sleep(0.02)
        assert protocol.last_ping_rtt > 0  # the pongs came back
        await ws.send(json.dumps({"#": "still", "get": {"#": "here"}}))
        assert await asyncio.wait_for(ws.recv(), 5)






async def test_a_peer_that_never_answers_pings_is_closed_1011(live_relay):
    live_relay.server.config.ws_ping_interval = 0.1
    live_relay.server.config.ws_ping_timeout = 0.3
    sock = await asyncio.to_thread(upgrade, live_relay.port)
    try:
        received = await asyncio.wait_for(asyncio.to_thread(read_until_closed, sock), 10)
    finally:
        sock.close()
    assert b"\x89\x04" in received  # a ping with its 4-byte payload
    assert b"\x88" in received and struct.pack("!H", 1011) in received  # then the close, 1011


async def test_the_proxy_headers_of_a_trusted_proxy_name_the_peer(live_relay):
    async with websockets.connect(live_relay.ws, additional_headers={"X-Forwarded-For": "203.0.113.9"}) as ws:
        await ws.recv()
        assert [peer.address for peer in live_relay.app.state.relay.peers.values()] == ["203.0.113.9"]


# -- the pieces, one by one ----------------------------------------------------------------------


async def test_the_inbox_hands_over_in_order():
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert [inbox.get_nowait(), inbox.get_nowait()] == [1, 2] and inbox.empty()
    waiting = inbox.wait(loop)
    inbox.put_nowait(3)  # straight to the waiter
    inbox.put_nowait(4)
    assert await waiting == 3 and inbox.get_nowait() == 4
    gone = inbox.wait(loop)
    gone.cancel()  # a reader cancelled while waiting loses nothing
    inbox.put_nowait(5)
    assert not inbox.empty() and inbox.get_nowait() == 5


async def test_the_gate_lets_writers_through_only_while_open():
    gate = Gate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    waiters = [asyncio.ensure_future(gate.wait()) for _ in range(3)]
    cancelled = asyncio.ensure_future(gate.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert gate._waiters is None


async def test_the_ping_clock_pings_each_when_due_and_not_when_cancelled():
    loop = asyncio.get_running_loop()
    clock = PingClock.of(loop)
    assert PingClock.of(loop) is clock
    fired: list[tuple[str, float]] = []
    start = loop.time()

    class Fake:
        def __init__(self, name: str):
            self.name = name

        def send_keepalive_ping(self) -> None:
            fired.append((self.name, loop.time() - start))
            if self.name == "broken":
                raise RuntimeError("boom")

    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    try:
        clock.schedule(Fake("late"), 0.15)
        clock.schedule(Fake("early"), 0.05)  # earlier than the timer set: it is moved
        clock.schedule(Fake("broken"), 0.05)
        clock.schedule(Fake("cancelled"), 0.1).cancel()
        clock.schedule(Fake("also early"), 0.05)
        await asyncio.sleep(0.3)
    finally:
        loop.set_exception_handler(None)
    assert sorted(name for name, _ in fired) == ["also early", "broken", "early", "late"]
    assert all(0.04 <= at < 0.14 for name, at in fired if name != "late")
    assert [at >= 0.14 for name, at in fired if name == "late"] == [True]
    assert len(errors) == 1 and str(errors[0]["exception"]) == "boom"  # the others went on
    assert clock.due == [] and clock.timer is None


def _open_server() -> tuple[ServerProtocol, Request]:
    conn = ServerProtocol()
    key = base64.b64encode(os.urandom(16)).decode()
    conn.receive_data(
        f"GET /gun HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    [request] = conn.events_received()
    conn.send_response(conn.accept(request))
    assert conn.state is State.OPEN
    return conn, request


def _masked_text(text: str) -> bytes:
    mask, body = os.urandom(4), text.encode()
    return struct.pack("!BB", 0x81, 0x80 | len(body)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("cut", [0, 1, 3, 7])
def test_the_upgrade_request_goes_between_frames_and_its_headers_within_one(cut: int):
    conn, request = _open_server()
    frame = _masked_text("hello")
    conn.receive_data(frame[:cut])  # nothing, or part of a first frame, already read
    shed_upgrade_request(conn, request)
    if cut == 0:
        assert conn.parser.gi_code is Protocol.parse.__code__
        assert len(request.headers) > 0  # let go of whole instead
    else:
        assert conn.parser.gi_code is not Protocol.parse.__code__  # mid-frame: kept, emptied
        assert len(request.headers) == 0
    conn.receive_data(frame[cut:] + _masked_text("world"))
    assert [event.data for event in conn.events_received()] == [b"hello", b"world"]
