"""A websocket spoken by hand over a plain socket, for tests that must see or send exact bytes
(a stalled reader, a close frame, invalid UTF-8). Every loop here is bounded."""

from __future__ import annotations

import base64
import os
import socket


def upgrade(port: int) -> socket.socket:
    """A socket upgraded to a websocket at ``/gun`` on the loopback relay at ``port``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /gun HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    for _ in range(100):  # bounded: until the end of the response's headers
        if b"\r\n\r\n" in response:
            break
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response[:80]
    return sock


def read_until_closed(sock: socket.socket, rounds: int = 1000) -> bytes:
    """Everything the relay sends until it closes the connection (at most ``rounds`` reads)."""
    received = b""
    for _ in range(rounds):
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received
