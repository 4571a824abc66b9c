"""uvicorn's sans-I/O websocket protocol, minus what an open GUN connection does not need.

A relay holds thousands of mostly idle sockets, so per-connection memory is a product figure
(see bench/). Once the handshake is answered, the upgrade request and response (with all their
headers) are never used again, yet the stock protocol object keeps both for the connection's
life. Dropping them saves about 2.5 KB per connection.

A close asked for while the socket's buffers are full (the peer stopped reading: the relay drops
it, see ``peer.py``) aborts the connection at once: the stock protocol would wait for the buffers
to drain before sending the close frame, which for a peer that never reads is forever, and the
connection and its buffers would stay until the ping timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def start_keepalive(self) -> None:
        # called right after the 101 response is written: the handshake objects are done with
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and not self.writable.is_set() and not self.disconnected:
            self.transport.abort()  # connection_lost follows: the app hears websocket.disconnect
            return
        await super().send(message)


class PeerErrorsAreNotTracebacks(logging.Filter):
    """uvicorn logs a frame of invalid UTF-8 from a client as an ERROR with a traceback (then closes
    the socket, 1007): a stranger could fill the log with them. It is the peer's error, not ours:
    one line at INFO (the relay counts it as ``errors{kind="invalid_utf8"}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("Invalid UTF-8 sequence received from client"):
            if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
                return False
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
