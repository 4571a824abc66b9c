"""The ``/gun`` websocket endpoint: an ASGI app that pumps frames between a socket and the relay."""

from __future__ import annotations

from typing import Any

from .peer import Peer
from .relay import Relay


class GunSocket:
    def __init__(self, relay: Relay):
        self.relay = relay

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client") or ("?", 0)
        scope["headers"] = ()  # not needed after the upgrade; the server holds the scope for the socket's life

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        relay = self.relay
        peer = Peer(send_text, str(client[0]))
        relay.connect(peer)
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    text = event.get("text")
                    if text is not None:
                        relay.receive(peer, text)
                    else:
                        relay.receive_binary(peer)
                elif kind == "websocket.disconnect":
                    break
        finally:
            relay.disconnect(peer)
