"""uvicorn's sans-I/O websocket protocol, minus what an open GUN connection does not need, and
quiet about what a peer sends.

A relay holds thousands of mostly idle sockets, so per-connection memory is a product figure
(see bench/). Once the handshake is answered, the upgrade request and response (with all their
headers) are never used again, yet the stock protocol object keeps both for the connection's
life. Dropping them saves about 2.5 KB per connection.

A close asked for while the socket's buffers are full (the peer stopped reading: the relay drops
it, see ``peer.py``) aborts the connection at once: the stock protocol would wait for the buffers
to drain before sending the close frame, which for a peer that never reads is forever, and the
connection and its buffers would stay until the ping timeout.

Nothing a peer sends may put a traceback in the log (a stranger could fill it). A text frame that
is not UTF-8 is the peer's error: one INFO line, the socket closed with 1007 (the relay counts it
as ``errors{kind="invalid_utf8"}``), also when the peer's own close frame came in the same read,
where the stock protocol's second close raised from ``data_received``. Anything else that escapes
the protocol while reading a peer's bytes is logged as one WARNING line (the traceback only at
DEBUG) and the connection is aborted.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

log = logging.getLogger("gunrelay.wsprotocol")


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

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except Exception as exc:  # a peer's bytes must never become a traceback in the log
            log.warning("closed the connection from %s after a protocol error: %s: %s", self._who(), type(exc).__name__, exc)
            log.debug("protocol error details", exc_info=True)
            self._hang_up(1002)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            if log.isEnabledFor(logging.INFO):
                log.info("closed the connection from %s: a text frame was not UTF-8 (1007)", self._who())
            self._hang_up(1007)
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _hang_up(self, code: int) -> None:
        """Tell the app the connection is over (``code``), send a close frame if the connection
        is still open, and close the transport."""
        if self.disconnected or self.close_sent:
            if not self.transport.is_closing():
                self.transport.abort()
            return
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": ""})
        try:
            if self.conn.state is State.OPEN:
                self.conn.send_close(code)
            output = self.conn.data_to_send()
            self.transport.write(b"".join(output))
        except Exception:
            self.transport.abort()
            return
        self.transport.close()

    def _who(self) -> str:
        return "%s:%d" % self.client if self.client else "?"
