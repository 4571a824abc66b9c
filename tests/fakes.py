"""Fake sockets for driving a Relay without a network (imported by the server tests)."""

import asyncio
import json

from gunrelay.server.relay import Relay

NOW = 1_700_000_000_000.0
TOKEN = "test-operator-token"  # the live relay fixture's operator token


class Socket:
    def __init__(self, relay: Relay, address: str = "127.0.0.1"):
        self.frames: list[str] = []

        async def send(message: dict) -> None:  # the ASGI send of a websocket
            if message["type"] == "websocket.send":
                self.frames.append(message["text"])

        self.relay = relay
        self.peer = relay.open_connection(send, address)

    def send(self, *messages) -> None:
        self.relay.receive(self.peer, json.dumps(messages[0] if len(messages) == 1 else list(messages)))

    def messages(self) -> list[dict]:
        out = []
        for frame in self.frames:
            data = json.loads(frame)
            out.extend(data if isinstance(data, list) else [data])
        self.frames.clear()
        return [m for m in out if m.get("dam") != "?"]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def put(msg_id, soul, state=NOW, **values):
    return {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {k: state for k in values}}, **values}}}
