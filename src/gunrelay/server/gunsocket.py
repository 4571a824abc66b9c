"""The ``/gun`` websocket endpoint: an ASGI app that pumps frames between a socket and the relay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .relay import Relay


class GunSocket:
    def __init__(
        self, relay: Relay, refuse: Callable[[str], str | None] = lambda address: None,
        hold: Callable[[], str | None] = lambda: None, mesh_header: bytes = b"",
    ):
        self.relay = relay
        self.refuse = refuse  # address -> why it may not connect (a ban), or None
        self.hold = hold  # why clients must wait (not in step with the mesh yet), or None
        self.mesh_header = mesh_header  # the upgrade header a relay of the mesh dials with: let in while holding

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        client = scope.get("client") or ("?", 0)
        address = str(client[0])
        relay = self.relay
        if self.refuse(address) is not None:
            relay.stats.refuse("banned")
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403 at the upgrade
            return
        if self.hold() is not None and not any(name == self.mesh_header for name, _ in scope.get("headers", ())):
            relay.stats.refuse("syncing")
            await send({"type": "websocket.close", "code": 1013})  # try again later (HTTP 403 at the upgrade)
            return
        await send({"type": "websocket.accept"})
        scope.clear()  # not read after the upgrade, yet the server holds it for the socket's life (about 1 KB)
        connection = relay.open_connection(send, address)
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    text = event.get("text")
                    if text is not None:
                        relay.receive(connection, text)
                    else:
                        relay.receive_binary(connection, len(event.get("bytes") or b""))
                elif kind == "websocket.disconnect":
                    code = event.get("code")
                    if code == 1009:  # the websocket layer closed it: a frame over twice the limit
                        relay.stats.refuse("frame_size")
                    elif code == 1007:  # ... or a text frame that was not UTF-8
                        relay.stats.error("invalid_utf8")
                    break
                event = text = None  # an idle socket does not keep its last frame (up to the frame limit)
        finally:
            relay.disconnect(connection)
