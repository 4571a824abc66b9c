"""uvicorn's sans-I/O websocket protocol, minus what an open GUN connection does not need.

A relay holds thousands of mostly idle sockets, so per-connection memory is a product figure
(see bench/). Once the handshake is answered, the upgrade request and response (with all their
headers) are never used again, yet the stock protocol object keeps both for the connection's
life. Dropping them saves about 2.5 KB per connection.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def start_keepalive(self) -> None:
        # called right after the 101 response is written: the handshake objects are done with
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()
